package bench

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/common/model"

	"github.com/phaseguard/phaseguard/analysis"
	"github.com/phaseguard/phaseguard/policies"
	"github.com/phaseguard/phaseguard/replay"
	"github.com/phaseguard/phaseguard/scenarios"
)

var update = flag.Bool("update", false, "rewrite testdata/pipeline.golden")

// The fixed subset: 10 healthy and 10 faulty cases of seed 1, and 4 full
// drain misroutings, as the benchmark draws them.
const (
	fixtureSeed      = 1
	fixtureHealthy   = 10
	fixtureFaulty    = 10
	fixtureFullDrain = 4
)

func judge(t testing.TB) Judge {
	t.Helper()
	p, err := policies.Preset("phase-default")
	if err != nil {
		t.Fatal(err)
	}
	return Judge{Policy: p, Stage: "canary-50", Windows: []time.Duration{time.Minute, 5 * time.Minute}}
}

// pipeline observes the fixed subset once for every test that needs it.
var pipeline = struct {
	once sync.Once
	runs []*Run
	err  error
}{}

func fixtureRuns(t *testing.T) []*Run {
	t.Helper()
	j := judge(t)
	pipeline.once.Do(func() {
		cases := Corpus(fixtureSeed, fixtureHealthy, fixtureFaulty, fixtureFullDrain, DefaultGeometry)
		pipeline.runs, pipeline.err = Collect(context.Background(), j, cases, DefaultBaselines, Sweep, 2, nil)
	})
	if pipeline.err != nil {
		t.Fatal(pipeline.err)
	}
	return pipeline.runs
}

// summary is one line per run: phaseguard's decision at each look, each
// baseline's rollback look at every threshold of the sweep, then, for a
// run with a fault, the oracle's alarm look.
func summary(runs []*Run) string {
	var b strings.Builder
	for _, r := range runs {
		var looks []byte
		for _, d := range r.Guard {
			looks = append(looks, string(d)[0])
		}
		fmt.Fprintf(&b, "%s %s guard=%s", r.Name, r.Set, looks)
		for i, o := range r.Outcomes.Baseline {
			fmt.Fprintf(&b, " b%d=%v", i, o)
		}
		if r.Oracle != nil {
			fmt.Fprintf(&b, " oracle=%d", r.Oracle.Look)
		}
		b.WriteString("\n")
	}
	return b.String()
}

// TestPipelineGolden runs the whole decision pipeline on the fixed subset
// and compares every decision with the golden file: the same seed gives the
// same decisions.
func TestPipelineGolden(t *testing.T) {
	t.Parallel()
	got := summary(fixtureRuns(t))
	path := filepath.Join("testdata", "pipeline.golden")
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(string(want), got); diff != "" {
		t.Errorf("decisions differ from %s (-want +got); run go test ./bench -run TestPipelineGolden -update if the change is intended:\n%s", path, diff)
	}
}

// TestPipelineWorkers checks that the worker count does not change any
// decision.
func TestPipelineWorkers(t *testing.T) {
	t.Parallel()
	runs := fixtureRuns(t)
	j := judge(t)
	// A healthy, a faulty and a full-drain case, observed by one worker.
	var cases []Case
	var want []*Run
	for _, i := range []int{0, fixtureHealthy, fixtureHealthy + fixtureFaulty} {
		cases = append(cases, Corpus(fixtureSeed, fixtureHealthy, fixtureFaulty, fixtureFullDrain, DefaultGeometry)[i])
		want = append(want, runs[i])
	}
	got, err := Collect(t.Context(), j, cases, DefaultBaselines, Sweep, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(summary(want), summary(got)); diff != "" {
		t.Errorf("one worker decided otherwise than two (-two +one):\n%s", diff)
	}
}

// TestPipelineTargets checks what the benchmark reports on the fixed
// subset: no false rollback of a healthy canary, and every full drain
// misrouting failed within FastDetection of its onset.
func TestPipelineTargets(t *testing.T) {
	t.Parallel()
	runs := fixtureRuns(t)
	_, every := judge(t).Looks()
	f := Score("phaseguard", runs, every, GuardOutcome)
	if f.Healthy != fixtureHealthy || f.FalseRollbacks != 0 {
		t.Errorf("healthy runs %d, false rollbacks %d; want %d and 0", f.Healthy, f.FalseRollbacks, fixtureHealthy)
	}
	for _, r := range runs {
		o := GuardOutcome(r)
		switch r.Set {
		case Healthy:
			if o.Fail >= 0 {
				t.Errorf("%s: healthy canary failed at look %d: %s", r.Name, o.Fail+1, r.Reason)
			}
		case FullDrain:
			if o.Fail < 0 {
				t.Errorf("%s: full drain misrouting not failed; last verdict: %s", r.Name, r.Reason)
				continue
			}
			d := LookTime(r.Truth.StageStart, o.Fail, every).Sub(r.Truth.Fault.Onset)
			if d < 0 || d > FastDetection {
				t.Errorf("%s: failed %s after the onset, want within [0, %s]", r.Name, d, FastDetection)
			}
		}
	}
	if f.Drain.Runs != fixtureFullDrain || f.DrainWithin != fixtureFullDrain {
		t.Errorf("full drain: %d runs, %d within %s; want %d and %d", f.Drain.Runs, f.DrainWithin, FastDetection, fixtureFullDrain, fixtureFullDrain)
	}
	// The baselines see the same data: at their most sensitive threshold
	// at least one of them rolls back every full drain misrouting too.
	for _, r := range runs {
		if r.Set != FullDrain {
			continue
		}
		caught := false
		for _, o := range r.Outcomes.Baseline {
			caught = caught || o[0] >= 0
		}
		if !caught {
			t.Errorf("%s: no baseline rolled back a full drain misrouting", r.Name)
		}
	}
}

// TestReport renders the Markdown and the SVG of the fixed subset.
func TestReport(t *testing.T) {
	t.Parallel()
	runs := fixtureRuns(t)
	j := judge(t)
	_, every := j.Looks()
	r := &Report{Command: "go test", Date: time.Unix(0, 0), Judge: j, Geometry: DefaultGeometry, Runs: runs, Sweep: Sweep, SVG: "tradeoff.svg", CostErr: "not in this test"}
	r.Guard = Score("phaseguard", runs, every, GuardOutcome)
	r.Curves = Sweeps(runs, every, DefaultBaselines, Sweep, r.Guard.FRRate)
	r.Before = []Before{{Command: "go run earlier", Revision: "a7f08a1", Corpus: "seed 1: 10 healthy", Guard: r.Guard, Runs: runs}}
	v := CompareOracle(runs, every, GuardOutcome, RunOracle)
	if v.Faults == 0 || v.Unobserved > 0 {
		t.Errorf("against the oracle: %d faults, %d without its outcome; want some, all observed", v.Faults, v.Unobserved)
	}
	recall := fmt.Sprintf("%s (%d/%d)", pct(v.Recall()), v.Caught, v.Detectable)
	var md, svg bytes.Buffer
	if err := r.WriteMarkdown(&md); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"## Targets", "| **phaseguard** | policy | 0 / 10 |", "Argo [1m] failureLimit 0", "Flagger [5m] threshold 2", "(tradeoff.svg)",
		"## Before and after", "| figure | before, seed 1: 10 healthy | after,", "| false rollbacks (healthy), 95 % upper bound | 0 / 10, ≤ 30.8 % | 0 / 10, ≤ 30.8 % |",
		"### phaseguard on what real exporters and servers do", "| children created on first use |",
		"| recall ≥ 97 % of oracle-detectable faults", "| healthy canaries held at the stage end ≤ 1 % at ≥ 1 req/s |",
		"| every static threshold dominated on recall and latency", "| *oracle: SPRT knowing the fault's burn, α 0.01* |",
		"| recall of oracle-detectable faults | " + recall + " | " + recall + " |"} {
		if !strings.Contains(md.String(), want) {
			t.Errorf("Markdown lacks %q", want)
		}
	}
	if err := r.WriteSVG(&svg); err != nil {
		t.Fatal(err)
	}
	d := xml.NewDecoder(&svg)
	for {
		_, err := d.Token()
		if err != nil {
			if !errors.Is(err, io.EOF) {
				t.Errorf("SVG is not well-formed XML: %v", err)
			}
			break
		}
	}
}

func probe(rows ...[]Result) *Probe { return &Probe{Window: time.Minute, Results: rows} }

var (
	empty = Result{Empty: true, Value: math.NaN()}
	nan   = Result{Value: math.NaN()}
)

func val(v float64) Result { return Result{Value: v} }

// TestArgo checks the Argo baseline's semantics on one metric with budget
// 1 at threshold 1× (successCondition "result[0] <= 1").
func TestArgo(t *testing.T) {
	t.Parallel()
	many := func(r Result, n int) [][]Result {
		var out [][]Result
		for range n {
			out = append(out, []Result{r})
		}
		return out
	}
	cat := func(parts ...[][]Result) [][]Result {
		var out [][]Result
		for _, p := range parts {
			out = append(out, p...)
		}
		return out
	}
	tests := []struct {
		name string
		argo Argo
		rows [][]Result
		want int
	}{
		{"all successful", Argo{FailureLimit: 0}, many(val(0.5), 10), -1},
		{"equal to the threshold succeeds", Argo{FailureLimit: 0}, many(val(1), 10), -1},
		{"first failure fails with failureLimit 0", Argo{FailureLimit: 0}, cat(many(val(0), 3), many(val(2), 1)), 3},
		{"NaN is a Failed measurement", Argo{FailureLimit: 0}, cat(many(val(0), 2), many(nan, 1)), 2},
		{"failureLimit 2 counts failures over the run", Argo{FailureLimit: 2}, cat(many(val(2), 1), many(val(0), 3), many(val(2), 1), many(val(0), 3), many(val(2), 1)), 8},
		{"no result is an Error; the fifth in a row errors the run", Argo{}, cat(many(val(0), 1), many(empty, 5)), 5},
		{"four errors in a row are tolerated", Argo{}, cat(many(empty, 4), many(val(0), 1), many(empty, 4)), -1},
		{"consecutiveErrorLimit 1", Argo{ConsecutiveErrorLimit: 1}, many(empty, 3), 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := probe(tt.rows...)
			Classify(p, []float64{1}, Sweep)
			if got := tt.argo.Rollback(p, []float64{1}, Sweep, 0); got != tt.want {
				t.Errorf("Rollback = %d, want %d", got, tt.want)
			}
		})
	}
}

// TestClassify checks that the binary search over the sweep finds, for
// every result, exactly the phases argo-rollouts' evaluation gives at each
// threshold.
func TestClassify(t *testing.T) {
	t.Parallel()
	budget := 0.001
	var row []Result
	for _, v := range []float64{0, 1e-9, 0.0005, 0.001, 0.0010001, 0.0015, 0.002, 0.05, 0.5, 0.9999, 1, 1.5, math.Inf(1)} {
		row = append(row, val(v))
	}
	row = append(row, nan, empty)
	p := probe(row)
	budgets := make([]float64, len(row))
	for i := range budgets {
		budgets[i] = budget
	}
	Classify(p, budgets, Sweep)
	for k, r := range row {
		for ti, burn := range Sweep {
			want := argoPhase(r, argoMetric(burn*budget, 0))
			first := p.Argo[0][k]
			var got string
			switch {
			case first < 0:
				got = "Error"
			case int(first) > ti:
				got = "Failed"
			default:
				got = "Successful"
			}
			if got != string(want) {
				t.Errorf("value %v at %g×: classified %s, evaluate says %s", r, burn, got, want)
			}
		}
	}
}

// TestFlagger checks the Flagger baseline's semantics at threshold 1×.
func TestFlagger(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		f    Flagger
		rows [][]Result
		want int
	}{
		{"all pass", Flagger{Threshold: 1}, [][]Result{{val(1)}, {val(0)}}, -1},
		{"rollback at the tick after the failed check", Flagger{Threshold: 1}, [][]Result{{val(0)}, {val(2)}, {val(0)}}, 2},
		{"failed checks are never reset", Flagger{Threshold: 2}, [][]Result{{val(2)}, {val(0)}, {val(0)}, {val(2)}, {val(0)}}, 4},
		{"no value and NaN fail the check", Flagger{Threshold: 2}, [][]Result{{empty}, {nan}, {val(0)}}, 2},
		{"one failed check per tick however many metrics fail", Flagger{Threshold: 2}, [][]Result{{val(2), val(2)}, {val(0), val(0)}}, -1},
		{"threshold reached at the last look rolls back one tick later", Flagger{Threshold: 1}, [][]Result{{val(0)}, {val(2)}}, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			budgets := make([]float64, len(tt.rows[0]))
			for i := range budgets {
				budgets[i] = 1
			}
			if got := tt.f.Rollback(probe(tt.rows...), budgets, Sweep, 0); got != tt.want {
				t.Errorf("Rollback = %d, want %d", got, tt.want)
			}
		})
	}
}

// TestCorpusFit checks that every fitted spec is valid and places its
// onset and restarts inside the judged stage.
func TestCorpusFit(t *testing.T) {
	t.Parallel()
	g := DefaultGeometry
	cases := Corpus(7, 30, 60, 10, g)
	if len(cases) != 100 {
		t.Fatalf("%d cases, want 100", len(cases))
	}
	names := map[string]bool{}
	for _, c := range cases {
		s := c.Spec.WithDefaults()
		if err := s.Validate(); err != nil {
			t.Errorf("%s: %v", s.Name, err)
			continue
		}
		if names[s.Namespace] {
			t.Errorf("%s: namespace %q used twice", s.Name, s.Namespace)
		}
		names[s.Namespace] = true
		if s.Stage != g.Stage {
			t.Errorf("%s: stage %s, want %s", s.Name, s.Stage, g.Stage)
		}
		if f := s.Fault; f != nil && (f.Onset < 0 || f.Onset >= g.Stage-g.Exposure) {
			t.Errorf("%s: onset %s outside [0, %s)", s.Name, f.Onset, g.Stage-g.Exposure)
		}
		if c.Set == FullDrain && (s.Fault.Kind != scenarios.DrainMisrouting || s.Fault.Severity != 1 || s.CanaryRate < 20 || s.CanaryRate > 500) {
			t.Errorf("%s: full drain case with fault %+v at %g requests/s", s.Name, *s.Fault, s.CanaryRate)
		}
	}
	if diff := cmp.Diff(Corpus(7, 30, 60, 10, g), cases); diff != "" {
		t.Errorf("Corpus is not deterministic:\n%s", diff)
	}
}

func TestClopperPearson(t *testing.T) {
	t.Parallel()
	tests := []struct {
		x, n   int
		lo, hi float64
	}{
		{0, 1000, 0, 1 - math.Pow(0.025, 1.0/1000)}, // closed form at x = 0
		{1000, 1000, math.Pow(0.025, 1.0/1000), 1},
		{5, 100, 0.0164319, 0.1128349}, // R: binom.test(5, 100)$conf.int
	}
	for _, tt := range tests {
		lo, hi := ClopperPearson(tt.x, tt.n, 0.05)
		if math.Abs(lo-tt.lo) > 1e-6 || math.Abs(hi-tt.hi) > 1e-6 {
			t.Errorf("ClopperPearson(%d, %d) = [%.6f, %.6f], want [%.6f, %.6f]", tt.x, tt.n, lo, hi, tt.lo, tt.hi)
		}
	}
}

// BenchmarkEvaluate measures one evaluation of the default policy, canary
// against stable, against the embedded PromQL engine and against canned
// query results (the engine's own allocations).
func BenchmarkEvaluate(b *testing.B) {
	j := judge(b)
	c := Corpus(fixtureSeed, 1, 0, 0, DefaultGeometry)[0]
	sc, err := scenarios.Generate(c.Spec)
	if err != nil {
		b.Fatal(err)
	}
	st, err := replay.Load(bytes.NewReader(sc.OpenMetrics))
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	req := Request(j, sc.Truth)
	_, every := j.Looks()
	req.At = LookTime(sc.Truth.StageStart, 20, every)
	rec := &recorder{q: st, got: map[string]model.Vector{}}
	for _, bc := range []struct {
		name string
		q    analysis.Querier
	}{{"replay", rec}, {"canned", canned(rec.got)}} {
		b.Run(bc.name, func(b *testing.B) {
			eng := analysis.New(bc.q)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := eng.Evaluate(b.Context(), req); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestExpectedExcess checks the evidence figure on the bundled drain
// misrouting and flapping canaries against the arithmetic from their
// truth: the burn a fault adds × budget × the canary's requests after the
// onset (nominal rate × time, within the noise of traffic), or × hours for
// flaps. A healthy canary adds nothing.
func TestExpectedExcess(t *testing.T) {
	t.Parallel()
	p, err := policies.Preset("phase-default")
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name, sli string
		ratio     bool
	}{
		{"drain-misrouting", scenarios.SLIDrainFailure, true},
		{"flapping", scenarios.SLIFlaps, false},
		{"healthy", "", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b, _ := scenarios.Lookup(tt.name)
			st, err := replay.Load(bytes.NewReader(b.OpenMetrics))
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			got, err := ExpectedExcess(context.Background(), p, b.Truth, st)
			if err != nil {
				t.Fatal(err)
			}
			tr := b.Truth
			if tr.Fault == nil {
				if got != 0 {
					t.Errorf("healthy canary: excess %g, want 0", got)
				}
				return
			}
			span := tr.StageEnd.Sub(tr.Fault.Onset)
			want := (tr.Fault.CanaryBurn[tt.sli] - tr.Background.CanaryBurn[tt.sli]) * scenarios.DefaultBudgets()[tt.sli] * span.Hours()
			if tt.ratio {
				want *= tr.CanaryRate * 3600
			}
			if math.Abs(got-want) > 0.25*want {
				t.Errorf("excess %g, want %g within 25 %%", got, want)
			}
		})
	}
}
