package report

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestEntry: a log entry keeps its fields two spaces apart and whole,
// wraps its text at spaces under a hanging indent, and never cuts a field
// or a word, however long.
func TestEntry(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("x", 30)
	for _, tt := range []struct {
		name   string
		fields []string
		text   string
		width  int
		want   []string
	}{
		{"fits", []string{"12:00", "pass "}, "all good", 40, []string{"12:00  pass   all good"}},
		{"padding kept before the text, trimmed at a line's end", []string{"12:00", "burn -     "}, "", 40, []string{"12:00  burn -"}},
		{"text wraps under the fields", []string{"12:00", "hold"}, "one two three four five six", 20,
			[]string{"12:00  hold  one two", "    three four five", "    six"}},
		{"a field too long for the line moves whole", []string{"12:00", "look 3/30", "worst flaps 30.0× over 1m"}, "flaps: thin", 30,
			[]string{"12:00  look 3/30", "    worst flaps 30.0× over 1m", "    flaps: thin"}},
		{"the first word moves when it does not fit", []string{"12:00  hold  peak burn"}, "evidence", 25,
			[]string{"12:00  hold  peak burn", "    evidence"}},
		{"a word longer than a line stands whole", []string{"12:00"}, "query " + long + " fails", 20,
			[]string{"12:00  query", "    " + long, "    fails"}},
		{"spaces in the text read as one", []string{"t"}, "a  b\nc", 40, []string{"t  a b c"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := Entry(tt.fields, tt.text, tt.width, "    ")
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Entry (-want +got):\n%s", diff)
			}
		})
	}
}
