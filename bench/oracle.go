package bench

import (
	"context"
	"fmt"
	"math"
	"slices"
	"sort"
	"time"

	"github.com/prometheus/common/model"

	"github.com/phaseguard/phaseguard/analysis"
	"github.com/phaseguard/phaseguard/policies"
	"github.com/phaseguard/phaseguard/scenarios"
)

// OracleAlpha is the oracle's false-alarm level: it alarms when its
// likelihood ratio reaches 1/OracleAlpha.
const OracleAlpha = 0.01

// OracleMaxShare caps the oracle's bad share under its alternative below
// 1: a fault whose burn × budget is 1 or more (every event bad) is tested
// as 99 % bad, so that one good event (or the extrapolation of increase())
// does not send the likelihood ratio to −∞.
const OracleMaxShare = 0.99

// OracleRun is what the oracle did in one run with a fault: a sequential
// probability ratio test (Wald, Annals of Mathematical Statistics 16, 1945)
// that knows the fault's onset and its true canary burn b in each SLI it
// raises, of H1 "burn = b" against H0 "burn = 1 (the budget)", on the
// canary's events from the onset to each look. It alarms at the first look
// where the log likelihood ratio of some raised SLI reaches
// log(1/OracleAlpha); under H0 the likelihood ratio is a martingale, so by
// Ville's inequality it reaches that bound with probability at most
// OracleAlpha however many looks it takes (per SLI). It is the limit a
// detector with no knowledge of the fault can approach, not reach.
type OracleRun struct {
	// Look is the first alarming look (from 0), or -1: no alarm within
	// the stage.
	Look int
	// SLI is the policy SLI whose ratio alarmed; empty without an alarm.
	SLI string
	// LLR holds, for each look from 0 to Look (or to the last look), the
	// largest log likelihood ratio over the raised SLIs: 0 at a look at or
	// before the onset and where no raised SLI has data.
	LLR []float64
	// Raised are the policy SLIs tested, with the fault's burn of each:
	// those the fault raises above 1× (scenarios.FaultTruth.CanaryBurn).
	Raised []RaisedSLI
	// Queries is the number of PromQL queries the oracle sent.
	Queries int
}

// RaisedSLI is one SLI the oracle tests: its name in the policy, the
// fault's expected canary burn b (background included) and the budget p0
// (bad share) or λ0 (events per hour) the burn is a multiple of
// (scenarios.DefaultBudgets).
type RaisedSLI struct {
	Name         string
	Burn, Budget float64
	Rate         bool
}

// RatioLLR is Wald's log likelihood ratio of k bad events in n, binomial,
// under a bad share of burn × p0 (capped at OracleMaxShare) against p0:
//
//	k·log(p1/p0) + (n−k)·log((1−p1)/(1−p0)),  p1 = min(burn·p0, OracleMaxShare)
//
// k is clamped to [0, n] (increase() extrapolates, so counts need not be
// whole); 0 without events.
func RatioLLR(k, n, burn, p0 float64) float64 {
	if n <= 0 {
		return 0
	}
	k = math.Min(math.Max(k, 0), n)
	p1 := math.Min(burn*p0, OracleMaxShare)
	return k*math.Log(p1/p0) + (n-k)*math.Log((1-p1)/(1-p0))
}

// RateLLR is Wald's log likelihood ratio of k events in hours, Poisson,
// under burn × λ0 events per hour against λ0:
//
//	k·log(burn) − (burn−1)·λ0·hours
//
// k is clamped to 0 or more.
func RateLLR(k, hours, burn, lambda0 float64) float64 {
	return math.Max(k, 0)*math.Log(burn) - (burn-1)*lambda0*hours
}

// raisedSLIs returns the SLIs of p a fault raises above 1×, in the policy's
// order, and the policy's SLI of each.
func raisedSLIs(p *policies.Policy, f *scenarios.FaultTruth) ([]RaisedSLI, []*policies.SLI) {
	budgets := scenarios.DefaultBudgets()
	var out []RaisedSLI
	var slis []*policies.SLI
	for i := range p.Spec.SLIs {
		s := &p.Spec.SLIs[i]
		for name, burn := range f.CanaryBurn {
			if policySLI[name] == s.Name && burn > 1 {
				out = append(out, RaisedSLI{Name: s.Name, Burn: burn, Budget: budgets[name], Rate: s.Kind() == policies.KindRate})
				slis = append(slis, s)
			}
		}
	}
	return out, slis
}

// observeOracle runs the oracle on a run with a fault at every look of the
// stage, up to its alarm: at each look after the onset, for each raised
// SLI, the SLI's own batched query with every window cut to the time since
// the onset (policies.SLI.QueryWithin), of which it reads the longest
// window's series (a span longer than the longest window counts only that
// window). Ratio SLIs give bad (or total − good) and total; rate SLIs
// events, over the span in hours. Nil without a fault.
func observeOracle(ctx context.Context, j Judge, tr scenarios.Truth, q analysis.Querier) (*OracleRun, error) {
	if tr.Fault == nil {
		return nil, nil
	}
	n, every := j.Looks()
	o := &OracleRun{Look: -1}
	var slis []*policies.SLI
	o.Raised, slis = raisedSLIs(j.Policy, tr.Fault)
	target := policies.Target{Service: tr.Service, Namespace: tr.Namespace, Hash: tr.CanaryHash}
	longest := slices.Max(j.Policy.Windows())
	bound := math.Log(1 / OracleAlpha)
	for i := range n {
		at := LookTime(tr.StageStart, i, every)
		span := at.Sub(tr.Fault.Onset)
		best, name := math.Inf(-1), ""
		for k, r := range o.Raised {
			if span <= 0 {
				break
			}
			query, err := slis[k].QueryWithin(target, span)
			if err != nil {
				return nil, fmt.Errorf("oracle look %d: %w", i+1, err)
			}
			vec, err := q.Query(ctx, query, at)
			o.Queries++
			if err != nil {
				return nil, fmt.Errorf("oracle look %d sli %s: %w", i+1, r.Name, err)
			}
			llr, ok := oracleLLR(r, partCounts(vec, longest), min(span, longest))
			if ok && llr > best {
				best, name = llr, r.Name
			}
		}
		if name == "" {
			best = 0 // no data yet
		}
		o.LLR = append(o.LLR, best)
		if best >= bound {
			o.Look, o.SLI = i, name
			break
		}
	}
	return o, nil
}

// partCounts sums the series of a batched query (policies.SLI.Query) in
// window w by part (policies.PartLabel).
func partCounts(vec model.Vector, w time.Duration) map[policies.Part]float64 {
	label := model.LabelValue(model.Duration(w).String())
	counts := map[policies.Part]float64{}
	for _, smp := range vec {
		if smp.Metric[policies.WindowLabel] == label {
			counts[policies.Part(smp.Metric[policies.PartLabel])] += float64(smp.Value)
		}
	}
	return counts
}

// oracleLLR is the log likelihood ratio of one raised SLI from the counts
// of its parts over span; false when a part it needs has no series.
func oracleLLR(r RaisedSLI, counts map[policies.Part]float64, span time.Duration) (float64, bool) {
	if r.Rate {
		k, ok := counts[policies.PartEvents]
		return RateLLR(k, span.Hours(), r.Burn, r.Budget), ok
	}
	total, ok := counts[policies.PartTotal]
	if !ok {
		return 0, false
	}
	bad, ok := counts[policies.PartBad]
	if !ok {
		good, ok := counts[policies.PartGood]
		if !ok {
			return 0, false
		}
		bad = total - good
	}
	return RatioLLR(bad, total, r.Burn, r.Budget), true
}

// OracleOutcome is the oracle's outcome in a run: a rollback at its alarm.
// A run without an oracle outcome (no fault, or observed before the
// oracle existed) never rolls back.
func OracleOutcome(r *Run) Outcome {
	if r.Oracle == nil {
		return Outcome{Fail: -1}
	}
	return Outcome{Fail: r.Oracle.Look}
}

// Versus measures a detector against the oracle on the faults of the
// canary that can be seen (those Figures.Faults counts).
type Versus struct {
	// Faults counts those faults; Unobserved those among them without an
	// oracle outcome (runs observed before the oracle existed).
	Faults, Unobserved int
	// Detectable counts the faults the oracle detects within the stage
	// ("oracle-detectable"); Caught those the detector also detects, at
	// or after the onset.
	Detectable, Caught int
	// Detector and Oracle hold the detection latencies, sorted, on the
	// Caught faults (every one is detected by both); Ratios the
	// per-fault ratios detector / oracle, sorted.
	Detector, Oracle []time.Duration
	Ratios           []float64
}

// Recall is Caught / Detectable, NaN without detectable faults.
func (v Versus) Recall() float64 { return ratio(v.Caught, v.Detectable) }

// MedianRatio is the detector's median latency over the oracle's on the
// faults both detect: the ratio of the medians; NaN without such faults.
func (v Versus) MedianRatio() float64 {
	o := Percentile(v.Oracle, 0.5)
	if o <= 0 {
		return math.NaN()
	}
	return float64(Percentile(v.Detector, 0.5)) / float64(o)
}

// RatioMedian is the median (nearest rank) of the per-fault latency ratios
// detector / oracle; NaN without faults both detect.
func (v Versus) RatioMedian() float64 {
	if len(v.Ratios) == 0 {
		return math.NaN()
	}
	return v.Ratios[int(math.Ceil(0.5*float64(len(v.Ratios))))-1]
}

// CompareOracle measures detector against the oracle on runs, every the
// time between looks. oracle gives each run's oracle outcome, nil when it
// has none: Run.Oracle for runs observed with the oracle, or another run's
// of the same case (OracleByCase).
func CompareOracle(runs []*Run, every time.Duration, detector func(*Run) Outcome, oracle func(*Run) *OracleRun) Versus {
	var v Versus
	for _, r := range runs {
		tr := r.Truth
		if r.Set != Faulty || tr.Fault == nil || tr.Fault.Scope != scenarios.ScopeCanary || tr.Answer.Right == scenarios.Hold {
			continue
		}
		v.Faults++
		o := oracle(r)
		if o == nil {
			v.Unobserved++
			continue
		}
		if o.Look < 0 {
			continue
		}
		v.Detectable++
		ta := LookTime(tr.StageStart, o.Look, every)
		d := detector(r)
		if d.Fail < 0 {
			continue
		}
		td := LookTime(tr.StageStart, d.Fail, every)
		if td.Before(tr.Fault.Onset) {
			continue
		}
		v.Caught++
		lo, ld := ta.Sub(tr.Fault.Onset), td.Sub(tr.Fault.Onset)
		v.Oracle = append(v.Oracle, lo)
		v.Detector = append(v.Detector, ld)
		v.Ratios = append(v.Ratios, float64(ld)/float64(lo))
	}
	slices.Sort(v.Oracle)
	slices.Sort(v.Detector)
	sort.Float64s(v.Ratios)
	return v
}

// RunOracle is Run.Oracle, for CompareOracle.
func RunOracle(r *Run) *OracleRun { return r.Oracle }

// OracleByCase returns, for a run of another observation of the same
// corpus (an earlier engine's, which had no oracle), the oracle outcome of
// the run of runs that is the same case: same name, set, seed, fault onset
// and canary rate. The oracle does not depend on the engine judged.
func OracleByCase(runs []*Run) func(*Run) *OracleRun {
	type key struct {
		name  string
		set   Set
		seed  int64
		onset int64 // Unix ns: a time.Time read from a gob file compares unequal by ==
		rate  float64
	}
	keyOf := func(r *Run) key {
		k := key{name: r.Name, set: r.Set, seed: r.Truth.Seed, rate: r.Truth.CanaryRate}
		if r.Truth.Fault != nil {
			k.onset = r.Truth.Fault.Onset.UnixNano()
		}
		return k
	}
	m := map[key]*OracleRun{}
	for _, r := range runs {
		if r.Oracle != nil {
			m[keyOf(r)] = r.Oracle
		}
	}
	return func(r *Run) *OracleRun { return m[keyOf(r)] }
}
