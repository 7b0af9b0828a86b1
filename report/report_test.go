package report

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/phaseguard/phaseguard/analysis"
)

func TestVerdict(t *testing.T) {
	t.Parallel()
	nan := analysis.Num(math.NaN())
	v := &analysis.Verdict{
		Time: time.Date(2026, 1, 1, 0, 25, 30, 0, time.UTC), Policy: "phase-default", Stage: "canary-50",
		Decision: analysis.Fail, Reason: "drain-failure: burning 23× budget", Confidence: 0.9999, Queries: 14,
		SLIs: []analysis.SLIResult{
			{Name: "drain-failure", Kind: "ratio", Decision: analysis.Fail, Reason: "burning", Budget: 0.001, Value: 0.00765, Samples: 44979,
				Windows: []analysis.WindowResult{{Window: "5m", Burn: 23}, {Window: "1m", Burn: 123.4}}},
			{Name: "flaps", Kind: "rate", Decision: analysis.Hold, Reason: "no data", Budget: 2, Value: nan, Samples: nan,
				Windows: []analysis.WindowResult{{Window: "5m", Burn: nan}, {Window: "1m", Burn: nan}}},
		},
	}
	var b strings.Builder
	if err := Verdict(&b, v); err != nil {
		t.Fatal(err)
	}
	want := `FAIL  policy phase-default stage canary-50  at 2026-01-01T00:25:30Z
  drain-failure: burning 23× budget

SLI            VERDICT  VALUE   BUDGET  BURN 5m  BURN 1m  SAMPLES  REASON
drain-failure  fail     0.765%  0.1%    23.0×    123×     44979    burning
flaps          hold     -       2/h     -        -        -        no data

14 queries; bounds at 99.99% confidence, anytime-valid: however often the canary is looked at
`
	if got := b.String(); got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
}

func TestFormats(t *testing.T) {
	t.Parallel()
	tests := []struct{ got, want string }{
		{Burn(0.4234), "0.42×"}, {Burn(12.34), "12.3×"}, {Burn(250), "250×"}, {Burn(analysis.Num(math.Inf(1))), "-"},
		{Value("ratio", 0.001), "0.1%"}, {Value("rate", 32), "32/h"}, {Count(analysis.Num(math.NaN())), "-"},
		{Shorten("abcdef", 4), "abc…"}, {Shorten("abc", 4), "abc"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("got %q, want %q", tt.got, tt.want)
		}
	}
}
