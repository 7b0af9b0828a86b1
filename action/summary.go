package action

import (
	_ "embed"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"text/template"
	"time"

	"github.com/phaseguard/phaseguard/analysis"
	"github.com/phaseguard/phaseguard/policies"
)

// The job summary is Markdown rendered with text/template: go-githubactions'
// AddStepSummaryTemplate uses html/template, whose escaping breaks Markdown
// (a '>' in a reason, '&' in a query). Every value that is not a number
// goes through md (table cells, text) or a code fence longer than any
// backtick run in it (queries), so a value cannot change the page's
// structure.

//go:embed summary.md.tmpl
var summaryTemplate string

var summaryTmpl = template.Must(template.New("summary").Funcs(template.FuncMap{
	"md":    md,
	"code":  code,
	"fence": fence,
	"icon":  icon,
}).Parse(summaryTemplate))

// summary is what the template renders.
type summary struct {
	Decision     string
	Reason       string
	Stage        string
	Policy       string
	Service      string
	Namespace    string
	CanaryHash   string
	StableHash   string
	Environment  string
	DeploymentID int64
	RunURL       string
	At           string
	Looks        int
	PlannedLooks int
	Wait         bool
	Confidence   string
	MaxBurn      string
	DryRun       bool
	Rollback     bool
	Rollout      string
	Aborted      bool
	Notes        []string
	InputErrors  []string
	SLIs         []sliSummary
	Chart        string
	Legend       string
	Queries      int
}

// sliSummary is one SLI's table.
type sliSummary struct {
	Name     string
	Kind     string
	Decision string
	Reason   string
	Value    string
	Budget   string
	Samples  string
	Error    string
	Tripped  string
	Baseline string
	Windows  []windowSummary
	Queries  []string
}

type windowSummary struct {
	Window, Value, Burn, Bounds, Counts string
}

func renderSummary(s *summary) (string, error) {
	var b strings.Builder
	if err := summaryTmpl.Execute(&b, s); err != nil {
		return "", fmt.Errorf("render job summary: %w", err)
	}
	return b.String(), nil
}

// sliSummaries formats the SLIs of a verdict.
func sliSummaries(v *analysis.Verdict) []sliSummary {
	var out []sliSummary
	for _, s := range v.SLIs {
		ratio := s.Kind == policies.KindRatio
		row := sliSummary{
			Name:     s.Name,
			Kind:     s.Kind,
			Decision: string(s.Decision),
			Reason:   s.Reason,
			Value:    fmtValue(float64(s.Value), ratio),
			Budget:   fmtValue(float64(s.Budget), ratio),
			Samples:  fmtCount(float64(s.Samples)),
			Error:    s.Error,
			Tripped:  strings.Join(s.Tripped, ", "),
			Queries:  s.Queries,
		}
		for _, w := range s.Windows {
			counts := fmtCount(float64(w.Bad)) + " / " + fmtCount(float64(w.Total))
			if !ratio {
				counts = fmtCount(float64(w.Bad)) + " events"
			}
			row.Windows = append(row.Windows, windowSummary{
				Window: w.Window,
				Value:  fmtValue(float64(w.Value), ratio),
				Burn:   fmtBurn(float64(w.Burn)),
				Bounds: fmtBurn(float64(w.BurnLower)) + " – " + fmtBurn(float64(w.BurnUpper)),
				Counts: counts,
			})
		}
		if b := s.Baseline; b != nil {
			row.Baseline = fmt.Sprintf("stable %s: value %s, samples %s, p = %s", b.Hash, fmtValue(float64(b.Value), ratio), fmtCount(float64(b.Samples)), fmtNum(float64(b.PValue)))
			if b.Worse {
				row.Baseline += "; canary significantly worse"
			}
			if b.AlsoBad {
				row.Baseline += "; stable burns too (not the canary's fault)"
			}
		}
		out = append(out, row)
	}
	return out
}

// Chart colours: Mermaid's xychart draws lines in its palette order and
// has no legend, so the palette is set and the legend written under the
// chart with a square of the same colour.
var chartPalette = []struct{ hex, square string }{
	{"#d62728", "🟥"}, {"#1f77b4", "🟦"}, {"#2ca02c", "🟩"}, {"#ff7f0e", "🟧"},
	{"#9467bd", "🟪"}, {"#e6c619", "🟨"}, {"#8c564b", "🟫"}, {"#000000", "⬛"},
}

// burnChart draws the burn of each SLI: over the looks of a watched stage
// (max burn over the SLI's windows at each look), or, with one look, over
// the windows of that look, longest first. SLIs with a missing value are
// left out and named: a gap must not be drawn as zero.
func burnChart(looks []*analysis.Verdict, start time.Time) (chart, legend string) {
	if len(looks) == 0 || len(looks[len(looks)-1].SLIs) == 0 {
		return "", ""
	}
	last := looks[len(looks)-1]
	type line struct {
		name   string
		values []float64
	}
	// burns returns the values of SLI i along the x axis; false when the
	// SLI cannot be drawn there.
	var burns func(i int) ([]float64, bool)
	var xaxis string
	if len(looks) > 1 {
		burns = func(i int) ([]float64, bool) {
			var out []float64
			for _, v := range looks {
				if i >= len(v.SLIs) || v.SLIs[i].Name != last.SLIs[i].Name {
					return nil, false
				}
				out = append(out, float64(v.SLIs[i].MaxBurn()))
			}
			return out, true
		}
		from := looks[0].Time.Sub(start).Minutes()
		to := last.Time.Sub(start).Minutes()
		xaxis = fmt.Sprintf(`x-axis "minutes since %s" %s --> %s`, start.UTC().Format("15:04:05Z"), fmtAxis(from), fmtAxis(to))
	} else {
		var windows []string
		for _, w := range last.SLIs[0].Windows {
			windows = append(windows, strconv.Quote(w.Window))
		}
		burns = func(i int) ([]float64, bool) {
			ws := last.SLIs[i].Windows
			out := make([]float64, 0, len(ws))
			for _, w := range ws {
				out = append(out, float64(w.Burn))
			}
			return out, len(ws) == len(windows)
		}
		xaxis = "x-axis \"window\" [" + strings.Join(windows, ", ") + "]"
	}
	var lines []line
	var missing []string
	for i, s := range last.SLIs {
		values, ok := burns(i)
		if !ok || slices.ContainsFunc(values, func(b float64) bool { return math.IsNaN(b) || math.IsInf(b, 0) }) {
			missing = append(missing, s.Name)
			continue
		}
		lines = append(lines, line{name: s.Name, values: values})
	}
	if len(lines) == 0 {
		return "", "No SLI has burn values to chart (" + strings.Join(missing, ", ") + ")."
	}
	var palette []string
	for i := range lines {
		palette = append(palette, chartPalette[i%len(chartPalette)].hex)
	}
	var c strings.Builder
	fmt.Fprintf(&c, "%%%%{init: {\"themeVariables\": {\"xyChart\": {\"plotColorPalette\": \"%s\"}}}}%%%%\n", strings.Join(palette, ", "))
	c.WriteString("xychart-beta\n")
	if len(looks) > 1 {
		fmt.Fprintf(&c, "    title \"Burn rate over %d looks (max over windows)\"\n", len(looks))
	} else {
		c.WriteString("    title \"Burn rate by window\"\n")
	}
	c.WriteString("    " + xaxis + "\n")
	c.WriteString("    y-axis \"burn rate (x budget)\"\n")
	var leg []string
	for i, l := range lines {
		var vals []string
		for _, v := range l.values {
			vals = append(vals, strconv.FormatFloat(round4(v), 'f', -1, 64))
		}
		fmt.Fprintf(&c, "    line [%s]\n", strings.Join(vals, ", "))
		leg = append(leg, chartPalette[i%len(chartPalette)].square+" "+l.name)
	}
	legend = strings.Join(leg, " · ")
	if len(missing) > 0 {
		legend += " — not charted (no data at some point): " + strings.Join(missing, ", ")
	}
	return c.String(), legend
}

func fmtAxis(m float64) string { return strconv.FormatFloat(math.Round(m*10)/10, 'f', -1, 64) }

// md escapes text for a Markdown table cell or paragraph: pipes, HTML and
// line breaks cannot reach the page's structure.
func md(s string) string {
	s = oneLine(s)
	r := strings.NewReplacer(`\`, `\\`, "|", `\|`, "<", "&lt;", ">", "&gt;", "&", "&amp;", "`", "\\`", "*", `\*`, "_", `\_`, "[", `\[`, "]", `\]`)
	return r.Replace(s)
}

// code renders s as inline code, with a delimiter longer than any backtick
// run inside it.
func code(s string) string {
	s = oneLine(s)
	f := strings.Repeat("`", longestRun(s, '`')+1)
	pad := ""
	if strings.HasPrefix(s, "`") || strings.HasSuffix(s, "`") {
		pad = " "
	}
	return f + pad + s + pad + f
}

// fence returns a code fence longer than any backtick run in the lines.
func fence(lines []string) string {
	n := 3
	for _, l := range lines {
		n = max(n, longestRun(l, '`')+1)
	}
	return strings.Repeat("`", n)
}

func longestRun(s string, c byte) int {
	best, run := 0, 0
	for i := 0; i < len(s); i++ {
		if s[i] == c {
			run++
			best = max(best, run)
		} else {
			run = 0
		}
	}
	return best
}

func icon(decision string) string {
	switch analysis.Decision(decision) {
	case analysis.Pass:
		return "✅"
	case analysis.Fail:
		return "❌"
	case analysis.Hold:
		return "⏸️"
	}
	return "❔"
}

func fmtValue(v float64, ratio bool) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return "n/a"
	}
	if ratio {
		return fmtSig(v*100) + " %"
	}
	return fmtSig(v) + " /h"
}

func fmtBurn(v float64) string {
	if math.IsNaN(v) {
		return "n/a"
	}
	if math.IsInf(v, 1) {
		return "∞"
	}
	return fmtSig(v) + "×"
}

func fmtNum(v float64) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return "n/a"
	}
	return fmtSig(v)
}

// fmtSig prints 4 significant digits, in plain notation between 0.0001 and
// a million and in e-notation (1.2e-07) outside.
func fmtSig(v float64) string {
	if a := math.Abs(v); a != 0 && (a < 1e-4 || a >= 1e6) {
		return strconv.FormatFloat(v, 'g', 3, 64)
	}
	return strconv.FormatFloat(round4(v), 'f', -1, 64)
}

func fmtCount(v float64) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return "n/a"
	}
	return strconv.FormatFloat(math.Round(v*10)/10, 'f', -1, 64)
}

// round4 rounds to 4 significant digits.
func round4(x float64) float64 {
	if x == 0 || math.IsNaN(x) || math.IsInf(x, 0) {
		return x
	}
	p := math.Pow(10, 3-math.Floor(math.Log10(math.Abs(x))))
	return math.Round(x*p) / p
}
