package rollouts

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/argoproj/argo-rollouts/pkg/apis/rollouts/v1alpha1"
	"github.com/hashicorp/go-hclog"

	"github.com/phaseguard/phaseguard/analysis"
	"github.com/phaseguard/phaseguard/internal/argotest"
)

// long returns a string of n bytes starting with prefix.
func long(prefix string, n int) string {
	return prefix + strings.Repeat("x", max(n-len(prefix), 0))
}

// fullVerdict is a verdict with every field filled and long: many SLIs
// with long names, long reasons and errors (PromQL of several KB),
// baselines with long hashes.
func fullVerdict(slis int) *analysis.Verdict {
	nan := analysis.Num(math.NaN())
	v := &analysis.Verdict{
		Time: time.Date(2026, 1, 1, 0, 30, 0, 0, time.UTC), Policy: long("policy-", 63), Stage: long("stage-", 63),
		Decision: analysis.Fail, Reason: long("the worst SLI burns: ", 6000), Confidence: 0.999, Queries: 4 * slis, QueryErrors: slis / 2,
	}
	for i := range slis {
		d := []analysis.Decision{analysis.Pass, analysis.Hold, analysis.Fail}[i%3]
		s := analysis.SLIResult{
			Name: long(fmt.Sprintf("sli-%02d-", i), 60), Decision: d, Reason: long("reason ", 2000),
			Budget: 0.001, Value: 0.2, Samples: 15000,
			Windows: []analysis.WindowResult{{Window: "15m", Burn: 150, BurnLower: 140, BurnUpper: 160}, {Window: "5m", Burn: nan, BurnLower: nan, BurnUpper: nan}},
			Baseline: &analysis.BaselineResult{Hash: long("stable-", 63), Value: 0.0003, Samples: 90000, PValue: 1e-9, Worse: true,
				Windows: []analysis.WindowResult{{Window: "15m", Burn: 0.3, BurnLower: 0.2, BurnUpper: 0.4}}},
			Error: long(`query "sum(increase(phase_requests_total{service=\"checkout\"`, 5000),
		}
		v.SLIs = append(v.SLIs, s)
	}
	return v
}

// TestFitMeasurement fills every field of a measurement far past the
// bound and checks that it fits, that what Resume and Terminate read back
// survives unchanged, and that the most useful detail is what is kept.
func TestFitMeasurement(t *testing.T) {
	t.Parallel()
	for _, slis := range []int{3, 7, 40} {
		t.Run(fmt.Sprint(slis, " SLIs"), func(t *testing.T) {
			t.Parallel()
			v := fullVerdict(slis)
			md := verdictMetadata(v)
			md["mode"], md["evaluationMs"], md["dryRun"], md["wouldBe"] = ModeStage, "1234.5", "true", "Failed"
			st := stageState{Start: time.Date(2026, 1, 1, 0, 20, 0, 123456789, time.UTC), Looks: 12345, Holds: 123, Worst: analysis.Fail}
			st.write(md, st.Start.Add(time.Hour))
			msg := long("stage canary-10 failed at look 3: ", 8000)

			gotMsg, got, cut := fitMeasurement(msg, md)
			m := v1alpha1.Measurement{Message: gotMsg, Metadata: got}
			if n := measurementBytes(m); n > MaxMeasurementBytes {
				t.Errorf("measurement holds %d bytes, want at most %d", n, MaxMeasurementBytes)
			}
			if !cut || got[keyCut] == "" || !strings.Contains(got[keyCut], "the plugin's log has them in full") {
				t.Errorf("cut %t, %s = %q", cut, keyCut, got[keyCut])
			}
			if !strings.HasPrefix(gotMsg, "stage canary-10 failed at look 3: ") || !strings.HasSuffix(gotMsg, "(cut from 8000 bytes)") {
				t.Errorf("message %q", gotMsg)
			}
			for _, k := range []string{keyVerdict, "mode", "dryRun", "wouldBe", keyEvaluatedAt, keyMaxBurn, keyQueries, keyQueryErrors, keyStageStart, keySoakEnd, keyLooks, keyHolds, keyWorst} {
				if got[k] != md[k] {
					t.Errorf("%s = %q, want %q kept as it was", k, got[k], md[k])
				}
			}
			if back, err := readState(got); err != nil || back != st {
				t.Errorf("state read back: %+v %v, want %+v", back, err, st)
			}
			if len(got[keyPolicy]) > maxEssentialBytes || !strings.HasPrefix(got[keyPolicy], "policy-") {
				t.Errorf("policy %q", got[keyPolicy])
			}
			// What is kept is kept in order: failing and holding SLIs'
			// verdicts and burns first, errors last; with a few SLIs,
			// every verdict.
			failing := "sli." + v.SLIs[min(2, slis-1)].Name + "."
			if got[failing+"verdict"] != "fail" || got[failing+"burn"] == "" {
				t.Errorf("the first failing SLI's verdict %q or burn %q left out", got[failing+"verdict"], got[failing+"burn"])
			}
			for i := range v.SLIs {
				if k := "sli." + v.SLIs[i].Name + ".verdict"; slis <= 7 && got[k] != string(v.SLIs[i].Decision) {
					t.Errorf("%s = %q, want %q", k, got[k], v.SLIs[i].Decision)
				}
			}
			kept := func(field string, pass bool) (n int) {
				for i := range v.SLIs {
					if (v.SLIs[i].Decision == analysis.Pass) == pass && got["sli."+v.SLIs[i].Name+"."+field] != "" {
						n++
					}
				}
				return n
			}
			if kept("error", false)+kept("error", true) > 0 && kept("burn", true) < countPass(v) {
				t.Error("an error was kept while a passing SLI's burn was left out")
			}
			if kept("burn", true) > 0 && kept("burn", false) < len(v.SLIs)-countPass(v) {
				t.Error("a passing SLI's burn was kept while a failing one's was left out")
			}
			if kept("verdict", true) > 0 && kept("verdict", false) < len(v.SLIs)-countPass(v) {
				t.Error("a passing SLI's verdict was kept while a failing one's was left out")
			}
		})
	}

	t.Run("small is untouched", func(t *testing.T) {
		t.Parallel()
		md := map[string]string{keyVerdict: "pass", "sli.a.reason": "fine"}
		msg, got, cut := fitMeasurement("all fine", md)
		if cut || msg != "all fine" || len(got) != 2 || got[keyCut] != "" {
			t.Errorf("fit changed a small measurement: %q %v %t", msg, got, cut)
		}
	})
}

func countPass(v *analysis.Verdict) (n int) {
	for i := range v.SLIs {
		if v.SLIs[i].Decision == analysis.Pass {
			n++
		}
	}
	return n
}

func TestCutText(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		n    int
		want string
	}{
		{"short", 10, "short"},
		{strings.Repeat("a", 40), 32, "aaaaaaaaa… (cut from 40 bytes)"},
		{strings.Repeat("é", 20), 32, "éééé… (cut from 40 bytes)"}, // never half a character
	} {
		got := cutText(tc.in, tc.n)
		if got != tc.want || len(got) > tc.n && len(tc.in) > tc.n {
			t.Errorf("cutText(%q, %d) = %q (%d bytes), want %q", tc.in, tc.n, got, len(got), tc.want)
		}
	}
}

func TestBoundValue(t *testing.T) {
	t.Parallel()
	v := fullVerdict(60)
	for i := range v.SLIs {
		v.SLIs[i].Windows[0].Burn = analysis.Num(i)
	}
	got := boundValue(valueJSON(v))
	var burns map[string]*float64
	if err := json.Unmarshal([]byte(got), &burns); err != nil {
		t.Fatalf("value %q: %v", got, err)
	}
	if len(got) > maxValueBytes || len(burns) == 0 || len(burns) == len(v.SLIs) {
		t.Errorf("value of %d bytes with %d of %d SLIs", len(got), len(burns), len(v.SLIs))
	}
	if b := burns[v.SLIs[59].Name]; b == nil || *b != 59 {
		t.Errorf("the largest burn was not kept: %v", b)
	}
}

// TestMeasurementBoundedThroughStage runs a stage-mode measurement whose
// every query fails with a long error, under a policy of many SLIs with
// long names and long PromQL, long hashes and stage name: Run, Resume and
// Terminate each return at most MaxMeasurementBytes, the stage resumes
// from what was kept, and the plugin's log has what was cut.
func TestMeasurementBoundedThroughStage(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnprocessableEntity)
		fmt.Fprintf(w, `{"status":"error","errorType":"execution","error":%q}`, long("cannot execute: ", 3000))
	}))
	defer srv.Close()

	stage := long("stage-", 63)
	var sb strings.Builder
	fmt.Fprintf(&sb, "apiVersion: phaseguard.dev/v1alpha1\nkind: Policy\nmetadata:\n  name: %s\nspec:\n  interval: 30s\n  minSamples: 100\n  windows:\n    - {long: 5m, short: 1m, factor: 10}\n  stages:\n    - {name: %s, soak: 10m}\n  slis:\n", long("policy-", 63), stage)
	pad := strings.Repeat("p", 400)
	for i := range 30 {
		fmt.Fprintf(&sb, "    - name: %s\n      objective: 99.9\n      ratio:\n        bad: sum(increase(phase_requests_total{service=\"$service\",pod_template_hash=\"$hash\",phase!=\"active\",pad=~\"%s\"}[$window]))\n        total: sum(increase(phase_requests_total{service=\"$service\",pod_template_hash=\"$hash\",pad=~\"%s\"}[$window]))\n",
			long(fmt.Sprintf("sli-%02d-", i), 60), pad, pad)
	}
	cfg, _ := json.Marshal(map[string]any{
		"policy": sb.String(), "mode": ModeStage, "stage": stage, "stageOrdering": false,
		"service": "checkout", "namespace": "shop", "canaryHash": long("c", 63), "stableHash": long("s", 63),
		"prometheus": map[string]any{"address": srv.URL, "retries": -1},
	})
	metric := v1alpha1.Metric{Name: "phase-slis", Provider: v1alpha1.MetricProvider{Plugin: map[string]json.RawMessage{Name: cfg}}}

	var logBuf argotest.Log
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	p := New(WithClock(func() time.Time { return now }), WithLogger(hclog.New(&hclog.LoggerOptions{Output: &logBuf, Level: hclog.Info})))
	ar := &v1alpha1.AnalysisRun{}
	ar.Namespace, ar.Name = "shop", "checkout-big"
	check := func(step string, m v1alpha1.Measurement) {
		t.Helper()
		if n := measurementBytes(m); n > MaxMeasurementBytes {
			t.Errorf("%s: measurement holds %d bytes, want at most %d", step, n, MaxMeasurementBytes)
		}
		if len(m.Value) > maxValueBytes {
			t.Errorf("%s: value holds %d bytes", step, len(m.Value))
		}
		t.Logf("%s: %s, %d bytes, %d keys, cut: %s", step, m.Phase, measurementBytes(m), len(m.Metadata), m.Metadata[keyCut])
	}
	m := p.Run(ar, metric)
	check("Run", m)
	if m.Phase != v1alpha1.AnalysisPhaseRunning || m.Metadata[keyLooks] != "1" || m.Metadata[keyCut] == "" {
		t.Fatalf("Run: %s %q looks %q", m.Phase, m.Message, m.Metadata[keyLooks])
	}
	// Through JSON, as the AnalysisRun stores it.
	raw, _ := json.Marshal(m)
	m = v1alpha1.Measurement{}
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	now = now.Add(30 * time.Second)
	m = p.Resume(ar, metric, m)
	check("Resume", m)
	if m.Phase != v1alpha1.AnalysisPhaseRunning || m.Metadata[keyLooks] != "2" || m.Metadata[keyHolds] != "2" {
		t.Fatalf("Resume: %s %q looks %q holds %q", m.Phase, m.Message, m.Metadata[keyLooks], m.Metadata[keyHolds])
	}
	term := p.Terminate(ar, metric, m)
	check("Terminate", term)
	if term.Phase != v1alpha1.AnalysisPhaseInconclusive || term.Metadata["terminated"] == "" || term.Metadata[keyLooks] != "2" || term.Metadata[keyCut] == "" {
		t.Errorf("Terminate: %s looks %q terminated %q", term.Phase, term.Metadata[keyLooks], term.Metadata["terminated"])
	}
	now = now.Add(10 * time.Minute)
	m = p.Resume(ar, metric, m)
	check("Resume at soak end", m)
	if m.Phase != v1alpha1.AnalysisPhaseInconclusive || m.Metadata[keyLooks] != "3" {
		t.Errorf("at soak end: %s %q looks %q", m.Phase, m.Message, m.Metadata[keyLooks])
	}
	// The log has what the measurement left out: every SLI's error.
	log := logBuf.String()
	if !strings.Contains(log, "measurement detail cut to fit the AnalysisRun") || !strings.Contains(log, "sli.sli-29-") || !strings.Contains(log, `cannot execute: xxxx`) {
		t.Errorf("the plugin's log lacks the full detail (%d bytes)", len(log))
	}
}
