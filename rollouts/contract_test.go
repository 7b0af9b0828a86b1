package rollouts_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/argoproj/argo-rollouts/metric"
	metricplugin "github.com/argoproj/argo-rollouts/metricproviders/plugin"
	"github.com/argoproj/argo-rollouts/pkg/apis/rollouts/v1alpha1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/phaseguard/phaseguard/internal/argotest"
	"github.com/phaseguard/phaseguard/internal/kubetest"
	"github.com/phaseguard/phaseguard/rollouts"
)

// argoProvider returns the metric provider the controller would use for
// a metric with config cfg: argo's RPC plugin client, sharing one plugin
// process for every metric as the controller does.
func argoProvider(t *testing.T, cfg string) (metric.Provider, v1alpha1.Metric) {
	t.Helper()
	m := pluginMetric(t, cfg)
	p, err := metricplugin.NewRpcPlugin(m)
	if err != nil {
		t.Fatalf("NewRpcPlugin: %v", err)
	}
	return p, m
}

// TestContract loads the built binary through argo-rollouts' own plugin
// loader and drives it through argo's RPC client against a real
// Prometheus holding scenarios whose stage runs now, with the plugin's
// own clock. It changes the working directory, so it runs alone.
func TestContract(t *testing.T) {
	bin := pluginBinary(t)
	now := time.Now()
	prom, sc := startScenarios(t, now.Add(5*time.Minute), "healthy", "drain-misrouting", "thin-traffic")
	kube := kubetest.Start(t, kubetest.Rollouts, kubetest.AnalysisRuns)
	// The plugin process inherits the environment: the controller's
	// service account is a kubeconfig here.
	t.Setenv("KUBECONFIG", kubetest.WriteKubeconfig(t, kube))
	t.Setenv(rollouts.EnvLogFormat, "json")
	// The operator's connection "prom" reaches Prometheus through a gate
	// that wants the connection's token; a template's own secret reaches
	// it through another gate wanting that.
	connToken, argToken := randomSecret(t, "connection"), randomSecret(t, "secret-arg")
	connGate, argGate := newAuthGate(t, prom.URL(), "Bearer "+connToken), newAuthGate(t, prom.URL(), "Bearer "+argToken)
	connDir := t.TempDir()
	writeFile(t, connDir, "token", connToken)
	conns := writeFile(t, connDir, "connections.yaml", "connections:\n  - {name: prom, url: "+connGate.URL+", authorization: {credentials_file: token}}\n")
	// The operator's policy directory, and a readable file outside it.
	policyDir := t.TempDir()
	preset, err := os.ReadFile(filepath.Join("..", "policies", "presets", "phase-default.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	inDir := writeFile(t, policyDir, "checkout.yaml", string(preset))
	outside := writeFile(t, connDir, "outside.yaml", string(preset))
	t.Chdir(t.TempDir())
	argotest.Install(t, rollouts.Name, bin, "--connections="+conns, "--policy-dir="+policyDir)
	ar := &v1alpha1.AnalysisRun{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "checkout-c1-3-canary"}}

	t.Run("type and metadata", func(t *testing.T) {
		p, m := argoProvider(t, sc["healthy"].config(prom.URL(), `, "stage": "canary-10"`))
		if got := p.Type(); got != rollouts.Name {
			t.Errorf("Type = %q, want %q", got, rollouts.Name)
		}
		md := p.GetMetadata(m)
		if md["plugin"] != rollouts.Name || md["policy"] != "phase-default" || md["stage"] != "canary-10" || md["mode"] != "look" {
			t.Errorf("GetMetadata = %v", md)
		}
		if err := p.GarbageCollect(ar, m, 10); err != nil {
			t.Errorf("GarbageCollect: %v", err)
		}
	})

	t.Run("look", func(t *testing.T) {
		for _, tc := range []struct {
			scenario string
			want     v1alpha1.AnalysisPhase
			message  string
		}{
			{"healthy", v1alpha1.AnalysisPhaseSuccessful, "all 7 SLIs pass"},
			{"drain-misrouting", v1alpha1.AnalysisPhaseFailed, "drain-failure: burning"},
			{"thin-traffic", v1alpha1.AnalysisPhaseInconclusive, "thin evidence"},
		} {
			p, m := argoProvider(t, sc[tc.scenario].config(prom.URL(), `, "stage": "canary-10"`))
			got := p.Run(ar, m)
			t.Logf("%s: %s %q %s", tc.scenario, got.Phase, got.Message, got.Value)
			if got.Phase != tc.want || !strings.Contains(got.Message, tc.message) || got.FinishedAt == nil {
				t.Errorf("%s: %s %q, want %s containing %q", tc.scenario, got.Phase, got.Message, tc.want, tc.message)
			}
			if got.Metadata["verdict"] == "" || got.Metadata["sli.drain-failure.burn"] == "" || got.Value == "" {
				t.Errorf("%s: metadata %v value %q", tc.scenario, got.Metadata, got.Value)
			}
		}
	})

	t.Run("policy file", func(t *testing.T) {
		p, m := argoProvider(t, strings.Replace(sc["healthy"].config(prom.URL(), `, "stage": "canary-10"`), "phase-default", inDir, 1))
		if got := p.Run(ar, m); got.Phase != v1alpha1.AnalysisPhaseSuccessful || got.Metadata["policy"] != "phase-default" {
			t.Errorf("a policy file in the --policy-dir: %s %q, policy %q", got.Phase, got.Message, got.Metadata["policy"])
		}
	})

	t.Run("stage", func(t *testing.T) {
		cfg := sc["healthy"].config(prom.URL(), `, "mode": "stage", "stage": "canary-10"`)
		p, m := argoProvider(t, cfg)
		started := time.Now()
		got := p.Run(ar, m)
		if got.Phase != v1alpha1.AnalysisPhaseRunning || got.ResumeAt == nil || got.FinishedAt != nil {
			t.Fatalf("Run: %s resume %v finished %v %q", got.Phase, got.ResumeAt, got.FinishedAt, got.Message)
		}
		if d := got.ResumeAt.Sub(started); d < 25*time.Second || d > 35*time.Second {
			t.Errorf("ResumeAt %s after Run, want the policy interval (30s)", d)
		}
		got = p.Resume(ar, m, got)
		if got.Phase != v1alpha1.AnalysisPhaseRunning || got.Metadata["stage.looks"] != "2" {
			t.Errorf("Resume: %s looks %q %q", got.Phase, got.Metadata["stage.looks"], got.Message)
		}
		// Terminate a running stage: finished, Inconclusive, as argo's own
		// job provider ends a terminated measurement.
		term := p.Terminate(ar, m, got)
		if term.Phase != v1alpha1.AnalysisPhaseInconclusive || term.FinishedAt == nil || term.ResumeAt != nil {
			t.Errorf("Terminate: %s finished %v resume %v", term.Phase, term.FinishedAt, term.ResumeAt)
		}
		// The controller resumes after the soak: the stage started 10m ago.
		got.Metadata["stage.startedAt"] = time.Now().Add(-10*time.Minute - time.Second).UTC().Format(time.RFC3339Nano)
		got = p.Resume(ar, m, got)
		if got.Phase != v1alpha1.AnalysisPhaseSuccessful || !strings.HasPrefix(got.Message, "stage canary-10 soaked 10m over 3 looks") || got.FinishedAt == nil {
			t.Errorf("Resume at soak end: %s %q", got.Phase, got.Message)
		}

		p, m = argoProvider(t, sc["drain-misrouting"].config(prom.URL(), `, "mode": "stage", "stage": "canary-10"`))
		if got := p.Run(ar, m); got.Phase != v1alpha1.AnalysisPhaseFailed || !strings.Contains(got.Message, "stage canary-10 failed at look 1") {
			t.Errorf("drain-misrouting Run: %s %q", got.Phase, got.Message)
		}
	})

	t.Run("errors", func(t *testing.T) {
		h := sc["healthy"]
		for _, tc := range []struct{ name, cfg, want string }{
			{"bad JSON", `{"policy": "phase-default", "prometheus": `, "not JSON"},
			{"unknown preset", strings.Replace(h.config(prom.URL(), ""), "phase-default", "phase-strict", 1), `policy "phase-strict": unknown preset`},
			{"unknown field", h.config(prom.URL(), `, "treshold": 2`), "treshold: unknown field"},
			{"hostile canary hash", strings.Replace(h.config(prom.URL(), ""), `"canaryHash": "`+h.CanaryHash+`"`, `"canaryHash": "x\"}) or vector(1) #"`, 1), "not a valid pod template hash"},
			{"inline credentials", strings.Replace(h.config(prom.URL(), ""), "http://", "http://admin:hunter2@", 1), "must not hold user-info"},
			{"policy file outside the policy directory", strings.Replace(h.config(prom.URL(), ""), "phase-default", outside, 1), "is not inside the plugin's policy directory " + policyDir},
			{"token in the query", strings.Replace(h.config(prom.URL(), ""), `"retries"`, `"proxyUrl": "http://127.0.0.1:1?access_token=hunter2", "retries"`, 1), "prometheus.proxyUrl: url \"http://127.0.0.1:1\": must not have a query"},
		} {
			p, m := argoProvider(t, tc.cfg)
			got := p.Run(ar, m)
			if got.Phase != v1alpha1.AnalysisPhaseError || !strings.Contains(got.Message, tc.want) {
				t.Errorf("%s: %s %q, want Error containing %q", tc.name, got.Phase, got.Message, tc.want)
			}
			if strings.Contains(got.Message, "hunter2") {
				t.Errorf("%s: message repeats a secret: %q", tc.name, got.Message)
			}
		}
	})

	// The connections file named by the ConfigMap entry's args, and a
	// credential from the run's own Secret, each reach their gate.
	t.Run("credentials", func(t *testing.T) {
		h := sc["healthy"]
		p, m := argoProvider(t, strings.Replace(h.config(prom.URL(), `, "stage": "canary-10"`), `"address": "`+prom.URL()+`"`, `"connection": "prom"`, 1))
		if got := p.Run(ar, m); got.Phase != v1alpha1.AnalysisPhaseSuccessful {
			t.Errorf("connection: %s %q", got.Phase, got.Message)
		}
		if md := p.GetMetadata(m); md["connection"] != "prom" {
			t.Errorf("GetMetadata = %v", md)
		}
		cfg := strings.Replace(h.config(argGate.URL, `, "stage": "canary-10"`), `"retries": -1`, `"retries": -1, "authorization": {"credentials": "{{args.prometheus-token}}"}`, 1)
		run, resolved := storedRun(t, "shop", cfg, secretArg("prometheus-token", argToken))
		p, _ = argoProvider(t, cfg)
		if got := p.Run(run, resolved); got.Phase != v1alpha1.AnalysisPhaseSuccessful {
			t.Errorf("secret arg: %s %q", got.Phase, got.Message)
		}
		connGate.check(t, "connection gate")
		argGate.check(t, "secret-arg gate")
		// A literal credential never leaves the plugin.
		literal := strings.Replace(cfg, "{{args.prometheus-token}}", argToken, 1)
		run, resolved = storedRun(t, "shop", literal)
		if got := p.Run(run, resolved); got.Phase != v1alpha1.AnalysisPhaseError || !strings.Contains(got.Message, "prometheus.authorization.credentials: not exactly {{args.NAME}}") {
			t.Errorf("literal credential: %s %q", got.Phase, got.Message)
		}
	})

	t.Run("out of order", func(t *testing.T) {
		cur := orderingFixture(t, kube, "contract", nil)
		p, m := argoProvider(t, sc["healthy"].config(prom.URL(), `, "stage": "canary-50"`))
		got := p.Run(cur, m)
		want := "out-of-order: stage canary-50 needs canary-10 to have passed for revision 3"
		if got.Phase != v1alpha1.AnalysisPhaseFailed || !strings.HasPrefix(got.Message, want) {
			t.Errorf("Run: %s %q, want Failed starting %q", got.Phase, got.Message, want)
		}
	})

	t.Run("prometheus stopped mid-stage", func(t *testing.T) {
		p, m := argoProvider(t, sc["healthy"].config(prom.URL(), `, "mode": "stage", "stage": "canary-10"`))
		running := p.Run(ar, m)
		if running.Phase != v1alpha1.AnalysisPhaseRunning {
			t.Fatalf("Run: %s %q", running.Phase, running.Message)
		}
		prom.Stop()
		got := p.Resume(ar, m, running)
		if got.Phase != v1alpha1.AnalysisPhaseRunning || !strings.Contains(got.Message, "query error") {
			t.Errorf("Resume mid-stage: %s %q, want Running, holding on the query errors", got.Phase, got.Message)
		}
		got.Metadata["stage.startedAt"] = time.Now().Add(-11 * time.Minute).UTC().Format(time.RFC3339Nano)
		got = p.Resume(ar, m, got)
		t.Logf("at soak end: %s %q", got.Phase, got.Message)
		if got.Phase != v1alpha1.AnalysisPhaseInconclusive || !strings.Contains(got.Message, "query error on 7 SLIs, holding") || !strings.Contains(got.Message, "connection refused") {
			t.Errorf("Resume at soak end: %s %q, want Inconclusive naming the query error", got.Phase, got.Message)
		}
		look, lm := argoProvider(t, sc["healthy"].config(prom.URL(), ""))
		if got := look.Run(ar, lm); got.Phase != v1alpha1.AnalysisPhaseInconclusive {
			t.Errorf("look mode: %s %q, want Inconclusive", got.Phase, got.Message)
		}
		strict, sm := argoProvider(t, sc["healthy"].config(prom.URL(), `, "onQueryError": "fail"`))
		if got := strict.Run(ar, sm); got.Phase != v1alpha1.AnalysisPhaseFailed || !strings.Contains(got.Message, "onQueryError=fail") {
			t.Errorf("onQueryError fail: %s %q, want Failed", got.Phase, got.Message)
		}
	})
}
