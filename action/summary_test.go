package action

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
	"github.com/sethvargo/go-githubactions"

	"github.com/phaseguard/phaseguard/analysis"
	"github.com/phaseguard/phaseguard/internal/mermaidtest"
	"github.com/phaseguard/phaseguard/internal/redact"
	"github.com/phaseguard/phaseguard/policies"
)

// This file checks that the job summary always renders: every chart it
// can hold parses with Mermaid's own parser (internal/mermaidtest), there
// is no chart when there is nothing to draw, the page stays under
// GitHub's limit, and an invalid policy reads as one problem per line.

// chartCase is one situation of the Action, as the looks it took.
type chartCase struct {
	name  string
	looks []*analysis.Verdict
	// chart says whether the summary must hold a chart.
	chart bool
	// legend, when set, is text the legend must hold.
	legend string
}

// look is a verdict of len(burns) SLIs at t: SLI i has window burns
// burns[i] over the windows 15m, 5m, 3m and 1m (nil: no windows at all).
func look(t time.Time, decision analysis.Decision, names []string, burns [][]float64) *analysis.Verdict {
	v := &analysis.Verdict{Time: t, Policy: "phase-default", Stage: "canary-10", Decision: decision, Reason: string(decision) + " reason", Confidence: 0.998, Queries: 2 * len(names)}
	windows := []string{"15m", "5m", "3m", "1m"}
	for i, name := range names {
		s := analysis.SLIResult{
			Name: name, Kind: "ratio", Decision: decision, Reason: "burn", Budget: 0.001, Value: 0.001, Samples: 1000,
			Queries: []string{`sum(increase(phase_requests_total{service="checkout"}[15m]))`},
		}
		for j, b := range burns[i] {
			s.Windows = append(s.Windows, analysis.WindowResult{Window: windows[j], Bad: 1, Total: 1000, Value: 0.001, Burn: analysis.Num(b), BurnLower: analysis.Num(b / 2), BurnUpper: analysis.Num(b * 2)})
		}
		v.SLIs = append(v.SLIs, s)
	}
	return v
}

// same is n copies of burns.
func same(n int, burns []float64) [][]float64 {
	out := make([][]float64, n)
	for i := range out {
		out[i] = burns
	}
	return out
}

// names are the SLI names of the phase-default policy.
var names = []string{"drain-failure", "flaps", "phase-mismatch", "duplicate-processing", "schema-errors", "slow-propagation", "reconcile-retries"}

func chartCases(at time.Time) []chartCase {
	nan, inf := math.NaN(), math.Inf(1)
	healthy := [][]float64{{0.2, 0.1, 0, 0}, {0.5, 0.4, 0.3, 0}, {0, 0, 0, 0}, {0.01, 0.02, 0, 0}, {0, 0, 0, 0}, {0.9, 0.8, 0.7, 0.6}, {0.3, 0.3, 0.3, 0.3}}
	failing := slicesWith(healthy, 0, []float64{40, 120, 150, 200})
	noData := same(len(names), []float64{nan, nan, nan, nan})
	watchedOf := func(names []string, n int, burns func(k int) [][]float64, decision func(k int) analysis.Decision) []*analysis.Verdict {
		var out []*analysis.Verdict
		for k := range n {
			out = append(out, look(at.Add(time.Duration(k+1-n)*30*time.Second), decision(k), names, burns(k)))
		}
		return out
	}
	watched := func(n int, burns func(k int) [][]float64, decision func(k int) analysis.Decision) []*analysis.Verdict {
		return watchedOf(names, n, burns, decision)
	}
	hold := func(int) analysis.Decision { return analysis.Hold }
	many := make([]string, 50)
	manyBurns := make([][]float64, 50)
	for i := range many {
		many[i] = fmt.Sprintf("sli-%02d", i)
		b := float64(i) / 10
		manyBurns[i] = []float64{b, b * 2, b / 2, b}
	}
	odd := []string{`quote"d`, "pipe|and<b>html</b>", "back`tick``s", "new\nline", "emoji 🟥 and ] bracket", `%%{init}%%`, "_under_ *star*"}
	return []chartCase{
		{name: "pass, one look", looks: []*analysis.Verdict{look(at, analysis.Pass, names, healthy)}, chart: true},
		{name: "fail, one look", looks: []*analysis.Verdict{look(at, analysis.Fail, names, failing)}, chart: true},
		{name: "hold, one look", looks: []*analysis.Verdict{look(at, analysis.Hold, names, healthy)}, chart: true},
		{name: "all zero burn", looks: []*analysis.Verdict{look(at, analysis.Pass, names, same(len(names), []float64{0, 0, 0, 0}))}, chart: true},
		{name: "no data, one look", looks: []*analysis.Verdict{look(at, analysis.Hold, names, noData)}, legend: "No SLI has burn values to chart"},
		// Prometheus unreachable: every SLI's windows NaN, or none at all.
		{name: "Prometheus unreachable, one look", looks: []*analysis.Verdict{look(at, analysis.Hold, names, noData)}, legend: "No SLI has burn values to chart"},
		{name: "no windows, one look", looks: []*analysis.Verdict{look(at, analysis.Hold, names, make([][]float64, len(names)))}, legend: "No SLI has burn values to chart"},
		{name: "one window", looks: []*analysis.Verdict{look(at, analysis.Pass, names, same(len(names), []float64{0.5}))}, legend: "one window is one point per SLI"},
		{name: "no SLIs", looks: []*analysis.Verdict{look(at, analysis.Hold, nil, nil)}},
		{name: "some NaN, one look", looks: []*analysis.Verdict{look(at, analysis.Hold, names, slicesWith(healthy, 1, []float64{nan, 1, nan, 2}))}, chart: true, legend: "not charted (no data at some point): flaps"},
		{name: "Inf burn", looks: []*analysis.Verdict{look(at, analysis.Fail, names, slicesWith(healthy, 0, []float64{inf, inf, 5, 2}))}, chart: true, legend: "not charted (no data at some point): drain-failure"},
		{name: "all NaN or Inf", looks: []*analysis.Verdict{look(at, analysis.Hold, names, same(len(names), []float64{inf, nan, -inf, nan}))}, legend: "No SLI has burn values to chart"},
		{name: "tiny and huge burns", looks: []*analysis.Verdict{look(at, analysis.Fail, names, slicesWith(healthy, 0, []float64{1e-300, 3e-9, 1e9, 123456789.123}))}, chart: true},
		{name: "many SLIs", looks: []*analysis.Verdict{look(at, analysis.Hold, many, manyBurns)}, chart: true, legend: "not charted (the chart draws the 8 highest burns): sli-00"},
		{name: "SLI names with quotes and Markdown", looks: []*analysis.Verdict{look(at, analysis.Fail, odd, same(len(odd), []float64{3, 2, 1, 0.5}))}, chart: true, legend: `pipe\|and&lt;b&gt;html&lt;/b&gt;`},
		{name: "SLI names with quotes, watched", looks: watchedOf(odd, 4, func(int) [][]float64 { return same(len(odd), []float64{3, 2, 1, 0.5}) }, hold), chart: true, legend: "🟪 emoji 🟥 and \\] bracket"},
		{name: "window names that are no label", looks: func() []*analysis.Verdict {
			v := look(at, analysis.Pass, names, healthy)
			for i := range v.SLIs {
				v.SLIs[i].Windows[0].Window = `5m"]`
			}
			return []*analysis.Verdict{v}
		}(), legend: "a window name cannot be a chart label"},
		{name: "SLIs with other windows", looks: func() []*analysis.Verdict {
			v := look(at, analysis.Pass, names, healthy)
			v.SLIs[2].Windows[1].Window = "10m"
			v.SLIs[3].Windows = v.SLIs[3].Windows[:2]
			return []*analysis.Verdict{v}
		}(), chart: true, legend: "not charted (no data at some point): phase-mismatch, duplicate-processing"},
		{name: "watched, many looks, pass", looks: watched(40, func(k int) [][]float64 { return healthy }, func(int) analysis.Decision { return analysis.Pass }), chart: true, legend: "🟥 drain-failure"},
		{name: "watched, fail at look 5", looks: watched(5, func(k int) [][]float64 {
			if k == 4 {
				return failing
			}
			return healthy
		}, func(k int) analysis.Decision {
			if k == 4 {
				return analysis.Fail
			}
			return analysis.Hold
		}), chart: true},
		{name: "watched, Prometheus unreachable throughout", looks: watched(6, func(int) [][]float64 { return noData }, hold), legend: "No SLI has burn values to chart"},
		{name: "watched, errors then data", looks: watched(6, func(k int) [][]float64 {
			if k < 2 {
				return noData
			}
			return healthy
		}, hold), legend: "No SLI has burn values to chart"},
		{name: "watched, one SLI missing at a look", looks: func() []*analysis.Verdict {
			looks := watched(3, func(int) [][]float64 { return healthy }, hold)
			looks[1].SLIs = looks[1].SLIs[1:]
			return looks
		}(), chart: true, legend: "not charted (no data at some point): drain-failure"},
		{name: "watched, looks at one time", looks: func() []*analysis.Verdict {
			looks := watched(3, func(int) [][]float64 { return healthy }, hold)
			for _, v := range looks {
				v.Time = at
			}
			return looks
		}(), legend: "less than 0.1 minute apart"},
		{name: "watched, many SLIs and looks", looks: watchedOf(many, 20, func(int) [][]float64 { return manyBurns }, hold), chart: true, legend: "🟥 sli-42"},
	}
}

// slicesWith is burns with SLI i's burns replaced.
func slicesWith(burns [][]float64, i int, b []float64) [][]float64 {
	out := append([][]float64(nil), burns...)
	out[i] = b
	return out
}

// summaryRun is a run whose outcome is looks, ready to write its summary.
func summaryRun(t *testing.T, looks []*analysis.Verdict, start time.Time) (*run, string) {
	t.Helper()
	p, err := policies.Preset("phase-default")
	if err != nil {
		t.Fatal(err)
	}
	st, i := p.Stage("canary-10")
	path := filepath.Join(t.TempDir(), "step_summary")
	r := &run{
		gha:  githubactions.New(githubactions.WithGetenv(func(string) string { return "" })),
		sec:  redact.New(),
		renv: &runnerEnv{summaryFile: path, serverURL: "https://github.com", owner: "acme", repo: "shop", runID: "4242"},
		in: &inputs{
			policy: p, stage: st, stageIndex: i, service: "checkout", namespace: "shop",
			canaryHash: "7f8c9d6b4", stableHash: "6d4b9c7f5", wait: len(looks) > 1,
		},
		looks: looks, start: start, decision: analysis.Hold, reason: "no looks",
	}
	if len(looks) > 0 {
		last := looks[len(looks)-1]
		r.decision, r.reason = last.Decision, last.Reason
	}
	return r, path
}

// TestSummaryCharts renders the summary of every situation and parses
// every chart in it with Mermaid's parser, in one node process.
func TestSummaryCharts(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 1, 1, 0, 40, 0, 0, time.UTC)
	cases := chartCases(at)
	var charts []string
	var owner []string // the case of each chart
	for _, tc := range cases {
		if len(tc.looks) == 0 {
			continue
		}
		r, path := summaryRun(t, tc.looks, at.Add(-20*time.Minute))
		if err := r.writeSummary(tc.looks[len(tc.looks)-1]); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		page := string(data)
		blocks := mermaidtest.Blocks(page)
		if got := len(blocks) > 0; got != tc.chart {
			t.Errorf("%s: chart %v, want %v:\n%s", tc.name, got, tc.chart, page)
		}
		if len(blocks) > 1 {
			t.Errorf("%s: %d charts", tc.name, len(blocks))
		}
		if tc.legend != "" && !strings.Contains(page, tc.legend) {
			t.Errorf("%s: the summary lacks %q:\n%s", tc.name, tc.legend, page)
		}
		checkPage(t, tc.name, page)
		for _, b := range blocks {
			charts = append(charts, b)
			owner = append(owner, tc.name)
			checkChart(t, tc.name, b)
		}
	}
	// And the charts of the golden summaries (TestSummary).
	goldens, err := filepath.Glob("testdata/summary-*.md")
	if err != nil || len(goldens) < 2 {
		t.Fatalf("golden summaries %v: %v", goldens, err)
	}
	for _, g := range goldens {
		data, err := os.ReadFile(g)
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range mermaidtest.Blocks(string(data)) {
			charts, owner = append(charts, b), append(owner, g)
		}
	}
	p := mermaidtest.New(t)
	if p == nil {
		return
	}
	for i, err := range p.Parse(t, charts) {
		if err != nil {
			t.Errorf("%s: Mermaid %s rejects the chart: %v\n%s", owner[i], p.Version, err, charts[i])
		}
	}
	t.Logf("Mermaid %s parsed %d charts", p.Version, len(charts))
}

// checkChart checks what Mermaid's parser accepts but a reader could not
// use: a line per colour at most, and as many values in each line as the
// axis has points.
func checkChart(t *testing.T, name, chart string) {
	t.Helper()
	var lines, points []int
	for _, l := range strings.Split(chart, "\n") {
		l = strings.TrimSpace(l)
		if v, ok := strings.CutPrefix(l, "line ["); ok {
			lines = append(lines, strings.Count(v, ",")+1)
		}
		if v, ok := strings.CutPrefix(l, `x-axis "window" [`); ok {
			points = append(points, strings.Count(v, ",")+1)
		}
	}
	if len(lines) == 0 || len(lines) > len(chartPalette) {
		t.Errorf("%s: %d lines in the chart:\n%s", name, len(lines), chart)
	}
	for _, n := range lines {
		if n < 2 || (len(points) > 0 && n != points[0]) || n != lines[0] {
			t.Errorf("%s: lines of %v points on an axis of %v:\n%s", name, lines, points, chart)
			break
		}
	}
}

// checkPage checks a summary's structure: under the limit, and no code
// fence or <details> left open.
func checkPage(t *testing.T, name, page string) {
	t.Helper()
	if len(page) > summaryLimit {
		t.Errorf("%s: summary of %d bytes, over %d", name, len(page), summaryLimit)
	}
	if !utf8.ValidString(page) {
		t.Errorf("%s: summary is not UTF-8", name)
	}
	fence := ""
	for _, line := range strings.Split(page, "\n") {
		if fence != "" {
			if closesFence(line, fence) {
				fence = ""
			}
			continue
		}
		if f, ok := opensFence(line); ok {
			fence = f
		}
	}
	if fence != "" {
		t.Errorf("%s: a code fence %s is left open", name, fence)
	}
	if o, c := strings.Count(page, "\n<details>"), strings.Count(page, "\n</details>"); o != c {
		t.Errorf("%s: %d <details> and %d </details>", name, o, c)
	}
}

// TestSummaryPrometheusUnreachable runs the Action against a Prometheus
// that refuses connections: one look, every SLI in error. The summary
// draws no chart (it once drew `x-axis "window" []`), names why, and
// shows each SLI's error with its cause, not the query it quotes.
func TestSummaryPrometheusUnreachable(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(nil)
	url := srv.URL
	srv.Close()
	in := validInputs(url)
	in["stage-ordering"], in["github-token"] = "false", ""
	r := newStep(t, in).run(context.Background())
	if r.outputs["verdict"] != "hold" || r.outputs["looks"] != "1" {
		t.Fatalf("outputs %v", r.outputs)
	}
	if blocks := mermaidtest.Blocks(r.summary); len(blocks) > 0 {
		t.Errorf("a chart of no data:\n%s", blocks[0])
	}
	checkPage(t, "unreachable", r.summary)
	for _, want := range []string{
		"No SLI has burn values to chart (drain-failure, flaps,",
		"Query error: query (the query under Exact PromQL)",
		"connection refused",
	} {
		if !strings.Contains(r.summary, want) {
			t.Errorf("the summary lacks %q:\n%s", want, r.summary)
		}
	}
	// The queries are under Exact PromQL only.
	for _, line := range strings.Split(r.summary, "\n") {
		if strings.HasPrefix(line, "Query error:") && (strings.Contains(line, `label\_replace`) || len(line) > maxFieldText+100) {
			t.Errorf("a query error of %d bytes quotes its query: %.300s", len(line), line)
		}
	}
}

// bigPolicy is an inline policy of n SLIs whose queries each match a
// regex of size bytes: queries GitHub's page limit cannot hold in full.
func bigPolicy(n, size int) string {
	var b strings.Builder
	b.WriteString("apiVersion: phaseguard.dev/v1alpha1\nkind: Policy\nmetadata: {name: big}\nspec:\n  stages:\n    - {name: canary-10, soak: 10m}\n  slis:\n")
	for i := range n {
		re := strings.Repeat(fmt.Sprintf("x%02d|", i), size/4)
		fmt.Fprintf(&b, "    - name: sli-%02d\n      objective: 99.9\n      ratio:\n        bad: sum(increase(phase_requests_total{service=\"$service\",pod_template_hash=\"$hash\",code=~\"%s5..\"}[$window]))\n        total: sum(increase(phase_requests_total{service=\"$service\",pod_template_hash=\"$hash\"}[$window]))\n", i, re)
	}
	return b.String()
}

// TestSummaryOverLimit runs the Action with a policy whose queries alone
// would make the summary several megabytes: the page stays under GitHub's
// limit, is cut at a line outside every code block, says where and what
// was left out, and its chart-less page still renders.
func TestSummaryOverLimit(t *testing.T) {
	t.Parallel()
	policy := bigPolicy(50, 1000)
	if _, err := policies.Load([]byte(policy), "inline"); err != nil {
		t.Fatalf("the test's policy does not load: %v", err)
	}
	// A Prometheus that rejects every query at once (an unreachable one
	// is retried for seconds per query).
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprint(w, `{"status":"error","errorType":"bad_data","error":"query rejected by the test"}`)
	}))
	t.Cleanup(srv.Close)
	in := validInputs(srv.URL)
	in["stage-ordering"], in["github-token"], in["policy"] = "false", "", policy
	r := newStep(t, in).run(context.Background())
	if r.code != ExitFail || r.outputs["verdict"] != "hold" {
		t.Fatalf("exit %d, outputs %v", r.code, r.outputs)
	}
	checkPage(t, "over limit", r.summary)
	// The cut is before the code block that crosses the limit: an SLI's
	// queries, tens of kilobytes here.
	if len(r.summary) < summaryLimit*9/10 {
		t.Errorf("summary of %d bytes: cut far below the limit", len(r.summary))
	}
	for _, want := range []string{
		"> **Summary cut here**: it has ",
		"GitHub shows no step summary over 1 MiB",
		"Exact PromQL (100 queries per look)",
		"The report file `.phaseguard/canary-10.json` has the whole verdict.",
	} {
		if !strings.Contains(r.summary, want) {
			t.Errorf("the summary lacks %q; its end:\n%s", want, r.summary[max(0, len(r.summary)-3000):])
		}
	}
	// The SLIs' sections come before the cut whole.
	if !strings.Contains(r.summary, "#### ⏸️ `sli-49` (ratio) — hold") {
		t.Error("an SLI's section was cut")
	}
	if n := len(r.outputs["reason"]); n > maxOutputText {
		t.Errorf("reason output of %d bytes", n)
	}
}

func TestBoundPage(t *testing.T) {
	t.Parallel()
	chart := "```mermaid\nxychart-beta\n    line [1, 2]\n```\n"
	head := "## ⏸️ phaseguard: stage `canary-10` — hold\n\n**reason**\n\n"
	filler := func(n int) string { return strings.Repeat("| `a` | b |\n", n) }
	// tail makes each page longer than its limit but for "fits".
	tail := "\n### After\n\n" + filler(1000)
	at := func(page, marker string, n int) int { return strings.Index(page, marker) + n + maxCutNote }
	chartPage := head + "### SLIs\n\n" + filler(100) + "\n### Burn rate\n\n" + chart + "\nlegend\n" + tail
	inChart := head + "### Burn rate\n\n```mermaid\n" + filler(1000) + "```\n\nlegend\n" + tail
	inDetails := head + "<details><summary>Exact PromQL (4 queries per look)</summary>\n\n`a`\n\n```promql\nq1\n```\n\n" + filler(1000) + "\n</details>\n" + tail
	nested := head + "### Q\n\n````promql\n```\n" + filler(1000) + "````\n" + tail
	cases := []struct {
		name, page string
		limit      int
		keep       string // the page must end in this before the note
		left       string // the note's list
	}{
		{"fits", head + chart, 1 << 20, "", ""},
		{"chart at the limit", chartPage, at(chartPage, "xychart-beta", 0), "### Burn rate\n\n", "Left out: the rest of Burn rate; After."},
		{"inside a chart", inChart, at(inChart, "```mermaid", 5000), "### Burn rate\n\n", "Left out: the rest of Burn rate; After."},
		{"inside details", inDetails, at(inDetails, "q1", 6000), filler(1) + "</details>\n", "Left out: the rest of Exact PromQL (4 queries per look); After."},
		{"a longer fence holding a shorter one", nested, at(nested, "````promql", 5000), "### Q\n\n", "Left out: the rest of Q; After."},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := boundPage(tc.page, tc.limit, "report.json")
			if tc.keep == "" {
				if got != tc.page {
					t.Errorf("a page under the limit changed:\n%s", got)
				}
				return
			}
			if len(got) > tc.limit {
				t.Errorf("%d bytes, over %d", len(got), tc.limit)
			}
			before, note, ok := strings.Cut(got, "\n> [!WARNING]\n")
			if !ok || !strings.HasPrefix(tc.page, strings.TrimSuffix(before, strings.Repeat("</details>\n", strings.Count(tc.keep, "</details>")))) {
				t.Fatalf("no note, or the page before it is not the page's beginning:\n%s", got)
			}
			if !strings.HasSuffix(before, tc.keep) {
				t.Errorf("cut before %q, want after %q:\n%s", before[max(0, len(before)-80):], tc.keep, got)
			}
			if !strings.Contains(note, tc.left) || !strings.Contains(note, fmt.Sprintf("it has %d bytes", len(tc.page))) || !strings.Contains(note, "`report.json`") {
				t.Errorf("note %q, want %q", note, tc.left)
			}
			checkPage(t, tc.name, got)
		})
	}
}

// TestOutputsBounded: output values are cut to their bound at a word
// boundary with a mark, after redaction, so no part of a secret the cut
// crosses is written.
func TestOutputsBounded(t *testing.T) {
	t.Parallel()
	const secret = "hunter2-very-long-secret-token-value-0123456789"
	set := redact.New(secret)
	// The secret straddles the bound: cut first, its first half would
	// match no secret and be written.
	reason := strings.Repeat("word ", (maxOutputText-20)/5) + secret + " and more words after it"
	id := strings.Repeat("a/", maxOutputID)
	out := filepath.Join(t.TempDir(), "out")
	if err := writeOutputs(set, out, []output{{name: "reason", value: reason}, {name: "report", value: id, id: true}, {name: "verdict", value: "hold", id: true}}); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	got, err := parseOutputFile(data)
	if err != nil {
		t.Fatal(err)
	}
	if r := got["reason"]; len(r) > maxOutputText || !strings.HasSuffix(r, "…") || strings.Contains(r, secret[:8]) || strings.HasSuffix(r, " …") {
		t.Errorf("reason of %d bytes: %q", len(r), r[max(0, len(r)-80):])
	}
	if !strings.HasPrefix(got["reason"], "word word") {
		t.Errorf("reason %q", got["reason"][:40])
	}
	if r := got["report"]; len(r) > maxOutputID || !strings.HasSuffix(r, "…") {
		t.Errorf("report of %d bytes", len(r))
	}
	if got["verdict"] != "hold" {
		t.Errorf("verdict %q", got["verdict"])
	}
}

func TestCutWords(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		n    int
		want string
	}{
		{"short", 10, "short"},
		{"one two three four", 12, "one two…"},
		{"onetwothreefour", 10, "onetwot…"},
		{"ab×cdefgh", 6, "ab…"}, // "×" is 2 bytes: cut before it, not inside
		{"a ×××××××", 9, "a…"},
	} {
		got := cutWords(tc.in, tc.n)
		if got != tc.want || len(got) > tc.n || !utf8.ValidString(got) {
			t.Errorf("cutWords(%q, %d) = %q, want %q", tc.in, tc.n, got, tc.want)
		}
	}
}

// TestDryRunInvalidInput: a dry run with an invalid input fails the step
// (exit 3), and its summary's note says so instead of "nothing failed".
func TestDryRunInvalidInput(t *testing.T) {
	t.Parallel()
	in := validInputs(noCalls(t, "Prometheus"))
	in["stage"], in["dry-run"] = "canary-25", "true"
	r := newStep(t, in).run(context.Background())
	if r.code != ExitError {
		t.Errorf("exit %d, want %d", r.code, ExitError)
	}
	if want := "invalid inputs fail the step even in a dry run"; !strings.Contains(r.summary, want) || strings.Contains(r.summary, "rolled back or failed") {
		t.Errorf("the summary's note does not say %q:\n%s", want, r.summary)
	}
}

// TestInvalidPolicySummary: a policy that does not load gives a summary
// naming the stage asked for and the policy named, with one problem per
// line (golden files: go test ./action -run TestInvalidPolicySummary
// -update rewrites them).
func TestInvalidPolicySummary(t *testing.T) {
	t.Parallel()
	inline := "apiVersion: phaseguard.dev/v1\nkind: Policy\nmetadata: {name: mine}\nspec:\n  alpha: 7\n  bogus: 1\n  slis:\n  - name: a|b\n    objective: 2\n"
	for _, tc := range []struct {
		name, policy, file, row string
	}{
		{"inline", inline, "", "| Policy | inline YAML (not loaded: see the input errors) |"},
		{"file", "policies/mine.yaml", inline, "| Policy | `policies/mine.yaml` (not loaded: see the input errors) |"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			in := validInputs(noCalls(t, "Prometheus"))
			in["policy"] = tc.policy
			s := newStep(t, in)
			if tc.file != "" {
				if err := os.MkdirAll(filepath.Join(s.dir, "policies"), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(s.dir, tc.policy), []byte(tc.file), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			r := s.run(context.Background())
			if r.code != ExitError {
				t.Errorf("exit %d", r.code)
			}
			_, err := policies.Load([]byte(inline), "x")
			var pe *policies.Error
			if !errors.As(err, &pe) || len(pe.Errs) < 4 {
				t.Fatalf("the test's policy: %v", err)
			}
			for _, p := range pe.Errs {
				if line := "\n  - " + md(p.Error()) + "\n"; !strings.Contains(r.summary, line) {
					t.Errorf("the summary lacks the problem line %q", line)
				}
			}
			for _, want := range []string{"## ❌ phaseguard: stage `canary-10` — fail\n", tc.row, "\n- input policy: policy ", fmt.Sprintf(": %d problems\n", len(pe.Errs))} {
				if !strings.Contains(r.summary, want) {
					t.Errorf("the summary lacks %q:\n%s", want, r.summary)
				}
			}
			// The reason and the annotation have the problems on one line.
			if want := "invalid input: input policy: policy "; !strings.HasPrefix(r.outputs["reason"], want) || !strings.Contains(r.outputs["reason"], "problems: line 1: apiVersion: ") || !strings.Contains(r.outputs["reason"], "; line 5: spec.alpha:") {
				t.Errorf("reason %q", r.outputs["reason"])
			}
			if tc.name == "inline" {
				golden(t, "summary-invalid-policy.md", r.summary)
			}
		})
	}
	t.Run("unknown stage", func(t *testing.T) {
		t.Parallel()
		in := validInputs(noCalls(t, "Prometheus"))
		in["stage"] = "canary-99"
		r := newStep(t, in).run(context.Background())
		for _, want := range []string{"## ❌ phaseguard: stage `canary-99` — fail\n", "| Policy | `phase-default` |\n", "\n- input stage \"canary-99\": not a stage of policy phase-default (stages: "} {
			if !strings.Contains(r.summary, want) {
				t.Errorf("the summary lacks %q:\n%s", want, r.summary)
			}
		}
	})
}

// TestSummaryCutKeepsSecrets: a secret in the queries of a summary that
// is cut appears nowhere in the page.
func TestSummaryCutKeepsSecrets(t *testing.T) {
	t.Parallel()
	const secret = "s3cr3t-in-a-query-label-value"
	at := time.Date(2026, 1, 1, 0, 40, 0, 0, time.UTC)
	v := look(at, analysis.Hold, names, same(len(names), []float64{1, 2, 3, 4}))
	for i := range v.SLIs {
		v.SLIs[i].Queries = []string{strings.Repeat(`sum(x{a="`+secret+`"}) + `, 400000/len(secret)) + "1"}
	}
	r, path := summaryRun(t, []*analysis.Verdict{v}, at.Add(-time.Hour))
	addSecret(r.sec, secret)
	if err := r.writeSummary(v); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	page := string(data)
	checkPage(t, "secret", page)
	if !strings.Contains(page, "Summary cut here") {
		t.Fatalf("the page of %d bytes was not cut", len(page))
	}
	for _, part := range []string{secret, secret[:len(secret)/2], secret[len(secret)/2:]} {
		if strings.Contains(page, part) {
			t.Errorf("%q in the summary", part)
		}
	}
	if diff := cmp.Diff(1, len(mermaidtest.Blocks(page))); diff != "" {
		t.Errorf("charts before the cut (-want +got):\n%s", diff)
	}
}
