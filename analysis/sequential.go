package analysis

import (
	"math"
	"time"

	"github.com/phaseguard/phaseguard/policies"
)

// Anytime-valid tests. Every fail and every pass is decided by an e-value:
// a discrete mixture of likelihood ratios against the null, which under
// the null is a nonnegative supermartingale in the canary's counts, so by
// Ville's inequality it ever reaches 1/a with probability at most a,
// however often and whenever it is looked at (Howard, Ramdas, McAuliffe,
// Sekhon, "Time-uniform, nonparametric, nonasymptotic confidence
// sequences", Annals of Statistics 49, 2021; the mixture sequential
// probability ratio test of Lindon, Sanden, Shirikian, "Rapid regression
// detection in software deployments through sequential testing", KDD
// 2022). Inverting the tests over the null burn gives confidence
// sequences: lowerBurn and upperBurn.
//
// The model is the engine's counting model: a ratio SLI's events are each
// bad with the same probability (the burn times the budget), independently
// of the traffic; a rate SLI's events arrive as a Poisson process (burn
// times the allowance per hour). Counts from PromQL's increase() are
// extrapolated and may not be whole; the likelihoods accept real counts.

// mixture is a discrete mixing distribution over alternatives, each a
// multiple of the null burn (for a ratio SLI, of the odds of a bad event),
// with weights summing to 1.
type mixture struct {
	ratio  []float64
	weight []float64
}

// over mixes burns above the null, for a fail: from a quarter over it to
// a thousand times, weighted toward the middle, where canary faults are
// neither lost in noise nor caught at any level.
var over = mixture{
	ratio:  []float64{1.25, 1.5, 2, 3, 5, 10, 30, 100, 1000},
	weight: []float64{0.06, 0.08, 0.12, 0.14, 0.16, 0.16, 0.12, 0.09, 0.07},
}

// under mixes burns below the null, for a pass. Most of its weight is on
// a clean canary (no bad event: the first), where a pass is most often
// asked for: with no bad event it passes once the exposure would hold
// log(1/(0.8a)) bad events at the null burn, 0.22 more than the
// fixed-sample exact bound's log(1/a) (3.0 at a = 0.05). The rest is for
// canaries spending part of their budget.
var under = mixture{
	ratio:  []float64{0, 0.1, 0.25, 0.5, 0.75},
	weight: []float64{0.8, 0.08, 0.06, 0.04, 0.02},
}

// logE is the log of the mixture e-value of k bad events in exposure n
// (events, or hours for a rate SLI) against the null "the burn is b0",
// with budget the SLI's budget (bad share, or allowance per hour). With
// mixture over it tests "burn ≤ b0" (a fail); with under, "burn ≥ b0" (a
// pass). For a ratio SLI whose null share b0·budget reaches 1 (every event
// bad), one good event rejects it: +Inf.
func logE(kind string, k, n, budget, b0 float64, m mixture) float64 {
	if n <= 0 || b0 <= 0 {
		return 0
	}
	k = math.Max(k, 0)
	terms := make([]float64, 0, len(m.ratio))
	for i, r := range m.ratio {
		var l float64
		if kind == policies.KindRate {
			lam := b0 * budget * n // expected events under the null
			l = xlogy(k, r) - (r-1)*lam
		} else {
			k = math.Min(k, n)
			p := b0 * budget
			if p >= 1 {
				if n > k {
					return math.Inf(1)
				}
				return 0
			}
			// The alternative multiplies the odds of a bad event by r:
			// about r times the share while it is small, and under 1
			// however large r is.
			odds := r * p / (1 - p)
			q := odds / (1 + odds)
			l = xlogy(k, q/p) + xlogy(n-k, (1-q)/(1-p))
		}
		terms = append(terms, math.Log(m.weight[i])+l)
	}
	return logSumExp(terms)
}

// xlogy is x·log(y), 0 when x is 0 (whatever y).
func xlogy(x, y float64) float64 {
	if x == 0 {
		return 0
	}
	return x * math.Log(y)
}

func logSumExp(xs []float64) float64 {
	top := math.Inf(-1)
	for _, x := range xs {
		top = math.Max(top, x)
	}
	if math.IsInf(top, 0) {
		return top
	}
	s := 0.0
	for _, x := range xs {
		s += math.Exp(x - top)
	}
	return top + math.Log(s)
}

// lowerBurn is the lower end of the confidence sequence at level a on the
// burn of k bad events in exposure n: the least null burn the fail
// mixture does not reject. It exceeds 1 exactly when "burn ≤ 1" is
// rejected at level a, which is the fail test.
func lowerBurn(kind string, k, n, budget, a float64) float64 {
	if n <= 0 || k <= 0 {
		return 0
	}
	level := math.Log(1 / a)
	rejects := func(b float64) bool { return logE(kind, k, n, budget, b, over) >= level }
	// The point burn is never rejected: no alternative is likelier there.
	hi := k / n / budget
	if math.IsNaN(hi) || math.IsInf(hi, 0) {
		// A count near float64's edge: the loop below must end (an
		// infinite burn divided by 4 stays infinite).
		hi = math.MaxFloat64
	}
	lo := hi
	for !rejects(lo) {
		lo /= 4
		if lo < 1e-9 {
			return 0
		}
	}
	return bisect(lo, hi, rejects)
}

// upperBurn is the upper end of the confidence sequence at level a: the
// largest null burn the pass mixture does not reject. A pass rules out a
// burn of F when upperBurn ≤ F. +Inf without exposure.
func upperBurn(kind string, k, n, budget, a float64) float64 {
	if n <= 0 {
		return math.Inf(1)
	}
	level := math.Log(1 / a)
	rejects := func(b float64) bool { return logE(kind, k, n, budget, b, under) >= level }
	lo := math.Max(k/n/budget, 1e-9)
	if rejects(lo) {
		return lo
	}
	hi := lo * 2
	for !rejects(hi) {
		hi *= 2
		if hi > 1e12 {
			return math.Inf(1)
		}
	}
	return bisect(hi, lo, rejects)
}

// bisect finds, between a rejected null burn and one not rejected, the
// boundary, to a relative precision of 1e-4, on a log scale; it returns
// the end not rejected.
func bisect(rejected, kept float64, rejects func(float64) bool) float64 {
	for range 60 {
		if math.Abs(rejected-kept) <= 1e-4*kept {
			break
		}
		mid := math.Sqrt(rejected * kept)
		if rejects(mid) {
			rejected = mid
		} else {
			kept = mid
		}
	}
	return kept
}

// Restarts. A fault can begin long after the canary did: tested on every
// count since the start, its burn is diluted by the clean time before it.
// Each window pair's long window L therefore also restarts its test every
// L/2 (starts on a grid from the canary's start), and each look tests the
// starts of the last L: the youngest holds at most L/2 of time before a
// fault's onset. A start is one e-value, valid over its whole life, so the
// looks never spend level; the starts do, each its share of the pair's
// level, falling off as 1/(1 + j/H)² with its index j, H the starts in the
// policy's planned canary (every stage's soak): the shares sum to under
// one however long the canary runs, so the guarantee has no horizon.

// restartEvery is the spacing of the restarts of a pair's test.
func restartEvery(long time.Duration) time.Duration { return long / 2 }

// restartShare is start j's share of its pair's level, with h the number
// of starts in the planned canary: 1/((h+1)(1+j/h)²), which sums over
// every j ≥ 0 to at most 1 (the sum is under 1 + ∫₀^∞ (1+x/h)⁻² dx = 1+h).
func restartShare(j, h int) float64 {
	h = max(h, 1)
	x := 1 + float64(j)/float64(h)
	return 1 / (float64(h+1) * x * x)
}

// start is one restart of a pair's test: when it began, its index on the
// grid from the canary's start, and the time it has counted at the look.
type start struct {
	j   int
	at  time.Time
	age time.Duration
	a   float64 // its level, set by the engine
}

// liveStarts returns the restarts of a pair with long window long that a
// look at now tests: those on the grid from since that began within the
// last long window, oldest first. Without since (zero), the grid is
// anchored at the Unix epoch and each start takes index h, the share of
// a start at the end of the planned canary: valid for a canary watched no
// longer than planned.
func liveStarts(long time.Duration, since, now time.Time, h int) []start {
	every := restartEvery(long)
	anchor := since
	if since.IsZero() {
		anchor = time.Unix(0, 0)
	}
	if !now.After(anchor) {
		return nil
	}
	var out []start
	last := int(now.Sub(anchor) / every)
	for j := last; j >= 0; j-- {
		at := anchor.Add(time.Duration(j) * every)
		age := now.Sub(at)
		if age > long {
			break
		}
		if age < time.Second {
			continue // nothing counted yet
		}
		idx := j
		if since.IsZero() {
			idx = h
		}
		out = append([]start{{j: idx, at: at, age: age}}, out...)
	}
	return out
}
