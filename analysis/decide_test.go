package analysis

import (
	"strings"
	"testing"
	"time"

	"github.com/phaseguard/phaseguard/policies"
)

// TestExposureToPass: the exposure it gives is the least at which the
// engine's own upper bound falls to the limit at the canary's pace, and
// it says so when none can.
func TestExposureToPass(t *testing.T) {
	t.Parallel()
	const a = 0.001
	tests := []struct {
		name     string
		w        window
		exposure time.Duration
		kind     string
		limit    float64
		minS     float64
		ok       bool
	}{
		{"ratio, no bad yet, 0.2 events/s", window{d: 15 * time.Minute, bad: 0, total: 120}, 10 * time.Minute, policies.KindRatio, 0.01, 100, true},
		{"ratio, some bad under the limit", window{d: 15 * time.Minute, bad: 2, total: 900}, 15 * time.Minute, policies.KindRatio, 0.01, 100, true},
		{"ratio, min samples dominate", window{d: 15 * time.Minute, bad: 0, total: 10}, 5 * time.Minute, policies.KindRatio, 0.5, 100, true},
		{"ratio, share over the limit so far, within budget from here", window{d: 15 * time.Minute, bad: 30, total: 900}, 15 * time.Minute, policies.KindRatio, 0.01, 100, true},
		{"ratio, no events: nothing to go by", window{d: 15 * time.Minute, bad: 0, total: 0}, 15 * time.Minute, policies.KindRatio, 0.01, 100, false},
		{"rate, none yet", window{d: 15 * time.Minute, bad: 0, total: 0.05}, 3 * time.Minute, policies.KindRate, 20, 0, true},
		{"rate, already enough", window{d: time.Hour, bad: 0, total: 1}, time.Hour, policies.KindRate, 20, 0, true},
		{"ratio, already enough", window{d: 15 * time.Minute, bad: 0, total: 90000}, 15 * time.Minute, policies.KindRatio, 0.01, 100, true},
		{"rate, over the limit so far, within budget from here", window{d: 15 * time.Minute, bad: 10, total: 0.25}, 15 * time.Minute, policies.KindRate, 20, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			need, ok := exposureToPass(tt.w, tt.exposure, tt.kind, a, tt.limit/10, 10, tt.minS)
			if ok != tt.ok {
				t.Fatalf("ok %v, want %v (need %s)", ok, tt.ok, need)
			}
			if !ok {
				return
			}
			// The window as it would be after need, at the same pace,
			// within its budget from now on.
			at := func(d time.Duration) window {
				f := d.Seconds() / tt.exposure.Seconds()
				x := tt.w.total * f
				share := tt.w.bad / tt.w.total
				return window{d: tt.w.d, bad: share*min(x, tt.w.total) + min(share, tt.limit/10)*max(x-tt.w.total, 0), total: x}
			}
			passes := func(w window) bool {
				return w.rulesOut(tt.kind, tt.limit/10, 10, a) && (tt.kind == policies.KindRate || w.total >= tt.minS*(1-1e-9))
			}
			if !passes(at(need)) {
				t.Errorf("after %s the bound still does not pass", need)
			}
			if need > 2*time.Second && passes(at(need-2*time.Second)) {
				t.Errorf("%s is not the least: %s passes too", need, need-2*time.Second)
			}
		})
	}
}

func TestTimeToDecide(t *testing.T) {
	t.Parallel()
	slow := timeToDecide(window{d: 15 * time.Minute, bad: 0, total: 120}, 10*time.Minute, 15*time.Minute, policies.KindRatio, 0.001, 0.001, 10, 100)
	if !strings.Contains(slow, "at 0.2 events/s the 15m window cannot hold enough: ruling out a 10× burn needs") {
		t.Errorf("slow canary: %q", slow)
	}
	soon := timeToDecide(window{d: 15 * time.Minute, bad: 0, total: 600}, 2*time.Minute, 15*time.Minute, policies.KindRatio, 0.001, 0.001, 10, 100)
	if !strings.Contains(soon, "at 5 events/s, within its budget from here, ruling out a 10× burn needs about ") || !strings.HasSuffix(soon, " more") {
		t.Errorf("busy canary: %q", soon)
	}
	if s := timeToDecide(window{d: 15 * time.Minute, bad: 0, total: 0}, 15*time.Minute, 15*time.Minute, policies.KindRatio, 0.001, 0.001, 10, 100); s != "" {
		t.Errorf("no events: %q, want nothing", s)
	}
	life := timeToDecide(window{d: 10 * time.Minute, bad: 1, total: 120}, 10*time.Minute, 0, policies.KindRatio, 0.05, 0.001, 10, 100)
	if !strings.Contains(life, "at 0.2 events/s, within its budget from here, ruling out a 10× burn needs about ") {
		t.Errorf("one bad event in a thin canary's life: %q", life)
	}
}

// TestPlan: every row that says a stage can pass has the evidence by the
// engine's own bound, and the least traffic is just enough.
func TestPlan(t *testing.T) {
	t.Parallel()
	p, err := policies.Preset("phase-default")
	if err != nil {
		t.Fatal(err)
	}
	for _, rate := range []float64{1e-12, 1e-8, 0.2, 1, 50, 1e300} {
		for _, r := range Plan(p, rate) {
			// At 1e-8 events/s the time needed once overflowed a
			// Duration, negative, and read as a pass.
			if r.Needs < 0 || (rate < 1e-3 && r.CanPass && r.Kind == policies.KindRatio) {
				t.Errorf("%s/%s at %g events/s: needs %s, canPass %v", r.Stage, r.SLI, rate, r.Needs, r.CanPass)
			}
			if r.Kind != policies.KindRatio {
				continue
			}
			events := r.LeastRate * r.Life.Seconds() * 1.0001
			if w := (window{total: events}); r.SLI == p.Spec.SLIs[0].Name && !w.rulesOut(r.Kind, p.Spec.SLIs[0].Budget(), fastestFactor(p), p.Spec.Alpha) {
				t.Errorf("%s/%s: least rate %g gives %g events, which do not rule out the fastest burn", r.Stage, r.SLI, r.LeastRate, events)
			}
			if r.CanPass != (rate >= r.LeastRate*(1-1e-9)) {
				t.Errorf("%s/%s at %g events/s: canPass %v but least rate %g", r.Stage, r.SLI, rate, r.CanPass, r.LeastRate)
			}
		}
	}
}
