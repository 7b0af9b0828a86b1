package rollouts_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/argoproj/argo-rollouts/pkg/apis/rollouts/v1alpha1"

	"github.com/phaseguard/phaseguard/internal/argotest"
	"github.com/phaseguard/phaseguard/rollouts"
)

// clock is a settable clock for stage-mode tests.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time   { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) set(t time.Time)  { c.mu.Lock(); c.t = t; c.mu.Unlock() }
func newClock(t time.Time) *clock { return &clock{t: t} }

// TestPluginInProcess drives the plugin's methods directly, with an
// injected clock, against a real Prometheus holding the demo scenarios.
func TestPluginInProcess(t *testing.T) {
	t.Parallel()
	stageEnd := time.Now().Add(-time.Hour).Truncate(time.Minute)
	prom, sc := startScenarios(t, stageEnd, "healthy", "drain-misrouting", "thin-traffic", "flapping")
	ar := &v1alpha1.AnalysisRun{}
	ar.Namespace, ar.Name = "shop", "checkout-1-canary"

	t.Run("look", func(t *testing.T) {
		t.Parallel()
		p := rollouts.New(rollouts.WithClock(func() time.Time { return stageEnd }))
		for _, tc := range []struct {
			scenario, extra string
			want            v1alpha1.AnalysisPhase
			message         string
			md              map[string]string
		}{
			{"healthy", "", v1alpha1.AnalysisPhaseSuccessful, "no window pair trips", map[string]string{"verdict": "pass", "sli.drain-failure.verdict": "pass"}},
			{"drain-misrouting", "", v1alpha1.AnalysisPhaseFailed, "drain-failure", map[string]string{"verdict": "fail", "sli.drain-failure.verdict": "fail"}},
			{"thin-traffic", "", v1alpha1.AnalysisPhaseInconclusive, "", map[string]string{"verdict": "hold"}},
			{"flapping", "", v1alpha1.AnalysisPhaseFailed, "flaps", map[string]string{"verdict": "fail"}},
			{"drain-misrouting", `, "dryRun": true`, v1alpha1.AnalysisPhaseSuccessful, "dry run, would be Failed: drain-failure", map[string]string{"verdict": "fail", "dryRun": "true", "wouldBe": "Failed"}},
			{"healthy", `, "stage": "canary-10", "stageOrdering": false`, v1alpha1.AnalysisPhaseSuccessful, "", map[string]string{"stage": "canary-10"}},
		} {
			t.Run(tc.scenario+tc.extra, func(t *testing.T) {
				t.Parallel()
				m := p.Run(ar, pluginMetric(t, sc[tc.scenario].config(prom.URL(), tc.extra)))
				t.Logf("%s %q value %s", m.Phase, m.Message, m.Value)
				if m.Phase != tc.want || !strings.Contains(m.Message, tc.message) {
					t.Errorf("measurement %s %q, want %s containing %q", m.Phase, m.Message, tc.want, tc.message)
				}
				if m.StartedAt == nil || m.FinishedAt == nil || m.ResumeAt != nil {
					t.Errorf("times: started %v finished %v resume %v", m.StartedAt, m.FinishedAt, m.ResumeAt)
				}
				for k, v := range tc.md {
					if m.Metadata[k] != v {
						t.Errorf("metadata %s = %q, want %q", k, m.Metadata[k], v)
					}
				}
				for _, k := range []string{"sli.drain-failure.burn", "sli.drain-failure.samples", "sli.drain-failure.budget", "sli.drain-failure.value", "evaluationMs"} {
					if m.Metadata[k] == "" {
						t.Errorf("metadata %s missing", k)
					}
				}
				if !strings.HasPrefix(m.Value, `{"`) || !strings.Contains(m.Value, `"drain-failure":`) {
					t.Errorf("value %s", m.Value)
				}
			})
		}
	})

	t.Run("lint findings in the metadata", func(t *testing.T) {
		t.Parallel()
		// A ratio SLI counted with rate(): it loads, holds on thin
		// evidence, and the measurement says what lint finds.
		yaml, err := os.ReadFile("../cmd/phaseguard/testdata/ratio-rate/rate.yaml")
		if err != nil {
			t.Fatal(err)
		}
		inline, _ := json.Marshal(string(yaml))
		cfg := strings.Replace(sc["healthy"].config(prom.URL(), ""), `"phase-default"`, string(inline), 1)
		m := rollouts.New(rollouts.WithClock(func() time.Time { return stageEnd })).Run(ar, pluginMetric(t, cfg))
		got := m.Metadata["policyLint"]
		if !strings.HasPrefix(got, "2 findings of phaseguard lint, the first: line 14: spec.slis[0].ratio.bad: ") || !strings.Contains(got, "counts with rate()") {
			t.Errorf("metadata policyLint %q, want the count and the first finding", got)
		}
		if m.Phase != v1alpha1.AnalysisPhaseInconclusive {
			t.Errorf("measurement %s %q, want Inconclusive (thin evidence)", m.Phase, m.Message)
		}
		clean := rollouts.New(rollouts.WithClock(func() time.Time { return stageEnd })).Run(ar, pluginMetric(t, sc["healthy"].config(prom.URL(), "")))
		if v, ok := clean.Metadata["policyLint"]; ok {
			t.Errorf("phase-default: metadata policyLint %q, want none", v)
		}
	})

	t.Run("stage passes at soak end", func(t *testing.T) {
		t.Parallel()
		t0 := stageEnd.Add(-12 * time.Minute)
		clk := newClock(t0)
		metric := pluginMetric(t, sc["healthy"].config(prom.URL(), `, "mode": "stage", "stage": "canary-10", "stageOrdering": false`))
		m := rollouts.New(rollouts.WithClock(clk.now)).Run(ar, metric)
		if m.Phase != v1alpha1.AnalysisPhaseRunning || m.ResumeAt == nil || !m.ResumeAt.Time.Equal(t0.Add(30*time.Second)) || m.FinishedAt != nil {
			t.Fatalf("Run: %s resume %v finished %v %q", m.Phase, m.ResumeAt, m.FinishedAt, m.Message)
		}
		if m.Metadata["stage.looks"] != "1" || m.Metadata["stage.soakEndsAt"] != t0.Add(10*time.Minute).UTC().Format(time.RFC3339) {
			t.Errorf("state after Run: %v", m.Metadata)
		}
		// A new plugin (the process restarted) resumes from the metadata.
		clk.set(t0.Add(31 * time.Second))
		m = rollouts.New(rollouts.WithClock(clk.now)).Resume(ar, metric, m)
		if m.Phase != v1alpha1.AnalysisPhaseRunning || m.Metadata["stage.looks"] != "2" {
			t.Fatalf("Resume: %s looks %s %q", m.Phase, m.Metadata["stage.looks"], m.Message)
		}
		clk.set(t0.Add(9*time.Minute + 50*time.Second))
		m = rollouts.New(rollouts.WithClock(clk.now)).Resume(ar, metric, m)
		if m.Phase != v1alpha1.AnalysisPhaseRunning || !m.ResumeAt.Time.Equal(t0.Add(10*time.Minute)) {
			t.Fatalf("last Resume before soak end: %s resume %v; want ResumeAt at soak end", m.Phase, m.ResumeAt)
		}
		clk.set(t0.Add(10 * time.Minute))
		m = rollouts.New(rollouts.WithClock(clk.now)).Resume(ar, metric, m)
		if m.Phase != v1alpha1.AnalysisPhaseSuccessful || m.FinishedAt == nil || m.ResumeAt != nil || !strings.HasPrefix(m.Message, "stage canary-10 soaked 10m over 4 looks: ") {
			t.Errorf("at soak end: %s %q", m.Phase, m.Message)
		}
	})

	t.Run("stage resumes at whole seconds", func(t *testing.T) {
		t.Parallel()
		// The controller stores ResumeAt in the AnalysisRun to the second
		// and resumes once that time has passed: a stage started at .8s
		// must still look once per interval and end at its soak, not
		// resume at once, over and over, just before the soak's end.
		t0 := stageEnd.Add(-12 * time.Minute).Add(800 * time.Millisecond)
		clk := newClock(t0)
		p := rollouts.New(rollouts.WithClock(clk.now))
		metric := pluginMetric(t, sc["healthy"].config(prom.URL(), `, "mode": "stage", "stage": "canary-10", "stageOrdering": false`))
		m := p.Run(ar, metric)
		for i := 0; m.Phase == v1alpha1.AnalysisPhaseRunning; i++ {
			if i == 40 {
				t.Fatalf("still running after %d resumes: %q", i, m.Message)
			}
			raw, err := json.Marshal(m)
			if err != nil {
				t.Fatal(err)
			}
			m = v1alpha1.Measurement{}
			if err := json.Unmarshal(raw, &m); err != nil {
				t.Fatal(err)
			}
			clk.set(m.ResumeAt.Time)
			m = p.Resume(ar, metric, m)
		}
		if m.Phase != v1alpha1.AnalysisPhaseSuccessful || !strings.HasPrefix(m.Message, "stage canary-10 soaked 10m over 21 looks: ") {
			t.Errorf("at soak end: %s %q, want Successful after 21 looks (one every 30s for 10m)", m.Phase, m.Message)
		}
	})

	t.Run("stage fails at once", func(t *testing.T) {
		t.Parallel()
		b := sc["drain-misrouting"]
		onset := b.Fault.Onset
		clk := newClock(onset.Add(-time.Minute))
		p := rollouts.New(rollouts.WithClock(clk.now))
		metric := pluginMetric(t, b.config(prom.URL(), `, "mode": "stage", "stage": "canary-10", "stageOrdering": false`))
		m := p.Run(ar, metric)
		if m.Phase != v1alpha1.AnalysisPhaseRunning {
			t.Fatalf("Run before the fault: %s %q", m.Phase, m.Message)
		}
		for i := 0; m.Phase == v1alpha1.AnalysisPhaseRunning; i++ {
			if i == 20 {
				t.Fatalf("still running 10m after the fault: %q", m.Message)
			}
			clk.set(m.ResumeAt.Time)
			m = p.Resume(ar, metric, m)
		}
		if m.Phase != v1alpha1.AnalysisPhaseFailed || !strings.Contains(m.Message, "stage canary-10 failed at look") || m.FinishedAt == nil {
			t.Errorf("after the fault: %s %q", m.Phase, m.Message)
		}
		if got := m.FinishedAt.Time.Sub(onset); got > 3*time.Minute {
			t.Errorf("failed %s after the fault's onset; want within 3m", got)
		}
	})

	t.Run("terminate", func(t *testing.T) {
		t.Parallel()
		clk := newClock(stageEnd.Add(-12 * time.Minute))
		p := rollouts.New(rollouts.WithClock(clk.now))
		metric := pluginMetric(t, sc["healthy"].config(prom.URL(), `, "mode": "stage", "stage": "canary-10", "stageOrdering": false`))
		m := p.Run(ar, metric)
		if m.Phase != v1alpha1.AnalysisPhaseRunning {
			t.Fatalf("Run: %s", m.Phase)
		}
		m = p.Terminate(ar, metric, m)
		if m.Phase != v1alpha1.AnalysisPhaseInconclusive || m.FinishedAt == nil || m.ResumeAt != nil || m.Metadata["terminated"] == "" || m.Metadata["stage.looks"] != "1" {
			t.Errorf("Terminate: %s finished %v resume %v md %v", m.Phase, m.FinishedAt, m.ResumeAt, m.Metadata)
		}
		// A finished measurement is returned as it is.
		if again := p.Terminate(ar, metric, m); again.Phase != m.Phase || again.Message != m.Message {
			t.Errorf("Terminate of a finished measurement changed it: %s %q", again.Phase, again.Message)
		}
	})

	t.Run("resume without state", func(t *testing.T) {
		t.Parallel()
		p := rollouts.New(rollouts.WithClock(func() time.Time { return stageEnd }))
		metric := pluginMetric(t, sc["healthy"].config(prom.URL(), `, "mode": "stage", "stage": "canary-10", "stageOrdering": false`))
		m := p.Resume(ar, metric, v1alpha1.Measurement{Phase: v1alpha1.AnalysisPhaseRunning, Metadata: map[string]string{"verdict": "pass"}})
		if m.Phase != v1alpha1.AnalysisPhaseError || !strings.Contains(m.Message, "stage state missing") {
			t.Errorf("Resume: %s %q", m.Phase, m.Message)
		}
	})

	t.Run("errors", func(t *testing.T) {
		t.Parallel()
		p := rollouts.New(rollouts.WithClock(func() time.Time { return stageEnd }))
		h := sc["healthy"]
		for _, tc := range []struct {
			name, config, want string
		}{
			{"not JSON", `{"policy": "phase-default",`, "not JSON"},
			{"unknown field", h.config(prom.URL(), `, "canary": "x"`), "canary: unknown field"},
			{"unknown preset", strings.Replace(h.config(prom.URL(), ""), "phase-default", "phase-defualt", 1), `policy "phase-defualt": unknown preset`},
			{"policy file without a policy directory", strings.Replace(h.config(prom.URL(), ""), "phase-default", "/nonexistent/policy.yaml", 1), "policy: a policy file is read only from the directory the operator gives the plugin"},
			{"unknown stage", h.config(prom.URL(), `, "stage": "canary-5"`), `stage "canary-5": not a stage of policy phase-default`},
			{"bad namespace", strings.Replace(h.config(prom.URL(), ""), `"namespace": "shop"`, `"namespace": "Shop_1"`, 1), `namespace "Shop_1": not a valid namespace`},
		} {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				m := p.Run(ar, pluginMetric(t, tc.config))
				if m.Phase != v1alpha1.AnalysisPhaseError || !strings.Contains(m.Message, tc.want) || m.FinishedAt == nil {
					t.Errorf("measurement %s %q, want Error containing %q", m.Phase, m.Message, tc.want)
				}
			})
		}
	})

	t.Run("hostile args", func(t *testing.T) {
		t.Parallel()
		p := rollouts.New(rollouts.WithClock(func() time.Time { return stageEnd }))
		h := sc["healthy"]
		template := pluginMetric(t, `{"policy": "phase-default", "prometheus": {"address": "`+prom.URL()+`"},
			"service": "{{args.service}}", "namespace": "shop", "canaryHash": "{{args.canary-hash}}", "stableHash": "`+h.StableHash+`"}`)
		for _, tc := range []struct{ service, canary, want string }{
			{h.Service, `x"}) or vector(1) #`, `canary-hash "x\"}) or vector(1) #": not a valid pod template hash`},
			{h.Service, h.CanaryHash + `",pod_template_hash=~".+`, "canary-hash"},
			{`checkout"} or vector(1)`, h.CanaryHash, "service"},
			{h.Service, "", "canary-hash \"\": required"},
			{h.Service, "{{args.other}}", "canary-hash"},
		} {
			service, canary := tc.service, tc.canary
			metric := argotest.ResolveArgs(t, template, []v1alpha1.Argument{{Name: "service", Value: &service}, {Name: "canary-hash", Value: &canary}})
			m := p.Run(ar, metric)
			if m.Phase != v1alpha1.AnalysisPhaseError || !strings.Contains(m.Message, tc.want) {
				t.Errorf("service %q canary %q: measurement %s %q, want Error containing %q", tc.service, tc.canary, m.Phase, m.Message, tc.want)
			}
		}
	})

	t.Run("metadata and type", func(t *testing.T) {
		t.Parallel()
		p := rollouts.New()
		md := p.GetMetadata(pluginMetric(t, sc["healthy"].config(prom.URL(), `, "stage": "canary-10", "mode": "stage", "prometheus2": 1`)))
		if !strings.Contains(md["error"], "prometheus2: unknown field") {
			t.Errorf("GetMetadata of a bad config: %v", md)
		}
		md = p.GetMetadata(pluginMetric(t, sc["healthy"].config(prom.URL(), `, "stage": "canary-10", "mode": "stage"`)))
		want := map[string]string{"plugin": rollouts.Name, "policy": "phase-default", "mode": "stage", "stage": "canary-10", "prometheus": prom.URL()}
		for k, v := range want {
			if md[k] != v {
				t.Errorf("GetMetadata %s = %q, want %q", k, md[k], v)
			}
		}
		if p.Type() != rollouts.Name {
			t.Errorf("Type = %q", p.Type())
		}
		if err := p.GarbageCollect(nil, v1alpha1.Metric{}, 0); err.HasError() {
			t.Errorf("GarbageCollect: %v", err)
		}
		if err := p.InitPlugin(); err.HasError() {
			t.Errorf("InitPlugin: %v", err)
		}
	})
}

// TestBusy fills the plugin's only evaluation slot with a call hanging on
// a server that never answers: a look-mode call that cannot get a slot
// within its timeout is an Error; a running stage skips the look and
// keeps its state.
func TestBusy(t *testing.T) {
	t.Parallel()
	arrived := make(chan struct{}, 1)
	release := make(chan struct{})
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case arrived <- struct{}{}:
		default:
		}
		<-release
	}))
	defer hang.Close()
	defer close(release)

	p := rollouts.New(rollouts.WithMaxEvaluations(1))
	cfg := func(extra string) v1alpha1.Metric {
		return pluginMetric(t, `{"policy": "phase-default", "prometheus": {"address": "`+hang.URL+`", "retries": -1}, "service": "checkout", "namespace": "shop",
			"canaryHash": "7f8c9d6b4", "stage": "canary-10"`+extra+`}`)
	}
	done := make(chan v1alpha1.Measurement, 1)
	go func() { done <- p.Run(&v1alpha1.AnalysisRun{}, cfg(`, "timeout": "10s"`)) }()
	select {
	case <-arrived:
	case <-time.After(10 * time.Second):
		t.Fatal("the first call never queried")
	}

	m := p.Run(&v1alpha1.AnalysisRun{}, cfg(`, "timeout": "200ms"`))
	if m.Phase != v1alpha1.AnalysisPhaseError || !strings.Contains(m.Message, "plugin busy") {
		t.Errorf("look while busy: %s %q", m.Phase, m.Message)
	}
	state := map[string]string{"stage.startedAt": time.Now().Add(-time.Minute).UTC().Format(time.RFC3339Nano), "stage.looks": "2", "stage.holds": "0", "stage.worst": "pass", "verdict": "pass"}
	m = p.Resume(&v1alpha1.AnalysisRun{}, cfg(`, "timeout": "200ms", "mode": "stage"`), v1alpha1.Measurement{Phase: v1alpha1.AnalysisPhaseRunning, Metadata: state})
	if m.Phase != v1alpha1.AnalysisPhaseRunning || m.ResumeAt == nil || !strings.Contains(m.Message, "look skipped") || m.Metadata["stage.looks"] != "2" {
		t.Errorf("stage while busy: %s resume %v looks %q %q", m.Phase, m.ResumeAt, m.Metadata["stage.looks"], m.Message)
	}
}
