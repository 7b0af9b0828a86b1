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
	want := `FAIL  policy phase-default  stage canary-50  at 2026-01-01T00:25:30Z
  drain-failure: burning 23× budget

SLI            VERDICT  BUDGET  5m     1m    EVENTS
drain-failure  fail     0.1%    23.0×  123×  44979
flaps          hold     2/h     -      -     -
burn over each window; EVENTS counted in the 5m window. An SLI fails only when both windows of a
pair burn over the pair's limit.

  drain-failure (fail): burning
  flaps (hold): no data

14 queries; every test at 99.99% confidence or more (a reason gives its own), anytime-valid: however
often the canary is looked at
`
	if got := b.String(); got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
}

// TestVerdictIdle: a ratio window with data and no event reads "idle",
// told apart from the "-" of no data, and the caption says so.
func TestVerdictIdle(t *testing.T) {
	t.Parallel()
	nan := analysis.Num(math.NaN())
	v := &analysis.Verdict{Policy: "p", Decision: analysis.Hold, SLIs: []analysis.SLIResult{
		{Name: "drain-failure", Kind: "ratio", Decision: analysis.Hold, Budget: 0.001, Samples: 0,
			Windows: []analysis.WindowResult{{Window: "5m", Total: 0, Burn: nan}, {Window: "1m", Total: nan, Burn: nan}}},
	}}
	var b strings.Builder
	if err := Verdict(&b, v); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"drain-failure  hold     0.1%    idle  -   ", "idle: no event in the window, - no data"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("lacks %q:\n%s", want, b.String())
		}
	}
}

// TestTableWidth: a table wider than Width (a 63-rune SLI name, the
// longest a policy allows, and three window pairs) keeps every line
// within Width: the long name stands whole on a line of its own and its
// figures follow under their columns; the short names keep their rows.
func TestTableWidth(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("drain-failure-", 3) + "of-the-checkout-svc-x"
	if len(long) != 63 {
		t.Fatalf("name of %d runes", len(long))
	}
	head := []string{"SLI", "VERDICT", "BUDGET", "1h", "30m", "15m", "5m", "3m", "1m", "LIFE", "EVENTS"}
	row := func(name string) []string {
		return []string{name, "pass", "0.1%", "0.22×", "0.31×", "0.45×", "1.02×", "0.90×", "1.61×", "0.27×", "123456"}
	}
	var b strings.Builder
	if err := Table(&b, [][]string{head, row("flaps"), row(long), row("slow-propagation")}, 0); err != nil {
		t.Fatal(err)
	}
	got := b.String()
	want := `SLI               VERDICT  BUDGET  1h     30m    15m    5m     3m     1m     LIFE   EVENTS
flaps             pass     0.1%    0.22×  0.31×  0.45×  1.02×  0.90×  1.61×  0.27×  123456
` + long + `
                  pass     0.1%    0.22×  0.31×  0.45×  1.02×  0.90×  1.61×  0.27×  123456
slow-propagation  pass     0.1%    0.22×  0.31×  0.45×  1.02×  0.90×  1.61×  0.27×  123456
`
	if got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
	for _, l := range strings.Split(got, "\n") {
		if n := len([]rune(l)); n > Width {
			t.Errorf("line of %d runes: %q", n, l)
		}
	}
	// Within Width, as text/tabwriter lays it out, name column as wide as
	// its longest name.
	b.Reset()
	if err := Table(&b, [][]string{{"SLI", "EVENTS"}, {"a", "1"}, {"drain-failure", "-"}}, 0); err != nil {
		t.Fatal(err)
	}
	if want := "SLI            EVENTS\na              1\ndrain-failure  -\n"; b.String() != want {
		t.Errorf("got %q, want %q", b.String(), want)
	}
}

func TestFormats(t *testing.T) {
	t.Parallel()
	nan := analysis.Num(math.NaN())
	tests := []struct{ got, want string }{
		{Burn(0.4234), "0.42×"}, {Burn(12.34), "12.3×"}, {Burn(250), "250×"}, {Burn(analysis.Num(math.Inf(1))), "-"},
		{Value("ratio", 0.001), "0.1%"}, {Value("rate", 32), "32/h"}, {Count(nan), "-"},
		// increase() extrapolates: a third of an event is an event seen, not 0.3 nor 0.
		{Count(0.3), "<1"}, {Count(0), "0"}, {Count(0.6), "1"}, {Count(44979.4), "44979"},
		{Events(1), "1 event"}, {Events(0.3), "<1 event"}, {Events(1.4), "1 event"}, {Events(2), "2 events"}, {Events(0), "0 events"},
		{PValue(0), "p < 0.001"}, {PValue(1e-9), "p < 0.001"}, {PValue(0.0421), "p = 0.042"}, {PValue(1), "p = 1"}, {PValue(nan), "p -"},
		{Shorten("abcdef", 4), "abc…"}, {Shorten("abc", 4), "abc"},
		// A cut falls between words when one ends in the last third.
		{Shorten("burning 30.0× budget over 5m", 20), "burning 30.0× …"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("got %q, want %q", tt.got, tt.want)
		}
	}
}

// TestWrap: no line is wider than asked unless one word alone is, and no
// word is cut: the words read back are the words given.
func TestWrap(t *testing.T) {
	t.Parallel()
	text := "thin evidence: 1 bad of 121 events since the canary's start (10m) cannot yet rule out a 10× burn (burn 8.26×, at most 65.3×); at 0.2 events/s, within its budget from here, ruling out a 10× burn needs about 1h13m more, and sum(increase(phaseguard_phase_mismatch_total{service=\"checkout\"}[15m])) is one word"
	for _, width := range []int{20, 40, 100} {
		lines := Wrap(text, width, "  ", "    ")
		var words []string
		for i, l := range lines {
			if n := len([]rune(l)); n > width && len(strings.Fields(l)) > 1 {
				t.Errorf("width %d: line %d has %d runes: %q", width, i, n, l)
			}
			prefix := "    "
			if i == 0 {
				prefix = "  "
			}
			if !strings.HasPrefix(l, prefix) {
				t.Errorf("width %d: line %d lacks its indent: %q", width, i, l)
			}
			words = append(words, strings.Fields(l)...)
		}
		if got, want := strings.Join(words, " "), strings.Join(strings.Fields(text), " "); got != want {
			t.Errorf("width %d: words changed:\n%s\n%s", width, got, want)
		}
	}
	if got := Wrap("", 10, "  ", "  "); len(got) != 1 || got[0] != "  " {
		t.Errorf("empty text: %q", got)
	}
}

func TestSparkline(t *testing.T) {
	t.Parallel()
	nan := math.NaN()
	for _, tt := range []struct {
		burns []float64
		n     int
		want  string
	}{
		{[]float64{0, 0.3, 1, 3, 10, 80, nan}, 10, "▁▂▃▅██·"},
		{[]float64{0, 1, 2, 3, 4}, 3, "▄▅▆"}, // the last n
		{nil, 5, ""},
	} {
		if got := Sparkline(tt.burns, 10, tt.n); got != tt.want {
			t.Errorf("Sparkline(%v, 10, %d) = %q, want %q", tt.burns, tt.n, got, tt.want)
		}
	}
}

// TestStatus: the live status fits the width it is given, tells a pending
// hold from a deciding one, and names the worst SLI with its window.
func TestStatus(t *testing.T) {
	t.Parallel()
	v := &analysis.Verdict{Time: time.Date(2026, 1, 1, 0, 16, 0, 0, time.UTC), Decision: analysis.Hold,
		Reason: strings.Repeat("phase-mismatch: thin evidence: 1 bad of 121 events cannot yet rule out a 10× burn; ", 4),
		SLIs: []analysis.SLIResult{
			{Name: "drain-failure", Decision: analysis.Pass, Windows: []analysis.WindowResult{{Window: "15m", Burn: 0.2}, {Window: "1m", Burn: 3}}},
			{Name: "phase-mismatch", Decision: analysis.Hold, Windows: []analysis.WindowResult{{Window: "15m", Burn: 1.2}, {Window: "3m", Burn: 2.5}}},
		}}
	st := Status{Policy: "phase-default", Stage: "canary-50", Look: 12, Looks: 30, Soak: 15 * time.Minute, Left: 9 * time.Minute,
		NextIn: 25 * time.Second, Verdict: v, Burns: []float64{0.1, 0.2, math.NaN(), 2.5}, Factor: 10}
	for _, width := range []int{60, 99} {
		lines := st.Lines(width)
		for _, l := range lines {
			if n := len([]rune(l)); n > width {
				t.Errorf("width %d: line of %d runes: %q", width, n, l)
			}
		}
		all := strings.Join(strings.Fields(strings.Join(lines, " ")), " ")
		for _, want := range []string{"look 12 of 30", "9m of the 15m soak left", "next look in 25s", "HOLD so far", "worst: phase-mismatch 2.50× over 3m", "▁▂·▅"} {
			if !strings.Contains(all, want) {
				t.Errorf("width %d: status lacks %q:\n%s", width, want, strings.Join(lines, "\n"))
			}
		}
	}
	st.Final, st.NextIn = true, 0
	if got := strings.Join(st.Lines(99), "\n"); !strings.Contains(got, "HOLD (decides the stage)") || strings.Contains(got, "next look") {
		t.Errorf("deciding look:\n%s", got)
	}
	if got := st.Line(Width); got[0] != "2026-01-01T00:16:00Z  look 12/30  hold  9m left  worst phase-mismatch 2.50× over 3m  phase-mismatch:" {
		t.Errorf("line: %q", got)
	}
}
