package analysis

import "testing"

func TestConfidence(t *testing.T) {
	for _, tc := range []struct {
		a    float64
		want string
	}{
		{0.05, "95%"},
		{0.01, "99%"},
		{0.001, "99.9%"},
		{0.0005, "99.95%"},
		{8e-5, "99.992%"},
		{1 - 0.9999, "99.99%"},
		{1e-6, "99.9999%"},
		{1.2e-7, "99.99999%"},
		{1e-15, "more than 99.999999999%"},
	} {
		if got := confidence(tc.a); got != tc.want {
			t.Errorf("confidence(%g) = %q, want %q", tc.a, got, tc.want)
		}
	}
}
