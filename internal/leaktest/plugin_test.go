package leaktest

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"testing"

	metricplugin "github.com/argoproj/argo-rollouts/metricproviders/plugin"
	"github.com/argoproj/argo-rollouts/pkg/apis/rollouts/v1alpha1"
	"github.com/hashicorp/go-hclog"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/phaseguard/phaseguard/internal/argotest"
	"github.com/phaseguard/phaseguard/internal/redact"
	"github.com/phaseguard/phaseguard/promapi/promapitest"
	"github.com/phaseguard/phaseguard/rollouts"
)

// pluginAuths are the operator connection's credential inputs, each a
// connection of its own: name suffix → its HTTP settings (a Prometheus
// http_config), given the secrets, a function writing a file holding a
// secret, and an OAuth2 token endpoint.
var pluginAuths = []struct {
	name     string
	settings func(s secrets, file func(name string) string, tokenURL string) map[string]any
}{
	{"bearer", func(s secrets, _ func(string) string, _ string) map[string]any {
		return map[string]any{"authorization": map[string]any{"credentials": s["bearer"]}}
	}},
	{"bearer-file", func(_ secrets, file func(string) string, _ string) map[string]any {
		return map[string]any{"authorization": map[string]any{"credentials_file": file("bearer-file")}}
	}},
	{"basic", func(s secrets, _ func(string) string, _ string) map[string]any {
		return map[string]any{"basic_auth": map[string]any{"username": "alice", "password": s["basic"]}}
	}},
	{"basic-file", func(_ secrets, file func(string) string, _ string) map[string]any {
		return map[string]any{"basic_auth": map[string]any{"username": "alice", "password_file": file("basic-file")}}
	}},
	{"headers", func(s secrets, file func(string) string, _ string) map[string]any {
		return map[string]any{"http_headers": map[string]any{
			"X-Api-Key":     map[string]any{"secrets": []string{s["header-secret"]}},
			"X-Other-Key":   map[string]any{"files": []string{file("header-file")}},
			"X-Plain-Key":   map[string]any{"values": []string{s["header-value"]}},
			"X-Scope-OrgID": map[string]any{"values": []string{"shop"}}, // a tenant: not a secret
		}}
	}},
	{"oauth2", func(s secrets, _ func(string) string, tokenURL string) map[string]any {
		return map[string]any{"oauth2": map[string]any{"client_id": "phaseguard", "client_secret": s["oauth2"], "token_url": tokenURL}}
	}},
}

// TestPlugin installs the binary with argo-rollouts' own loader (the
// argo-rollouts-config entry with its sha256 and the operator's
// --connections argument), drives it through argo's RPC client with every
// credential input holding a random secret (each kind of operator
// connection, and a template's secret argument from valueFrom.secretKeyRef)
// against every way of echoing, and reads every measurement (message,
// value, metadata), GetMetadata and the plugin's log. It changes the
// working directory and go-plugin's default log output, so it does not run
// in parallel.
func TestPlugin(t *testing.T) {
	s := newSecrets(t, "bearer", "bearer-file", "basic", "basic-file", "header-secret", "header-file", "header-value", "oauth2", "secret-arg")
	dir := t.TempDir()
	// An OAuth2 token endpoint refusing the client, quoting the request's
	// form (client_secret in it) and headers back.
	tokenEcho := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		desc, _ := json.Marshal(fmt.Sprintf("refused %s with headers %v", body, r.Header))
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		fmt.Fprintf(w, `{"error":"invalid_client","error_description":%s}`, desc)
	}))
	t.Cleanup(tokenEcho.Close)
	echoes := map[string]*promapitest.Echo{}
	file := func(name string) string { return writeFile(t, dir, name, s[name]+"\n") }
	var conns []map[string]any
	for _, how := range echoWays {
		echoes[how] = promapitest.ServeEcho(t, how)
		for _, a := range pluginAuths {
			c := a.settings(s, file, tokenEcho.URL+"/token")
			c["name"], c["url"] = how+"-"+a.name, echoes[how].URL
			conns = append(conns, c)
		}
	}
	// JSON is YAML: the connections file as the operator would write it.
	raw, err := json.MarshalIndent(map[string]any{"connections": conns}, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	connections := writeFile(t, dir, "connections.yaml", string(raw))

	log := &argotest.Log{}
	hclog.DefaultOutput = log // go-plugin's client relogs the plugin's stderr there
	t.Setenv(rollouts.EnvLogLevel, "trace")
	t.Setenv("KUBECONFIG", "")
	t.Chdir(t.TempDir())
	argotest.Install(t, rollouts.Name, bin, "--connections="+connections)

	texts := map[string]string{}
	record := func(what string, m v1alpha1.Measurement) {
		keys := make([]string, 0, len(m.Metadata))
		for k := range m.Metadata {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var b strings.Builder
		fmt.Fprintf(&b, "phase %s\nmessage %s\nvalue %s\n", m.Phase, m.Message, m.Value)
		for _, k := range keys {
			fmt.Fprintf(&b, "%s=%s\n", k, m.Metadata[k])
		}
		texts[what] = b.String()
	}
	const base = `"policy": "phase-default", "service": "checkout", "namespace": "shop", "canaryHash": "6f9c7d5b8", "stableHash": "5d8b6c4a7", "stageOrdering": false`
	arg := v1alpha1.Argument{Name: "tok", Value: ptr(s["secret-arg"]), ValueFrom: &v1alpha1.ValueFrom{SecretKeyRef: &v1alpha1.SecretKeyRef{Name: "prometheus-reader", Key: "token"}}}
	for _, how := range echoWays {
		configs := map[string]string{
			"secret-arg": fmt.Sprintf(`{%s, "prometheus": {"address": %q, "retries": -1, "authorization": {"credentials": "{{args.tok}}"}}}`, base, echoes[how].URL),
		}
		for _, a := range pluginAuths {
			configs[a.name] = fmt.Sprintf(`{%s, "prometheus": {"connection": "%s-%s", "retries": -1}}`, base, how, a.name)
		}
		for name, cfg := range configs {
			stored := v1alpha1.Metric{Name: "phase-slis", Provider: v1alpha1.MetricProvider{Plugin: map[string]json.RawMessage{rollouts.Name: json.RawMessage(cfg)}}}
			ar := &v1alpha1.AnalysisRun{
				ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "checkout-6f9c7d5b8-3-1"},
				Spec:       v1alpha1.AnalysisRunSpec{Args: []v1alpha1.Argument{arg}, Metrics: []v1alpha1.Metric{stored}},
			}
			m := argotest.ResolveArgs(t, stored, ar.Spec.Args)
			p, err := metricplugin.NewRpcPlugin(m)
			if err != nil {
				t.Fatalf("NewRpcPlugin: %v", err)
			}
			what := how + "/" + name
			got := p.Run(ar, m)
			record(what+" Run", got)
			if got.Phase != v1alpha1.AnalysisPhaseInconclusive {
				t.Errorf("%s: Run gave %s %q, want Inconclusive (every query refused or incomplete)", what, got.Phase, got.Message)
			}
			md := p.GetMetadata(m)
			texts[what+" GetMetadata"] = fmt.Sprint(md)
			// Stage mode: Run, Resume and Terminate of a running measurement.
			stageCfg := strings.Replace(cfg, "{", `{"mode": "stage", "stage": "canary-10", `, 1)
			stored.Provider.Plugin[rollouts.Name] = json.RawMessage(stageCfg)
			ar.Spec.Metrics[0] = stored
			m = argotest.ResolveArgs(t, stored, ar.Spec.Args)
			running := p.Run(ar, m)
			record(what+" stage Run", running)
			record(what+" stage Resume", p.Resume(ar, m, running))
			record(what+" stage Terminate", p.Terminate(ar, m, running))
		}
	}
	texts["plugin log"] = log.String()
	if !strings.Contains(texts["plugin log"], "phaseguard") {
		t.Errorf("no plugin log captured: %.500s", texts["plugin log"])
	}
	checkNoLeak(t, s.forms("alice", "phaseguard"), texts)
	for _, how := range []string{promapitest.EchoError, promapitest.EchoWarning} {
		if got := texts[how+"/bearer Run"]; !strings.Contains(got, redact.Mark) {
			t.Errorf("%s/bearer: no %s where the echo was: %.1500s", how, redact.Mark, got)
		}
	}
	// Each server got only the credential its connection (or the
	// template's argument) holds.
	for how, e := range echoes {
		checkSent(t, e, s, map[string]bool{"Authorization": true, "X-Api-Key": true, "X-Other-Key": true, "X-Plain-Key": true})
		for _, h := range e.Headers() {
			if a := h.Get("Authorization"); strings.Contains(a, "Bearer oauth") {
				t.Errorf("%s: unexpected access token %q", how, a)
			}
		}
	}
}

func ptr[T any](v T) *T { return &v }
