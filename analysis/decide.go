package analysis

import (
	"fmt"
	"math"
	"time"

	"github.com/prometheus/common/model"

	"github.com/phaseguard/phaseguard/policies"
)

// exposureToPass is how much of the canary's traffic the window w (which
// counted exposure) needs before a pass can rule out a burn of limit
// (bad share, or events per hour): the least exposure at which the
// window's upper bound at level a falls to limit, and a ratio window holds
// minSamples events, if the canary goes on as it has, with the same event
// rate and the same bad share (ratio) or the same events per hour (rate).
// It is the time the whole window must cover, not the time still to go.
// false: no exposure can (the observed share or rate is itself at or over
// limit, or a ratio window saw no events to go by).
//
// The bounds are the engine's (Clopper–Pearson for a share, Garwood for a
// count); the least exposure is found by doubling, then bisection.
func exposureToPass(w window, exposure time.Duration, kind string, a, limit, minSamples float64) (time.Duration, bool) {
	if !w.usable() || exposure <= 0 || limit <= 0 {
		return 0, false
	}
	secs := exposure.Seconds()
	var enough func(x float64) bool // x: events (ratio) or hours (rate)
	var toSeconds func(x float64) float64
	switch kind {
	case policies.KindRate:
		perHour := w.bad / w.total // w.total is hours
		if perHour >= limit {
			return 0, false
		}
		enough = func(h float64) bool { return countUpper(perHour*h, a)/h <= limit }
		toSeconds = func(h float64) float64 { return h * 3600 }
	default:
		share, perSecond := w.bad/w.total, w.total/secs
		if share >= limit || perSecond <= 0 {
			return 0, false
		}
		enough = func(n float64) bool { return n >= minSamples && ratioUpper(share*n, n, a) <= limit }
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
	return time.Duration(math.Ceil(toSeconds(hi))) * time.Second, true
}

// timeToDecide says, for a thin-evidence hold, how long until the
// evidence could pass at the canary's pace, or that the window can never
// hold enough at it: "; at 0.2 events/s, about 12m more" or "; at 0.05
// events/s the 15m window cannot hold enough: ruling out a 10× burn needs
// 40m of traffic". Empty when nothing can be said (no events to go by, or
// the observed share is itself over the limit).
func timeToDecide(w window, exposure time.Duration, kind string, a, limit, minSamples, factor float64) string {
	need, ok := exposureToPass(w, exposure, kind, a, limit, minSamples)
	if !ok {
		return ""
	}
	pace := fmt.Sprintf("%.2g events/s", w.total/exposure.Seconds())
	if kind == policies.KindRate {
		pace = fmt.Sprintf("%.2g events/h so far", w.bad/w.total)
	}
	if need > w.d {
		return fmt.Sprintf("; at %s the %s window cannot hold enough: ruling out a %g× burn needs %s of traffic", pace, model.Duration(w.d), factor, roundMinute(need))
	}
	return fmt.Sprintf("; at %s, about %s more", pace, roundMinute(max(need-exposure, time.Second)))
}

// roundMinute rounds d for a reader: whole minutes from 2m up, else seconds.
func roundMinute(d time.Duration) model.Duration {
	if d >= 2*time.Minute {
		return model.Duration(d.Round(time.Minute))
	}
	return model.Duration(d.Round(time.Second))
}
