package bench

import (
	"cmp"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"time"

	"gonum.org/v1/gonum/stat/distuv"

	"github.com/phaseguard/phaseguard/scenarios"
)

// Report is everything BENCHMARKS.md shows.
type Report struct {
	Command string
	Date    time.Time
	Machine string // nproc and CPU model
	Go      string // Go version, OS and architecture
	// Revision is the commit the benchmark ran on.
	Revision string
	SVG      string // path of the trade-off plot, relative to the Markdown file

	Seed                       int64
	Healthy, Faulty, FullDrain int
	Workers                    int
	Geometry                   Geometry
	Judge                      Judge
	Elapsed                    time.Duration // observing the corpus

	Runs   []*Run
	Guard  Figures
	Curves []Curve
	Sweep  []float64
	Cost   *Cost
	// CostErr says why there are no cost figures.
	CostErr string
	// Before holds phaseguard at an earlier revision of the engine, on
	// this corpus or on another size of it, for the "Before and after"
	// section.
	Before []Before
}

// Before is an earlier run.
type Before struct {
	// Command and Revision are those of the earlier run; Corpus names its
	// seed and sizes.
	Command, Revision, Corpus string
	Guard                     Figures
	// Runs are the earlier run's observations, for the figures against
	// the oracle: the oracle outcome of the same case in Report.Runs is
	// used (OracleByCase). Nil leaves those figures out.
	Runs []*Run
}

// count returns the number of runs of set s.
func (r *Report) count(s Set) int {
	n := 0
	for _, run := range r.Runs {
		if run.Set == s {
			n++
		}
	}
	return n
}

// Target is one of the targets and whether it is met.
type Target struct {
	Name, Figure string
	Met          bool
}

// Targets evaluates the targets against the report's figures.
func (r *Report) Targets() []Target {
	g := r.Guard
	var out []Target
	out = append(out, Target{
		Name: "0 false rollbacks on the healthy corpus, 95 % upper bound ≤ 1 %",
		Figure: fmt.Sprintf("%d of %d, upper bound %s (healthy canaries failed in all: %d; the truth allows a fail only where the canary build hid an SLI)",
			g.FalseRollbacks, g.Healthy, pct(g.FRHigh), g.HealthyFails),
		Met: g.FalseRollbacks == 0 && g.FRHigh <= 0.01,
	})
	out = append(out, Target{
		Name: "never a pass where the truth says the canary can't be told (no recent canary data, a hidden SLI)",
		Figure: fmt.Sprintf("%d passes of %d such canaries (held %d, failed %d)",
			g.Untold.Pass, g.Untold.Runs, g.Untold.Hold, g.Untold.Fail),
		Met: g.Untold.Runs > 0 && g.Untold.Pass == 0,
	})
	out = append(out, r.oracleTargets()...)
	out = append(out, r.heldTargets()...)
	out = append(out, r.dominanceTarget())
	var ample Tally // faults adding at least 10 expected excess bad events
	for i, b := range ExcessBands {
		if b.Lo >= 10 {
			ample.Runs += g.ByExcess[i].Runs
			ample.Detected += g.ByExcess[i].Detected
		}
	}
	out = append(out, Target{
		Name: fmt.Sprintf("recall ≥ 99 %% on faults of %g× burn or more", float64(StrongBurn)),
		Figure: fmt.Sprintf("%s (%d of %d failed; failed or held at the stage end: %s); of those adding at least 10 expected bad events after the onset, %s (%d of %d): see the breakdown by excess events",
			pct(g.Strong.Recall()), g.Strong.Detected, g.Strong.Runs, pct(ratio(g.Strong.Detected+g.Strong.Held, g.Strong.Runs)),
			pct(ample.Recall()), ample.Detected, ample.Runs),
		Met: g.Strong.Runs > 0 && g.Strong.Recall() >= 0.99,
	})
	latency := Target{Name: "detection latency ≤ ½ of the best static threshold tuned to the same false-rollback rate",
		Figure: "no baseline reaches a false-rollback rate compatible with phaseguard's"}
	if i, ok := r.toughest(); ok {
		c := r.Curves[i]
		pa, pb, n := r.paired(i)
		latency.Figure = fmt.Sprintf("on the %d faults both detect, median %s vs %s for %s at ≤ %s (false rollbacks %s), the closest of the comparable baselines",
			n, dur(pa), dur(pb), c.Baseline.Name(), fmtBurn(r.Sweep[c.Match]), pct(c.Points[c.Match].FRRate))
		latency.Met = n > 0 && 2*pa <= pb
	}
	out = append(out, latency)
	out = append(out, Target{
		Name: fmt.Sprintf("full drain misrouting at ≥ 20 req/s failed within %s of onset", dur(FastDetection)),
		Figure: fmt.Sprintf("%d of %d within %s (failed %d; median %s, max %s); within %s of the first look that could see the fault (a scrape gap can hide the onset): %d of %d",
			g.DrainWithin, g.Drain.Runs, dur(FastDetection), g.Drain.Detected, dur(Percentile(g.DrainLatency, 0.5)), dur(Percentile(g.DrainLatency, 1)),
			dur(FastDetection), g.DrainWithinSeen, g.Drain.Runs),
		Met: g.Drain.Runs > 0 && g.DrainWithin == g.Drain.Runs,
	})
	return out
}

func (r *Report) every() time.Duration { _, e := r.Judge.Looks(); return e }

// oracleTargets are the targets against the oracle: recall on the faults
// it detects, and latency on the faults both detect.
func (r *Report) oracleTargets() []Target {
	v := CompareOracle(r.Runs, r.every(), GuardOutcome, RunOracle)
	recall := Target{Name: "recall ≥ 97 % of oracle-detectable faults (faults of the canary the oracle detects within the stage)"}
	latency := Target{Name: "median detection latency ≤ 1.5× the oracle's on the same faults"}
	if v.Unobserved > 0 {
		recall.Figure = fmt.Sprintf("not measured: %d of %d faults were observed without the oracle (observations from before it)", v.Unobserved, v.Faults)
		latency.Figure = recall.Figure
		return []Target{recall, latency}
	}
	recall.Figure = fmt.Sprintf("%s (%d of %d; the oracle detects %d of the %d faults of the canary that can be seen, phaseguard %d)",
		pct(v.Recall()), v.Caught, v.Detectable, v.Detectable, v.Faults, r.Guard.Faults.Detected)
	recall.Met = v.Detectable > 0 && v.Recall() >= 0.97
	latency.Figure = fmt.Sprintf("%s: median %s vs the oracle's %s on the %d faults both detect (ratio of medians); median of the per-fault ratios %s",
		times(v.MedianRatio()), dur(Percentile(v.Detector, 0.5)), dur(Percentile(v.Oracle, 0.5)), v.Caught, times(v.RatioMedian()))
	latency.Met = v.Caught > 0 && v.MedianRatio() <= 1.5
	return []Target{recall, latency}
}

// heldBands sums f.HealthyByTraffic over the traffic bands within [lo,
// hi) and lists each band's holds.
func heldBands(f Figures, lo, hi float64) (Decisions, string) {
	var sum Decisions
	var parts []string
	for i, b := range TrafficBands {
		if b.Lo < lo || b.Hi > hi {
			continue
		}
		d := f.HealthyByTraffic[i]
		sum.Runs += d.Runs
		sum.Pass += d.Pass
		sum.Hold += d.Hold
		sum.Fail += d.Fail
		sum.Wrong += d.Wrong
		parts = append(parts, fmt.Sprintf("%s: %d of %d", b.Name, d.Hold, d.Runs))
	}
	return sum, strings.Join(parts, ", ")
}

// heldTargets are the targets on healthy canaries held at the stage end,
// by canary traffic.
func (r *Report) heldTargets() []Target {
	var out []Target
	for _, t := range []struct {
		name   string
		lo, hi float64
		most   float64
	}{
		{"healthy canaries held at the stage end ≤ 1 % at ≥ 1 req/s", 1, math.Inf(1), 0.01},
		{"healthy canaries held at the stage end ≤ 25 % below 1 req/s", 0, 1, 0.25},
	} {
		d, bands := heldBands(r.Guard, t.lo, t.hi)
		held := ratio(d.Hold, d.Runs)
		out = append(out, Target{Name: t.name,
			Figure: fmt.Sprintf("%s (%d of %d healthy canaries the truth says to pass; %s)", pct(held), d.Hold, d.Runs, bands),
			Met:    d.Runs > 0 && held <= t.most})
	}
	return out
}

// Dominance compares phaseguard with one baseline at its matched
// threshold: recall on the faults of the canary that can be seen, and
// median detection latency on the faults both detect.
type Dominance struct {
	GuardRecall, BaselineRecall   float64
	GuardLatency, BaselineLatency time.Duration
	// Both counts the faults both detect.
	Both int
	// Dominated: phaseguard has at least the baseline's recall and at
	// most its median latency, one of them strictly (Pareto dominance);
	// without a fault both detect, more recall.
	Dominated bool
}

// Dominance compares phaseguard with curve i at its matched threshold.
func (r *Report) Dominance(i int) Dominance {
	c := r.Curves[i]
	pa, pb, n := r.paired(i)
	d := Dominance{GuardRecall: r.Guard.Faults.Recall(), BaselineRecall: c.Points[c.Match].Faults.Recall(), GuardLatency: pa, BaselineLatency: pb, Both: n}
	switch {
	case math.IsNaN(d.GuardRecall) || math.IsNaN(d.BaselineRecall):
	case n == 0:
		d.Dominated = d.GuardRecall > d.BaselineRecall
	default:
		d.Dominated = d.GuardRecall >= d.BaselineRecall && pa <= pb && (d.GuardRecall > d.BaselineRecall || pa < pb)
	}
	return d
}

// dominanceTarget is the target that every static threshold, at the
// false-rollback rate it matches, is dominated on recall and latency.
func (r *Report) dominanceTarget() Target {
	t := Target{Name: "every static threshold dominated on recall and latency at its matched false-rollback rate (at least its recall and at most its median latency on the faults both detect, one strictly)"}
	var parts []string
	all := len(r.Curves) > 0
	for i, c := range r.Curves {
		d := r.Dominance(i)
		verdict := "dominated"
		if !d.Dominated {
			verdict, all = "**not dominated**", false
		}
		mark := ""
		if !c.Matched {
			mark = " †"
		}
		parts = append(parts, fmt.Sprintf("%s ≤ %s%s (false rollbacks %s): recall %s vs %s, latency %s vs %s (%d faults), %s",
			c.Baseline.Name(), fmtBurn(r.Sweep[c.Match]), mark, pct(c.Points[c.Match].FRRate), pct(d.GuardRecall), pct(d.BaselineRecall),
			dur(d.GuardLatency), dur(d.BaselineLatency), d.Both, verdict))
	}
	t.Figure = strings.Join(parts, "; ")
	if t.Figure == "" {
		t.Figure = "no baseline"
	}
	t.Met = all
	return t
}

// paired compares phaseguard's detection latency with curve i's, at its
// matched threshold, on the faults both detect.
func (r *Report) paired(i int) (guard, baseline time.Duration, n int) {
	c := r.Curves[i]
	return Paired(r.Runs, r.every(), GuardOutcome, func(run *Run) Outcome {
		return Outcome{Fail: run.Outcomes.Baseline[i][c.Match]}
	})
}

// toughest is the baseline whose latency at its matched threshold is
// closest to phaseguard's on the faults both detect, among those tuned to
// the same false-rollback rate: matched, or, for one that cannot reach
// phaseguard's rate, whose lowest rate is statistically indistinguishable
// from it (the 95 % intervals overlap).
func (r *Report) toughest() (int, bool) {
	best, bestRatio := -1, 0.0
	for i, c := range r.Curves {
		if !r.comparable(c) {
			continue
		}
		pa, pb, n := r.paired(i)
		if n == 0 || pb <= 0 {
			continue
		}
		if ratio := float64(pa) / float64(pb); best < 0 || ratio > bestRatio {
			best, bestRatio = i, ratio
		}
	}
	return best, best >= 0
}

// comparable reports whether c's matched threshold has a false-rollback
// rate compatible with phaseguard's.
func (r *Report) comparable(c Curve) bool {
	return c.Matched || c.Points[c.Match].FRLow <= r.Guard.FRHigh
}

// WriteMarkdown writes the report as BENCHMARKS.md.
func (r *Report) WriteMarkdown(w io.Writer) error {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	n, every := r.Judge.Looks()
	g := r.Guard

	p("# Benchmarks\n\n")
	p("phaseguard's decisions against Argo Rollouts' and Flagger's static thresholds on the same canaries, and what one evaluation costs. ")
	p("Generated by the command below; do not edit by hand.\n\n")
	p("```\n%s\n```\n\n", r.Command)
	p("| | |\n|---|---|\n")
	p("| date | %s |\n| machine | %s |\n| Go | %s |\n| revision | %s |\n", r.Date.UTC().Format("2006-01-02 15:04 MST"), r.Machine, r.Go, r.Revision)
	p("| corpus | seed %d: %d healthy, %d faulty (scenarios.Corpus), %d full drain misrouting at 20–500 req/s |\n", r.Seed, r.Healthy, r.Faulty, r.FullDrain)
	p("| judged | policy `%s`, stage `%s`: %d looks every %s over a %s stage; faults start in its first %s |\n",
		r.Judge.Policy.Metadata.Name, r.Judge.Stage, n, dur(every), dur(r.Geometry.Stage), dur(r.Geometry.Stage-r.Geometry.Exposure))
	p("| wall time | %s to observe %d cases with %d workers |\n\n", r.Elapsed.Round(time.Second), len(r.Runs), r.Workers)

	p("## Targets\n\n| target | figure | met |\n|---|---|---|\n")
	for _, t := range r.Targets() {
		met := "**no**"
		if t.Met {
			met = "yes"
		}
		p("| %s | %s | %s |\n", t.Name, t.Figure, met)
	}

	r.writeBefore(p)

	p("\n## Decision quality\n\n")
	p("Each baseline at the threshold that matches phaseguard's false-rollback rate: its lowest threshold whose false-rollback rate is at most phaseguard's († none is: the one with its lowest false-rollback rate; the latency target counts such a baseline only when that rate's 95 %% interval overlaps phaseguard's). ")
	p("Recall counts faults of the canary (scope canary) failed at or after the onset; latency is from the onset to the first failed look. ")
	p("Each detector's median is over the faults it detects, so a detector that misses the slow cases looks faster: the latency target compares medians on the faults both detect. ")
	p("The floor row is a perfect detector that fails every fault at the first look whose data holds a scrape taken after the onset: no detector looking every %s can be faster. ", dur(every))
	p("The oracle row is a sequential probability ratio test that knows the fault's onset and true canary burn (see Method): the limit a detector held to a %g false-alarm level approaches; it never looks at a healthy canary.\n\n", OracleAlpha)
	p("| detector | threshold | false rollbacks (healthy) | rate [95 %% CI] | recall ≥ %g× | recall, all | latency median / p90 / max | median on faults both detect: phaseguard / it (faults) | rolled back before onset | held at stage end (healthy / faulty) |\n", float64(StrongBurn))
	p("|---|---|---|---|---|---|---|---|---|---|\n")
	row := func(name, thr string, f Figures, paired, holds string) {
		p("| %s | %s | %d / %d | %s [%s, %s] | %s (%d/%d) | %s (%d/%d) | %s / %s / %s | %s | %d | %s |\n",
			name, thr, f.FalseRollbacks, f.Healthy, pct(f.FRRate), pct(f.FRLow), pct(f.FRHigh),
			pct(f.Strong.Recall()), f.Strong.Detected, f.Strong.Runs, pct(f.Faults.Recall()), f.Faults.Detected, f.Faults.Runs,
			dur(Percentile(f.Latency, 0.5)), dur(Percentile(f.Latency, 0.9)), dur(Percentile(f.Latency, 1)), paired, f.Early, holds)
	}
	row("**phaseguard**", "policy", g, "–", fmt.Sprintf("%d / %d", g.HealthyHolds, g.Faults.Held))
	floor := Score("floor", r.Runs, every, FloorOutcome(every))
	pf, pg, nf := Paired(r.Runs, every, FloorOutcome(every), GuardOutcome)
	row("*floor: first look with a post-onset scrape*", "–", floor, fmt.Sprintf("%s / %s (%d)", dur(pg), dur(pf), nf), "–")
	oracle := Score("oracle", r.Runs, every, OracleOutcome)
	po, pgo, no := Paired(r.Runs, every, OracleOutcome, GuardOutcome)
	row(fmt.Sprintf("*oracle: SPRT knowing the fault's burn, α %g*", OracleAlpha), "–", oracle, fmt.Sprintf("%s / %s (%d)", dur(pgo), dur(po), no), "–")
	for i, c := range r.Curves {
		thr := "≤ " + fmtBurn(r.Sweep[c.Match])
		if !c.Matched {
			thr += " †"
		}
		pa, pb, n := r.paired(i)
		row(c.Baseline.Name(), thr, c.Points[c.Match], fmt.Sprintf("%s / %s (%d)", dur(pa), dur(pb), n), "–")
	}
	if r.SVG != "" {
		p("\n![False-rollback rate against median detection latency as each baseline's threshold sweeps; phaseguard's point](%s)\n", r.SVG)
	}

	p("\n### phaseguard by fault kind and expected burn\n\n")
	p("Expected burn is the fault's largest expected canary burn multiple over the SLIs it raises (scenarios.FaultTruth.CanaryBurn). \"held\" ended the stage in hold: the rollout pauses for a human instead of going on.\n\n")
	tally := func(label string, t Tally) {
		p("| %s | %d | %d | %s | %d |\n", label, t.Runs, t.Detected, pct(t.Recall()), t.Held)
	}
	p("| fault kind | faults | failed | recall | held |\n|---|---|---|---|---|\n")
	for i, k := range scenarios.FaultKinds {
		tally(fmt.Sprintf("%s %s", k, k.Name()), g.ByKind[i])
	}
	p("\n| expected burn | faults | failed | recall | held |\n|---|---|---|---|---|\n")
	for i, band := range BurnBands {
		tally(band.Name, g.ByBand[i])
	}
	p("\n| faults of ≥ %g× by canary traffic | faults | failed | recall | held |\n|---|---|---|---|---|\n", float64(StrongBurn))
	for i, band := range TrafficBands {
		tally(band.Name, g.ByTraffic[i])
	}
	p("\n| healthy canaries by canary traffic (truth: pass) | canaries | passed | held | failed |\n|---|---|---|---|---|\n")
	for i, band := range TrafficBands {
		d := g.HealthyByTraffic[i]
		p("| %s | %d | %d | %d (%s) | %d |\n", band.Name, d.Runs, d.Pass, d.Hold, pct(ratio(d.Hold, d.Runs)), d.Fail)
	}
	if reasons := HoldReasons(r.Runs); len(reasons) > 0 {
		p("\n| why those healthy canaries were held (the SLI of the reason and its words, figures left out) |")
		for _, band := range TrafficBands {
			p(" %s |", band.Name)
		}
		p("\n|---|%s\n", strings.Repeat("---|", len(TrafficBands)))
		for i, h := range reasons {
			if i == 10 {
				p("| (%d other kinds) |%s\n", len(reasons)-i, strings.Repeat(" |", len(TrafficBands)))
				break
			}
			p("| %s |", h.Reason)
			for _, n := range h.Runs {
				p(" %d |", n)
			}
			p("\n")
		}
	}
	r.writeExcess(p, g)
	r.writeOracle(p)
	p("\nFaults on canary **and** stable alike (scope both, not the canary's fault): %d; phaseguard rolled back %d and held %d. ", g.Both.Runs, g.Both.Detected, g.Both.Held)
	for _, c := range r.Curves {
		if bb := c.Points[c.Match].Both; bb.Runs > 0 {
			p("%s rolled back %d. ", c.Baseline.Name(), bb.Detected)
		}
	}
	p("\n\nFull drain misrouting (F1 at 100 %%, canary at 20–500 req/s): %d runs, %d failed, %d within %s of onset; latency median %s, p90 %s, max %s.\n",
		g.Drain.Runs, g.Drain.Detected, g.DrainWithin, dur(FastDetection), dur(Percentile(g.DrainLatency, 0.5)), dur(Percentile(g.DrainLatency, 0.9)), dur(Percentile(g.DrainLatency, 1)))

	r.writeRealism(p)
	r.writeMisses(p)

	p("\n## Baseline sweeps\n\n")
	p("Every SLI's threshold is the burn multiple times its budget (`result[0] <= T` for Argo, `thresholdRange.max: T` for Flagger). ▶ marks the matched threshold.\n\n")
	for _, c := range r.Curves {
		p("**%s**\n\n| threshold | false rollbacks | rate | recall ≥ %g× | recall, all | latency median / p90 |\n|---|---|---|---|---|---|\n", c.Baseline.Name(), float64(StrongBurn))
		for t, f := range c.Points {
			mark := ""
			if t == c.Match {
				mark = "▶ "
			}
			p("| %s≤ %s | %d / %d | %s | %s | %s | %s / %s |\n", mark, fmtBurn(r.Sweep[t]), f.FalseRollbacks, f.Healthy, pct(f.FRRate),
				pct(f.Strong.Recall()), pct(f.Faults.Recall()), dur(Percentile(f.Latency, 0.5)), dur(Percentile(f.Latency, 0.9)))
		}
		p("\n")
	}

	p("## Cost\n\n")
	if r.Cost == nil {
		p("Not measured: %s\n", r.CostErr)
	} else {
		c := r.Cost
		p("Every look of %d cases (one evaluation at a time, the engine's default 4 queries in flight), policy `%s` with the stable baseline. ", c.Cases, r.Judge.Policy.Metadata.Name)
		p("Evaluations per core-second divide evaluations by the CPU time spent: this process, plus the server's for Prometheus. Allocations are this process's heap allocations.\n\n")
		p("| against | evaluations | p50 | p99 | evaluations / core-second | queries / evaluation | allocations / evaluation |\n|---|---|---|---|---|---|---|\n")
		tim := func(name string, t Timing) {
			p("| %s | %d | %s | %s | %.1f | %.0f | %.0f |\n", name, t.Evaluations, t.P50.Round(10*time.Microsecond), t.P99.Round(10*time.Microsecond), t.PerCoreSecond, t.Queries, t.Allocs)
		}
		tim(fmt.Sprintf("real Prometheus on loopback (%s)", c.Server), c.Prometheus)
		tim("embedded PromQL engine (replay)", c.Replay)
		tim("canned query results (engine only)", c.EngineOnly)
		p("\nPrometheus and the embedded engine gave the same decision at %d of %d looks.\n", c.Agree, c.Compared)
	}

	r.writeMethod(p)
	_, err := io.WriteString(w, b.String())
	return err
}

// writeExcess breaks recall on faults of at least StrongBurn down by the
// bad events a fault adds after its onset, and says what a test of one
// count at the engine's per-test level asks, with a fixed sample (no
// detector held to that level can ask less; the engine's anytime-valid
// tests ask more): the statistical floor under the misses.
func (r *Report) writeExcess(p func(string, ...any), g Figures) {
	p("\n| faults of ≥ %g× by expected excess bad events after the onset | faults | failed | recall | held |\n|---|---|---|---|---|\n", float64(StrongBurn))
	for i, band := range ExcessBands {
		p("| %s | %d | %d | %s | %d |\n", band.Name, g.ByExcess[i].Runs, g.ByExcess[i].Detected, pct(g.ByExcess[i].Recall()), g.ByExcess[i].Held)
	}
	level := 0.0
	for _, run := range r.Runs {
		level = math.Max(level, run.Level)
	}
	p("\nExpected excess bad events (ExpectedExcess): the bad events a fault adds, on average, to the canary's background between its onset and the stage end, in the SLI it raises where that number is largest: (fault burn − background burn) × budget × the canary's events after the onset (or hours, for a rate SLI). It is the evidence any detector has, whatever its burn multiple: 3× of a budget that allows one bad event in the stage is two extra events. ")
	if level <= 0 {
		p("\n")
		return
	}
	// k(mu): the fewest bad events in a window whose budget allows mu that
	// are over budget at the level, for a Poisson count.
	need := func(mu float64) int {
		k := 0
		for tail := 1.0; tail > level; tail = 1 - (distuv.Poisson{Lambda: mu}).CDF(float64(k-1)) {
			k++
		}
		return k
	}
	p("phaseguard fails a canary only when some count of the canary (since a restart of a window pair's test, or since its start) is over budget at a level no larger than the per-test level %.2g (alpha split evenly over every test of every SLI; a restart is held to a share of it). Even the most powerful fixed-sample test of one Poisson count at that level (a threshold on the count), which is not valid under repeated looks and which the engine's anytime-valid tests can only ask more of, takes", level)
	p(" %d bad events where the budget allows 0.5 in the count, %d where it allows 1, %d where 3, %d where 10", need(0.5), need(1), need(3), need(10))
	tail := func(mu float64, k int) float64 { return 1 - (distuv.Poisson{Lambda: mu}).CDF(float64(k-1)) }
	k, alpha := need(1), r.Judge.Policy.Spec.Alpha
	p(". Where the budget allows 1, a fault adding 1, 3 or 10 events on average reaches %d with probability %s, %s and %s. ", k, pct(tail(2, k)), pct(tail(4, k)), pct(tail(11, k)))
	// The most lenient valid detector: one test of one count at alpha,
	// nothing spread over looks or SLIs. The Poisson has a monotone
	// likelihood ratio, so a threshold on the count is the most powerful
	// test (Karlin–Rubin), up to randomisation at the threshold.
	k1 := 0
	for t := 1.0; t > alpha; t = tail(1, k1) {
		k1++
	}
	e99 := 0.0 // the excess at which even that test reaches 99 %
	for tail(1+e99, k1) < 0.99 {
		e99 += 0.1
	}
	p("A detector gains only by spending its false-rollback rate on fewer tests, and not enough: even the most powerful test of that one count at %g, spending nothing on repeated looks or other SLIs (a threshold on the count, by Karlin–Rubin), must wait for %d bad events, catches faults adding 1, 3 or 10 events with probability %s, %s and %s, and reaches 99 %% only from about %.0f. No detector held to that false-rollback rate can reach the 99 %% target on faults adding fewer than that; the breakdown above shows how many of the corpus's faults of ≥ %g× do.\n",
		alpha, k1, pct(tail(2, k1)), pct(tail(4, k1)), pct(tail(11, k1)), math.Ceil(e99), float64(StrongBurn))
}

// writeOracle compares phaseguard with the oracle, in all and by canary
// traffic and fault kind.
func (r *Report) writeOracle(p func(string, ...any)) {
	every := r.every()
	v := CompareOracle(r.Runs, every, GuardOutcome, RunOracle)
	p("\n### phaseguard against the oracle\n\n")
	if v.Unobserved > 0 {
		p("Not measured: %d of %d faults were observed without the oracle.\n", v.Unobserved, v.Faults)
		return
	}
	p("Of the %d faults of the canary that can be seen, the oracle detects %d within the stage; phaseguard detects %d of those (%s). ", v.Faults, v.Detectable, v.Caught, pct(v.Recall()))
	p("On the faults both detect, phaseguard's median latency is %s against the oracle's %s: %s the oracle's (ratio of medians); the median of the per-fault ratios is %s.\n\n",
		dur(Percentile(v.Detector, 0.5)), dur(Percentile(v.Oracle, 0.5)), times(v.MedianRatio()), times(v.RatioMedian()))
	p("| faults by | faults | oracle-detectable | phaseguard detects | recall | median latency, phaseguard / oracle | ratio of medians | median per-fault ratio |\n|---|---|---|---|---|---|---|---|\n")
	line := func(label string, keep func(*Run) bool) {
		var sub []*Run
		for _, run := range r.Runs {
			if keep(run) {
				sub = append(sub, run)
			}
		}
		v := CompareOracle(sub, every, GuardOutcome, RunOracle)
		p("| %s | %d | %d | %d | %s | %s / %s | %s | %s |\n", label, v.Faults, v.Detectable, v.Caught, pct(v.Recall()),
			dur(Percentile(v.Detector, 0.5)), dur(Percentile(v.Oracle, 0.5)), times(v.MedianRatio()), times(v.RatioMedian()))
	}
	for i, band := range TrafficBands {
		line("canary traffic "+band.Name, func(run *Run) bool { return bandOf(TrafficBands, run.Truth.CanaryRate) == i })
	}
	for _, k := range scenarios.FaultKinds {
		line(fmt.Sprintf("kind %s %s", k, k.Name()), func(run *Run) bool { return run.Truth.Fault != nil && run.Truth.Fault.Kind == k })
	}
}

// writeBefore compares phaseguard's figures with earlier runs.
func (r *Report) writeBefore(p func(string, ...any)) {
	if len(r.Before) == 0 {
		return
	}
	p("\n## Before and after\n\n")
	p("The realistic corpus judged by the engine before (`analysis` and `policies` at the revision below, in a git worktree holding this corpus's `scenarios` and `bench`: they build against that engine unchanged) and after (the revision above). A corpus of other sizes holds other cases: compare a column with the one of its size. The before runs, whose `-observations` files `-before` reads:\n\n")
	for _, b := range r.Before {
		p("```\n%s\n```\n\nat %s.\n\n", b.Command, b.Revision)
	}
	p("| figure |")
	for _, b := range r.Before {
		p(" before, %s |", b.Corpus)
	}
	p(" after, seed %d: %d healthy, %d faulty, %d full drain |\n|---|", r.Seed, r.Healthy, r.Faulty, r.FullDrain)
	for range r.Before {
		p("---|")
	}
	p("---|\n")
	row := func(name string, f func(Figures) string) {
		p("| %s |", name)
		for _, b := range r.Before {
			p(" %s |", f(b.Guard))
		}
		p(" %s |\n", f(r.Guard))
	}
	row("false rollbacks (healthy), 95 % upper bound", func(f Figures) string {
		return fmt.Sprintf("%d / %d, ≤ %s", f.FalseRollbacks, f.Healthy, pct(f.FRHigh))
	})
	row("healthy canaries failed, in all", func(f Figures) string { return fmt.Sprint(f.HealthyFails) })
	row("passes the truth calls wrong (every set)", func(f Figures) string { return fmt.Sprint(f.FalsePasses) })
	row("canaries that can't be told: pass (wrong) / hold / fail", func(f Figures) string {
		return fmt.Sprintf("%d / %d / %d of %d", f.Untold.Pass, f.Untold.Hold, f.Untold.Fail, f.Untold.Runs)
	})
	row(fmt.Sprintf("recall on faults of ≥ %g×", float64(StrongBurn)), func(f Figures) string {
		return fmt.Sprintf("%s (%d/%d)", pct(f.Strong.Recall()), f.Strong.Detected, f.Strong.Runs)
	})
	row("recall, all faults that can be seen", func(f Figures) string {
		return fmt.Sprintf("%s (%d/%d)", pct(f.Faults.Recall()), f.Faults.Detected, f.Faults.Runs)
	})
	row("detection latency median / p90", func(f Figures) string {
		return fmt.Sprintf("%s / %s", dur(Percentile(f.Latency, 0.5)), dur(Percentile(f.Latency, 0.9)))
	})
	row("held at the stage end (healthy / faulty)", func(f Figures) string { return fmt.Sprintf("%d / %d", f.HealthyHolds, f.Faults.Held) })
	row("healthy canaries (truth: pass) held at the stage end, by canary traffic "+bandNames(), func(f Figures) string {
		var parts []string
		for _, d := range f.HealthyByTraffic {
			parts = append(parts, fmt.Sprintf("%d of %d", d.Hold, d.Runs))
		}
		return strings.Join(parts, "; ")
	})
	// Against the oracle: its outcome on the same case, observed with
	// this run.
	oracle := OracleByCase(r.Runs)
	versus := func(runs []*Run, f func(Versus) string) string {
		if runs == nil {
			return "–"
		}
		v := CompareOracle(runs, r.every(), GuardOutcome, oracle)
		if v.Unobserved > 0 {
			return fmt.Sprintf("– (%d of %d faults not in this corpus)", v.Unobserved, v.Faults)
		}
		return f(v)
	}
	p("| recall of oracle-detectable faults |")
	for _, b := range r.Before {
		p(" %s |", versus(b.Runs, func(v Versus) string { return fmt.Sprintf("%s (%d/%d)", pct(v.Recall()), v.Caught, v.Detectable) }))
	}
	p(" %s |\n", versus(r.Runs, func(v Versus) string { return fmt.Sprintf("%s (%d/%d)", pct(v.Recall()), v.Caught, v.Detectable) }))
	lat := func(v Versus) string {
		return fmt.Sprintf("%s; %s (%d faults)", times(v.MedianRatio()), times(v.RatioMedian()), v.Caught)
	}
	p("| latency / the oracle's on the faults both detect: ratio of medians; median ratio |")
	for _, b := range r.Before {
		p(" %s |", versus(b.Runs, lat))
	}
	p(" %s |\n", versus(r.Runs, lat))
	row("faults on canary and stable alike: rolled back / held", func(f Figures) string { return fmt.Sprintf("%d / %d of %d", f.Both.Detected, f.Both.Held, f.Both.Runs) })
	row(fmt.Sprintf("full drain misrouting failed within %s", dur(FastDetection)), func(f Figures) string {
		return fmt.Sprintf("%d / %d", f.DrainWithin, f.Drain.Runs)
	})
	for i, re := range Realisms {
		row("wrong decisions, "+re.Name+" (healthy; faulty)", func(f Figures) string {
			d := f.ByRealism[i]
			return fmt.Sprintf("%d of %d; %d of %d", d[0].Wrong, d[0].Runs, d[1].Wrong, d[1].Runs)
		})
	}
}

// writeRealism breaks phaseguard's decisions down by what real exporters
// and servers do, and says how the baselines fare on the canaries that
// can't be told.
func (r *Report) writeRealism(p func(string, ...any)) {
	g := r.Guard
	p("\n### phaseguard on what real exporters and servers do\n\n")
	p("Each case's truth (`scenarios.Truth.Answer`) states the right decision at the end of the stage after DESIGN.md's \"What a response means\": a healthy canary passes; a fault of the canary at 1× its budget or more fails; a canary without data in the last %s, or whose build dropped or renamed an SLI's export, can't be told, so a pass is wrong (and a fail too for a healthy canary without recent data; a build that hid an SLI may be held or failed); a fault on both versions holds. ", dur(scenarios.AnswerWindow))
	p("A hold where a pass is right is not wrong, but it is counted. A case may be in several rows.\n\n")
	p("| behaviour | healthy | pass / hold / fail | wrong | faulty | pass / hold / fail | wrong |\n|---|---|---|---|---|---|---|\n")
	for i, re := range Realisms {
		h, f := g.ByRealism[i][0], g.ByRealism[i][1]
		p("| %s | %d | %d / %d / %d | %d | %d | %d / %d / %d | %d |\n", re.Name, h.Runs, h.Pass, h.Hold, h.Fail, h.Wrong, f.Runs, f.Pass, f.Hold, f.Fail, f.Wrong)
	}
	p("\nCanaries the truth says can't be told (healthy, and faults of the canary it hides): %d; phaseguard passed %d, held %d, failed %d. ", g.Untold.Runs, g.Untold.Pass, g.Untold.Hold, g.Untold.Fail)
	for _, c := range r.Curves {
		u := c.Points[c.Match].Untold
		p("%s passed %d. ", c.Baseline.Name(), u.Pass)
	}
	p("\n")
}

// writeMisses lists phaseguard's misses of faults of at least StrongBurn
// or that the oracle detects, with the oracle's latency on each.
func (r *Report) writeMisses(p func(string, ...any)) {
	type row struct {
		text   string
		excess float64
	}
	var rows []row
	for _, run := range r.Runs {
		tr := run.Truth
		if run.Set != Faulty || tr.Fault.Scope != scenarios.ScopeCanary || tr.Answer.Right == scenarios.Hold {
			continue
		}
		oracle := "–"
		if run.Oracle != nil {
			oracle = "no alarm"
			if run.Oracle.Look >= 0 {
				oracle = fmt.Sprintf("%s (%s)", dur(LookTime(tr.StageStart, run.Oracle.Look, r.every()).Sub(tr.Fault.Onset)), run.Oracle.SLI)
			}
		}
		if MaxBurn(tr) < StrongBurn && (run.Oracle == nil || run.Oracle.Look < 0) {
			continue
		}
		o := GuardOutcome(run)
		if o.Fail >= 0 && !LookTime(tr.StageStart, o.Fail, r.every()).Before(tr.Fault.Onset) {
			continue
		}
		end := "pass"
		switch {
		case o.Fail >= 0:
			end = "fail before onset"
		case o.Hold:
			end = "hold"
		}
		rows = append(rows, row{fmt.Sprintf("| %s | %s | %.3g | %s | %.3g | %.3g | %s | %s | %s |", run.Name, tr.Fault.Kind, tr.Fault.Severity, fmtBurn(MaxBurn(tr)),
			run.Excess, tr.CanaryRate, oracle, end, strings.ReplaceAll(shorten(run.Reason, 140), "|", "\\|")), run.Excess})
	}
	// The misses with the most evidence first: those are the engine's.
	slices.SortStableFunc(rows, func(a, b row) int { return cmp.Compare(b.excess, a.excess) })
	p("\n### phaseguard's misses of faults of ≥ %g× or that the oracle detects\n\n", float64(StrongBurn))
	if len(rows) == 0 {
		p("None.\n")
		return
	}
	p("%d faults, those adding the most expected bad events after the onset first; the oracle's column is its latency and the SLI it alarmed on; the verdict at the end of the stage says why phaseguard did not fail.\n\n", len(rows))
	p("| case | kind | severity | expected burn | expected excess bad events | canary req/s | oracle | stage ended | last reason |\n|---|---|---|---|---|---|---|---|---|\n")
	const most = 40
	for i, row := range rows {
		if i == most {
			p("| … %d more | | | | | | | | |\n", len(rows)-most)
			break
		}
		p("%s\n", row.text)
	}
}

func (r *Report) writeMethod(p func(string, ...any)) {
	n, every := r.Judge.Looks()
	p("\n## Method\n\n")
	p("- **Corpus.** `scenarios.Corpus(seed, healthy, faulty)` draws canary rates log-uniform in 0.2–500 req/s, 1–3 stable and 1–2 canary pods, steady, diurnal or bursty traffic, background errors under budget, pod restarts (counter resets) in 30 %% and scrape gaps of 30 s–4 min in 25 %% of cases, and for faulty cases a kind F1–F5, a severity log-uniform in 0.1–100 %% and, in 10 %%, scope both. ")
	p("Then, from a stream of its own, what real exporters and servers do: labelled counter children created on their first event instead of at zero in 30 %% of cases (the rest follow the metric convention), canary pods rescheduled mid-stage once or twice in 20 %% and a canary container restart in 10 %%, the newest 75 s–4 min of application metrics missing for the canary in 8 %% and for stable in 4 %%, and a canary build that renamed or dropped an SLI's export in 6 %%. ")
	p("The benchmark fits every case to a %s stage, the soak of stage `%s`, so that each of its %d planned looks has data: restarts and gaps keep their relative place, and onsets are scaled into the first %s so every fault is visible for at least %s. ",
		dur(r.Geometry.Stage), r.Judge.Stage, n, dur(r.Geometry.Stage-r.Geometry.Exposure), dur(r.Geometry.Exposure))
	if r.Geometry.Prior > 0 {
		p("Before it the canary served a prior stage of %s at %.0f %% of its stage traffic (as canary-10 before canary-50), from the same pods, exporters and background errors; faults, canary restarts and cutoffs fall within the judged stage. ", dur(r.Geometry.Prior), 100*r.Geometry.PriorWeight)
	}
	p("The full-drain set redraws specs from a stream of its own with F1 at severity 1 and canary rates log-uniform in 20–500 req/s, without cutoffs and drops.\n")
	p("- **Truth.** Recall counts the faults of the canary the truth says to fail or pass (not those it says can't be told, which the breakdown by behaviour counts); a false rollback is a fail the truth calls wrong; the floor holds what can't be told.\n")
	p("- **Looks.** Every detector looks at the same times: %d looks, every %s from %s after the stage starts. A rollback at a look ends the run.\n", n, dur(every), dur(every))
	p("- **phaseguard.** `analysis.Engine.Evaluate` with policy `%s` as shipped (all seven SLIs, canary against stable), stage `%s`, told when the canary started, at the start of its prior stage (`Request.Since` = `Truth.CanaryStart`), over the embedded PromQL engine (`replay`). The first `fail` rolls back; otherwise the stage ends as its last look, `pass` or `hold`, as the Argo plugin's stage mode does.\n", r.Judge.Policy.Metadata.Name, r.Judge.Stage)
	p("- **Baselines.** Each SLI becomes one metric whose instant query is its bad ratio over the window (`bad / total`, `1 - good / total`, or events × 1h/window for the rate SLIs), with the SLI's own selectors, sent at every look. ")
	p("Argo: argo-rollouts v1.10.0's `utils/evaluate.EvaluateResult` on `successCondition: result[0] <= T` with the vector's values as the result, as its Prometheus provider does (no series: no `result[0]`, an Error measurement; NaN: Failed); a metric fails when Failed measurements over the whole run exceed `failureLimit`, errors after more than `consecutiveErrorLimit` (default 4) Errors in a row, and either aborts the rollout. ")
	p("Flagger: fluxcd/flagger's loop (`advanceCanary`, `runMetricChecks`, `PrometheusProvider.RunQuery`): each tick first rolls back if `failedChecks >= threshold`, then runs the checks; no value or NaN (`ErrNoValuesFound`) or a value above `thresholdRange.max` fails the check, and `failedChecks` is never reset within the analysis.\n")
	p("- **Oracle.** For a run with a fault, at each look after the onset and for each SLI the fault raises above 1× (`scenarios.FaultTruth.CanaryBurn`, its true expected canary burn b, background included), the canary's counts from the onset to the look: the SLI's own batched query with every window cut to that span (`policies.SLI.QueryWithin`), its longest window's series. ")
	p("Wald's log likelihood ratio of H1 \"burn = b\" against H0 \"burn = 1\" (the budget of `scenarios.DefaultBudgets`, which the burns are multiples of): for a ratio SLI with k bad of n events, k·log(p1/p0) + (n−k)·log((1−p1)/(1−p0)) with p0 the budget and p1 = b·p0 capped at %g; for a rate SLI with k events in h hours, k·log b − (b−1)·λ0·h. ", OracleMaxShare)
	p("It alarms at the first look where the ratio of any raised SLI reaches log(1/%g) (a fault raising several SLIs is detected by the first to alarm), and a detection is that look's time minus the onset. By Ville's inequality each SLI's test alarms under H0 with probability at most %g however often it looks. ", OracleAlpha, OracleAlpha)
	p("It uses what no detector has, the onset and b, and only data after the onset: its recall and latency are the limit a detector held to that level approaches. ")
	p("Recall of oracle-detectable faults counts phaseguard's detections among the faults of the canary that can be seen and that the oracle detects; latency is compared on the faults both detect, as the ratio of the medians and as the median of the per-fault ratios. ")
	p("Healthy canaries held count those whose truth says to pass, by nominal canary rate. A static threshold is dominated when, at its matched threshold, phaseguard has at least its recall on the faults that can be seen and at most its median latency on the faults both detect, one of them strictly (or, with no fault both detect, more recall).\n")
	p("- **Sweep.** Thresholds at %s × each SLI's budget.\n", sweepList(r.Sweep))
	p("- **Confidence.** False-rollback intervals are two-sided 95 %% Clopper–Pearson. Latency percentiles are nearest-rank over the detected faults.\n")
	p("- **Reproducibility.** Every decision figure depends on the seed and the sizes only; the worker count, the machine and the cost figures do not change them.\n")
}

// bandNames lists TrafficBands' names, "(< 1 req/s; 1–20 req/s; ≥ 20 req/s)".
func bandNames() string {
	var names []string
	for _, b := range TrafficBands {
		names = append(names, b.Name)
	}
	return "(" + strings.Join(names, "; ") + ")"
}

// times prints a ratio as a multiple, "1.32×"; "–" for NaN.
func times(x float64) string {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return "–"
	}
	return fmt.Sprintf("%.2f×", x)
}

func sweepList(s []float64) string {
	var parts []string
	for _, x := range s {
		parts = append(parts, strings.TrimSuffix(fmtBurn(x), "×"))
	}
	return strings.Join(parts, ", ")
}

func fmtBurn(x float64) string { return strconvG(x) + "×" }

func strconvG(x float64) string { return fmt.Sprintf("%g", x) }

func pct(x float64) string {
	switch {
	case math.IsNaN(x):
		return "–"
	case x == 0:
		return "0 %"
	case x < 0.001:
		return fmt.Sprintf("%.3f %%", x*100)
	case x < 0.1:
		return fmt.Sprintf("%.2f %%", x*100)
	}
	return fmt.Sprintf("%.1f %%", x*100)
}

func dur(d time.Duration) string {
	if d < 0 {
		return "–"
	}
	return shortDur(d.Round(time.Second))
}

func shorten(s string, n int) string {
	if len([]rune(s)) <= n {
		return s
	}
	return string([]rune(s)[:n-1]) + "…"
}
