package action

import (
	"cmp"
	_ "embed"
	"fmt"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"text/template"
	"time"
	"unicode/utf8"

	"github.com/phaseguard/phaseguard/analysis"
	"github.com/phaseguard/phaseguard/policies"
	"github.com/phaseguard/phaseguard/report"
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
	"md":     md,
	"code":   code,
	"fence":  fence,
	"icon":   icon,
	"plural": report.Plural,
}).Parse(summaryTemplate))

// summary is what the template renders.
type summary struct {
	Decision string
	Reason   string
	Stage    string
	// Policy is the policy's name, or, when it did not load, the preset
	// or file the policy input named ("" for inline YAML, PolicyInline).
	Policy       string
	PolicyInline bool
	PolicyFailed bool
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
	InputErrors  []inputError
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

// inputError is one input error: its first line, and its other lines,
// one problem each (a policy's problems, policies.Error).
type inputError struct {
	Text     string
	Problems []string
}

// newInputError splits an input error's text into its first line and
// its problems.
func newInputError(text string) inputError {
	lines := strings.Split(text, "\n")
	e := inputError{Text: oneLine(strings.TrimSpace(lines[0]))}
	for _, l := range lines[1:] {
		if l = oneLine(strings.TrimSpace(l)); l != "" {
			e.Problems = append(e.Problems, cutWords(l, maxFieldText))
		}
	}
	return e
}

// String is the error on one line: the problems after the first line,
// separated by semicolons.
func (e inputError) String() string {
	if len(e.Problems) == 0 {
		return e.Text
	}
	return e.Text + ": " + strings.Join(e.Problems, "; ")
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
			Reason:   cutWords(s.Reason, maxFieldText),
			Value:    fmtValue(float64(s.Value), ratio),
			Budget:   fmtValue(float64(s.Budget), ratio),
			Samples:  fmtCount(float64(s.Samples)),
			Error:    queryError(s.Error, s.Queries),
			Tripped:  strings.Join(s.Tripped, ", "),
			Queries:  s.Queries,
		}
		for _, w := range s.Windows {
			counts := fmtCount(float64(w.Bad)) + " / " + fmtCount(float64(w.Total))
			if !ratio {
				counts = "n/a"
				if b := float64(w.Bad); !math.IsNaN(b) && !math.IsInf(b, 0) {
					counts = report.Events(w.Bad)
				}
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
			row.Baseline = fmt.Sprintf("stable %s: value %s, %s, %s", b.Hash, fmtValue(float64(b.Value), ratio), report.Events(b.Samples), report.PValue(b.PValue))
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

// maxFieldText bounds, in bytes, a free text shown in the summary: an
// SLI's reason or error, one problem of an input.
const maxFieldText = 2 << 10

// queryError is an SLI's query error as the summary shows it: the
// queries it quotes (each hundreds or thousands of characters, and under
// "Exact PromQL" already) named instead, and the rest cut to
// maxFieldText. A page of errors that each quote their query once went
// over GitHub's limit (1.27 MB with 50 SLIs).
func queryError(text string, queries []string) string {
	for _, q := range queries {
		text = strings.ReplaceAll(text, strconv.Quote(q), "(the query under Exact PromQL)")
	}
	return cutWords(text, maxFieldText)
}

// Chart colours: Mermaid's xychart draws lines in its palette order and
// has no legend, so the palette is set and the legend written under the
// chart with a square of the same colour. A chart has at most one line
// per colour: two lines of one colour could not be told apart.
var chartPalette = []struct{ hex, square string }{
	{"#d62728", "🟥"}, {"#1f77b4", "🟦"}, {"#2ca02c", "🟩"}, {"#ff7f0e", "🟧"},
	{"#9467bd", "🟪"}, {"#e6c619", "🟨"}, {"#8c564b", "🟫"}, {"#000000", "⬛"},
}

// windowLabelRE is what an x-axis label may hold: Mermaid's strings have
// no escapes, so a quote (or a bracket) would end the axis early. Window
// names are durations ("15m", "1h30m").
var windowLabelRE = regexp.MustCompile(`^[0-9A-Za-z.]{1,32}$`)

// burnChart draws the burn of each SLI: over the looks of a watched stage
// (max burn over the SLI's windows at each look), or, with one look, over
// the windows of that look, longest first. It returns the chart's Mermaid
// text (xychart-beta, as GitHub's Mermaid 11 parses it) and the legend,
// Markdown to write under it.
//
// There is no chart when there is nothing to draw, and the legend then
// says why: no SLI with a finite burn at every point (Prometheus
// unreachable, no data), a single point per line (one window, looks less
// than 0.1 minute apart), or windows a label cannot name. SLIs with a
// missing value (NaN, ±Inf) are left out and named: a gap must not be
// drawn as zero. At most len(chartPalette) lines are drawn, those of the
// highest burn; the others are named.
func burnChart(looks []*analysis.Verdict, start time.Time) (chart, legend string) {
	if len(looks) == 0 || len(looks[len(looks)-1].SLIs) == 0 {
		return "", ""
	}
	last := looks[len(looks)-1]
	type line struct {
		name   string
		values []float64
	}
	// burns returns the values of SLI s along the x axis; false when the
	// SLI has no value at some point of it.
	var burns func(s *analysis.SLIResult) ([]float64, bool)
	var xaxis, title string
	if len(looks) > 1 {
		burns = func(s *analysis.SLIResult) ([]float64, bool) {
			var out []float64
			for _, v := range looks {
				i := slices.IndexFunc(v.SLIs, func(o analysis.SLIResult) bool { return o.Name == s.Name })
				if i < 0 {
					return nil, false
				}
				out = append(out, float64(v.SLIs[i].MaxBurn()))
			}
			return out, true
		}
		from, to := fmtAxis(looks[0].Time.Sub(start).Minutes()), fmtAxis(last.Time.Sub(start).Minutes())
		if from == to {
			return "", fmt.Sprintf("No burn rate chart: the %d looks are less than 0.1 minute apart.", len(looks))
		}
		xaxis = fmt.Sprintf(`x-axis "minutes since %s" %s --> %s`, start.UTC().Format("15:04:05Z"), from, to)
		title = fmt.Sprintf("Burn rate over %d looks (max over windows)", len(looks))
	} else {
		// The axis is the windows of the first SLI that has any; an SLI
		// with other windows is not drawn against them.
		var windows []string
		for _, s := range last.SLIs {
			if len(s.Windows) > 0 {
				for _, w := range s.Windows {
					windows = append(windows, w.Window)
				}
				break
			}
		}
		if len(windows) == 1 {
			return "", "No burn rate chart: one window is one point per SLI, no line."
		}
		var labels []string
		for _, w := range windows {
			if !windowLabelRE.MatchString(w) {
				return "", "No burn rate chart: a window name cannot be a chart label."
			}
			labels = append(labels, `"`+w+`"`)
		}
		burns = func(s *analysis.SLIResult) ([]float64, bool) {
			if len(s.Windows) != len(windows) {
				return nil, false
			}
			out := make([]float64, 0, len(windows))
			for i, w := range s.Windows {
				if w.Window != windows[i] {
					return nil, false
				}
				out = append(out, float64(w.Burn))
			}
			return out, true
		}
		xaxis = "x-axis \"window\" [" + strings.Join(labels, ", ") + "]"
		title = "Burn rate by window"
	}
	var lines []line
	var missing []string
	for i := range last.SLIs {
		s := &last.SLIs[i]
		values, ok := burns(s)
		if !ok || len(values) < 2 || slices.ContainsFunc(values, func(b float64) bool { return math.IsNaN(b) || math.IsInf(b, 0) }) {
			missing = append(missing, md(s.Name))
			continue
		}
		lines = append(lines, line{name: s.Name, values: values})
	}
	if len(lines) == 0 {
		return "", "No SLI has burn values to chart (" + strings.Join(missing, ", ") + ")."
	}
	var left []string
	if len(lines) > len(chartPalette) {
		// Keep the lines of the highest peaks, in the policy's order.
		peaks := slices.Clone(lines)
		slices.SortStableFunc(peaks, func(a, b line) int { return cmp.Compare(slices.Max(b.values), slices.Max(a.values)) })
		drop := map[string]bool{}
		for _, l := range peaks[len(chartPalette):] {
			drop[l.name] = true
		}
		lines = slices.DeleteFunc(lines, func(l line) bool {
			if drop[l.name] {
				left = append(left, md(l.name))
			}
			return drop[l.name]
		})
	}
	var palette []string
	lo, hi := 0.0, 1.0 // the axis shows the budget (1×) and zero
	for i, l := range lines {
		palette = append(palette, chartPalette[i].hex)
		lo, hi = min(lo, slices.Min(l.values)), max(hi, slices.Max(l.values))
	}
	var c strings.Builder
	fmt.Fprintf(&c, "%%%%{init: {\"themeVariables\": {\"xyChart\": {\"plotColorPalette\": \"%s\"}}}}%%%%\n", strings.Join(palette, ", "))
	c.WriteString("xychart-beta\n")
	fmt.Fprintf(&c, "    title \"%s\"\n", title)
	c.WriteString("    " + xaxis + "\n")
	fmt.Fprintf(&c, "    y-axis \"burn rate (x budget)\" %s --> %s\n", chartNum(-niceCeil(-lo)), chartNum(niceCeil(hi)))
	var leg []string
	for i, l := range lines {
		var vals []string
		for _, v := range l.values {
			vals = append(vals, chartNum(v))
		}
		fmt.Fprintf(&c, "    line [%s]\n", strings.Join(vals, ", "))
		leg = append(leg, chartPalette[i].square+" "+md(l.name))
	}
	legend = strings.Join(leg, " · ")
	if len(missing) > 0 {
		legend += " — not charted (no data at some point): " + strings.Join(missing, ", ")
	}
	if len(left) > 0 {
		legend += fmt.Sprintf(" — not charted (the chart draws the %d highest burns): %s", len(chartPalette), strings.Join(left, ", "))
	}
	return c.String(), legend
}

// chartNum writes a finite value as Mermaid's xychart reads a number:
// digits and a point, never an exponent, 4 significant digits, and
// nothing below 0.0001 (a burn that small is zero on the chart).
func chartNum(v float64) string {
	v = round4(v)
	if math.Abs(v) < 1e-4 {
		v = 0 // and not -0
	}
	return strconv.FormatFloat(v, 'f', -1, 64)
}

// niceCeil rounds v > 0 up to 1, 2 or 5 times a power of ten, for an
// axis's end; 0 stays 0.
func niceCeil(v float64) float64 {
	if v <= 0 {
		return 0
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= v*(1-1e-12) {
			return m * p
		}
	}
	return 10 * p
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

// fmtSig prints 4 significant digits, in plain notation between 0.0001 and
// a million and in e-notation (1.2e-07) outside.
func fmtSig(v float64) string {
	if a := math.Abs(v); a != 0 && (a < 1e-4 || a >= 1e6) {
		return strconv.FormatFloat(v, 'g', 3, 64)
	}
	return strconv.FormatFloat(round4(v), 'f', -1, 64)
}

// fmtCount is an event count as report.Count writes it (increase()
// extrapolates: "<1" for a fraction of one, never "0.3"), "n/a" without.
func fmtCount(v float64) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return "n/a"
	}
	return report.Count(analysis.Num(v))
}

// round4 rounds to 4 significant digits.
func round4(x float64) float64 {
	if x == 0 || math.IsNaN(x) || math.IsInf(x, 0) {
		return x
	}
	p := math.Pow(10, 3-math.Floor(math.Log10(math.Abs(x))))
	return math.Round(x*p) / p
}

// summaryLimit bounds the job summary in bytes. The runner refuses a step
// summary over 1 MiB (1,048,576 bytes: "$GITHUB_STEP_SUMMARY upload
// aborted, supports content up to a size of 1024k") and then shows none
// of it; the margin covers what the runner adds.
const summaryLimit = 1_000_000

// maxCutNote bounds the note boundPage writes where it cuts.
const maxCutNote = 8 << 10

// boundPage returns page (a rendered, redacted summary) when it has at
// most limit bytes, else its longest beginning that ends at a line
// outside every code fence (a Mermaid chart or a PromQL block is whole or
// absent), with the <details> blocks open there closed, followed by a
// note saying what was left out: the rest of the section cut and the
// headings after it. report, when set, is the report file's path, which
// holds the whole verdict.
func boundPage(page string, limit int, report string) string {
	if len(page) <= limit {
		return page
	}
	type point struct{ at, details int }
	var points []point // line starts outside code fences
	fence, details, at := "", 0, 0
	for _, line := range strings.SplitAfter(page, "\n") {
		text := strings.TrimRight(line, " \t\r\n")
		switch {
		case fence != "":
			if closesFence(text, fence) {
				fence = ""
			}
		default:
			points = append(points, point{at, details})
			if f, ok := opensFence(text); ok {
				fence = f
			} else if strings.HasPrefix(text, "<details>") {
				details++
			} else if text == "</details>" && details > 0 {
				details--
			}
		}
		at += len(line)
	}
	cut := points[0]
	for _, p := range points {
		if p.at+p.details*len("</details>\n")+maxCutNote > limit {
			break
		}
		cut = p
	}
	kept := page[:cut.at]
	var b strings.Builder
	b.WriteString(kept)
	b.WriteString(strings.Repeat("</details>\n", cut.details))
	b.WriteString(cutNote(page, cut.at, report))
	return b.String()
}

// cutNote is the note where boundPage cut page at byte at.
func cutNote(page string, at int, report string) string {
	heading := func(line string) (string, bool) {
		switch {
		case strings.HasPrefix(line, "#"):
			return strings.TrimSpace(strings.TrimLeft(line, "#")), true
		case strings.HasPrefix(line, "<details><summary>"):
			t := strings.TrimPrefix(line, "<details><summary>")
			t, _, _ = strings.Cut(t, "</summary>")
			return t, true
		}
		return "", false
	}
	// headings are text's headings outside code blocks.
	headings := func(text string) []string {
		var hs []string
		fence := ""
		for _, line := range strings.Split(text, "\n") {
			if fence != "" {
				if closesFence(line, fence) {
					fence = ""
				}
				continue
			}
			if f, ok := opensFence(line); ok {
				fence = f
				continue
			}
			if h, ok := heading(line); ok {
				hs = append(hs, h)
			}
		}
		return hs
	}
	var left []string
	// The section the cut falls in, when it is not cut at its heading.
	if before := headings(page[:at]); len(before) > 0 {
		left = []string{"the rest of " + before[len(before)-1]}
	}
	left = append(left, headings(page[at:])...)
	const maxNamed = 20
	if n := len(left); n > maxNamed {
		left = append(left[:maxNamed], fmt.Sprintf("%d more sections", n-maxNamed))
	}
	for i := range left {
		left[i] = cutWords(left[i], 200)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "\n> [!WARNING]\n> **Summary cut here**: it has %d bytes, and GitHub shows no step summary over 1 MiB; %d are shown.", len(page), at)
	if len(left) > 0 {
		b.WriteString(" Left out: " + strings.Join(left, "; ") + ".")
	} else {
		b.WriteString(" Left out: the end of the page.")
	}
	if report != "" {
		b.WriteString(" The report file " + code(report) + " has the whole verdict.")
	}
	b.WriteString("\n")
	return b.String()
}

// opensFence reports whether line opens a fenced code block (CommonMark:
// up to 3 spaces, then 3 or more backticks or tildes, and for backticks
// an info string without one), and its fence.
func opensFence(line string) (string, bool) {
	rest := strings.TrimLeft(line, " ")
	if len(line)-len(rest) > 3 || len(rest) < 3 || (rest[0] != '`' && rest[0] != '~') {
		return "", false
	}
	n := len(rest) - len(strings.TrimLeft(rest, rest[:1]))
	if n < 3 || (rest[0] == '`' && strings.Contains(rest[n:], "`")) {
		return "", false
	}
	return rest[:n], true
}

// closesFence reports whether line closes the code block opened by fence:
// up to 3 spaces, at least as many of the fence's character, nothing else.
func closesFence(line, fence string) bool {
	line = strings.TrimRight(line, " \t\r")
	rest := strings.TrimLeft(line, " ")
	return len(line)-len(rest) <= 3 && strings.HasPrefix(rest, fence) && strings.Trim(rest, fence[:1]) == ""
}

// cutWords cuts s to at most n bytes: at the last space of its last 40
// bytes, else at a rune boundary, marked with "…". Callers redact s
// before they cut it: a secret cut in two would match no more.
func cutWords(s string, n int) string {
	if len(s) <= n {
		return s
	}
	const mark = "…"
	cut := max(n-len(mark), 0)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	if sp := strings.LastIndexByte(s[:cut], ' '); sp > 0 && sp >= cut-40 {
		cut = sp
	}
	return strings.TrimRight(s[:cut], " ") + mark
}
