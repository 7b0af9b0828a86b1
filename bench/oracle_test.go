package bench

import (
	"bytes"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/common/model"

	"github.com/phaseguard/phaseguard/analysis"
	"github.com/phaseguard/phaseguard/policies"
	"github.com/phaseguard/phaseguard/replay"
	"github.com/phaseguard/phaseguard/scenarios"
)

// TestOracleLLR checks Wald's log likelihood ratios against values
// computed by hand (Python's math.log on the formulas of RatioLLR and
// RateLLR), and the alarm bound log(1/OracleAlpha) on a strong fault and
// on a count a healthy canary gives.
func TestOracleLLR(t *testing.T) {
	t.Parallel()
	bound := math.Log(1 / OracleAlpha)
	tests := []struct {
		name  string
		llr   float64
		want  float64
		alarm bool
	}{
		// 5·ln 10 + 995·ln(0.99/0.999)
		{"ratio: 5 bad of 1000 at 10× a 0.1 % budget", RatioLLR(5, 1000, 10, 0.001), 2.5083391226518934, false},
		// 30·ln 10 + 970·ln(0.99/0.999)
		{"ratio: strong fault, 30 bad of 1000", RatioLLR(30, 1000, 10, 0.001), 60.299212335501, true},
		// 1·ln 10 + 999·ln(0.99/0.999)
		{"ratio: healthy-like, 1 bad of 1000", RatioLLR(1, 1000, 10, 0.001), -6.738200591403964, false},
		// p1 = 2000 × 0.001 capped at 0.99: 10·ln(0.99/0.001)
		{"ratio: burn × budget capped below 1", RatioLLR(10, 10, 2000, 0.001), 68.97704943128636, true},
		// 9·ln(0.99/0.001) + 1·ln(0.01/0.999): one good event does not send it to −∞
		{"ratio: capped, one good event", RatioLLR(9, 10, 2000, 0.001), 57.47517480250322, true},
		{"ratio: bad clamped to total", RatioLLR(12, 10, 2000, 0.001), 68.97704943128636, true},
		{"ratio: negative bad clamped to 0", RatioLLR(-0.5, 100, 10, 0.001), 100 * math.Log(0.99/0.999), false},
		{"ratio: no events", RatioLLR(0, 0, 10, 0.001), 0, false},
		// 3·ln 30 − 29·2·0.5
		{"rate: 3 flaps in 30 min at 30× 2/h", RateLLR(3, 0.5, 30, 2), -18.796407855013534, false},
		// 8·ln 30 − 29·2·0.1 = 27.21 − 5.8
		{"rate: strong fault, 8 flaps in 6 min", RateLLR(8, 0.1, 30, 2), 8*math.Log(30) - 5.8, true},
		{"rate: healthy-like, no flap in 15 min", RateLLR(0, 0.25, 30, 2), -14.5, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if math.Abs(tt.llr-tt.want) > 1e-9 {
				t.Errorf("LLR = %.12g, want %.12g", tt.llr, tt.want)
			}
			if got := tt.llr >= bound; got != tt.alarm {
				t.Errorf("alarm (LLR %.4g ≥ log(1/%g) = %.4g) = %v, want %v", tt.llr, OracleAlpha, bound, got, tt.alarm)
			}
		})
	}
}

// TestOracleCounts checks that the oracle reads a batched query's series of
// the window asked for, by part, and a ratio SLI with a good query as
// total − good.
func TestOracleCounts(t *testing.T) {
	t.Parallel()
	series := func(part policies.Part, w string, v float64) *model.Sample {
		return &model.Sample{Metric: model.Metric{policies.PartLabel: model.LabelValue(part), policies.WindowLabel: model.LabelValue(w)}, Value: model.SampleValue(v)}
	}
	vec := model.Vector{
		series(policies.PartGood, "15m", 970), series(policies.PartTotal, "15m", 1000),
		series(policies.PartGood, "5m", 1), series(policies.PartTotal, "5m", 900), // another window: not read
		series(policies.PartEvents, "15m", 3), series(policies.PartEvents, "15m", 5), // two series of one part: summed
	}
	counts := partCounts(vec, 15*time.Minute)
	if diff := cmp.Diff(map[policies.Part]float64{policies.PartGood: 970, policies.PartTotal: 1000, policies.PartEvents: 8}, counts); diff != "" {
		t.Errorf("partCounts (-want +got):\n%s", diff)
	}
	// 30 bad of 1000 at 10× a 0.1 % budget, as in TestOracleLLR.
	if llr, ok := oracleLLR(RaisedSLI{Name: "r", Burn: 10, Budget: 0.001}, counts, 15*time.Minute); !ok || math.Abs(llr-60.299212335501) > 1e-9 {
		t.Errorf("ratio from good and total: LLR %.12g (data %v), want 60.299212335501", llr, ok)
	}
	// 8 events in 15 min at 30× 2/h: 8·ln 30 − 29·2·0.25.
	if llr, ok := oracleLLR(RaisedSLI{Name: "e", Burn: 30, Budget: 2, Rate: true}, counts, 15*time.Minute); !ok || math.Abs(llr-(8*math.Log(30)-14.5)) > 1e-9 {
		t.Errorf("rate: LLR %.12g (data %v), want %.12g", llr, ok, 8*math.Log(30)-14.5)
	}
	if _, ok := oracleLLR(RaisedSLI{Name: "r", Burn: 10, Budget: 0.001}, partCounts(vec, time.Minute), time.Minute); ok {
		t.Error("a window without series gave a ratio")
	}
}

// TestOracleReplay runs the oracle on the bundled canaries in the embedded
// PromQL engine: it alarms within a minute on 20 % drain misrouting (200×
// the budget at 50 requests/s) and within minutes on 30× the flap
// allowance, on the SLI the fault raises, never before the onset; on the
// healthy canary, told of a pretend fault of 10× in drain failures and 30×
// in flaps, it never alarms over 14 minutes of clean traffic, and its
// ratio ends far below 0.
func TestOracleReplay(t *testing.T) {
	t.Parallel()
	j := judge(t)
	_, every := j.Looks()
	for _, tt := range []struct {
		name, scenario string
		pretend        *scenarios.FaultTruth
		sli            string // "" for no alarm
		within         time.Duration
	}{
		{"drain misrouting", "drain-misrouting", nil, "drain-failure", time.Minute},
		{"flapping", "flapping", nil, "flaps", 5 * time.Minute},
		{"healthy told of a pretend fault", "healthy", &scenarios.FaultTruth{Kind: scenarios.DrainMisrouting, Scope: scenarios.ScopeCanary,
			CanaryBurn: map[string]float64{scenarios.SLIDrainFailure: 10, scenarios.SLIFlaps: 30}}, "", 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b, ok := scenarios.Lookup(tt.scenario)
			if !ok {
				t.Fatalf("no bundled scenario %q", tt.scenario)
			}
			st, err := replay.Load(bytes.NewReader(b.OpenMetrics))
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			tr := b.Truth
			if tt.pretend != nil {
				f := *tt.pretend
				f.Onset = tr.StageStart.Add(time.Minute)
				tr.Fault = &f
			}
			// The looks start 2 minutes before the onset: the bundled
			// stages are longer than the judged one.
			tr.StageStart = tr.Fault.Onset.Add(-2 * time.Minute)
			o, err := observeOracle(t.Context(), j, tr, st)
			if err != nil {
				t.Fatal(err)
			}
			if o.Queries == 0 {
				t.Fatal("the oracle sent no query")
			}
			if tt.sli == "" {
				if o.Look >= 0 {
					t.Errorf("alarm at look %d on %s with LLR %.3g; want none", o.Look+1, o.SLI, o.LLR[o.Look])
				}
				if last := o.LLR[len(o.LLR)-1]; last > -10 {
					t.Errorf("LLR at the last look %.3g, want below -10 on clean traffic", last)
				}
				return
			}
			if o.Look < 0 {
				t.Fatalf("no alarm; LLR by look %.3g", o.LLR)
			}
			at := LookTime(tr.StageStart, o.Look, every)
			if d := at.Sub(tr.Fault.Onset); d <= 0 || d > tt.within {
				t.Errorf("alarm %s after the onset, want within (0, %s]", d, tt.within)
			}
			if o.SLI != tt.sli {
				t.Errorf("alarm on %q, want %q", o.SLI, tt.sli)
			}
			for i, llr := range o.LLR[:o.Look] {
				if llr >= math.Log(1/OracleAlpha) {
					t.Errorf("look %d: LLR %.3g over the bound before the alarm", i+1, llr)
				}
			}
			if len(o.LLR) != o.Look+1 {
				t.Errorf("%d LLRs for an alarm at look %d: the oracle goes on after its alarm", len(o.LLR), o.Look+1)
			}
		})
	}
}

// oracleCorpus is a hand-made corpus whose figures against the oracle are
// worked out in TestOracleReport.
func oracleCorpus() []*Run {
	start := time.Date(2026, 1, 1, 0, 10, 0, 0, time.UTC)
	onset := start.Add(time.Minute) // look i is at start + (i+1)·30s
	fail := func(look int) []analysis.Decision {
		var d []analysis.Decision
		for range look {
			d = append(d, analysis.Pass)
		}
		return append(d, analysis.Fail)
	}
	run := func(name string, rate float64, right string, guard []analysis.Decision, oracle int, baselines ...int) *Run {
		tr := scenarios.Truth{Name: name, Start: start.Add(-10 * time.Minute), StageStart: start, StageEnd: start.Add(15 * time.Minute),
			ScrapeInterval: 15_000_000_000, CanaryPods: []string{"p"}, CanaryRate: rate,
			Answer: scenarios.Answer{Right: right, Wrong: []string{scenarios.Pass}, Why: "test"}}
		r := &Run{Name: name, Set: Healthy, Truth: tr, Guard: guard}
		if oracle > -2 {
			r.Set = Faulty
			r.Truth.Fault = &scenarios.FaultTruth{Kind: scenarios.DrainMisrouting, Scope: scenarios.ScopeCanary, Onset: onset,
				CanaryBurn: map[string]float64{scenarios.SLIDrainFailure: 20}}
			r.Oracle = &OracleRun{Look: oracle}
			if oracle >= 0 {
				r.Oracle.SLI = "drain-failure"
			}
		} else {
			r.Truth.Answer.Wrong = []string{scenarios.Fail}
		}
		for _, b := range baselines {
			r.Outcomes.Baseline = append(r.Outcomes.Baseline, []int{b})
		}
		return r
	}
	pass, hold := []analysis.Decision{analysis.Pass}, []analysis.Decision{analysis.Hold}
	const healthy = -2
	return []*Run{
		// Faults: phaseguard (guard), the oracle's look, then the
		// baselines' (Flagger, Argo) rollback looks.
		run("f1", 50, scenarios.Fail, fail(5), 3, 6, 3),    // 2m vs 1m: 2×
		run("f2", 50, scenarios.Fail, fail(2), 2, 2, 2),    // 30s vs 30s: 1×
		run("f3", 0.5, scenarios.Fail, pass, 4, -1, 4),     // missed, oracle-detectable
		run("f4", 5, scenarios.Fail, fail(10), -1, -1, 10), // the oracle misses it
		run("f6", 5, scenarios.Fail, fail(7), 5, 9, 5),     // 3m vs 2m: 1.5×
		run("untold", 5, scenarios.Hold, hold, 3, -1, -1),  // can't be told: not counted
		// Healthy canaries, by traffic.
		run("h1", 0.5, scenarios.Pass, hold, healthy, -1, -1),
		run("h2", 0.5, scenarios.Pass, pass, healthy, -1, -1),
		run("h7", 0.3, scenarios.Pass, pass, healthy, -1, -1),
		run("h8", 0.3, scenarios.Pass, pass, healthy, -1, -1),
		run("h3", 5, scenarios.Pass, pass, healthy, -1, -1),
		run("h4", 50, scenarios.Pass, hold, healthy, -1, -1),
		run("h5", 50, scenarios.Pass, pass, healthy, -1, -1),
		run("h6", 50, scenarios.Hold, hold, healthy, -1, -1), // no recent data: a hold is right
	}
}

// TestCompareOracle checks recall on oracle-detectable faults and the
// latency ratios on the hand-made corpus: the oracle detects f1, f2, f3
// and f6; phaseguard catches f1, f2 and f6, 2m, 30s and 3m after the onset
// against the oracle's 1m, 30s and 2m.
func TestCompareOracle(t *testing.T) {
	t.Parallel()
	v := CompareOracle(oracleCorpus(), 30*time.Second, GuardOutcome, RunOracle)
	want := Versus{Faults: 5, Detectable: 4, Caught: 3,
		Detector: []time.Duration{30 * time.Second, 2 * time.Minute, 3 * time.Minute},
		Oracle:   []time.Duration{30 * time.Second, time.Minute, 2 * time.Minute},
		Ratios:   []float64{1, 1.5, 2}}
	if diff := cmp.Diff(want, v); diff != "" {
		t.Errorf("CompareOracle (-want +got):\n%s", diff)
	}
	if got := v.MedianRatio(); got != 2 {
		t.Errorf("ratio of medians %g, want 2 (2m / 1m)", got)
	}
	if got := v.RatioMedian(); got != 1.5 {
		t.Errorf("median of per-fault ratios %g, want 1.5", got)
	}
	// The same corpus without the oracle's outcomes, as an earlier
	// engine's observations: OracleByCase finds them by case.
	earlier := oracleCorpus()
	for _, r := range earlier {
		r.Oracle = nil
	}
	if unobserved := CompareOracle(earlier, 30*time.Second, GuardOutcome, RunOracle); unobserved.Unobserved != 5 || unobserved.Detectable != 0 {
		t.Errorf("without oracle outcomes: %d unobserved, %d detectable; want 5 and 0", unobserved.Unobserved, unobserved.Detectable)
	}
	if diff := cmp.Diff(want, CompareOracle(earlier, 30*time.Second, GuardOutcome, OracleByCase(oracleCorpus()))); diff != "" {
		t.Errorf("CompareOracle with OracleByCase (-want +got):\n%s", diff)
	}
}

// TestOracleReport checks the new rows of the Targets table and of the
// decision-quality table on the hand-made corpus.
func TestOracleReport(t *testing.T) {
	t.Parallel()
	runs := oracleCorpus()
	j := judge(t)
	_, every := j.Looks()
	baselines := []Baseline{Flagger{Win: time.Minute, Threshold: 1}, Argo{Win: time.Minute}}
	r := &Report{Command: "go test", Date: time.Unix(0, 0), Judge: j, Geometry: DefaultGeometry, Runs: runs, Sweep: []float64{1}, CostErr: "not in this test"}
	r.Guard = Score("phaseguard", runs, every, GuardOutcome)
	r.Curves = Sweeps(runs, every, baselines, r.Sweep, r.Guard.FRRate)
	targets := map[string]Target{}
	for _, tg := range r.Targets() {
		targets[tg.Name] = tg
	}
	for _, want := range []Target{
		{Name: "recall ≥ 97 % of oracle-detectable faults (faults of the canary the oracle detects within the stage)",
			Figure: "75.0 % (3 of 4; the oracle detects 4 of the 5 faults of the canary that can be seen, phaseguard 4)"},
		{Name: "median detection latency ≤ 1.5× the oracle's on the same faults",
			Figure: "2.00×: median 2m vs the oracle's 1m on the 3 faults both detect (ratio of medians); median of the per-fault ratios 1.50×"},
		{Name: "healthy canaries held at the stage end ≤ 1 % at ≥ 1 req/s",
			Figure: "33.3 % (1 of 3 healthy canaries the truth says to pass; 1–20 req/s: 0 of 1, ≥ 20 req/s: 1 of 2)"},
		{Name: "healthy canaries held at the stage end ≤ 25 % below 1 req/s",
			Figure: "25.0 % (1 of 4 healthy canaries the truth says to pass; < 1 req/s: 1 of 4)", Met: true},
		{Name: "every static threshold dominated on recall and latency at its matched false-rollback rate (at least its recall and at most its median latency on the faults both detect, one strictly)",
			Figure: "Flagger [1m] threshold 1 ≤ 1× (false rollbacks 0 %): recall 80.0 % vs 60.0 %, latency 2m vs 2m30s (3 faults), dominated; " +
				"Argo [1m] failureLimit 0 ≤ 1× (false rollbacks 0 %): recall 80.0 % vs 100.0 %, latency 2m vs 1m (4 faults), **not dominated**"},
	} {
		if diff := cmp.Diff(want, targets[want.Name]); diff != "" {
			t.Errorf("target %q (-want +got):\n%s", want.Name, diff)
		}
	}
	var md bytes.Buffer
	if err := r.WriteMarkdown(&md); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"| 0 false rollbacks on the healthy corpus, 95 % upper bound ≤ 1 % |",
		"| recall ≥ 97 % of oracle-detectable faults (faults of the canary the oracle detects within the stage) | 75.0 % (3 of 4;",
		"| *oracle: SPRT knowing the fault's burn, α 0.01* | – | 0 / 8 | 0 % [",
		// The oracle's recall (≥ 3× and all), its latencies 30s, 1m,
		// 1m30s, 2m, and phaseguard's median against its own on f1, f2
		// and f6.
		"| 80.0 % (4/5) | 80.0 % (4/5) | 1m / 2m / 2m | 2m / 1m (3) |",
		"| < 1 req/s | 4 | 3 | 1 (25.0 %) | 0 |",
		"| canary traffic ≥ 20 req/s | 2 | 2 | 2 | 100.0 % | 30s / 30s | 1.00× | 1.00× |",
		"| f3 | F1 | 0 | 20× | 0 | 0.5 | 1m30s (drain-failure) | pass |", // a miss of an oracle-detectable fault
		"- **Oracle.**",
	} {
		if !strings.Contains(md.String(), want) {
			t.Errorf("Markdown lacks %q", want)
		}
	}
	if t.Failed() {
		t.Logf("Markdown:\n%s", md.String())
	}
}
