package bench

import (
	"math"
	"slices"
	"strings"
	"time"

	"gonum.org/v1/gonum/stat/distuv"

	"github.com/phaseguard/phaseguard/analysis"
	"github.com/phaseguard/phaseguard/scenarios"
)

// Band is a range [Lo, Hi) of a fault's expected canary burn, or of a
// canary's request rate.
type Band struct {
	Name   string
	Lo, Hi float64
}

// BurnBands group faults by their expected canary burn: the largest burn
// multiple of the SLIs the fault raises (scenarios.FaultTruth.CanaryBurn).
var BurnBands = []Band{
	{"< 1×", 0, 1}, {"1–3×", 1, 3}, {"3–10×", 3, 10}, {"10–100×", 10, 100}, {"≥ 100×", 100, math.Inf(1)},
}

// TrafficBands group canaries by their nominal request rate, requests/s.
var TrafficBands = []Band{
	{"< 1 req/s", 0, 1}, {"1–20 req/s", 1, 20}, {"≥ 20 req/s", 20, math.Inf(1)},
}

// ExcessBands group faults by the bad events they add, on average, to the
// canary's background after the onset (Run.Excess): the evidence any
// detector has.
var ExcessBands = []Band{
	{"< 1", 0, 1}, {"1–3", 1, 3}, {"3–10", 3, 10}, {"10–30", 10, 30}, {"≥ 30", 30, math.Inf(1)},
}

// StrongBurn is the burn from which the recall target applies.
const StrongBurn = 3

// FastDetection is the latency target of full drain misrouting.
const FastDetection = 30 * time.Second

// Tally counts faulty runs and what became of them.
type Tally struct {
	Runs int
	// Detected failed at or after the onset.
	Detected int
	// Held ended the stage held, without failing (phaseguard only).
	Held int
}

// Recall is Detected / Runs, NaN without runs.
func (t Tally) Recall() float64 { return ratio(t.Detected, t.Runs) }

// Decisions counts the decisions a detector ended runs with, and the
// wrong ones among them (scenarios.Answer.Wrong).
type Decisions struct {
	Runs, Pass, Hold, Fail int
	Wrong                  int
}

func (d *Decisions) add(decision string, wrong bool) {
	d.Runs++
	switch decision {
	case scenarios.Pass:
		d.Pass++
	case scenarios.Hold:
		d.Hold++
	case scenarios.Fail:
		d.Fail++
	}
	if wrong {
		d.Wrong++
	}
}

// Realism names a behaviour of real exporters and servers a case holds
// (see scenarios.Corpus), for the breakdown of Figures.ByRealism.
type Realism struct {
	Name string
	// Has reports whether a case's truth holds the behaviour.
	Has func(scenarios.Truth) bool
}

// Realisms are the rows of Figures.ByRealism; a case may be in several.
var Realisms = []Realism{
	{"convention: children at zero, no cutoff, no drop", func(t scenarios.Truth) bool {
		return !t.LazyChildren && len(t.Cutoffs) == 0 && len(t.Drops) == 0
	}},
	{"children created on first use", func(t scenarios.Truth) bool { return t.LazyChildren }},
	{"canary pod rescheduled (dies, another is born)", func(t scenarios.Truth) bool {
		return slices.ContainsFunc(t.Restarts, func(r scenarios.RestartTruth) bool { return r.Version == scenarios.Canary && r.NewPod != "" })
	}},
	{"counter reset (container restart)", func(t scenarios.Truth) bool {
		return slices.ContainsFunc(t.Restarts, func(r scenarios.RestartTruth) bool { return r.NewPod == "" })
	}},
	{"canary's newest minutes missing", func(t scenarios.Truth) bool {
		return slices.ContainsFunc(t.Cutoffs, func(c scenarios.CutoffTruth) bool { return c.Version == scenarios.Canary })
	}},
	{"stable's newest minutes missing", func(t scenarios.Truth) bool {
		return slices.ContainsFunc(t.Cutoffs, func(c scenarios.CutoffTruth) bool { return c.Version == scenarios.Stable })
	}},
	{"canary build dropped or renamed an export", func(t scenarios.Truth) bool { return len(t.Drops) > 0 }},
	{"no canary data in the last minute (cutoff or scrape gap)", func(t scenarios.Truth) bool { return t.Answer.NoRecentData }},
}

// Figures are one detector's decision figures on one corpus.
type Figures struct {
	Name string
	// Healthy runs, false rollbacks among them (a fail the truth calls
	// wrong), their rate and its 95 % Clopper–Pearson interval;
	// HealthyFails counts every fail of a healthy canary, also those the
	// truth allows (a canary build that hid an SLI may be held or failed);
	// HealthyHolds ended the stage held.
	Healthy, FalseRollbacks int
	FRRate, FRLow, FRHigh   float64
	HealthyFails            int
	HealthyHolds            int
	// HealthyByTraffic breaks the healthy runs the truth says to pass
	// (Answer.Right is pass: their data can tell) down by the canary's
	// nominal request rate, in TrafficBands order.
	HealthyByTraffic []Decisions
	// Untold are the healthy and faulty runs (scope canary) whose truth
	// says the canary can't be told at the stage end (Answer.Right is
	// hold: no recent canary data, a hidden SLI, a fault after the data
	// ends): a hold is right and a pass wrong. Their faults are not in
	// Faults.
	Untold Decisions
	// FalsePasses counts the runs of every set that passed where the
	// truth says a pass is wrong, Untold's and missed faults alike.
	FalsePasses int
	// ByRealism breaks the healthy and the faulty runs down by Realisms.
	ByRealism [][2]Decisions // [realism][0 healthy, 1 faulty]
	// Faults are the faulty runs whose fault is the canary's (scope
	// canary) and can be seen (Answer.Right is not hold). Early failed
	// before the onset: a rollback, not a detection.
	Faults Tally
	Early  int
	// Latency holds onset-to-fail times of the detected faults, sorted.
	Latency []time.Duration
	// Per fault kind, burn band and (for faults of at least StrongBurn)
	// traffic band; Strong is every fault of at least StrongBurn.
	ByKind    []Tally // in scenarios.FaultKinds order
	ByBand    []Tally // in BurnBands order
	ByTraffic []Tally // StrongBurn faults, in TrafficBands order
	ByExcess  []Tally // StrongBurn faults, in ExcessBands order
	Strong    Tally
	// Both are faults on canary and stable alike (not the canary's):
	// phaseguard should hold, not fail. Both.Detected counts rollbacks.
	Both Tally
	// Drain is the FullDrain set; Within counts fails within
	// FastDetection of the onset.
	Drain        Tally
	DrainWithin  int
	DrainLatency []time.Duration
	// DrainWithinSeen counts fails within FastDetection of the first look
	// that could see the fault (FloorOutcome): the onset may fall in a
	// scrape gap.
	DrainWithinSeen int
}

// Outcome is what a detector did in one run: the look of its rollback (-1
// for none) and, for phaseguard, whether the stage ended held.
type Outcome struct {
	Fail int
	Hold bool
}

// GuardOutcome is phaseguard's outcome in a run: it rolls back at the
// first fail; otherwise the stage ends as its last look (stage mode of the
// Argo plugin: pass or hold at the end of the soak).
func GuardOutcome(r *Run) Outcome {
	last := len(r.Guard) - 1
	switch {
	case last < 0:
		return Outcome{Fail: -1}
	case r.Guard[last] == analysis.Fail:
		return Outcome{Fail: last}
	}
	return Outcome{Fail: -1, Hold: r.Guard[last] == analysis.Hold}
}

// Decision is the decision a run ended with: "fail" at a rollback, else
// "hold" or "pass" (scenarios.Pass, Hold, Fail).
func (o Outcome) Decision() string {
	switch {
	case o.Fail >= 0:
		return scenarios.Fail
	case o.Hold:
		return scenarios.Hold
	}
	return scenarios.Pass
}

// FloorOutcome is a perfect detector's outcome: every fault the truth says
// to fail (scenarios.Answer) fails at the first look whose data holds a
// scrape of a canary pod taken after the onset (a scrape gap delays it),
// what the truth says can't be told holds, and nothing else fails. No
// detector can be faster; its latency is the floor that the look
// interval, the scrape interval and missing scrapes set.
func FloorOutcome(every time.Duration) func(*Run) Outcome {
	return func(r *Run) Outcome {
		tr := r.Truth
		if tr.Fault == nil || tr.Answer.Right != scenarios.Fail {
			return Outcome{Fail: -1, Hold: tr.Answer.Right == scenarios.Hold}
		}
		si := time.Duration(tr.ScrapeInterval)
		scrape := tr.Start.Add((tr.Fault.Onset.Sub(tr.Start)/si + 1) * si)
		for !scrapedCanary(tr, scrape) && scrape.Before(tr.StageEnd) {
			scrape = scrape.Add(si)
		}
		look := int((scrape.Sub(tr.StageStart) + every - 1) / every)
		return Outcome{Fail: max(look-1, 0)}
	}
}

// scrapedCanary reports whether some canary pod's metrics were scraped at
// t: not every canary pod was in a scrape gap.
func scrapedCanary(tr scenarios.Truth, t time.Time) bool {
	for _, pod := range tr.CanaryPods {
		inGap := false
		for _, g := range tr.Gaps {
			if g.Pod == pod && !t.Before(g.From) && t.Before(g.To) {
				inGap = true
			}
		}
		if !inGap {
			return true
		}
	}
	return false
}

// Score computes the figures of one detector over runs; every is the time
// between looks.
func Score(name string, runs []*Run, every time.Duration, outcome func(*Run) Outcome) Figures {
	floor := FloorOutcome(every)
	f := Figures{
		Name:      name,
		ByRealism: make([][2]Decisions, len(Realisms)),
		ByKind:    make([]Tally, len(scenarios.FaultKinds)),
		ByBand:    make([]Tally, len(BurnBands)),
		ByTraffic: make([]Tally, len(TrafficBands)),
		ByExcess:  make([]Tally, len(ExcessBands)),

		HealthyByTraffic: make([]Decisions, len(TrafficBands)),
	}
	for _, r := range runs {
		o := outcome(r)
		tr := r.Truth
		decision := o.Decision()
		wrong := tr.Answer.IsWrong(decision)
		if wrong && decision == scenarios.Pass {
			f.FalsePasses++
		}
		untold := tr.Answer.Right == scenarios.Hold && (tr.Fault == nil || tr.Fault.Scope == scenarios.ScopeCanary) && r.Set != FullDrain
		if untold {
			f.Untold.add(decision, wrong)
		}
		if r.Set != FullDrain {
			set := 0
			if tr.Fault != nil {
				set = 1
			}
			for i, re := range Realisms {
				if re.Has(tr) {
					f.ByRealism[i][set].add(decision, wrong)
				}
			}
		}
		if tr.Fault == nil {
			f.Healthy++
			if o.Fail >= 0 {
				f.HealthyFails++
				if wrong {
					f.FalseRollbacks++
				}
			}
			if o.Hold {
				f.HealthyHolds++
			}
			if tr.Answer.Right == scenarios.Pass && r.Set == Healthy {
				f.HealthyByTraffic[bandOf(TrafficBands, tr.CanaryRate)].add(decision, wrong)
			}
			continue
		}
		at := func() time.Time { return LookTime(tr.StageStart, o.Fail, every) }
		detected := o.Fail >= 0 && !at().Before(tr.Fault.Onset)
		add := func(t *Tally) {
			t.Runs++
			if detected {
				t.Detected++
			}
			if o.Hold {
				t.Held++
			}
		}
		switch {
		case r.Set == FullDrain:
			add(&f.Drain)
			if detected {
				d := at().Sub(tr.Fault.Onset)
				f.DrainLatency = append(f.DrainLatency, d)
				if d <= FastDetection {
					f.DrainWithin++
				}
				seen := LookTime(tr.StageStart, floor(r).Fail, every)
				if !at().After(seen.Add(FastDetection)) {
					f.DrainWithinSeen++
				}
			}
			continue
		case tr.Fault.Scope == scenarios.ScopeBoth:
			// Not the canary's fault: Detected counts any rollback.
			f.Both.Runs++
			if o.Fail >= 0 {
				f.Both.Detected++
			}
			if o.Hold {
				f.Both.Held++
			}
			continue
		case untold:
			// The fault can't be seen: Untold counts it.
			continue
		}
		add(&f.Faults)
		if o.Fail >= 0 && !detected {
			f.Early++
		}
		if detected {
			f.Latency = append(f.Latency, at().Sub(tr.Fault.Onset))
		}
		add(&f.ByKind[slices.Index(scenarios.FaultKinds, tr.Fault.Kind)])
		burn := MaxBurn(tr)
		add(&f.ByBand[bandOf(BurnBands, burn)])
		if burn >= StrongBurn {
			add(&f.Strong)
			add(&f.ByTraffic[bandOf(TrafficBands, tr.CanaryRate)])
			add(&f.ByExcess[bandOf(ExcessBands, r.Excess)])
		}
	}
	slices.Sort(f.Latency)
	slices.Sort(f.DrainLatency)
	f.FRRate = ratio(f.FalseRollbacks, f.Healthy)
	f.FRLow, f.FRHigh = ClopperPearson(f.FalseRollbacks, f.Healthy, 0.05)
	return f
}

// MaxBurn is a fault's expected canary burn: the largest over the SLIs it
// raises.
func MaxBurn(tr scenarios.Truth) float64 {
	if tr.Fault == nil {
		return 0
	}
	m := 0.0
	for _, b := range tr.Fault.CanaryBurn {
		m = math.Max(m, b)
	}
	return m
}

func bandOf(bands []Band, x float64) int {
	for i, b := range bands {
		if x >= b.Lo && x < b.Hi {
			return i
		}
	}
	return len(bands) - 1
}

func ratio(a, b int) float64 {
	if b == 0 {
		return math.NaN()
	}
	return float64(a) / float64(b)
}

// ClopperPearson returns the two-sided 1-alpha Clopper–Pearson interval of
// a binomial proportion with x successes in n trials (Clopper & Pearson,
// Biometrika 26, 1934): the alpha/2 quantile of Beta(x, n-x+1) and the
// 1-alpha/2 quantile of Beta(x+1, n-x).
func ClopperPearson(x, n int, alpha float64) (lo, hi float64) {
	if n == 0 {
		return math.NaN(), math.NaN()
	}
	lo, hi = 0, 1
	if x > 0 {
		lo = distuv.Beta{Alpha: float64(x), Beta: float64(n - x + 1)}.Quantile(alpha / 2)
	}
	if x < n {
		hi = distuv.Beta{Alpha: float64(x + 1), Beta: float64(n - x)}.Quantile(1 - alpha/2)
	}
	return lo, hi
}

// Percentile returns the nearest-rank p-quantile (0 < p <= 1) of sorted
// durations, or -1 when there are none.
func Percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return -1
	}
	i := int(math.Ceil(p*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// Curve is one baseline's figures at every threshold of the sweep, and the
// threshold matched to phaseguard's false-rollback rate.
type Curve struct {
	Baseline Baseline
	Points   []Figures // per threshold
	// Match is the lowest threshold (the most sensitive) whose
	// false-rollback rate is at most phaseguard's: the static threshold
	// tuned to the same false-rollback rate. When none is, it is the one
	// with the lowest false-rollback rate, and Matched is false.
	Match   int
	Matched bool
}

// Sweeps scores every baseline at every threshold and matches each to the
// false-rollback rate fr.
func Sweeps(runs []*Run, every time.Duration, baselines []Baseline, sweep []float64, fr float64) []Curve {
	var out []Curve
	for b, bl := range baselines {
		c := Curve{Baseline: bl, Match: -1}
		for t, burn := range sweep {
			c.Points = append(c.Points, Score(bl.Name()+" ≤ "+fmtBurn(burn), runs, every, func(r *Run) Outcome {
				return Outcome{Fail: r.Outcomes.Baseline[b][t]}
			}))
		}
		for t, p := range c.Points {
			if p.FRRate <= fr {
				c.Match, c.Matched = t, true
				break
			}
		}
		if !c.Matched {
			for t, p := range c.Points {
				if c.Match < 0 || p.FRRate < c.Points[c.Match].FRRate {
					c.Match = t
				}
			}
		}
		out = append(out, c)
	}
	return out
}

// Paired compares the detection latency of two detectors on the faults
// (scope canary) both detect: the median of each, and how many faults.
func Paired(runs []*Run, every time.Duration, a, b func(*Run) Outcome) (ma, mb time.Duration, n int) {
	var la, lb []time.Duration
	for _, r := range runs {
		tr := r.Truth
		if r.Set != Faulty || tr.Fault.Scope != scenarios.ScopeCanary || tr.Answer.Right == scenarios.Hold {
			continue
		}
		oa, ob := a(r), b(r)
		if oa.Fail < 0 || ob.Fail < 0 {
			continue
		}
		ta, tb := LookTime(tr.StageStart, oa.Fail, every), LookTime(tr.StageStart, ob.Fail, every)
		if ta.Before(tr.Fault.Onset) || tb.Before(tr.Fault.Onset) {
			continue
		}
		la = append(la, ta.Sub(tr.Fault.Onset))
		lb = append(lb, tb.Sub(tr.Fault.Onset))
	}
	slices.Sort(la)
	slices.Sort(lb)
	return Percentile(la, 0.5), Percentile(lb, 0.5), len(la)
}

// HoldReason is one kind of reason healthy canaries the truth says to
// pass were held for at the stage end, with their count per TrafficBands.
type HoldReason struct {
	Reason string
	Runs   []int
}

// HoldReasons groups the healthy runs the truth says to pass that ended
// held by the kind of their last reason (reasonKind), most frequent first.
func HoldReasons(runs []*Run) []HoldReason {
	var out []HoldReason
	for _, r := range runs {
		if r.Truth.Fault != nil || r.Truth.Answer.Right != scenarios.Pass || len(r.Guard) == 0 || r.Guard[len(r.Guard)-1] != analysis.Hold {
			continue
		}
		kind := reasonKind(r.Reason)
		i := slices.IndexFunc(out, func(h HoldReason) bool { return h.Reason == kind })
		if i < 0 {
			out = append(out, HoldReason{Reason: kind, Runs: make([]int, len(TrafficBands))})
			i = len(out) - 1
		}
		out[i].Runs[bandOf(TrafficBands, r.Truth.CanaryRate)]++
	}
	sum := func(h HoldReason) int {
		n := 0
		for _, x := range h.Runs {
			n += x
		}
		return n
	}
	slices.SortStableFunc(out, func(a, b HoldReason) int { return sum(b) - sum(a) })
	return out
}

// reasonKind is a verdict reason without its figures: the SLI it names
// and the reason's words up to the first figure or clause ("flaps: thin
// evidence", "duplicate-processing: the canary has no bad series in").
func reasonKind(reason string) string {
	sli, rest, ok := strings.Cut(reason, ": ")
	if !ok {
		return reason
	}
	if strings.Contains(rest, "watching") {
		return sli + ": over budget at alpha, not yet at a test's level (watching)"
	}
	if i := strings.IndexFunc(rest, func(c rune) bool { return c >= '0' && c <= '9' || c == ':' || c == '(' || c == ';' }); i >= 0 {
		rest = rest[:i]
	}
	return sli + ": " + strings.TrimSpace(rest)
}
