package rollouts_test

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/argoproj/argo-rollouts/pkg/apis/rollouts/v1alpha1"

	"github.com/phaseguard/phaseguard/internal/argotest"
	"github.com/phaseguard/phaseguard/internal/redact"
	"github.com/phaseguard/phaseguard/promapi/promapitest"
	"github.com/phaseguard/phaseguard/rollouts"
)

// serviceAccountToken is where a pod's Kubernetes credentials are: the
// controller's own, in the controller's pod.
const serviceAccountToken = "/var/run/secrets/kubernetes.io/serviceaccount/token"

// randomSecret returns a fresh value named by its prefix.
func randomSecret(t *testing.T, prefix string) string {
	t.Helper()
	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return prefix + "-" + hex.EncodeToString(b)
}

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// storedRun is an AnalysisRun as the controller passes it to the plugin:
// its stored spec holds the metric with {{args.*}} unresolved, and its
// args hold each secret's value next to its secretKeyRef (the controller
// resolves them into the run it calls the plugin with). It returns the
// run and the metric as the controller resolves it.
func storedRun(t *testing.T, ns, config string, args ...v1alpha1.Argument) (*v1alpha1.AnalysisRun, v1alpha1.Metric) {
	t.Helper()
	stored := pluginMetric(t, config)
	ar := &v1alpha1.AnalysisRun{Spec: v1alpha1.AnalysisRunSpec{Args: args, Metrics: []v1alpha1.Metric{stored}}}
	ar.Namespace, ar.Name = ns, "checkout-7f8c9d6b4-3-1"
	return ar, argotest.ResolveArgs(t, stored, args)
}

// secretArg is an argument from a Secret, with the value the controller
// resolved.
func secretArg(name, value string) v1alpha1.Argument {
	return v1alpha1.Argument{Name: name, Value: &value, ValueFrom: &v1alpha1.ValueFrom{SecretKeyRef: &v1alpha1.SecretKeyRef{Name: "prometheus-reader", Key: name}}}
}

func plainArg(name, value string) v1alpha1.Argument {
	return v1alpha1.Argument{Name: name, Value: &value}
}

// recorder is a server that records the Authorization and every other
// header of each request, and answers with handler.
type recorder struct {
	*httptest.Server
	mu      sync.Mutex
	headers []http.Header
}

func newRecorder(t *testing.T, handler http.HandlerFunc) *recorder {
	t.Helper()
	r := &recorder{}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.mu.Lock()
		r.headers = append(r.headers, req.Header.Clone())
		r.mu.Unlock()
		handler(w, req)
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *recorder) Headers() []http.Header {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]http.Header(nil), r.headers...)
}

// carries reports whether any recorded header value holds secret, as is
// or in Base64 (a Basic credential).
func carries(headers []http.Header, secret string) bool {
	for _, h := range headers {
		for _, vs := range h {
			for _, v := range vs {
				if strings.Contains(v, secret) {
					return true
				}
				if _, cred, ok := strings.Cut(v, " "); ok {
					if dec, err := base64.StdEncoding.DecodeString(cred); err == nil && strings.Contains(string(dec), secret) {
						return true
					}
				}
			}
		}
	}
	return false
}

// TestTemplateCannotExfiltrate is issue 10's exfiltration test: a
// template that names the controller's service-account token, another
// credential file, or an environment variable of the controller in any
// field that would read it gets an Error measurement naming the field, and
// a server of the template's choosing never receives a credential it was
// not configured for. Credentials from the AnalysisRun's own secret
// arguments reach the template's server; a connection's credential reaches
// only the connection's own url, not even through a redirect.
//
// Not parallel: it sets an environment variable of the process, as one of
// the controller's would be.
func TestTemplateCannotExfiltrate(t *testing.T) {
	dir := t.TempDir()
	envSecret := randomSecret(t, "env")
	const envName = "PHASEGUARD_TEST_CONTROLLER_SECRET"
	t.Setenv(envName, envSecret)
	fileSecret := randomSecret(t, "file")
	secretFile := writeFile(t, dir, "controller-credential", fileSecret+"\n")
	connSecret := randomSecret(t, "connection")
	redirSecret := randomSecret(t, "redirected-connection")
	argSecret := randomSecret(t, "secret-arg")

	// The template author's server, and the operator's.
	attacker := promapitest.ServeEcho(t, promapitest.EchoWarning)
	ops := promapitest.ServeEcho(t, promapitest.EchoWarning)
	redirector := newRecorder(t, func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, attacker.URL+r.URL.Path, http.StatusTemporaryRedirect)
	})
	writeFile(t, dir, "ops-token", connSecret+"\n")
	conns := writeFile(t, dir, "connections.yaml", fmt.Sprintf(`connections:
  - name: ops
    url: %s
    authorization: {credentials_file: ops-token}
  - name: moved
    url: %s
    authorization: {credentials: %s}
  - name: payments-only
    url: %s
    namespaces: [payments]
    authorization: {credentials_file: ops-token}
`, ops.URL, redirector.URL, redirSecret, ops.URL))
	p := rollouts.New(rollouts.WithConnectionsFile(conns), rollouts.WithClock(func() time.Time { return time.Now().Add(-time.Hour) }))
	if err := p.InitPlugin(); err.HasError() {
		t.Fatal(err)
	}
	config := func(prometheus string) string {
		return `{"policy": "phase-default", "service": "checkout", "namespace": "shop", "canaryHash": "7f8c9d6b4", "stageOrdering": false, "timeout": "5s",
			"prometheus": {"retries": -1, ` + prometheus + `}}`
	}

	// Every field a template could name a controller file or variable in,
	// with the service-account token, another readable credential file,
	// and a variable that is set.
	var refused []struct{ field, prometheus string }
	for _, file := range []string{serviceAccountToken, secretFile} {
		for _, f := range []struct{ field, prometheus string }{
			{"prometheus.authorization.credentialsFile", `"authorization": {"credentialsFile": %q}`},
			{"prometheus.basicAuth.usernameFile", `"basicAuth": {"usernameFile": %q, "password": "{{args.token}}"}`},
			{"prometheus.basicAuth.passwordFile", `"basicAuth": {"username": "u", "passwordFile": %q}`},
			{"prometheus.tls.caFile", `"tls": {"caFile": %q}`},
			{"prometheus.tls.certFile", `"tls": {"certFile": %q, "keyFile": "/dev/null"}`},
			{"prometheus.tls.keyFile", `"tls": {"certFile": "/dev/null", "keyFile": %q}`},
			{`prometheus.headers["Authorization"].file`, `"headers": {"Authorization": {"file": %q}}`},
			{`prometheus.headers["X-Scope-OrgID"].file`, `"headers": {"X-Scope-OrgID": {"file": %q}}`},
			{"prometheus.oauth2", `"oauth2": {"clientId": "c", "clientSecretFile": %q, "tokenUrl": "` + attacker.URL + `/token"}`},
		} {
			refused = append(refused, struct{ field, prometheus string }{f.field, fmt.Sprintf(f.prometheus, file)})
		}
	}
	for _, f := range []struct{ field, prometheus string }{
		{"prometheus.authorization.credentialsEnv", `"authorization": {"credentialsEnv": %q}`},
		{"prometheus.basicAuth.passwordEnv", `"basicAuth": {"username": "u", "passwordEnv": %q}`},
		{`prometheus.headers["Authorization"].env`, `"headers": {"Authorization": {"env": %q}}`},
		{`prometheus.headers["X-Scope-OrgID"].env`, `"headers": {"X-Scope-OrgID": {"env": %q}}`},
		{"prometheus.oauth2", `"oauth2": {"clientId": "c", "clientSecretEnv": %q, "tokenUrl": "` + attacker.URL + `/token"}`},
	} {
		refused = append(refused, struct{ field, prometheus string }{f.field, fmt.Sprintf(f.prometheus, envName)})
	}
	for _, tc := range refused {
		for _, where := range []string{`"address": "` + attacker.URL + `"`, `"connection": "ops"`} {
			ar, metric := storedRun(t, "shop", config(where+", "+tc.prometheus), secretArg("token", argSecret))
			m := p.Run(ar, metric)
			if m.Phase != v1alpha1.AnalysisPhaseError || !strings.Contains(m.Message, tc.field+": ") || !strings.Contains(m.Message, "define a connection") {
				t.Errorf("%s with %s: measurement %s %q, want an Error naming the field and saying to define a connection", tc.prometheus, where, m.Phase, m.Message)
			}
		}
	}

	// Credential values that do not come from the AnalysisRun's secrets.
	for _, tc := range []struct {
		name, prometheus string
		args             []v1alpha1.Argument
		want             string
	}{
		{"literal bearer", `"authorization": {"credentials": "literal-token"}`, nil, "prometheus.authorization.credentials: not exactly {{args.NAME}}"},
		{"literal password", `"basicAuth": {"username": "u", "password": "literal-password"}`, nil, "prometheus.basicAuth.password: not exactly {{args.NAME}}"},
		{"literal api key", `"headers": {"X-Api-Key": {"value": "literal-key"}}`, nil, `prometheus.headers["X-Api-Key"].value: not exactly {{args.NAME}}`},
		{"plain argument", `"authorization": {"credentials": "{{args.token}}"}`, []v1alpha1.Argument{plainArg("token", envSecret)}, `argument "token" does not come from a Secret`},
		{"placeholder in text", `"headers": {"Authorization": {"value": "Bearer {{args.token}}"}}`, []v1alpha1.Argument{secretArg("token", argSecret)}, `prometheus.headers["Authorization"].value: not exactly {{args.NAME}}`},
		{"connection and address", `"connection": "ops", "address": "` + attacker.URL + `"`, nil, "prometheus.address: not with prometheus.connection"},
		{"connection and credentials", `"connection": "ops", "authorization": {"credentials": "{{args.token}}"}`, []v1alpha1.Argument{secretArg("token", argSecret)}, "prometheus.authorization: not with prometheus.connection"},
		{"unknown connection", `"connection": "prod"`, nil, `prometheus.connection "prod": not defined in the plugin's connections file (defined: moved, ops, payments-only)`},
		{"connection of another namespace", `"connection": "payments-only"`, nil, `prometheus.connection "payments-only": not for AnalysisRuns of namespace "shop"`},
	} {
		prom := tc.prometheus
		if !strings.Contains(prom, `"connection"`) {
			prom = `"address": "` + attacker.URL + `", ` + prom
		}
		ar, metric := storedRun(t, "shop", config(prom), tc.args...)
		if m := p.Run(ar, metric); m.Phase != v1alpha1.AnalysisPhaseError || !strings.Contains(m.Message, tc.want) {
			t.Errorf("%s: measurement %s %q, want an Error containing %q", tc.name, m.Phase, m.Message, tc.want)
		}
	}
	// The resolved metric alone is not enough: the run's stored spec must
	// show where the value came from.
	ar, metric := storedRun(t, "shop", config(`"address": "`+attacker.URL+`", "authorization": {"credentials": "{{args.token}}"}`), secretArg("token", argSecret))
	ar.Spec.Metrics = nil
	if m := p.Run(ar, metric); m.Phase != v1alpha1.AnalysisPhaseError || !strings.Contains(m.Message, "the AnalysisRun has no metric") {
		t.Errorf("run without the stored metric: %s %q", m.Phase, m.Message)
	}
	if m := p.Run(nil, metric); m.Phase != v1alpha1.AnalysisPhaseError || !strings.Contains(m.Message, "prometheus.authorization.credentials: the controller sent no AnalysisRun") {
		t.Errorf("no run: %s %q", m.Phase, m.Message)
	}
	if hs := attacker.Headers(); len(hs) > 0 {
		t.Errorf("the template's server got %d requests from refused templates: %v", len(hs), hs)
	}

	// Accepted: the run's own secret, to the template's server; the
	// operator's connections, to their own url only.
	for _, tc := range []struct {
		name, prometheus string
		args             []v1alpha1.Argument
	}{
		{"secret arg bearer", `"address": "` + attacker.URL + `", "authorization": {"credentials": "{{args.token}}"}`, []v1alpha1.Argument{secretArg("token", argSecret)}},
		{"secret arg basic", `"address": "` + attacker.URL + `", "basicAuth": {"username": "u", "password": "{{ args.token }}"}`, []v1alpha1.Argument{secretArg("token", argSecret)}},
		{"secret arg header", `"address": "` + attacker.URL + `", "headers": {"X-Api-Key": {"value": "{{args.token}}"}, "X-Scope-OrgID": {"value": "shop"}}`, []v1alpha1.Argument{secretArg("token", argSecret)}},
		{"connection", `"connection": "ops"`, nil},
		{"connection redirected elsewhere", `"connection": "moved"`, nil},
	} {
		ar, metric := storedRun(t, "shop", config(tc.prometheus), tc.args...)
		if m := p.Run(ar, metric); m.Phase != v1alpha1.AnalysisPhaseInconclusive {
			t.Errorf("%s: measurement %s %q, want Inconclusive (the servers answer with warnings)", tc.name, m.Phase, m.Message)
		}
	}
	got := map[string][]http.Header{"template's server": attacker.Headers(), "connection ops": ops.Headers(), "connection moved": redirector.Headers()}
	for server, configured := range map[string]string{"template's server": argSecret, "connection ops": connSecret, "connection moved": redirSecret} {
		if len(got[server]) == 0 || !carries(got[server], configured) {
			t.Errorf("%s never got its credential %s", server, configured)
		}
		for _, s := range []string{envSecret, fileSecret, connSecret, redirSecret, argSecret} {
			if s != configured && carries(got[server], s) {
				t.Errorf("%s got credential %s, which it was not configured for", server, s)
			}
		}
		if tok, err := os.ReadFile(serviceAccountToken); err == nil && carries(got[server], strings.TrimSpace(string(tok))) {
			t.Errorf("%s got the service-account token", server)
		}
	}
}

// TestSecretsNeverShown is issue 10's leak test for the plugin, in
// process: a server that quotes every request header back (as an error,
// a warning, a label or a plain body) is queried through connections
// carrying a credential in every input a connection has, and through
// templates carrying one in every secret argument a template may use;
// no credential appears in any measurement, its metadata and value,
// GetMetadata, or the plugin's log, set up as Main sets it up.
func TestSecretsNeverShown(t *testing.T) {
	t.Parallel()
	for _, how := range []string{promapitest.EchoError, promapitest.EchoWarning, promapitest.EchoLabel, promapitest.EchoBody} {
		t.Run(how, func(t *testing.T) {
			t.Parallel()
			echo := promapitest.ServeEcho(t, how)
			tokenEcho := promapitest.ServeEcho(t, promapitest.EchoError) // an OAuth2 token endpoint quoting the client's credentials
			dir := t.TempDir()
			s := map[string]string{}
			for _, name := range []string{"inline-bearer", "file-bearer", "inline-password", "file-password", "header-secret", "header-file", "header-value", "oauth2-secret", "oauth2-secret-file", "arg-bearer", "arg-password", "arg-header"} {
				s[name] = randomSecret(t, name)
			}
			writeFile(t, dir, "bearer", s["file-bearer"]+"\n")
			writeFile(t, dir, "password", s["file-password"])
			writeFile(t, dir, "header", s["header-file"])
			writeFile(t, dir, "oauth2", s["oauth2-secret-file"])
			conns := writeFile(t, dir, "connections.yaml", fmt.Sprintf(`connections:
  - {name: inline-bearer, url: %[1]s, authorization: {credentials: %[2]s}}
  - {name: file-bearer, url: %[1]s, authorization: {credentials_file: bearer}}
  - {name: inline-password, url: %[1]s, basic_auth: {username: alice, password: %[3]s}}
  - {name: file-password, url: %[1]s, basic_auth: {username: alice, password_file: password}}
  - name: headers
    url: %[1]s
    http_headers:
      X-Api-Key: {secrets: [%[4]s]}
      X-Other-Key: {files: [header]}
      X-Plain-Key: {values: [%[5]s]}
      X-Scope-OrgID: {values: [shop]} # a tenant: an identifier, not a secret (promapi.TenantHeaders)
  - {name: oauth2, url: %[1]s, oauth2: {client_id: phaseguard, client_secret: %[6]s, token_url: %[7]s}}
  - {name: oauth2-file, url: %[1]s, oauth2: {client_id: phaseguard, client_secret_file: oauth2, token_url: %[7]s}}
`, echo.URL, s["inline-bearer"], s["inline-password"], s["header-secret"], s["header-value"], s["oauth2-secret"], tokenEcho.URL))

			// As Main sets it up: one set, the log written through it.
			set := redact.New()
			var logBuf lockedBuffer
			out := set.Writer(&logBuf)
			logger := rollouts.NewLogger(out, func(k string) string {
				return map[string]string{rollouts.EnvLogLevel: "trace", rollouts.EnvLogFormat: "json"}[k]
			})
			p := rollouts.New(rollouts.WithLogger(logger), rollouts.WithRedact(set), rollouts.WithConnectionsFile(conns),
				rollouts.WithClock(func() time.Time { return time.Now().Add(-time.Hour) }))
			p.InitPlugin()
			config := func(prometheus string) string {
				return `{"policy": "phase-default", "service": "checkout", "namespace": "shop", "canaryHash": "7f8c9d6b4", "stage": "canary-10", "mode": "stage", "stageOrdering": false, "timeout": "5s",
					"prometheus": {"retries": -1, ` + prometheus + `}}`
			}
			var outputs []string
			record := func(m v1alpha1.Measurement) {
				b, _ := json.Marshal(m)
				outputs = append(outputs, string(b), m.Message, m.Value)
				for k, v := range m.Metadata {
					outputs = append(outputs, k, v)
				}
			}
			run := func(prometheus string, args ...v1alpha1.Argument) {
				ar, metric := storedRun(t, "shop", config(prometheus), args...)
				m := p.Run(ar, metric)
				record(m)
				if m.Phase == v1alpha1.AnalysisPhaseError {
					t.Errorf("%s: %s %q", prometheus, m.Phase, m.Message)
				}
				if m.Phase == v1alpha1.AnalysisPhaseRunning {
					record(p.Resume(ar, metric, m))
					record(p.Terminate(ar, metric, m))
				}
				md := p.GetMetadata(metric)
				for k, v := range md {
					outputs = append(outputs, k, v)
				}
			}
			for _, c := range []string{"inline-bearer", "file-bearer", "inline-password", "file-password", "headers", "oauth2", "oauth2-file"} {
				run(`"connection": "` + c + `"`)
			}
			run(`"address": "`+echo.URL+`", "authorization": {"credentials": "{{args.bearer}}"}`, secretArg("bearer", s["arg-bearer"]))
			run(`"address": "`+echo.URL+`", "basicAuth": {"username": "bob", "password": "{{args.password}}"}`, secretArg("password", s["arg-password"]))
			run(`"address": "`+echo.URL+`", "headers": {"X-Api-Key": {"value": "{{args.key}}"}}`, secretArg("key", s["arg-header"]))
			if err := out.Flush(); err != nil {
				t.Fatal(err)
			}
			log := logBuf.String()
			outputs = append(outputs, log)

			// The servers did get the credentials (so the test could fail).
			sent := append(echo.Headers(), tokenEcho.Headers()...)
			for name, v := range s {
				switch name {
				case "oauth2-secret", "oauth2-secret-file":
					v = url.QueryEscape(v) // inside the Basic credential of the token request
				}
				if !carries(sent, v) {
					t.Errorf("no request carried %s", name)
				}
			}
			for _, o := range outputs {
				for name, v := range s {
					forms := []string{v, base64.StdEncoding.EncodeToString([]byte(v)), base64.StdEncoding.EncodeToString([]byte("alice:" + v)),
						base64.StdEncoding.EncodeToString([]byte("bob:" + v)), base64.StdEncoding.EncodeToString([]byte("phaseguard:" + v))}
					for _, f := range forms {
						if strings.Contains(o, f) {
							t.Errorf("%s shown: %.300s", name, o[max(strings.Index(o, f)-150, 0):])
						}
					}
				}
			}
			if how != promapitest.EchoBody && !strings.Contains(log, redact.Mark) {
				t.Errorf("the log shows no %s: was anything echoed?", redact.Mark)
			}
		})
	}
}

// authGate is a reverse proxy in front of a real Prometheus that lets
// through only requests carrying exactly one Authorization value, and
// answers 401 to the others, which it records.
type authGate struct {
	*httptest.Server
	want string
	mu   sync.Mutex
	ok   int
	bad  []string
}

func newAuthGate(t *testing.T, upstream, want string) *authGate {
	t.Helper()
	u, err := url.Parse(upstream)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(u)
	g := &authGate{want: want}
	g.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got := r.Header.Get("Authorization")
		g.mu.Lock()
		if got != want {
			g.bad = append(g.bad, got)
			g.mu.Unlock()
			http.Error(w, `{"status":"error","errorType":"unauthorized","error":"wrong credential"}`, http.StatusUnauthorized)
			return
		}
		g.ok++
		g.mu.Unlock()
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(g.Close)
	return g
}

// check fails the test if a request came without the credential, or
// none came with it.
func (g *authGate) check(t *testing.T, name string) {
	t.Helper()
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.bad) > 0 {
		t.Errorf("%s: %d request(s) without the credential (Authorization %q)", name, len(g.bad), g.bad)
	}
	if g.ok == 0 {
		t.Errorf("%s: no request with the credential", name)
	}
}

// lockedBuffer is a bytes.Buffer safe for a logger's concurrent writes.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
