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
		{"ratio, share over the limit: never", window{d: 15 * time.Minute, bad: 30, total: 900}, 15 * time.Minute, policies.KindRatio, 0.01, 100, false},
		{"ratio, no events: nothing to go by", window{d: 15 * time.Minute, bad: 0, total: 0}, 15 * time.Minute, policies.KindRatio, 0.01, 100, false},
		{"rate, none yet", window{d: 15 * time.Minute, bad: 0, total: 0.05}, 3 * time.Minute, policies.KindRate, 20, 0, true},
		{"rate, already enough", window{d: time.Hour, bad: 0, total: 1}, time.Hour, policies.KindRate, 20, 0, true},
		{"ratio, already enough", window{d: 15 * time.Minute, bad: 0, total: 90000}, 15 * time.Minute, policies.KindRatio, 0.01, 100, true},
		{"rate, over the limit: never", window{d: 15 * time.Minute, bad: 10, total: 0.25}, 15 * time.Minute, policies.KindRate, 20, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			need, ok := exposureToPass(tt.w, tt.exposure, tt.kind, a, tt.limit, tt.minS)
			if ok != tt.ok {
				t.Fatalf("ok %v, want %v (need %s)", ok, tt.ok, need)
			}
			if !ok {
				return
			}
			// The window as it would be after need, at the same pace.
			at := func(d time.Duration) window {
				f := d.Seconds() / tt.exposure.Seconds()
				return window{d: tt.w.d, bad: tt.w.bad * f, total: tt.w.total * f}
			}
			passes := func(w window) bool {
				_, _, hi := w.bounds(tt.kind, a)
				return hi <= tt.limit*(1+1e-9) && (tt.kind == policies.KindRate || w.total >= tt.minS*(1-1e-9))
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
	slow := timeToDecide(window{d: 15 * time.Minute, bad: 0, total: 120}, 10*time.Minute, policies.KindRatio, 0.001, 0.01, 100, 10)
	if !strings.Contains(slow, "at 0.2 events/s the 15m window cannot hold enough: ruling out a 10× burn needs") {
		t.Errorf("slow canary: %q", slow)
	}
	soon := timeToDecide(window{d: 15 * time.Minute, bad: 0, total: 600}, 2*time.Minute, policies.KindRatio, 0.001, 0.01, 100, 10)
	if !strings.Contains(soon, "at 5 events/s, about ") || !strings.HasSuffix(soon, " more") {
		t.Errorf("busy canary: %q", soon)
	}
	if s := timeToDecide(window{d: 15 * time.Minute, bad: 30, total: 900}, 15*time.Minute, policies.KindRatio, 0.001, 0.01, 100, 10); s != "" {
		t.Errorf("over the limit: %q, want nothing", s)
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
	for _, rate := range []float64{0.2, 1, 50} {
		for _, r := range Plan(p, rate) {
			if r.Kind != policies.KindRatio {
				continue
			}
			room := min(r.Soak, r.Window)
			events := r.LeastRate * room.Seconds()
			if hi := ratioUpper(0, events, p.Spec.Alpha); hi > p.Spec.SLIs[0].Budget()*fastestFactor(p)*1.0001 && r.SLI == p.Spec.SLIs[0].Name {
				t.Errorf("%s/%s: least rate %g gives %g events, bound %g over the limit", r.Stage, r.SLI, r.LeastRate, events, hi)
			}
			if r.CanPass != (rate >= r.LeastRate*(1-1e-9)) {
				t.Errorf("%s/%s at %g events/s: canPass %v but least rate %g", r.Stage, r.SLI, rate, r.CanPass, r.LeastRate)
			}
		}
	}
}
