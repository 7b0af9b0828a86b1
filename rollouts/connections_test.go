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
		{"unknown field", "connections:\n  - {name: a, url: 'http://p:9090', bearer_tokn: s3cr3t}\n", []string{"field bearer_tokn not found"}},
		{"wrong type quotes no value", "connections:\n  - {name: a, url: 'http://p:9090', follow_redirects: s3cr3t}\n", []string{"cannot unmarshal", "`…`"}},
		{"no name", "connections:\n  - {url: 'http://p:9090'}\n", []string{"connections[0].name: required"}},
		{"bad name", "connections:\n  - {name: Mimir_1, url: 'http://p:9090'}\n", []string{`connections[0] (Mimir_1).name: "Mimir_1": want a DNS-1123 label`}},
		{"twice", "connections:\n  - {name: a, url: 'http://p:9090'}\n  - {name: a, url: 'http://q:9090'}\n", []string{`connections[1] (a).name: "a": defined twice`}},
		{"query in url", "connections:\n  - {name: a, url: 'https://p:9090/prom?access_token=s3cr3t'}\n", []string{`connections[0] (a).url: url "https://p:9090/prom": must not have a query`}},
		{"user-info in url", "connections:\n  - {name: a, url: 'https://u:s3cr3t@p:9090'}\n", []string{`connections[0] (a).url: url "https://p:9090": must not hold user-info`}},
		{"user-info in proxy", "connections:\n  - {name: a, url: 'https://p:9090', proxy_url: 'http://u:s3cr3t@proxy:3128'}\n", []string{`connections[0] (a).proxy_url: "http://proxy:3128": must not hold user-info`}},
		{"bad namespace", "connections:\n  - {name: a, url: 'https://p:9090', namespaces: [Shop]}\n", []string{`connections[0] (a).namespaces[0]: "Shop": not a namespace`}},
		{"two auths", "connections:\n  - {name: a, url: 'https://p:9090', basic_auth: {username: u, password: s3cr3t}, authorization: {credentials: s3cr3t}}\n", []string{"connections[0] (a): at most one of basic_auth, oauth2 & authorization"}},
		{"missing CA", "connections:\n  - {name: a, url: 'https://p:9090', tls_config: {ca_file: /nonexistent/ca.crt}}\n", []string{"connections[0] (a): ", "/nonexistent/ca.crt"}},
		{"every problem at once", "connections:\n  - {url: 'http://p:9090?x=1'}\n  - {name: B}\n", []string{"connections[0].name: required", "connections[0].url", "connections[1] (B).name", "connections[1] (B).url: url: must be set"}},
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
