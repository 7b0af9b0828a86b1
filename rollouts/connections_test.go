package rollouts

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/argoproj/argo-rollouts/pkg/apis/rollouts/v1alpha1"
	"github.com/hashicorp/go-hclog"

	"github.com/phaseguard/phaseguard/internal/redact"
)

func TestParseConnectionsErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, yaml string
		want       []string
	}{
		{"unknown field", "connections:\n  - {name: a, url: 'http://p:9090', bearer_tokn: s3cr3t}\n", []string{`line 2: unknown field "bearer_tokn"`}},
		{"wrong type quotes no value", "connections:\n  - {name: a, url: 'http://p:9090', follow_redirects: s3cr3t}\n", []string{"line 2: cannot decode a !!str into bool (the value is not shown)"}},
		{"no name", "connections:\n  - {url: 'http://p:9090'}\n", []string{"connections[0].name: required"}},
		{"bad name", "connections:\n  - {name: Mimir_1, url: 'http://p:9090'}\n", []string{`connections[0].name: want a DNS-1123 label`}},
		{"twice", "connections:\n  - {name: a, url: 'http://p:9090'}\n  - {name: a, url: 'http://q:9090'}\n", []string{`connections[1] (a).name: defined twice`}},
		{"query in url", "connections:\n  - {name: a, url: 'https://p:9090/prom?access_token=s3cr3t'}\n", []string{`connections[0] (a).url: url "…": must not have a query`}},
		{"user-info in url", "connections:\n  - {name: a, url: 'https://u:s3cr3t@p:9090'}\n", []string{`connections[0] (a).url: url "…": must not hold user-info`}},
		{"user-info in proxy", "connections:\n  - {name: a, url: 'https://p:9090', proxy_url: 'http://u:s3cr3t@proxy:3128'}\n", []string{`connections[0] (a).proxy_url: must not hold user-info`}},
		{"proxy without host", "connections:\n  - {name: a, url: 'https://p:9090', proxy_url: 'http:///x'}\n", []string{`connections[0] (a).proxy_url: host must be set`}},
		{"query in token url", "connections:\n  - {name: a, url: 'https://p:9090', oauth2: {client_id: c, client_secret: s3cr3t, token_url: 'https://idp/token?client_secret=s3cr3t'}}\n", []string{`connections[0] (a).oauth2.token_url: must not have a query`}},
		{"user-info in token url", "connections:\n  - {name: a, url: 'https://p:9090', oauth2: {client_id: c, client_secret: s3cr3t, token_url: 'https://c:s3cr3t@idp/token'}}\n", []string{`connections[0] (a).oauth2.token_url: must not hold user-info`}},
		{"bad namespace", "connections:\n  - {name: a, url: 'https://p:9090', namespaces: [Shop]}\n", []string{`connections[0] (a).namespaces[0]: not a namespace`}},
		{"two auths", "connections:\n  - {name: a, url: 'https://p:9090', basic_auth: {username: u, password: s3cr3t}, authorization: {credentials: s3cr3t}}\n", []string{"connections[0] (a): at most one of basic_auth, oauth2 & authorization"}},
		{"missing CA", "connections:\n  - {name: a, url: 'https://p:9090', tls_config: {ca_file: /nonexistent/ca.crt}}\n", []string{"connections[0] (a): ", "/nonexistent/ca.crt"}},
		{"every problem at once", "connections:\n  - {url: 'http://p:9090?x=1'}\n  - {name: B}\n", []string{"connections[0].name: required", "connections[0].url", "connections[1].name", "connections[1].url: url: must be set"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := ParseConnections([]byte(tc.yaml), t.TempDir(), redact.New())
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\ndoes not contain %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "s3cr3t") {
				t.Errorf("error %q quotes a secret", err)
			}
		})
	}
}

func TestParseConnections(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "token"), []byte("file-token-4e5f\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	set := redact.New()
	conns, err := ParseConnections([]byte(`connections:
  - name: mimir
    url: https://mimir.example/prometheus
    namespaces: [shop]
    authorization: {credentials_file: token}
    http_headers:
      X-Scope-OrgID: {values: [shop]}
  - name: thanos
    url: http://thanos:10902
    basic_auth: {username: u, password: inline-pass-6a7b}
    follow_redirects: false
`), dir, set)
	if err != nil {
		t.Fatal(err)
	}
	m, th := conns["mimir"], conns["thanos"]
	if m == nil || th == nil {
		t.Fatalf("connections %v", conns)
	}
	// Prometheus' defaults, relative files, the operator's choices.
	if !m.HTTP.FollowRedirects || !m.HTTP.EnableHTTP2 || th.HTTP.FollowRedirects {
		t.Errorf("redirects %t %t, http2 %t", m.HTTP.FollowRedirects, th.HTTP.FollowRedirects, m.HTTP.EnableHTTP2)
	}
	if got := m.HTTP.Authorization.CredentialsFile; got != filepath.Join(dir, "token") || m.HTTP.Authorization.Type != "Bearer" {
		t.Errorf("authorization %+v", m.HTTP.Authorization)
	}
	for _, s := range []string{"file-token-4e5f", "inline-pass-6a7b"} {
		if !set.Has(s) {
			t.Errorf("%s not learned", s)
		}
	}
}

// TestConnectionsReload: the file is reread when it changes; a file that
// no longer parses leaves the last good connections in use, and is
// logged; a template naming a connection gets errors that name it.
func TestConnectionsReload(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "connections.yaml")
	write := func(content string, mtime time.Time) {
		t.Helper()
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(path, mtime, mtime); err != nil {
			t.Fatal(err)
		}
	}
	var log strings.Builder
	c := newConnections(path, redact.New(), hclog.New(&hclog.LoggerOptions{Output: &log}))
	if _, _, err := c.get("a", "shop"); err == nil || !strings.Contains(err.Error(), "could not be read") {
		t.Errorf("no file yet: %v", err)
	}
	t0 := time.Now().Add(-time.Hour)
	write("connections:\n  - {name: a, url: 'http://a:9090'}\n", t0)
	a, v1, err := c.get("a", "shop")
	if err != nil || a.URL != "http://a:9090" {
		t.Fatalf("a: %v %v", a, err)
	}
	write("connections:\n  - {name: a, url: 'http://a2:9090'}\n  - {name: b, url: 'http://b:9090', namespaces: [payments]}\n", t0.Add(time.Minute))
	a, v2, err := c.get("a", "shop")
	if err != nil || a.URL != "http://a2:9090" || v2 == v1 {
		t.Errorf("after a change: %v %v, version %q -> %q", a, err, v1, v2)
	}
	if _, _, err := c.get("b", "shop"); err == nil || !strings.Contains(err.Error(), `not for AnalysisRuns of namespace "shop" (the operator allows: payments)`) {
		t.Errorf("b from shop: %v", err)
	}
	if _, _, err := c.get("c", "shop"); err == nil || !strings.Contains(err.Error(), "not defined in the plugin's connections file (defined: a, b)") {
		t.Errorf("c: %v", err)
	}
	write("connections: [{name: a, url: 'http://a3:9090', nonsense: 1}]\n", t0.Add(2*time.Minute))
	if a, v3, err := c.get("a", "shop"); err != nil || a.URL != "http://a2:9090" || v3 != v2 {
		t.Errorf("after a bad change: %v %v, want the last good one", a, err)
	}
	if !strings.Contains(log.String(), "connections file refused; keeping the connections last read") {
		t.Errorf("log: %s", log.String())
	}

	var none *connections
	if _, _, err := none.get("a", "shop"); !errors.Is(err, errNoConnectionsFile) {
		t.Errorf("no file configured: %v", err)
	}
}

func TestParseArgs(t *testing.T) {
	t.Parallel()
	env := func(v string) func(string) string {
		return func(k string) string {
			if k == EnvConnectionsFile {
				return v
			}
			return ""
		}
	}
	for _, tc := range []struct {
		args []string
		env  string
		want string // connections file, or the error's text
	}{
		{nil, "", ""},
		{[]string{"--connections=/etc/pg/c.yaml"}, "", "/etc/pg/c.yaml"},
		{nil, "/etc/pg/env.yaml", "/etc/pg/env.yaml"},
		{[]string{"--connections", "/etc/pg/c.yaml"}, "/etc/pg/env.yaml", "/etc/pg/c.yaml"},
		{[]string{"--connections=c.yaml"}, "", `--connections "c.yaml": want an absolute path`},
		{[]string{"--conections=/c.yaml"}, "", "flag provided but not defined: -conections"},
		{[]string{"extra"}, "", `unexpected argument "extra"`},
	} {
		opts, err := ParseArgs(tc.args, env(tc.env))
		if err != nil {
			if tc.want == "" || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("%q: %v, want %q", tc.args, err, tc.want)
			}
			continue
		}
		if p := New(opts...); p.connsPath != tc.want {
			t.Errorf("%q with $%s=%q: connections %q, want %q", tc.args, EnvConnectionsFile, tc.env, p.connsPath, tc.want)
		}
	}

	// Args that cannot be used make every call an Error saying so.
	_, err := ParseArgs([]string{"extra"}, env(""))
	p := New(withSetupError(err))
	m := p.Run(&v1alpha1.AnalysisRun{}, v1alpha1.Metric{Name: "m"})
	if m.Phase != v1alpha1.AnalysisPhaseError || !strings.Contains(m.Message, "plugin args (argo-rollouts-config)") {
		t.Errorf("Run with bad args: %s %q", m.Phase, m.Message)
	}
}

// TestConnectionsErrorsQuoteNoValue: whatever is wrong with a value of
// the connections file, the error (which the plugin logs) shows neither
// the value nor any part of it: go-yaml quotes up to 10 bytes of a value
// it cannot use, in backquotes that the value may itself hold; url.Parse
// quotes the whole URL with its password; CheckURL quotes scheme, host
// and path; prometheus/common's TLS version quotes it bare.
func TestConnectionsErrorsQuoteNoValue(t *testing.T) {
	t.Parallel()
	const s = "Pw9xQ2" // in every value below; 6 bytes, so any 3 in a row are looked for
	for _, tc := range []struct {
		name, conn string
		want       string // a part of the error that says what is wrong
	}{
		{"proxy_url with a bad port", `{name: a, url: 'http://p:9090', proxy_url: 'http://u:` + s + `@proxy:bad port'}`, "a URL does not parse: invalid port"},
		{"oauth2 token_url with a bad port", `{name: a, url: 'http://p:9090', oauth2: {client_id: c, client_secret: x, token_url: 'http://c:` + s + `@idp:bad port/t'}}`, "oauth2.token_url: not a URL"},
		{"oauth2 token_url with a query", `{name: a, url: 'http://p:9090', oauth2: {client_id: c, client_secret: x, token_url: 'http://idp/t?client_secret=` + s + `'}}`, "oauth2.token_url: must not have a query"},
		{"oauth2 proxy_url with user-info", `{name: a, url: 'http://p:9090', oauth2: {client_id: c, client_secret: x, token_url: 'http://idp/t', proxy_url: 'http://u:` + s + `@proxy:3128'}}`, "oauth2.proxy_url: must not hold user-info"},
		{"short value of the wrong type", `{name: a, url: 'http://p:9090', follow_redirects: '` + s + `'}`, "line 2: cannot decode a !!str into bool"},
		{"long value of the wrong type", `{name: a, url: 'http://p:9090', follow_redirects: '` + s + s + s + `'}`, "line 2: cannot decode a !!str into bool"},
		{"value holding backquotes", "{name: a, url: 'http://p:9090', follow_redirects: 'a`" + s + "`b'}", "line 2: cannot decode a !!str into bool"},
		{"value holding ' into '", "{name: a, url: 'http://p:9090', enable_http2: 'x` into " + s + "'}", "line 2: cannot decode a !!str into bool"},
		{"value holding a newline", `{name: a, url: 'http://p:9090', follow_redirects: "x\n` + s + `"}`, "line 2: cannot decode a !!str into bool"},
		{"value where a list is wanted", `{name: a, url: 'http://p:9090', namespaces: ` + s + `}`, "cannot decode a !!str into []string"},
		{"header values not a list", `{name: a, url: 'http://p:9090', http_headers: {X-Key: {secrets: ` + s + `}}}`, "cannot decode a !!str into []config.Secret"},
		{"TLS version", `{name: a, url: 'http://p:9090', tls_config: {min_version: TLS` + s + `}}`, "unknown TLS version"},
		{"url scheme", `{name: a, url: 'ftp://` + s + `.example'}`, "url: url: scheme must be http or https"},
		{"url path with a query", `{name: a, url: 'https://p/` + s + `?x=1'}`, "must not have a query"},
		{"bad name", `{name: ` + s + `, url: 'http://p:9090'}`, "connections[0].name: want a DNS-1123 label"},
		{"bad namespace", `{name: a, url: 'http://p:9090', namespaces: ['` + s + `']}`, "namespaces[0]: not a namespace"},
		{"bad name as a key", `{name: a, url: 'http://p:9090', ` + s + `: 1}`, `unknown field "` + s + `"`}, // a key, not a value: shown
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := ParseConnections([]byte("connections:\n  - "+tc.conn+"\n"), t.TempDir(), redact.New())
			if err == nil {
				t.Fatal("accepted")
			}
			msg := err.Error()
			if !strings.Contains(msg, tc.want) {
				t.Errorf("error %q\ndoes not say %q", msg, tc.want)
			}
			if strings.HasPrefix(tc.name, "bad name as a key") {
				return
			}
			for i := 0; i+3 <= len(s); i++ {
				if strings.Contains(msg, s[i:i+3]) {
					t.Errorf("error %q quotes part of a value (%q)", msg, s[i:i+3])
				}
			}
		})
	}
}
