package leaktest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	goplugin "github.com/hashicorp/go-plugin"

	"github.com/phaseguard/phaseguard/internal/redact"
	"github.com/phaseguard/phaseguard/promapi/promapitest"
)

var (
	binDir string
	bin    string
)

// TestMain builds the phaseguard binary once: it is the CLI, the Action
// (its action subcommand) and the plugin (when started by go-plugin).
func TestMain(m *testing.M) {
	var err error
	if binDir, err = os.MkdirTemp("", "phaseguard-leaktest-"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bin = filepath.Join(binDir, "phaseguard")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/phaseguard")
	cmd.Dir = "../.."
	if out, err := cmd.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build phaseguard: %v\n%s", err, out)
		os.RemoveAll(binDir)
		os.Exit(1)
	}
	code := m.Run()
	// Kill the plugin processes argo's loader started (Managed: true).
	goplugin.CleanupClients()
	os.RemoveAll(binDir)
	os.Exit(code)
}

// secrets is one random value per credential input, each with a prefix
// naming it so that a leak names its source.
type secrets map[string]string

func newSecrets(t *testing.T, names ...string) secrets {
	t.Helper()
	s := secrets{}
	for _, n := range names {
		b := make([]byte, 16)
		if _, err := rand.Read(b); err != nil {
			t.Fatal(err)
		}
		s[n] = n + "-" + hex.EncodeToString(b)
	}
	return s
}

// forms returns every form a secret could leak in: as is, Base64, its
// random part alone, and as the password of each of basicUsers in an
// echoed basic-auth header (Base64 of user:password).
func (s secrets) forms(basicUsers ...string) map[string]string {
	out := map[string]string{}
	for n, v := range s {
		out[n] = v
		out[n+" (random part)"] = v[strings.LastIndexByte(v, '-')+1:]
		out[n+" (base64)"] = base64.StdEncoding.EncodeToString([]byte(v))
		for _, u := range basicUsers {
			out[n+" (basic auth as "+u+")"] = base64.StdEncoding.EncodeToString([]byte(u + ":" + v))
		}
	}
	return out
}

// checkNoLeak fails the test for every secret form found in any of texts
// (name → content), showing where.
func checkNoLeak(t *testing.T, forms map[string]string, texts map[string]string) {
	t.Helper()
	for where, text := range texts {
		for what, v := range forms {
			if i := strings.Index(text, v); i >= 0 {
				t.Errorf("%s shows %s: …%s…", where, what, text[max(i-120, 0):min(i+len(v)+40, len(text))])
			}
		}
	}
}

// echoWays are the ways the Echo server quotes a request's headers.
var echoWays = []string{promapitest.EchoError, promapitest.EchoWarning, promapitest.EchoLabel, promapitest.EchoBody}

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// run runs the binary with args and env, returning stdout and stderr.
func run(t *testing.T, env []string, args ...string) (stdout, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = env
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	if _, ok := err.(*exec.ExitError); err != nil && !ok {
		t.Fatalf("run %v: %v", args, err)
	}
	return o.String(), e.String()
}

// baseEnv is a minimal environment for the binary: no credentials of the
// test process leak in.
func baseEnv(extra ...string) []string {
	return append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.TempDir()}, extra...)
}

// TestCLI runs evaluate and backtest with every credential flag carrying
// a random secret, against every way of echoing.
func TestCLI(t *testing.T) {
	t.Parallel()
	for _, how := range echoWays {
		for _, auth := range []string{"bearer", "basic"} {
			t.Run(how+"/"+auth, func(t *testing.T) {
				t.Parallel()
				dir := t.TempDir()
				s := newSecrets(t, "bearer", "password", "flag-header", "config-header", "header-file")
				var authArgs []string
				httpConfig := "http_headers:\n  X-Api-Key:\n    secrets: [" + s["config-header"] + "]\n  X-Key-File:\n    files: [" +
					writeFile(t, dir, "hdr", s["header-file"]) + "]\n"
				if auth == "basic" {
					httpConfig += "basic_auth:\n  username: alice\n  password_file: " + writeFile(t, dir, "pw", s["password"]+"\n") + "\n"
				} else {
					authArgs = []string{"--bearer-token-file", writeFile(t, dir, "token", s["bearer"]+"\n")}
				}
				hc := writeFile(t, dir, "http.yaml", httpConfig)
				echo := promapitest.ServeEcho(t, how)
				texts := map[string]string{}
				for _, output := range []string{"text", "json"} {
					common := append([]string{"--prometheus", echo.URL, "--http-config", hc, "--header", "X-Tenant-Token: " + s["flag-header"],
						"--service", "checkout", "--canary-hash", "6f9c7d5b8", "--stable-hash", "5d8b6c4a7", "--output", output, "--timeout", "10s"}, authArgs...)
					out, errOut := run(t, baseEnv(), append([]string{"evaluate"}, common...)...)
					texts["evaluate "+output+" stdout"], texts["evaluate "+output+" stderr"] = out, errOut
					now := time.Now().Unix()
					out, errOut = run(t, baseEnv(), append([]string{"backtest", "--from", strconv.FormatInt(now-120, 10), "--to", strconv.FormatInt(now, 10), "--step", "60s"}, common...)...)
					texts["backtest "+output+" stdout"], texts["backtest "+output+" stderr"] = out, errOut
				}
				checkNoLeak(t, s.forms("alice"), texts)
				if how != promapitest.EchoBody && !strings.Contains(texts["evaluate text stdout"], redact.Mark) {
					t.Errorf("evaluate: no %s where the echo was: %.1500s", redact.Mark, texts["evaluate text stdout"])
				}
				checkSent(t, echo, s, map[string]bool{"X-Api-Key": true, "X-Key-File": true, "X-Tenant-Token": true, "Authorization": true})
			})
		}
	}
}

// checkSent fails when the server received no request, or a request with
// a secret in a header other than those the front end was configured to
// send it in.
func checkSent(t *testing.T, echo *promapitest.Echo, s secrets, allowed map[string]bool) {
	t.Helper()
	hs := echo.Headers()
	if len(hs) == 0 {
		t.Fatal("the server got no request")
	}
	for _, h := range hs {
		for name, vs := range h {
			if allowed[name] {
				continue
			}
			for _, v := range vs {
				for n, sv := range s {
					if strings.Contains(v, sv) {
						t.Errorf("the server got %s in header %s", n, name)
					}
				}
			}
		}
	}
}

// fakeGitHub is GitHub's REST API as far as the Action uses it
// (deployments and their statuses), recording every request with its
// body.
type fakeGitHub struct {
	srv      *httptest.Server
	mu       sync.Mutex
	requests []string
}

func serveGitHub(t *testing.T) *fakeGitHub {
	t.Helper()
	f := &fakeGitHub{}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		f.mu.Lock()
		var hdr []string
		for name, vs := range r.Header {
			if name != "Authorization" { // the token is meant for GitHub
				hdr = append(hdr, name+": "+strings.Join(vs, ","))
			}
		}
		f.requests = append(f.requests, r.Method+" "+r.URL.String()+"\n"+strings.Join(hdr, "\n")+"\n"+string(body))
		f.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		switch {
		case r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/deployments"):
			w.WriteHeader(http.StatusCreated)
			fmt.Fprint(w, `{"id": 1001, "environment": "canary-10", "sha": "`+sha+`", "created_at": "2026-11-30T10:00:00Z"}`)
		case r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/statuses"):
			w.WriteHeader(http.StatusCreated)
			fmt.Fprint(w, `{"id": 1, "state": "in_progress"}`)
		default:
			fmt.Fprint(w, `[]`)
		}
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeGitHub) all() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return strings.Join(f.requests, "\n---\n")
}

const sha = "0123456789abcdef0123456789abcdef01234567"

// TestAction runs the Action as the runner does, with every credential
// input carrying a random secret, and reads its log, outputs, job
// summary, report file and what it sent to GitHub's API.
func TestAction(t *testing.T) {
	t.Parallel()
	for _, how := range echoWays {
		for _, auth := range []string{"bearer", "basic"} {
			t.Run(how+"/"+auth, func(t *testing.T) {
				t.Parallel()
				dir := t.TempDir()
				s := newSecrets(t, "bearer", "password", "header", "github-token", "kube-token")
				echo := promapitest.ServeEcho(t, how)
				gh := serveGitHub(t)
				kubeconfig := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: u, user: {token: %q}}]
contexts: [{name: x, context: {cluster: c, user: u, namespace: shop}}]
current-context: x
`, s["kube-token"])
				files := map[string]string{
					"GITHUB_OUTPUT":       filepath.Join(dir, "output"),
					"GITHUB_STEP_SUMMARY": filepath.Join(dir, "summary"),
					"report":              filepath.Join(dir, "report.json"),
				}
				inputs := map[string]string{
					"stage": "canary-10", "prometheus-url": echo.URL, "service": "checkout", "namespace": "shop",
					"canary-hash": "6f9c7d5b8", "stable-hash": "5d8b6c4a7", "rollout": "checkout",
					"kubeconfig": kubeconfig, "github-token": s["github-token"],
					"prometheus-headers": "X-Scope-OrgID: shop\nX-Api-Key: " + s["header"], "prometheus-timeout": "10s",
					"report-path": "report.json",
				}
				if auth == "basic" {
					inputs["prometheus-username"], inputs["prometheus-password"] = "alice", s["password"]
				} else {
					inputs["prometheus-bearer-token"] = s["bearer"]
				}
				env := baseEnv("GITHUB_ACTIONS=true", "GITHUB_REPOSITORY=acme/shop", "GITHUB_SHA="+sha,
					"GITHUB_RUN_ID=4242", "GITHUB_RUN_ATTEMPT=1", "GITHUB_SERVER_URL=https://github.com",
					"GITHUB_API_URL="+gh.srv.URL, "GITHUB_WORKSPACE="+dir,
					"GITHUB_OUTPUT="+files["GITHUB_OUTPUT"], "GITHUB_STEP_SUMMARY="+files["GITHUB_STEP_SUMMARY"])
				for k, v := range inputs {
					env = append(env, "INPUT_"+strings.ToUpper(k)+"="+v)
				}
				for _, f := range []string{"GITHUB_OUTPUT", "GITHUB_STEP_SUMMARY"} {
					writeFile(t, dir, filepath.Base(files[f]), "")
				}
				out, errOut := run(t, env, "action")
				texts := map[string]string{"log (stdout)": stripMasks(out), "stderr": errOut, "GitHub API requests": gh.all()}
				for name, p := range files {
					b, err := os.ReadFile(p)
					if err != nil && name != "report" {
						t.Errorf("%s: %v", name, err)
					}
					texts[name] = string(b)
				}
				checkNoLeak(t, s.forms("alice"), texts)
				if !strings.Contains(texts["GITHUB_OUTPUT"], "verdict") {
					t.Errorf("no verdict output; log:\n%.3000s", out)
				}
				if how != promapitest.EchoBody && !strings.Contains(texts["GITHUB_OUTPUT"], redact.Mark) {
					t.Errorf("outputs: no %s where the echo was: %.1500s", redact.Mark, texts["GITHUB_OUTPUT"])
				}
				checkSent(t, echo, s, map[string]bool{"X-Api-Key": true, "Authorization": true})
			})
		}
	}
}

// stripMasks drops the ::add-mask:: workflow commands from a log: they
// hold the secrets on purpose, for the runner, which never shows them.
func stripMasks(log string) string {
	var b strings.Builder
	for line := range strings.Lines(log) {
		if !strings.HasPrefix(line, "::add-mask::") {
			b.WriteString(line)
		}
	}
	return b.String()
}
