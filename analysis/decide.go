package analysis

import (
	"fmt"
	"math"
	"time"

	"github.com/prometheus/common/model"

	"github.com/phaseguard/phaseguard/policies"
)

// exposureToPass is how much of the canary's traffic the evidence w
// (which counted exposure) needs before a pass can rule out a burn of
// factor times budget (bad share, or events per hour): the least exposure
// at which the pass test (window.rulesOut, at level a) holds, and a ratio
// window holds minSamples events, if the canary goes on at the same pace
// (events per second) and from now on spends no more than its budget: its
// bad share (ratio) or events per hour (rate) from here are the lower of
// what it saw and the budget. One bad event in a thin canary says little
// about its share, and going on at that share could never pass. It is
// the time the evidence must cover, not the time still to go. false: no
// exposure can (a ratio window saw no events to go by, or the test could
// not pass within 1e12 events or hours).
// The least exposure is found by doubling, then bisection.
func exposureToPass(w window, exposure time.Duration, kind string, a, budget, factor, minSamples float64) (time.Duration, bool) {
	if !w.usable() || exposure <= 0 || budget <= 0 || factor <= 0 {
		return 0, false
	}
	secs := exposure.Seconds()
	var enough func(x float64) bool // x: events (ratio) or hours (rate)
	var toSeconds func(x float64) float64
	switch kind {
	case policies.KindRate:
		enough = func(h float64) bool { return ahead(w, h, budget).rulesOut(kind, budget, factor, a) }
		toSeconds = func(h float64) float64 { return h * 3600 }
	default:
		perSecond := w.total / secs
		if perSecond <= 0 {
			return 0, false
		}
		enough = func(n float64) bool { return n >= minSamples && ahead(w, n, budget).rulesOut(kind, budget, factor, a) }
		toSeconds = func(n float64) float64 { return n / perSecond }
	}
	lo, hi := 0.0, math.Max(w.total, 1e-3)
	for !enough(hi) {
		lo, hi = hi, hi*2
		if hi > 1e12 {
			return 0, false
		}
	}
	for range 60 {
		mid := (lo + hi) / 2
		if enough(mid) {
			hi = mid
		} else {
			lo = mid
		}
	}
	return saturatingSeconds(math.Ceil(toSeconds(hi))), true
}

// ahead is window w grown (or shrunk) to exposure x at its pace, with
// what it adds bad at the lower of w's share (or events per hour) and
// budget: what exposureToPass assumes.
func ahead(w window, x, budget float64) window {
	seen := w.bad / w.total
	return window{bad: seen*math.Min(x, w.total) + math.Min(seen, budget)*math.Max(x-w.total, 0), total: x}
}

// timeToDecide says, for a thin-evidence hold, how long until the
// evidence could pass at the canary's pace, or that the window, of length
// cap (0: the canary's life, which grows), can never hold enough at it:
// "; at 0.2 events/s, about 12m more" or "; at 0.05 events/s the 15m
// window cannot hold enough: ruling out a 10× burn needs 40m of traffic".
// Empty when nothing can be said (no events to go by, or the observed
// share is itself over the limit).
func timeToDecide(w window, exposure, cap time.Duration, kind string, a, budget, factor, minSamples float64) string {
	need, ok := exposureToPass(w, exposure, kind, a, budget, factor, minSamples)
	if !ok {
		return ""
	}
	pace := fmt.Sprintf("%.2g events/s", w.total/exposure.Seconds())
	if kind == policies.KindRate {
		pace = fmt.Sprintf("%.2g events/h so far", w.bad/w.total)
	}
	if cap > 0 && need > cap {
		return fmt.Sprintf("; at %s the %s window cannot hold enough: ruling out a %g× burn needs %s of traffic", pace, model.Duration(cap), factor, roundMinute(need))
	}
	return fmt.Sprintf("; at %s, within its budget from here, ruling out a %g× burn needs about %s more", pace, factor, roundMinute(max(need-exposure, time.Second)))
}

// roundMinute rounds d for a reader: whole minutes from 2m up, else seconds.
func roundMinute(d time.Duration) model.Duration {
	if d >= 2*time.Minute {
		return model.Duration(d.Round(time.Minute))
	}
	return model.Duration(d.Round(time.Second))
}
