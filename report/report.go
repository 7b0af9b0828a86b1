// Package report renders verdicts for people: a header, an aligned table
// and the reasons, in 100 columns, for a terminal; a line per look for a
// backtest or a watch, its reason wrapped under it; a live status block
// for a watch on a terminal.
// Machines read the JSON of analysis.Verdict instead.
package report

import (
	"fmt"
	"io"
	"math"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/phaseguard/phaseguard/analysis"
	"github.com/phaseguard/phaseguard/policies"
)

// Width is the number of columns the report fills: reasons wrap at it,
// at spaces, never inside a word.
const Width = 100

// Verdict writes v as a header, a table with a row per SLI (burn over
// each window and over the canary's life, events in the longest window) and, wrapped below it, the reason of every SLI that did
// not pass. A pass's reasons are in the table: no pair over its limit,
// and the life's bound.
func Verdict(w io.Writer, v *analysis.Verdict) error {
	stage := ""
	if v.Stage != "" {
		stage = "  stage " + v.Stage
	}
	fmt.Fprintf(w, "%s  policy %s%s  at %s\n", Badge(v.Decision), v.Policy, stage, v.Time.Format(time.RFC3339))
	for _, l := range Wrap(v.Reason, Width, "  ", "    ") {
		fmt.Fprintln(w, l)
	}
	if len(v.SLIs) == 0 {
		return nil
	}
	fmt.Fprintln(w)
	var wins []string
	for _, win := range v.SLIs[0].Windows {
		wins = append(wins, win.Window)
	}
	life := false
	for _, s := range v.SLIs {
		life = life || s.Life != nil
	}
	head := append([]string{"SLI", "VERDICT", "BUDGET"}, wins...)
	if life {
		head = append(head, "LIFE")
	}
	rows := [][]string{append(head, "EVENTS")}
	idle := false
	for _, s := range v.SLIs {
		row := []string{s.Name, string(s.Decision), Value(s.Kind, s.Budget)}
		for i := range wins {
			cell := "-"
			if i < len(s.Windows) {
				w := s.Windows[i]
				cell = Burn(w.Burn)
				// A window with data and no event has no burn, which is
				// not the "-" of no data.
				if s.Kind == policies.KindRatio && float64(w.Total) == 0 && math.IsNaN(float64(w.Burn)) {
					cell, idle = "idle", true
				}
			}
			row = append(row, cell)
		}
		if life {
			row = append(row, lifeCell(s))
		}
		rows = append(rows, append(row, Count(s.Samples)))
	}
	if err := Table(w, rows, 0); err != nil {
		return err
	}
	key := "burn over each window"
	if life {
		key += " and since the canary's start (LIFE)"
	}
	key += "; EVENTS counted in the " + wins[0] + " window"
	if idle {
		key += "; idle: no event in the window, - no data"
	}
	key += ". An SLI fails only when both windows of a pair burn over the pair's limit."
	for _, l := range Wrap(key, Width, "", "") {
		fmt.Fprintln(w, l)
	}
	first := true
	for _, s := range v.SLIs {
		if s.Decision == analysis.Pass {
			continue
		}
		if first {
			fmt.Fprintln(w)
			first = false
		}
		for _, l := range Wrap(fmt.Sprintf("%s (%s): %s", s.Name, s.Decision, s.Reason), Width, "  ", "      ") {
			fmt.Fprintln(w, l)
		}
	}
	foot := fmt.Sprintf("%s; every test at %s confidence or more (a reason gives its own), anytime-valid: however often the canary is looked at", Plural(v.Queries, "query", "queries"), analysis.FormatConfidence(v.Confidence))
	_, err := fmt.Fprintf(w, "\n%s\n", strings.Join(Wrap(foot, Width, "", ""), "\n"))
	return err
}

// lifeCell is the burn since the canary's start, or the longest
// window's when the canary is younger than it (the window then holds the
// whole life). Its bound is left out: the table's bounds are at the
// tests' level, the pass test's at alpha, and one column cannot say both
// (the reasons in the JSON do).
func lifeCell(s analysis.SLIResult) string {
	switch {
	case s.Life != nil:
		return Burn(s.Life.Burn)
	case len(s.Windows) > 0:
		return Burn(s.Windows[0].Burn)
	}
	return "-"
}

// Line is one look of a backtest as a log entry (Entry) of at most width
// runes a line: time, verdict, the highest burn over any SLI and window
// (a single window's: see Verdict for what trips) and the reason, which
// wraps under it indented by four spaces. Only a look's first line starts
// with its time.
func Line(v *analysis.Verdict, width int) []string {
	return Entry([]string{v.Time.Format(time.RFC3339), fmt.Sprintf("%-4s", v.Decision), fmt.Sprintf("peak window burn %-6s", Burn(analysis.Num(v.MaxBurn())))},
		v.Reason, width, "    ")
}

// Badge is the decision in capitals, for a glance.
func Badge(d analysis.Decision) string { return strings.ToUpper(string(d)) }

// Burn formats a burn rate: "12.3×", "0.42×", or "-" without data.
func Burn(b analysis.Num) string {
	f := float64(b)
	switch {
	case math.IsNaN(f) || math.IsInf(f, 0):
		return "-"
	case f >= 100:
		return fmt.Sprintf("%.0f×", f)
	case f >= 10:
		return fmt.Sprintf("%.1f×", f)
	}
	return fmt.Sprintf("%.2f×", f)
}

// Value formats a ratio as a percentage and a rate as events per hour.
func Value(kind string, n analysis.Num) string {
	f := float64(n)
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return "-"
	}
	if kind == "rate" {
		return fmt.Sprintf("%.3g/h", f)
	}
	return fmt.Sprintf("%.3g%%", f*100)
}

// Count formats an event count as the engine's reasons do
// (analysis.FormatCount). Prometheus's increase() extrapolates to the
// window's edges, so counts have fractions: they are rounded, and a count
// between 0 and ½ reads "<1", not "0" (there was an event) nor "0.3"
// (there are no thirds of an event); from a billion on, three significant
// digits.
func Count(n analysis.Num) string { return analysis.FormatCount(float64(n)) }

// Plural is n with its noun: "1 query", "14 queries".
func Plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

// Events is a count with its noun: "1 event", "<1 event", "12 events".
func Events(n analysis.Num) string {
	c := Count(n)
	if c == "1" || c == "<1" {
		return c + " event"
	}
	return c + " events"
}

// PValue formats a p-value for a reader: "p = 0.042", "p < 0.001",
// "p = 1"; "p -" when unknown. A p-value rounds to 0 only as "p < 0.001".
func PValue(p analysis.Num) string {
	f := float64(p)
	switch {
	case math.IsNaN(f) || math.IsInf(f, 0):
		return "p -"
	case f < 0.001:
		return "p < 0.001"
	case f >= 1:
		return "p = 1"
	}
	return fmt.Sprintf("p = %.2g", f)
}

// Shorten cuts s to at most n runes, at a space where there is one in its
// last third, marking the cut with "…"; never inside a word unless the
// word alone is longer than that.
func Shorten(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	if n < 2 {
		return "…"
	}
	r := []rune(s)[:n-1]
	if i := strings.LastIndexByte(string(r), ' '); i > 0 && utf8.RuneCountInString(string(r)[:i]) >= (n*2)/3 {
		return strings.TrimRight(string(r)[:i], " ,;:") + " …"
	}
	return string(r) + "…"
}

// Wrap breaks s into lines of at most width runes at spaces, the first
// line prefixed with first and the others with rest (a hanging indent). A
// word longer than a line stands on a line of its own, whole: a reason
// may quote a query or a label value, which must not be cut.
func Wrap(s string, width int, first, rest string) []string {
	var lines []string
	line, empty := first, true
	for _, word := range strings.Fields(s) {
		if !empty && utf8.RuneCountInString(line)+1+utf8.RuneCountInString(word) > width {
			lines = append(lines, line)
			line, empty = rest, true
		}
		if !empty {
			line += " "
		}
		line += word
		empty = false
	}
	if !empty || len(lines) == 0 {
		lines = append(lines, line)
	}
	return lines
}

// Table writes rows, the header first, in columns two spaces apart (as
// text/tabwriter would, widths in runes) within Width. When the rows are
// wider, column fold is narrowed to its widest cell that fits the width
// left, and a cell wider than that ends its line: the rest of its row
// follows on the next line, under its columns. A long SLI name (up to 63
// runes) thus stands on a line of its own, its figures below it.
func Table(w io.Writer, rows [][]string, fold int) error {
	var widths []int
	for _, r := range rows {
		for i, c := range r {
			if i == len(widths) {
				widths = append(widths, 0)
			}
			widths[i] = max(widths[i], utf8.RuneCountInString(c))
		}
	}
	total := 2 * (len(widths) - 1)
	for _, n := range widths {
		total += n
	}
	if total > Width && fold < len(widths)-1 {
		// The widest cell of the column that fits what is left.
		limit, fit := widths[fold]-(total-Width), 0
		for _, r := range rows {
			if fold < len(r) && utf8.RuneCountInString(r[fold]) <= limit {
				fit = max(fit, utf8.RuneCountInString(r[fold]))
			}
		}
		widths[fold] = fit
	}
	var b strings.Builder
	for _, r := range rows {
		var line strings.Builder
		col := 0 // the runes written on this line
		for i, c := range r {
			n := utf8.RuneCountInString(c)
			if i == len(r)-1 {
				line.WriteString(c)
				break
			}
			if n > widths[i] {
				b.WriteString(strings.TrimRight(line.String()+c, " ") + "\n")
				line.Reset()
				col += widths[i] + 2
				line.WriteString(strings.Repeat(" ", col))
				continue
			}
			line.WriteString(c + strings.Repeat(" ", widths[i]-n+2))
			col += widths[i] + 2
		}
		b.WriteString(strings.TrimRight(line.String(), " ") + "\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}
