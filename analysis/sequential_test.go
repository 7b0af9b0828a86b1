package analysis

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"gonum.org/v1/gonum/stat/distuv"

	"github.com/phaseguard/phaseguard/policies"
)

// TestConfidenceSequence: the bounds bracket the point burn, the fail test
// is "the lower bound is over 1", the pass test "the upper bound is under
// the factor", and a clean canary passes once its exposure would hold
// log(1/(0.8a)) bad events at the factor (the pass mixture's weight on no
// bad event is 0.8).
func TestConfidenceSequence(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		kind         string
		k, n, budget float64
		a            float64
		wantOver     bool
		wantRulesOut bool // burn ≥ 10
		name         string
	}{
		{policies.KindRatio, 25, 55, 0.001, 1e-4, true, false, "25 bad of 55 against 0.1 % fails (DESIGN.md)"},
		{policies.KindRatio, 0, 55, 0.001, 1e-4, false, false, "0 of 55: nothing either way"},
		{policies.KindRatio, 0, 5000, 0.001, 0.05, false, true, "0 of 5000 rules out 10× (needs 3.22/0.01 = 322)"},
		{policies.KindRatio, 30, 10000, 0.001, 1e-3, true, true, "3× with 10000 events"},
		{policies.KindRate, 0, 9.0 / 60, 2, 0.05, false, false, "no flap in 9m: 3.0 expected at 10×, not yet"},
		{policies.KindRate, 0, 10.0 / 60, 2, 0.05, false, true, "no flap in 10m: 3.33 expected at 10×, enough"},
		{policies.KindRate, 20, 0.25, 2, 1e-3, true, false, "20 flaps in 15m against 2/h"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			w := window{bad: tt.k, total: tt.n}
			lo, hi := lowerBurn(tt.kind, tt.k, tt.n, tt.budget, tt.a), upperBurn(tt.kind, tt.k, tt.n, tt.budget, 0.05)
			point := tt.k / tt.n / tt.budget
			if lo > point*(1+1e-9) || hi < point*(1-1e-9) {
				t.Errorf("bounds [%g, %g] do not bracket the point burn %g", lo, hi, point)
			}
			if got := w.overBudget(tt.kind, tt.budget, tt.a); got != tt.wantOver || got != (lo > 1) {
				t.Errorf("overBudget %v (lower bound %g), want %v", got, lo, tt.wantOver)
			}
			if got := w.rulesOut(tt.kind, tt.budget, 10, 0.05); got != tt.wantRulesOut || got != (hi < 10) {
				t.Errorf("rulesOut(10×) %v (upper bound %g), want %v", got, hi, tt.wantRulesOut)
			}
		})
	}
}

// TestFalsePassBound: a canary burning exactly the fastest factor, looked
// at every 10s over 40 minutes, passes the pass test at some look in at
// most alpha of runs, for a ratio and a rate SLI.
func TestFalsePassBound(t *testing.T) {
	t.Parallel()
	const (
		runs   = 400
		factor = 10.0
		alpha  = 0.05
		secs   = 40 * 60
		every  = 10
	)
	rng := rand.New(rand.NewPCG(5, 6))
	for _, kind := range []string{policies.KindRatio, policies.KindRate} {
		budget := 0.01 // ratio: 1 % of 2 events/s
		if kind == policies.KindRate {
			budget = 2 // flaps an hour
		}
		passed := 0
		for range runs {
			var bad, total float64
			for s := 1; s <= secs; s++ {
				if kind == policies.KindRate {
					bad += distuv.Poisson{Lambda: factor * budget / 3600, Src: rng}.Rand()
					total = float64(s) / 3600
				} else {
					n := distuv.Poisson{Lambda: 2, Src: rng}.Rand()
					bad += distuv.Binomial{N: n, P: factor * budget, Src: rng}.Rand()
					total += n
				}
				if s%every == 0 && (window{bad: bad, total: total}).rulesOut(kind, budget, factor, alpha) {
					passed++
					break
				}
			}
		}
		rate := float64(passed) / runs
		t.Logf("%s: %.4f of canaries burning %g× passed at some look (bound %g)", kind, rate, factor, alpha)
		if rate > alpha {
			t.Errorf("%s: false-pass rate %.4f over alpha %g", kind, rate, alpha)
		}
	}
}

// TestRestartShares: the restarts' shares of a test's level sum to under
// one however many there are, and those within the planned canary get
// about 1/(4H) at least.
func TestRestartShares(t *testing.T) {
	t.Parallel()
	for _, h := range []int{1, 4, 12, 60} {
		sum := 0.0
		for j := range 1_000_000 {
			sum += restartShare(j, h)
		}
		if sum >= 1 {
			t.Errorf("H=%d: shares sum to %g, want under 1", h, sum)
		}
		if s := restartShare(h, h); s < 1/(4*float64(h+1))*(1-1e-12) {
			t.Errorf("H=%d: the last planned start's share %g, want at least %g", h, s, 1/(4*float64(h+1)))
		}
	}
}

// TestLiveStarts: a look tests the restarts of the last long window, on a
// grid of half windows from the canary's start, indexed from it; without
// a start, each takes the index H.
func TestLiveStarts(t *testing.T) {
	t.Parallel()
	since := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	got := liveStarts(5*time.Minute, since, since.Add(11*time.Minute), 12)
	want := []struct {
		j   int
		age time.Duration
	}{{3, 3*time.Minute + 30*time.Second}, {4, time.Minute}}
	if len(got) != len(want) {
		t.Fatalf("starts %+v, want %+v", got, want)
	}
	for i, w := range want {
		if got[i].j != w.j || got[i].age != w.age || !got[i].at.Equal(since.Add(time.Duration(w.j)*150*time.Second)) {
			t.Errorf("start %d: %+v, want j %d age %s", i, got[i], w.j, w.age)
		}
	}
	for _, s := range liveStarts(5*time.Minute, time.Time{}, since.Add(11*time.Minute), 12) {
		if s.j != 12 || s.age > 5*time.Minute {
			t.Errorf("without a start: %+v, want index 12 and age at most 5m", s)
		}
	}
	if s := liveStarts(5*time.Minute, since, since, 12); len(s) != 0 {
		t.Errorf("at the start: %+v, want none", s)
	}
	if math.IsNaN(restartShare(0, 0)) {
		t.Error("restartShare(0, 0) is NaN")
	}
}

// TestBoundsAtTheEdgeOfFloat64: a burn that overflows float64 (a hostile
// counter near 1e308 over a short exposure) still gives bounds, at once:
// lowerBurn's search once divided an infinite burn by 4 for ever.
func TestBoundsAtTheEdgeOfFloat64(t *testing.T) {
	t.Parallel()
	for _, kind := range []string{policies.KindRatio, policies.KindRate} {
		lo := lowerBurn(kind, 1e308, 1e-10, 1e-6, 0.01)
		hi := upperBurn(kind, 1e308, 1e-10, 1e-6, 0.01)
		if math.IsNaN(lo) || math.IsNaN(hi) || lo > hi {
			t.Errorf("%s: bounds [%g, %g]", kind, lo, hi)
		}
	}
}
