// Package report renders verdicts for people: an aligned table for a
// terminal, one line per look for a backtest. Machines read the JSON of
// analysis.Verdict instead.
package report

import (
	"fmt"
	"io"
	"math"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/phaseguard/phaseguard/analysis"
)

// Verdict writes v as a header line and a table with a row per SLI.
func Verdict(w io.Writer, v *analysis.Verdict) error {
	stage := ""
	if v.Stage != "" {
		stage = " stage " + v.Stage
	}
	fmt.Fprintf(w, "%s  policy %s%s  at %s\n", Badge(v.Decision), v.Policy, stage, v.Time.Format(time.RFC3339))
	fmt.Fprintf(w, "  %s\n\n", v.Reason)
	if len(v.SLIs) == 0 {
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	var wins []string
	for _, win := range v.SLIs[0].Windows {
		wins = append(wins, "BURN "+win.Window)
	}
	fmt.Fprintf(tw, "SLI\tVERDICT\tVALUE\tBUDGET\t%s\tSAMPLES\tREASON\n", strings.Join(wins, "\t"))
	for _, s := range v.SLIs {
		var burns []string
		for _, win := range s.Windows {
			burns = append(burns, Burn(win.Burn))
		}
		for len(burns) < len(wins) {
			burns = append(burns, "-")
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", s.Name, s.Decision, Value(s.Kind, s.Value), Value(s.Kind, s.Budget),
			strings.Join(burns, "\t"), Count(s.Samples), Shorten(s.Reason, 110))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintf(w, "\n%d queries; bounds at %s confidence, anytime-valid: however often the canary is looked at\n", v.Queries, analysis.FormatConfidence(v.Confidence))
	return err
}

// Line is one look of a backtest: time, verdict, max burn and reason.
func Line(v *analysis.Verdict) string {
	return fmt.Sprintf("%s  %-4s  max burn %-7s  %s", v.Time.Format(time.RFC3339), v.Decision, Burn(analysis.Num(v.MaxBurn())), v.Reason)
}

// Badge is the decision in capitals, for a glance.
func Badge(d analysis.Decision) string { return strings.ToUpper(string(d)) }

// Burn formats a burn rate: "12×", "0.42×", or "-" without data.
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

// Count formats an event count.
func Count(n analysis.Num) string {
	f := float64(n)
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return "-"
	}
	return fmt.Sprintf("%.0f", f)
}

// Shorten cuts s to at most n runes, marking the cut.
func Shorten(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}
