package main

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/phaseguard/phaseguard/internal/redact"
	"github.com/phaseguard/phaseguard/promapi/promapitest"
)

// randomSecret returns a fresh credential-looking value.
func randomSecret(t *testing.T, prefix string) string {
	t.Helper()
	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return prefix + hex.EncodeToString(b)
}

// TestEvaluateNeverShowsCredentials: against a server that quotes every
// request header back, wherever an answer has text, no credential given to
// the CLI (a bearer token file, a basic-auth password file, a header from
// a flag, a header secret in --http-config) appears in its output, text or
// JSON, and the echo is marked where it was.
func TestEvaluateNeverShowsCredentials(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	token, password := randomSecret(t, "tok-"), randomSecret(t, "pw-")
	flagHeader, fileHeader := randomSecret(t, "hdr-"), randomSecret(t, "hsec-")
	tokenFile := write("token", token+"\n")
	basic := write("basic.yaml", "basic_auth:\n  username: alice\n  password_file: "+write("pw", password)+
		"\nhttp_headers:\n  X-Api-Key:\n    secrets: ["+fileHeader+"]\n")
	secrets := []string{token, password, flagHeader, fileHeader,
		base64.StdEncoding.EncodeToString([]byte("alice:" + password))}
	auths := map[string][]string{
		"bearer file":  {"--bearer-token-file", tokenFile},
		"basic config": {"--http-config", basic},
	}
	for _, how := range []string{promapitest.EchoError, promapitest.EchoWarning, promapitest.EchoLabel, promapitest.EchoBody} {
		for name, auth := range auths {
			for _, output := range []string{"text", "json"} {
				t.Run(how+"/"+name+"/"+output, func(t *testing.T) {
					t.Parallel()
					echo := promapitest.ServeEcho(t, how)
					args := append([]string{"evaluate", "--prometheus", echo.URL, "--service", "checkout",
						"--canary-hash", "6f9c7d5b8", "--header", "X-Tenant-Key: " + flagHeader, "--output", output, "--timeout", "5s"}, auth...)
					code, out, errOut := runCLI(t, args...)
					if code != exitHold && code != exitError {
						t.Errorf("exit %d, want hold or error (every query failed)", code)
					}
					all := out + errOut
					for _, s := range secrets {
						if i := strings.Index(all, s); i >= 0 {
							t.Errorf("output shows credential %q: …%s…", s, all[max(i-200, 0):min(i+200, len(all))])
						}
					}
					if how != promapitest.EchoBody && !strings.Contains(all, redact.Mark) {
						t.Errorf("no %s where the echo was: %.2000s", redact.Mark, all)
					}
					if len(echo.Headers()) == 0 {
						t.Error("the server got no request")
					}
				})
			}
		}
	}
}

// TestPrometheusURLRefused: an address holding credentials or parameters
// is refused before anything is sent, naming the flag, without showing
// them.
func TestPrometheusURLRefused(t *testing.T) {
	t.Parallel()
	tests := []struct{ url, want string }{
		{"https://prom.example/?access_token=hunter2-tok", "must not have a query"},
		{"https://u:hunter2-pw@prom.example", "must not hold user-info"},
		{"https://prom.example/p#hunter2-frag", "must not have a fragment"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			t.Parallel()
			code, out, errOut := runCLI(t, "evaluate", "--prometheus", tt.url, "--canary-hash", "6f9c7d5b8")
			if code != exitError {
				t.Errorf("exit %d, want %d", code, exitError)
			}
			if !strings.Contains(errOut, "--prometheus: url") || !strings.Contains(errOut, tt.want) {
				t.Errorf("stderr %q: want --prometheus and %q", errOut, tt.want)
			}
			if strings.Contains(out+errOut, "hunter2") {
				t.Errorf("output shows the secret: %s%s", out, errOut)
			}
		})
	}
}

// TestHostileCredentialFiles: a named pipe, /dev/zero or a directory as a
// credential file is refused at once, naming the flag; an HTTP settings
// file whose YAML or URLs do not parse is refused without quoting them.
func TestHostileCredentialFiles(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	badProxy := filepath.Join(dir, "proxy.yaml")
	os.WriteFile(badProxy, []byte("proxy_url: http://u:hunter2-proxy@h:bad port\n"), 0o600)
	badType := filepath.Join(dir, "type.yaml")
	os.WriteFile(badType, []byte("follow_redirects: hunter2-bool\n"), 0o600)
	token := filepath.Join(dir, "token")
	os.WriteFile(token, []byte("hunter2-token\n"), 0o600)
	pwConfig := filepath.Join(dir, "basic.yaml")
	os.WriteFile(pwConfig, []byte("basic_auth: {username: u, password_file: "+token+"}\n"), 0o600)
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"http-config fifo", []string{"--http-config", fifo}, "--http-config " + fifo + ": refused: not a regular file (a named pipe)"},
		{"http-config /dev/zero", []string{"--http-config", "/dev/zero"}, "refused: not a regular file (a device)"},
		{"http-config directory", []string{"--http-config", dir}, "refused: not a regular file (a directory)"},
		{"bearer fifo", []string{"--bearer-token-file", fifo}, "--bearer-token-file " + fifo + ": refused: not a regular file (a named pipe)"},
		{"bad proxy url", []string{"--http-config", badProxy}, "--http-config " + badProxy + ": "},
		{"bad yaml value", []string{"--http-config", badType}, "--http-config " + badType + ": "},
		{"header without colon", []string{"--header", "X-Api-Key=hunter2-header"}, "want 'Name: value'"},
		{"header with CR LF", []string{"--header", "X-Api-Key: hunter2-a\r\nX-B: y"}, "with a control character (CR, LF)"},
		{"header name no token", []string{"--header", "X Api-Key: hunter2-b"}, "with a name that is no HTTP token"},
		// A credential file given as the policy by mistake: its YAML
		// error quotes the token, which the credentials flags made secret.
		{"token as the policy", []string{"--bearer-token-file", token, "--policy", token}, "policy " + token + ": 1 problem"},
		{"password file as the policy", []string{"--http-config", pwConfig, "--policy", token}, "policy " + token + ": 1 problem"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			args := append([]string{"evaluate", "--prometheus", "http://127.0.0.1:1", "--canary-hash", "6f9c7d5b8", "--timeout", "2s"}, tt.args...)
			code, out, errOut := runCLI(t, args...)
			if code != exitError && code != exitUsage {
				t.Errorf("exit %d, want an error", code)
			}
			if !strings.Contains(unwrapped(errOut), tt.want) {
				t.Errorf("stderr %q, want %q", errOut, tt.want)
			}
			if strings.Contains(out+errOut, "hunter2") {
				t.Errorf("output quotes the file's secret: %s%s", out, errOut)
			}
		})
	}
}
