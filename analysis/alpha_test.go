package analysis

import (
	"fmt"
	"math/rand/v2"
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

// stageRun is one simulated canary stage: per-second event counts.
type stageRun struct{ bad, total []float64 }

func simulate(rng *rand.Rand, seconds int, rps, p float64) stageRun {
	r := stageRun{bad: make([]float64, seconds), total: make([]float64, seconds)}
	src := rand.New(rand.NewPCG(rng.Uint64(), rng.Uint64()))
	for i := range seconds {
		n := distuv.Poisson{Lambda: rps, Src: src}.Rand()
		r.total[i] = n
		r.bad[i] = distuv.Binomial{N: n, P: p, Src: src}.Rand()
	}
	return r
}

// vector is what the batched query returns at second t: the counts of
// each window, tagged with part and window labels, and the presence of the
// two metric families the simulated SLI reads.
func (r stageRun) vector(windows []time.Duration, t int) model.Vector {
	var v model.Vector
	for _, w := range windows {
		var bad, total float64
		for i := max(t-int(w.Seconds()), 0); i < t; i++ {
			bad += r.bad[i]
			total += r.total[i]
		}
		for part, val := range map[policies.Part]float64{policies.PartBad: bad, policies.PartTotal: total, "presence/0": 1, "presence/1": 1} {
			v = append(v, &model.Sample{Value: model.SampleValue(val), Metric: model.Metric{
				policies.PartLabel: model.LabelValue(part), policies.WindowLabel: model.LabelValue(model.Duration(w).String())}})
		}
	}
	return v
}

// failedRuns counts the stages in which any look fails, when every look
// uses the per-test level a.
func failedRuns(p *policies.Policy, runs []stageRun, a float64) int {
	windows := p.Windows()
	step := int(time.Duration(p.Spec.Interval).Seconds())
	failed := 0
	for _, r := range runs {
		for t := step; t <= len(r.total); t += step {
			res, _ := judge(sliInput{sli: &p.Spec.SLIs[0], policy: p, a: a, canaryQuery: "q", canaryVec: r.vector(windows, t)})
			if res.Decision == Fail {
				failed++
				break
			}
		}
	}
	return failed
}

// TestFalseRollbackBound simulates healthy canaries burning exactly their
// budget (the worst healthy case) over every look of a stage and checks
// that the share of stages with any failed look stays under alpha. The
// same simulation with a plain per-look test at level alpha must exceed
// alpha: that is the inflation the spending prevents, and it shows the
// simulation can see a violation.
func TestFalseRollbackBound(t *testing.T) {
	t.Parallel()
	p, err := policies.Load([]byte(harshPolicy), "harsh")
	if err != nil {
		t.Fatal(err)
	}
	const nRuns = 1000
	rng := rand.New(rand.NewPCG(1, 2))
	soak := int(time.Duration(p.Spec.Stages[0].Soak).Seconds())
	budget := p.Spec.SLIs[0].Budget()
	var runs []stageRun
	for range nRuns {
		runs = append(runs, simulate(rng, soak, 20, budget))
	}
	looks := p.PlannedLooks("canary")
	if looks != 20 {
		t.Fatalf("planned looks = %d, want 20 (10m / 30s)", looks)
	}
	spent := spend(p.Spec.Alpha, looks, len(p.Spec.Windows))
	got := float64(failedRuns(p, runs, spent)) / nRuns
	naive := float64(failedRuns(p, runs, p.Spec.Alpha)) / nRuns
	t.Logf("healthy stages failed: %.4f with alpha spent over looks (bound %.2f), %.4f with a per-look test", got, p.Spec.Alpha, naive)
	if got > p.Spec.Alpha {
		t.Errorf("false-rollback rate %.4f exceeds alpha %.2f", got, p.Spec.Alpha)
	}
	if naive <= p.Spec.Alpha {
		t.Errorf("per-look test failed only %.4f of healthy stages; the simulation should show its inflation above %.2f", naive, p.Spec.Alpha)
	}

	// And the bound is not bought by never failing: a canary burning 5×
	// its budget fails in nearly every stage.
	var bad []stageRun
	for range 50 {
		bad = append(bad, simulate(rng, soak, 20, 5*budget))
	}
	if power := float64(failedRuns(p, bad, spent)) / 50; power < 0.9 {
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
// budget at 2 events/s fails in most stages (all 100 here; a test of the
// long window's bound against the factor of 2 failed 51).
func TestFalseRollbackBoundFactors(t *testing.T) {
	t.Parallel()
	p, err := policies.Load([]byte(defaultLikePolicy), "default-like")
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(3, 4))
	soak := int(time.Duration(p.Spec.Stages[0].Soak).Seconds())
	budget := p.Spec.SLIs[0].Budget()
	spent := spend(p.Spec.Alpha, p.PlannedLooks("canary"), len(p.Spec.Windows))
	var healthy, bad []stageRun
	for range 500 {
		healthy = append(healthy, simulate(rng, soak, 2, budget))
	}
	for range 100 {
		bad = append(bad, simulate(rng, soak, 2, 3*budget))
	}
	got := float64(failedRuns(p, healthy, spent)) / float64(len(healthy))
	power := float64(failedRuns(p, bad, spent)) / float64(len(bad))
	t.Logf("at budget: %.4f of stages failed (bound %.2f); at 3× budget: %.2f", got, p.Spec.Alpha, power)
	if got > p.Spec.Alpha {
		t.Errorf("false-rollback rate %.4f exceeds alpha %.2f", got, p.Spec.Alpha)
	}
	if power < 0.8 {
		t.Errorf("only %.2f of 3× burning stages failed; want at least 0.8", power)
	}
}
