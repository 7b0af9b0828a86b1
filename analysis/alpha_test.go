package analysis

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"gonum.org/v1/gonum/stat/distuv"

	"github.com/phaseguard/phaseguard/policies"
)

// simPolicy is a one-SLI policy (a 99 % ratio objective) for the
// simulations, with the given minSamples, window pairs and stage soak.
func simPolicy(name string, minSamples int, windows, soak string) string {
	return fmt.Sprintf(`
apiVersion: phaseguard.dev/v1alpha1
kind: Policy
metadata: {name: %s}
spec:
  alpha: 0.05
  interval: 30s
  minSamples: %d
  windows:
%s
  stages:
    - {name: canary, soak: %s}
  slis:
    - name: drain
      objective: 99
      ratio:
        bad: 'sum(increase(bad{service="$service",pod_template_hash="$hash"}[$window]))'
        total: 'sum(increase(total{service="$service",pod_template_hash="$hash"}[$window]))'
`, name, minSamples, windows, soak)
}

// harshPolicy trips at a burn of 1× in both pairs: the least room a valid
// policy leaves between a healthy canary (burn ≤ 1) and a failure, so the
// hardest case for the false-rollback bound.
var harshPolicy = simPolicy("harsh", 10, `    - {long: 5m, short: 1m, factor: 1}
    - {long: 10m, short: 2m, factor: 1}`, "10m")

// stageRun is one simulated canary stage: per-second event counts, and
// their running sums (cum[i] holds seconds before i).
type stageRun struct{ bad, total, cumBad, cumTotal []float64 }

func simulate(rng *rand.Rand, seconds int, rps, p float64) stageRun {
	r := stageRun{bad: make([]float64, seconds), total: make([]float64, seconds), cumBad: make([]float64, seconds+1), cumTotal: make([]float64, seconds+1)}
	src := rand.New(rand.NewPCG(rng.Uint64(), rng.Uint64()))
	for i := range seconds {
		n := distuv.Poisson{Lambda: rps, Src: src}.Rand()
		r.total[i] = n
		r.bad[i] = distuv.Binomial{N: n, P: p, Src: src}.Rand()
		r.cumBad[i+1], r.cumTotal[i+1] = r.cumBad[i]+r.bad[i], r.cumTotal[i]+r.total[i]
	}
	return r
}

// vector is what the batched query returns at second t: the counts of
// each range, tagged with part and window labels, and the presence of the
// two metric families the simulated SLI reads.
func (r stageRun) vector(ranges []time.Duration, t int) model.Vector {
	var v model.Vector
	for _, w := range ranges {
		from := max(t-int(w.Seconds()), 0)
		bad, total := r.cumBad[t]-r.cumBad[from], r.cumTotal[t]-r.cumTotal[from]
		for part, val := range map[policies.Part]float64{policies.PartBad: bad, policies.PartTotal: total, "presence/0": 1, "presence/1": 1} {
			v = append(v, &model.Sample{Value: model.SampleValue(val), Metric: model.Metric{
				policies.PartLabel: model.LabelValue(part), policies.WindowLabel: model.LabelValue(model.Duration(w).String())}})
		}
	}
	return v
}

// failedRuns counts the stages in which any look fails, looking every
// step seconds with the engine's tests (testsAt, judge) at a canary that
// started with the stage.
func failedRuns(p *policies.Policy, runs []stageRun, step int) int {
	start := time.Unix(1_800_000_000, 0)
	failed := 0
	for _, r := range runs {
		for t := step; t <= len(r.total); t += step {
			at := start.Add(time.Duration(t) * time.Second)
			lt := testsAt(p, start, at, 0)
			var span time.Duration
			if d := at.Sub(start); d < slices.Max(p.Windows()) {
				span = d
			}
			ranges := append(slices.Clone(p.Windows()), lt.extra...)
			res, _, _ := judge(sliInput{sli: &p.Spec.SLIs[0], policy: p, lookTests: lt, span: span, canaryQuery: "q", canaryVec: r.vector(ranges, t)})
			if res.Decision == Fail {
				failed++
				break
			}
		}
	}
	return failed
}

// ratioLower is the one-sided Clopper–Pearson lower bound at level a on a
// binomial proportion with bad events out of total, the a-quantile of
// Beta(bad, total-bad+1) (Clopper & Pearson, Biometrika 26, 1934): the
// fixed-sample test the engine used before its tests were anytime-valid.
func ratioLower(bad, total, a float64) float64 {
	if bad <= 0 || total <= 0 {
		return 0
	}
	if bad >= total {
		return math.Pow(a, 1/total)
	}
	return distuv.Beta{Alpha: bad, Beta: total - bad + 1}.Quantile(a)
}

// naiveFailedRuns counts the stages a plain per-look test fails: at every
// look, a pair trips when the long window's Clopper–Pearson lower bound at
// level a is over budget and both windows burn over the factor. It is
// what the anytime-valid tests replace.
func naiveFailedRuns(p *policies.Policy, runs []stageRun, step int, a float64) int {
	budget := p.Spec.SLIs[0].Budget()
	failed := 0
	for _, r := range runs {
	looks:
		for t := step; t <= len(r.total); t += step {
			for _, pair := range p.Spec.Windows {
				count := func(d time.Duration) (float64, float64) {
					from := max(t-int(d.Seconds()), 0)
					return r.cumBad[t] - r.cumBad[from], r.cumTotal[t] - r.cumTotal[from]
				}
				lb, ln := count(time.Duration(pair.Long))
				sb, sn := count(time.Duration(pair.Short))
				if ln > 0 && sn > 0 && ratioLower(lb, ln, a) > budget && lb/ln > pair.Factor*budget && sb/sn > pair.Factor*budget {
					failed++
					break looks
				}
			}
		}
	}
	return failed
}

// TestFalseRollbackBound simulates healthy canaries burning exactly their
// budget (the worst healthy case) over every look of a stage, looked at
// every 30s and every second, and checks that the share of stages with
// any failed look stays under alpha. The same simulation with a plain
// per-look test at level alpha must exceed alpha, the more so the more
// often it looks: that is the inflation the anytime-valid tests prevent,
// and it shows the simulation can see a violation.
func TestFalseRollbackBound(t *testing.T) {
	t.Parallel()
	p, err := policies.Load([]byte(harshPolicy), "harsh")
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	soak := int(time.Duration(p.Spec.Stages[0].Soak).Seconds())
	budget := p.Spec.SLIs[0].Budget()
	for _, tt := range []struct {
		every int
		runs  int
	}{{30, 1000}, {1, 200}} {
		var runs []stageRun
		for range tt.runs {
			runs = append(runs, simulate(rng, soak, 20, budget))
		}
		got := float64(failedRuns(p, runs, tt.every)) / float64(tt.runs)
		naive := float64(naiveFailedRuns(p, runs, tt.every, p.Spec.Alpha)) / float64(tt.runs)
		t.Logf("looking every %ds: healthy stages failed %.4f with the anytime-valid tests (bound %.2f), %.4f with a per-look test", tt.every, got, p.Spec.Alpha, naive)
		if got > p.Spec.Alpha {
			t.Errorf("every %ds: false-rollback rate %.4f exceeds alpha %.2f", tt.every, got, p.Spec.Alpha)
		}
		if naive <= p.Spec.Alpha {
			t.Errorf("every %ds: a per-look test failed only %.4f of healthy stages; the simulation should show its inflation above %.2f", tt.every, naive, p.Spec.Alpha)
		}
	}

	// And the bound is not bought by never failing: a canary burning 5×
	// its budget fails in nearly every stage, looked at every 30s.
	var bad []stageRun
	for range 50 {
		bad = append(bad, simulate(rng, soak, 20, 5*budget))
	}
	if power := float64(failedRuns(p, bad, 30)) / 50; power < 0.9 {
		t.Errorf("only %.2f of 5× burning stages failed; want at least 0.9", power)
	}
}

// defaultLikePolicy has phase-default's window pairs and canary-50's soak:
// factors of 10 and 2 leave room between the budget and a trip.
var defaultLikePolicy = simPolicy("default-like", 100, `    - {long: 5m, short: 1m, factor: 10}
    - {long: 15m, short: 3m, factor: 2}`, "15m")

// TestFalseRollbackBoundFactors checks the bound with factors above 1: the
// test behind a trip is "over budget", so a canary at exactly its budget
// still fails at most alpha of its stages, and a canary burning 3× its
// budget at 2 events/s fails in most stages.
func TestFalseRollbackBoundFactors(t *testing.T) {
	t.Parallel()
	p, err := policies.Load([]byte(defaultLikePolicy), "default-like")
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(3, 4))
	soak := int(time.Duration(p.Spec.Stages[0].Soak).Seconds())
	budget := p.Spec.SLIs[0].Budget()
	var healthy, bad []stageRun
	for range 500 {
		healthy = append(healthy, simulate(rng, soak, 2, budget))
	}
	for range 100 {
		bad = append(bad, simulate(rng, soak, 2, 3*budget))
	}
	got := float64(failedRuns(p, healthy, 30)) / float64(len(healthy))
	power := float64(failedRuns(p, bad, 30)) / float64(len(bad))
	t.Logf("at budget: %.4f of stages failed (bound %.2f); at 3× budget: %.2f", got, p.Spec.Alpha, power)
	if got > p.Spec.Alpha {
		t.Errorf("false-rollback rate %.4f exceeds alpha %.2f", got, p.Spec.Alpha)
	}
	if power < 0.8 {
		t.Errorf("only %.2f of 3× burning stages failed; want at least 0.8", power)
	}
}
