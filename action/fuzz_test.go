package action

import (
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"
)

// fuzzKubeconfigs are the kubeconfig inputs FuzzInputs picks from: none,
// one with a token, one with a password, two that client-go refuses. The
// kubeconfig is picked, not fuzzed: client-go's decoding would have the
// fuzzer chase its coverage instead of this package's.
var fuzzKubeconfigs = []string{
	"",
	`apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://kube.example:6443"}}]
users: [{name: u, user: {token: kube-token-6c5d4e3f}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
`,
	"apiVersion: v1\nkind: Config\nusers: [{name: u, user: {password: kube-pw-1a2b3c4d, username: a}}]\n",
	"apiVersion: v1\nusers: [{name: u, user: {token: [kube-token-7e8f9a0b]}}]",
	"{",
}

// FuzzInputs feeds the Action's inputs through readInputs: the Prometheus
// URL (checkPromURL), bearer token, basic auth and headers (parseHeaders),
// the durations (parseDuration), the GitHub token and the commit, with a
// kubeconfig from fuzzKubeconfigs and a policy that does not load. Run it
// with
//
//	go test -run='^$' -fuzz='^FuzzInputs$' -fuzztime=1000000x -parallel 1 ./action/
//
// or with every other target through scripts/fuzz.sh. readInputs never
// panics; every problem it reports is an *InputError whose message begins
// with the input's name; and no message holds a credential given: the
// bearer token, the password, a header's value, the GitHub token, the
// password in the URL or a credential of the kubeconfig. A value found in
// a message is a leak only when it is gone from the message once it is
// gone from the credentials (not from a header's name or the URL's host):
// otherwise the message says it anyway (another input holds it, or it is
// a word of the message).
func FuzzInputs(f *testing.F) {
	seeds := []struct {
		url, token, user, password, headers, promTimeout, timeout, gh, sha string
		kubeconfig                                                         uint8
	}{
		{"https://prometheus.example:9090/prom", "tok-3f9a8b7c", "", "", "X-Scope-OrgID: tenant-1\n", "30s", "10m", "ghp-5e6f7a8b9c", "0123456789abcdef0123456789abcdef01234567", 0},
		{"http://user:pw-8d7e6f5a@prometheus:9090", "", "user", "pw-8d7e6f5a", "", "1h30m", "6h1s", "", "", 1},
		{"https://p:9090/?access_token=tok-1c2d3e4f#frag", "tok-1c2d3e4f\n::set-output name=x::y", "us:er", "pw\x00-2a3b", "Authorization: Bearer tok-9a8b7c6d\nbad line\nX-Key: \x7f\n", "0s", "-1m", "ghp\r\n", "HEAD", 3},
		{"http:user:pw-4e5f6a7b@p:9090", "", "u", "pw-4e5f6a7b", "X-Api-Key:   key-0f1e2d3c  \r\nX-Api-Key: key-4b5a6978\n# comment\n", "9999999999999999999h", "1y", "", "", 4},
		// Found by .ci/run: the URL's path, quoted, held what reads as a password.
		{"a:///:000000@", "", "", "", "", "0", "0", "", "", 0},
		{"http:///:pw-5a6b7c8d@h", "", "", "", "", "", "", "", "", 0},
		{"ftp://p", "", "", "", ":nameless\nName With Space: v-12345678\nCookie: session-abcdef12", "1e3", "30", "", "", 2},
	}
	for _, s := range seeds {
		f.Add(s.url, s.token, s.user, s.password, s.headers, s.promTimeout, s.timeout, s.gh, s.sha, s.kubeconfig)
	}
	workspace := f.TempDir()
	now := time.Date(2026, 1, 1, 0, 40, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, promURL, token, user, password, headers, promTimeout, timeout, gh, sha string, kc uint8) {
		if len(promURL)+len(token)+len(user)+len(password)+len(headers)+len(promTimeout)+len(timeout)+len(gh)+len(sha) > 64<<10 {
			t.Skip()
		}
		kubeconfig := fuzzKubeconfigs[int(kc)%len(fuzzKubeconfigs)]
		inputs := map[string]string{
			// A policy file the workspace does not have: refused at once,
			// where loading one would cost a millisecond of every input
			// and test the policies package, fuzzed on its own.
			inPolicy: "missing.yaml", inStage: "canary", inService: "checkout", inNamespace: "shop", inCanaryHash: "7f8c9d6b4",
			inPromURL: promURL, inPromToken: token, inPromUser: user, inPromPassword: password, inPromHeaders: headers,
			inPromTimeout: promTimeout, inTimeout: timeout, inKubeconfig: kubeconfig, inGitHubToken: gh, inSHA: sha,
		}
		read := func(inputs map[string]string) string {
			in, err := readInputs(func(k string) string { return inputs[k] }, now, &runnerEnv{workspace: workspace, sha: "HEAD"})
			if in == nil {
				t.Fatal("readInputs returned no inputs")
			}
			if err == nil {
				return ""
			}
			problems := []error{err}
			if j, ok := err.(interface{ Unwrap() []error }); ok {
				problems = j.Unwrap()
			}
			for _, p := range problems {
				var ie *InputError
				if !errors.As(p, &ie) || ie.Input == "" || !strings.HasPrefix(p.Error(), "input "+ie.Input) {
					t.Errorf("problem %T does not name its input: %v", p, p)
				}
			}
			return err.Error()
		}
		msg := read(inputs)
		if msg == "" {
			return
		}
		for _, s := range credentials(token, password, headers, gh, promURL, kubeconfig) {
			if len(s) < 6 || !strings.Contains(msg, s) {
				continue
			}
			without := map[string]string{}
			for k, v := range inputs {
				without[k] = v
			}
			for _, k := range []string{inPromToken, inPromPassword, inGitHubToken, inKubeconfig} {
				without[k] = strings.ReplaceAll(without[k], s, "MARK")
			}
			without[inPromHeaders] = withoutInValues(headers, s)
			without[inPromURL] = withoutInPassword(promURL, s)
			if !strings.Contains(read(without), s) {
				t.Errorf("a message quotes the credential %q:\n%s", s, msg)
			}
		}
	})
}

// credentials returns the credential values of the inputs: the token, the
// password, each header's value (as a user would split the lines, apart
// from parseHeaders), the GitHub token, the URL's password (parsed or
// not) and the kubeconfig's credentials (as kubeSecrets finds them).
func credentials(token, password, headers, gh, promURL, kubeconfig string) []string {
	out := []string{token, password, gh}
	for _, line := range strings.Split(headers, "\n") {
		if _, v, ok := strings.Cut(line, ":"); ok {
			out = append(out, strings.TrimSpace(v), v)
		}
	}
	if u, err := url.Parse(promURL); err == nil && u.User != nil {
		if pw, ok := u.User.Password(); ok {
			out = append(out, pw)
		}
	}
	if at := strings.LastIndex(promURL, "@"); at >= 0 {
		// Unparsable or opaque (http:user:password@host) too.
		info := promURL[:at]
		if i := strings.Index(info, "://"); i >= 0 {
			info = info[i+3:]
		} else if i := strings.Index(info, ":"); i >= 0 {
			info = info[i+1:]
		}
		if _, pw, ok := strings.Cut(info, ":"); ok {
			out = append(out, pw)
		}
	}
	return append(out, kubeSecrets([]byte(kubeconfig))...)
}

// withoutInValues replaces s with a mark in the value of each header line
// (after its first ':'), leaving the names as they are.
func withoutInValues(headers, s string) string {
	lines := strings.Split(headers, "\n")
	for i, line := range lines {
		if name, v, ok := strings.Cut(line, ":"); ok {
			lines[i] = name + ":" + strings.ReplaceAll(v, s, "MARK")
		}
	}
	return strings.Join(lines, "\n")
}

// withoutInPassword replaces s with a mark in what follows the user name
// of the URL's user-info (as credentials finds the password), leaving the
// rest as it is.
func withoutInPassword(promURL, s string) string {
	at := strings.LastIndex(promURL, "@")
	if at < 0 {
		return promURL
	}
	start := 0
	if i := strings.Index(promURL[:at], "://"); i >= 0 {
		start = i + 3
	} else if i := strings.Index(promURL[:at], ":"); i >= 0 {
		start = i + 1
	}
	colon := strings.Index(promURL[start:at], ":")
	if colon < 0 {
		return promURL
	}
	pw := start + colon + 1
	return promURL[:pw] + strings.ReplaceAll(promURL[pw:at], s, "MARK") + promURL[at:]
}

// TestFuzzInputsCredentials checks FuzzInputs' notion of a credential and
// of taking one away, so that the target can fail.
func TestFuzzInputsCredentials(t *testing.T) {
	t.Parallel()
	got := strings.Join(credentials("tok-1", "pw-2", "X-A: v-3\nX-B:v-4", "gh-5", "http:user:pw-6@host", ""), " ")
	for _, want := range []string{"tok-1", "pw-2", "v-3", "v-4", "gh-5", "pw-6"} {
		if !strings.Contains(got, want) {
			t.Errorf("credentials found %q, not %q", got, want)
		}
	}
	for _, tc := range []struct{ in, s, want string }{
		{"http://pw:pw@pw", "pw", "http://pw:MARK@pw"},
		{"http:pw:pw@pw", "pw", "http:pw:MARK@pw"},
		{"http://pw@pw", "pw", "http://pw@pw"},
	} {
		if got := withoutInPassword(tc.in, tc.s); got != tc.want {
			t.Errorf("withoutInPassword(%q, %q) = %q, want %q", tc.in, tc.s, got, tc.want)
		}
	}
	if got := withoutInValues("v-1: v-1\nno colon v-1", "v-1"); got != "v-1: MARK\nno colon v-1" {
		t.Errorf("withoutInValues = %q", got)
	}
}
