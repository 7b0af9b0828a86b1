package analysis

import (
	"math"
	"testing"
)

// Reference values from R: binom.test(x, n, alternative=...)$conf.int with
// conf.level 0.95, and poisson.test(k, alternative=...)$conf.int.
func TestBounds(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		got  float64
		want float64
	}{
		{"ratio upper 0/10", ratioUpper(0, 10, 0.05), 0.2588656},
		{"ratio lower 10/10", ratioLower(10, 10, 0.05), 0.7411344},
		{"ratio lower 5/10", ratioLower(5, 10, 0.05), 0.2224411},
		{"ratio upper 5/10", ratioUpper(5, 10, 0.05), 0.7775589},
		{"ratio lower 0/10", ratioLower(0, 10, 0.05), 0},
		{"count upper 0", countUpper(0, 0.05), 2.995732},
		{"count lower 10", countLower(10, 0.05), 5.425406},
		{"count upper 10", countUpper(10, 0.05), 16.96222},
		{"count lower 0", countLower(0, 0.05), 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if math.Abs(tt.got-tt.want) > 1e-5 {
				t.Errorf("got %.7f, want %.7f", tt.got, tt.want)
			}
		})
	}
}

func TestWorseP(t *testing.T) {
	t.Parallel()
	// Equal rates and exposures, ratio 1: half of the events are the
	// canary's; P(X >= 10 | Binomial(20, 0.5)) = 0.5880985.
	if got := worseP(10, 1000, 10, 1000, 1); math.Abs(got-0.5880985) > 1e-6 {
		t.Errorf("equal counts: p = %.7f, want 0.5880985", got)
	}
	// 30 canary events against 3 stable ones with equal exposure: far more
	// than twice stable. P(X >= 30 | Binomial(33, 2/3)) = 0.0012848 (exact sum).
	if got := worseP(30, 1000, 3, 1000, 2); math.Abs(got-0.0012848) > 1e-6 {
		t.Errorf("canary worse: p = %.7f, want 0.0012848", got)
	}
	if got := worseP(0, 1000, 5, 1000, 2); got != 1 {
		t.Errorf("no canary events: p = %g, want 1", got)
	}
}
