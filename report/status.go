package report

import (
	"fmt"
	"math"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/prometheus/common/model"

	"github.com/phaseguard/phaseguard/analysis"
)

// Status is a watched stage after a look: what a watch shows live on a
// terminal (Lines) or logs for each look (Line).
type Status struct {
	Policy, Stage string
	Look, Looks   int           // this look's number, 1-based, and the stage's planned looks
	Soak          time.Duration // the stage's soak
	Left          time.Duration // stage time from this look to the soak's end
	NextIn        time.Duration // wall time until the next look; 0 when none is due
	Verdict       *analysis.Verdict
	// Final is true when this look decides the stage (analysis.StageDecided):
	// a hold before it is pending, the soak runs on.
	Final bool
	// Burns are the peak window burns of the looks so far, oldest first
	// (analysis.Verdict.MaxBurn; NaN without data), for the sparkline.
	Burns []float64
	// Factor is the top of the sparkline's scale: the policy's largest
	// window pair factor (a burn there or over fills a cell).
	Factor float64
}

// Lines is the live status, each line at most width runes: the stage and
// look, the decision so far with its worst SLI, the burn sparkline, and
// the reason in at most three lines. A pass names no worst SLI: its
// reason names the one nearest to a limit.
//
//	canary-50 of phase-default · look 12 of 30 · 9m of the 15m soak left · next look in 25s
//	HOLD so far (not final: the soak runs on) · worst: phase-mismatch 8.26× over 3m
//	peak window burn per look ▁▁▂▃▅▇  (█ = 10×)
//	  phase-mismatch: thin evidence: 1 bad of 121 events …
func (s Status) Lines(width int) []string {
	v := s.Verdict
	head := fmt.Sprintf("%s of %s · look %d of %d · %s of the %s soak left", s.Stage, s.Policy, s.Look, s.Looks,
		model.Duration(max(s.Left, 0).Round(time.Second)), model.Duration(s.Soak))
	if s.NextIn > 0 {
		head += fmt.Sprintf(" · next look in %s", s.NextIn.Round(time.Second))
	}
	lines := Wrap(head, width, "", "  ")
	state := Badge(v.Decision)
	if s.Final {
		state += " (decides the stage)"
	} else {
		state += " so far (not final: the soak runs on)"
	}
	if w := worst(v); w != "" && v.Decision != analysis.Pass {
		state += " · worst: " + w
	}
	lines = append(lines, Wrap(state, width, "", "  ")...)
	lines = append(lines, Shorten(fmt.Sprintf("peak window burn per look %s  (█ = %g×)", Sparkline(s.Burns, s.Factor, width-36), s.Factor), width))
	reason := Wrap(v.Reason, width, "  ", "    ")
	if len(reason) > 3 {
		reason = reason[:3]
		reason[2] = Shorten(reason[2]+" …", width)
	}
	return append(lines, reason...)
}

// Line is the status as a timestamped log entry (Entry) of at most width
// runes a line: the look's time, look k of n, the decision so far, the
// stage time left, the worst SLI and the reason, whole, which wraps under
// it indented by four spaces. Only a look's first line starts with its
// time.
func (s Status) Line(width int) []string {
	v := s.Verdict
	state := string(v.Decision)
	if !s.Final {
		state += " so far"
	}
	fields := []string{v.Time.Format(time.RFC3339), fmt.Sprintf("look %d/%d", s.Look, s.Looks), state,
		fmt.Sprintf("%s left", model.Duration(max(s.Left, 0).Round(time.Second)))}
	if w := worst(v); w != "" && v.Decision != analysis.Pass {
		fields = append(fields, "worst "+w)
	}
	return Entry(fields, v.Reason, width, "    ")
}

// Entry lays out a log entry in lines of at most width runes: fields two
// spaces apart, then text, its words a space apart; the lines after the
// first start with indent (a hanging indent), so that each entry's first
// line stands out. A field moves to the next line whole rather than
// being cut, and text wraps at spaces, never inside a word (see Wrap); a
// field or word longer than a line stands whole on a line of its own.
//
//	2026-01-01T00:21:30Z  look 3/30  hold so far  13m30s left  worst flaps 30.0× over 1m  flaps: thin
//	    evidence: 1 event since the canary's start (11m30s) cannot yet rule out a 10× burn (burn 2.61×,
func Entry(fields []string, text string, width int, indent string) []string {
	var lines []string
	line, empty := "", true
	add := func(sep, s string) {
		if !empty && utf8.RuneCountInString(line)+len(sep)+utf8.RuneCountInString(s) > width {
			lines = append(lines, strings.TrimRight(line, " "))
			line, empty = indent, true
		}
		if !empty {
			line += sep
		}
		line += s
		empty = false
	}
	for _, f := range fields {
		add("  ", f)
	}
	for i, word := range strings.Fields(text) {
		sep := " "
		if i == 0 {
			sep = "  "
		}
		add(sep, word)
	}
	return append(lines, strings.TrimRight(line, " "))
}

// worst names the SLI with the worst decision (the highest burn among
// equals) and its peak window burn: "phase-mismatch 8.26× over 3m", or
// "flaps (hold, no burn)" when it burns nothing. Empty when no SLI has a
// burn.
func worst(v *analysis.Verdict) string {
	var top *analysis.SLIResult
	topBurn := math.Inf(-1)
	for i := range v.SLIs {
		s := &v.SLIs[i]
		b := float64(s.MaxBurn())
		if math.IsNaN(b) {
			b = -1
		}
		if top == nil || s.Decision.Severity() > top.Decision.Severity() ||
			(s.Decision.Severity() == top.Decision.Severity() && b > topBurn) {
			top, topBurn = s, b
		}
	}
	if top == nil || topBurn < 0 {
		if top != nil && top.Decision != analysis.Pass {
			return top.Name + " (no data)"
		}
		return ""
	}
	if topBurn == 0 {
		// Worst by its decision, not its burn: "worst: flaps 0.00×"
		// named a worst that burns nothing.
		return top.Name + " (" + string(top.Decision) + ", no burn)"
	}
	window := ""
	for _, w := range top.Windows {
		if float64(w.Burn) == topBurn {
			window = " over " + w.Window
			break
		}
	}
	return fmt.Sprintf("%s %s%s", top.Name, Burn(analysis.Num(topBurn)), window)
}

// sparks are the sparkline's eight levels, lowest first.
var sparks = []rune("▁▂▃▄▅▆▇█")

// Sparkline draws burns, the last at most n of them, one cell each, on a
// log scale from 0 to top (a burn of top or more is a full cell, budget
// (1×) about a third): "▁▁▂▃█". A look without data is "·".
func Sparkline(burns []float64, top float64, n int) string {
	if n < 1 {
		return ""
	}
	if len(burns) > n {
		burns = burns[len(burns)-n:]
	}
	top = max(top, 1)
	var b strings.Builder
	for _, x := range burns {
		if math.IsNaN(x) || x < 0 {
			b.WriteRune('·')
			continue
		}
		level := int(math.Round(math.Log1p(x) / math.Log1p(top) * float64(len(sparks)-1)))
		b.WriteRune(sparks[min(max(level, 0), len(sparks)-1)])
	}
	return b.String()
}
