package rollouts

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/argoproj/argo-rollouts/pkg/apis/rollouts/v1alpha1"
	"github.com/google/go-cmp/cmp"

	"github.com/phaseguard/phaseguard/analysis"
)

func TestPhaseOf(t *testing.T) {
	t.Parallel()
	for d, want := range map[analysis.Decision]v1alpha1.AnalysisPhase{
		analysis.Pass: v1alpha1.AnalysisPhaseSuccessful,
		analysis.Fail: v1alpha1.AnalysisPhaseFailed,
		analysis.Hold: v1alpha1.AnalysisPhaseInconclusive,
		"":            v1alpha1.AnalysisPhaseInconclusive, // unknown never passes
	} {
		if got := phaseOf(d); got != want {
			t.Errorf("phaseOf(%q) = %s, want %s", d, got, want)
		}
	}
}

func TestVerdictMetadataAndValue(t *testing.T) {
	t.Parallel()
	nan := analysis.Num(math.NaN())
	v := &analysis.Verdict{
		Time:        time.Date(2026, 1, 1, 0, 30, 0, 0, time.UTC),
		Policy:      "phase-default",
		Stage:       "canary-10",
		Decision:    analysis.Fail,
		Reason:      "drain-failure: burning 200× budget",
		Confidence:  0.99,
		Queries:     4,
		QueryErrors: 1,
		SLIs: []analysis.SLIResult{
			{
				Name: "drain-failure", Decision: analysis.Fail, Reason: "burning 200× budget",
				Budget: 0.001, Value: 0.2, Samples: 15000.4,
				Windows: []analysis.WindowResult{
					{Window: "15m", Burn: 150, BurnLower: 140, BurnUpper: 160},
					{Window: "5m", Burn: 200, BurnLower: 180.5, BurnUpper: 222.25},
				},
				Baseline: &analysis.BaselineResult{Hash: "6d4b9c7f5", Value: 0.0003, Samples: 90000, PValue: 1e-9, Worse: true,
					Windows: []analysis.WindowResult{{Window: "15m", Burn: 0.3, BurnLower: 0.2, BurnUpper: 0.4}}},
			},
			{
				Name: "flaps", Decision: analysis.Hold, Reason: "canary query failed: connection refused",
				Budget: 2, Value: nan, Samples: nan, Error: "connection refused",
				Windows: []analysis.WindowResult{{Window: "15m", Burn: nan, BurnLower: nan, BurnUpper: nan}},
			},
		},
	}
	want := map[string]string{
		"verdict":                    "fail",
		"reason":                     "drain-failure: burning 200× budget",
		"policy":                     "phase-default",
		"stage":                      "canary-10",
		"evaluatedAt":                "2026-01-01T00:30:00Z",
		"maxBurn":                    "200",
		"confidence":                 "0.99",
		"queries":                    "4",
		"queryErrors":                "1",
		"sli.drain-failure.verdict":  "fail",
		"sli.drain-failure.reason":   "burning 200× budget",
		"sli.drain-failure.value":    "0.2",
		"sli.drain-failure.budget":   "0.001",
		"sli.drain-failure.samples":  "15000",
		"sli.drain-failure.burn":     "15m=150 [140, 160], 5m=200 [180.5, 222.2]",
		"sli.drain-failure.baseline": "stable 6d4b9c7f5: value 0.0003, 90000 events, burn 15m=0.3 [0.2, 0.4], p < 0.001, worse true, alsoBad false",
		"sli.flaps.verdict":          "hold",
		"sli.flaps.reason":           "canary query failed: connection refused",
		"sli.flaps.value":            "n/a",
		"sli.flaps.budget":           "2",
		"sli.flaps.samples":          "n/a",
		"sli.flaps.burn":             "15m=n/a [n/a, n/a]",
		"sli.flaps.error":            "connection refused",
	}
	if diff := cmp.Diff(want, verdictMetadata(v)); diff != "" {
		t.Errorf("metadata (-want +got):\n%s", diff)
	}
	if got, want := valueJSON(v), `{"drain-failure":200,"flaps":null}`; got != want {
		t.Errorf("value = %s, want %s", got, want)
	}
}

func TestStageStateRoundTrip(t *testing.T) {
	t.Parallel()
	st := stageState{Start: time.Date(2026, 1, 1, 0, 10, 0, 123456789, time.UTC), Looks: 7, Holds: 2, Worst: analysis.Hold}
	md := map[string]string{}
	st.write(md, st.Start.Add(10*time.Minute))
	got, err := readState(md)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(st, got); diff != "" {
		t.Errorf("state (-want +got):\n%s", diff)
	}
	if md[keySoakEnd] != "2026-01-01T00:20:00Z" {
		t.Errorf("%s = %q", keySoakEnd, md[keySoakEnd])
	}

	for name, mutate := range map[string]func(map[string]string){
		"missing start": func(m map[string]string) { delete(m, keyStageStart) },
		"bad start":     func(m map[string]string) { m[keyStageStart] = "yesterday" },
		"bad looks":     func(m map[string]string) { m[keyLooks] = "-1" },
		"bad worst":     func(m map[string]string) { m[keyWorst] = "maybe" },
	} {
		bad := map[string]string{}
		for k, v := range md {
			bad[k] = v
		}
		mutate(bad)
		if _, err := readState(bad); err == nil || !strings.HasPrefix(err.Error(), "resume: ") {
			t.Errorf("%s: error %v", name, err)
		}
	}
}

func TestLRU(t *testing.T) {
	t.Parallel()
	l := newLRU[int](2)
	l.put("a", 1)
	l.put("b", 2)
	l.get("a") // b is now the least recently used
	l.put("c", 3)
	if _, ok := l.get("b"); ok {
		t.Error("b survived eviction")
	}
	if v, ok := l.get("a"); !ok || v != 1 {
		t.Errorf("a = %d, %t", v, ok)
	}
	if l.len() != 2 {
		t.Errorf("len = %d", l.len())
	}
}
