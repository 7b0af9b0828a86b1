package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
	"gopkg.in/yaml.v3"

	"github.com/phaseguard/phaseguard/policies"
	"github.com/phaseguard/phaseguard/scenarios"
)

// runCLI runs the CLI in process and returns its exit code and output.
func runCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), args, strings.NewReader(""), &stdout, &stderr, func(string) string { return "" })
	return code, stdout.String(), stderr.String()
}

func TestDemo(t *testing.T) {
	t.Parallel()
	code, out, errOut := runCLI(t, "demo")
	if code != exitPass {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, want := range []string{
		"healthy           rolled out: every stage passed",
		"drain-misrouting  rolled back in canary-50",
		"flapping          rolled back in canary-50",
		"thin-traffic      paused in canary-10",
		"stable-also-bad   paused in canary-50",
		"not the canary's fault",
		"thin evidence",
		// The thin canary's hold says how long its evidence would need.
		"at 0.2 events/s, within its budget from here, ruling out a 10× burn needs about",
		"PASS", "FAIL", "HOLD",
	} {
		// Reasons wrap at 100 columns: compare words, not line breaks.
		if !strings.Contains(out, want) && !strings.Contains(strings.Join(strings.Fields(out), " "), want) {
			t.Errorf("demo output lacks %q:\n%s", want, out)
		}
	}
	checkReadable(t, "demo", out, 100)
}

// unreadable are what a reader must never meet: a pass that reads as
// over budget, counts with fractions or a "1 events", a p-value of 0, a
// word cut short.
var unreadable = map[string]*regexp.Regexp{
	"a pass read as over budget": regexp.MustCompile(`within budget; highest burn`),
	"a fraction of a sample":     regexp.MustCompile(`samples \d*\.\d`),
	"a p-value of 0":             regexp.MustCompile(`\bp = 0(\s|$|[^.])`),
	"one events":                 regexp.MustCompile(`(^|[^\d.])1 events`),
	"a word cut":                 regexp.MustCompile(`\pL…`),
}

// checkReadable fails t when out has a line wider than width (other than
// one word alone) or anything in unreadable.
func checkReadable(t *testing.T, name, out string, width int) {
	t.Helper()
	for i, l := range strings.Split(out, "\n") {
		if n := utf8.RuneCountInString(l); n > width && len(strings.Fields(l)) > 1 {
			t.Errorf("%s: line %d has %d columns (more than %d): %q", name, i+1, n, width, l)
		}
		for what, re := range unreadable {
			if re.MatchString(l) {
				t.Errorf("%s: line %d has %s: %q", name, i+1, what, l)
			}
		}
	}
}

// unwrapped is out with each line the CLI wrapped to fit report.Width
// joined back to the line it continues (a line break and the indent after
// it read as one space), so that a test finds a phrase wherever the
// width broke it.
func unwrapped(out string) string { return wrappedBreak.ReplaceAllString(out, " ") }

var wrappedBreak = regexp.MustCompile(`\n +`)

// TestEvaluateReadable: evaluate's report of every bundled scenario, at
// its stage's end, fits 100 columns and reads right.
func TestEvaluateReadable(t *testing.T) {
	t.Parallel()
	for _, b := range scenarios.Demo() {
		t.Run(b.Name, func(t *testing.T) {
			t.Parallel()
			_, out, errOut := runCLI(t, "evaluate", "--replay", b.Name, "--stage", "canary-50", "--at", b.Truth.StageStart.Add(25*time.Minute).Format(time.RFC3339))
			if out == "" {
				t.Fatalf("no report: %s", errOut)
			}
			checkReadable(t, "evaluate "+b.Name, out, 100)
		})
	}
}

func TestEvaluateExitCodes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		scenario string
		at       func(scenarios.Truth) time.Time
		want     int
		wantOut  string
	}{
		{"healthy", func(tr scenarios.Truth) time.Time { return tr.StageStart.Add(25 * time.Minute) }, exitPass, "PASS"},
		{"drain-misrouting", func(tr scenarios.Truth) time.Time { return tr.Fault.Onset.Add(2 * time.Minute) }, exitFail, "FAIL"},
		{"thin-traffic", func(tr scenarios.Truth) time.Time { return tr.StageStart.Add(10 * time.Minute) }, exitHold, "HOLD"},
	}
	for _, tt := range tests {
		t.Run(tt.scenario, func(t *testing.T) {
			t.Parallel()
			b, _ := scenarios.Lookup(tt.scenario)
			at := tt.at(b.Truth).Format(time.RFC3339)
			code, out, errOut := runCLI(t, "evaluate", "--replay", tt.scenario, "--stage", "canary-50", "--at", at)
			if code != tt.want {
				t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tt.want, out, errOut)
			}
			if !strings.HasPrefix(out, tt.wantOut) || !strings.Contains(out, "drain-failure") {
				t.Errorf("output:\n%s", out)
			}
			code, out, _ = runCLI(t, "evaluate", "--replay", tt.scenario, "--stage", "canary-50", "--at", at, "--output", "json")
			var v struct {
				Verdict string `json:"verdict"`
				SLIs    []any  `json:"slis"`
			}
			if err := json.Unmarshal([]byte(out), &v); err != nil || code != tt.want || len(v.SLIs) != 7 {
				t.Errorf("json: exit %d, %v, %+v", code, err, v)
			}
		})
	}
}

// TestEvaluateSince checks --since: a bundled scenario defaults to its
// stage start, the verdict says it, windows older than the stage are cut,
// and a value that is not a time is an input error.
func TestEvaluateSince(t *testing.T) {
	t.Parallel()
	b, _ := scenarios.Lookup("healthy")
	at := b.Truth.StageStart.Add(4 * time.Minute).Format(time.RFC3339)
	for _, args := range [][]string{nil, {"--since", b.Truth.StageStart.Format(time.RFC3339)}} {
		_, out, errOut := runCLI(t, append([]string{"evaluate", "--replay", "healthy", "--stage", "canary-50", "--at", at, "--output", "json"}, args...)...)
		var v struct {
			Since time.Time `json:"since"`
			SLIs  []struct {
				Windows []struct {
					Window string `json:"window"`
					Span   string `json:"span"`
				} `json:"windows"`
			} `json:"slis"`
		}
		if err := json.Unmarshal([]byte(out), &v); err != nil {
			t.Fatalf("%v: %v\n%s\n%s", args, err, out, errOut)
		}
		if !v.Since.Equal(b.Truth.StageStart) || len(v.SLIs) == 0 || v.SLIs[0].Windows[0].Window != "15m" || v.SLIs[0].Windows[0].Span != "4m" {
			t.Errorf("%v: since %s, windows %+v; want since the stage start and 15m cut to 4m", args, v.Since, v.SLIs)
		}
	}
	if code, _, errOut := runCLI(t, "evaluate", "--replay", "healthy", "--since", "yesterday"); code != exitError || !strings.Contains(errOut, "--since") {
		t.Errorf("--since yesterday: exit %d, stderr %q; want %d naming --since", code, errOut, exitError)
	}
}

// TestBacktestContract checks the JSON-lines contract that outside checks
// depend on: one object per step with time (RFC 3339), verdict, reason and
// slis[] of name, verdict, burn by window and samples.
func TestBacktestContract(t *testing.T) {
	t.Parallel()
	b, _ := scenarios.Lookup("drain-misrouting")
	dir := t.TempDir()
	data := filepath.Join(dir, "drain.om")
	if err := os.WriteFile(data, b.OpenMetrics, 0o644); err != nil {
		t.Fatal(err)
	}
	policy := filepath.Join(dir, "policy.yaml")
	if err := os.WriteFile(policy, []byte("apiVersion: phaseguard.dev/v1alpha1\nkind: Policy\nmetadata: {name: drain}\nspec:\n  slis: [{preset: drain-failure}, {preset: flaps}]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	from, to := b.Truth.StageStart, b.Truth.StageEnd
	code, out, errOut := runCLI(t, "backtest", "--policy", policy, "--replay", data,
		"--service", b.Truth.Service, "--canary-hash", b.Truth.CanaryHash, "--stable-hash", b.Truth.StableHash,
		"--from", from.Format(time.RFC3339), "--to", to.Format(time.RFC3339), "--step", "1m", "--output", "json")
	if code != exitFail {
		t.Fatalf("exit %d, want %d (some step failed): %s", code, exitFail, errOut)
	}
	type sli struct {
		Name    string              `json:"name"`
		Verdict string              `json:"verdict"`
		Burn    map[string]*float64 `json:"burn"`
		Samples *float64            `json:"samples"`
	}
	type line struct {
		Time    string `json:"time"`
		Verdict string `json:"verdict"`
		Reason  string `json:"reason"`
		SLIs    []sli  `json:"slis"`
	}
	var lines []line
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		var l line
		dec := json.NewDecoder(strings.NewReader(sc.Text()))
		if err := dec.Decode(&l); err != nil {
			t.Fatalf("line %d is not JSON: %v\n%s", len(lines)+1, err, sc.Text())
		}
		lines = append(lines, l)
	}
	if len(lines) != 31 {
		t.Fatalf("%d lines, want 31 (30 minutes at 1m, inclusive)", len(lines))
	}
	verdicts := map[string]bool{}
	for i, l := range lines {
		ts, err := time.Parse(time.RFC3339, l.Time)
		if err != nil || !ts.Equal(from.Add(time.Duration(i)*time.Minute)) {
			t.Errorf("line %d: time %q (%v)", i, l.Time, err)
		}
		verdicts[l.Verdict] = true
		if l.Reason == "" || len(l.SLIs) != 2 {
			t.Errorf("line %d: reason %q, %d SLIs", i, l.Reason, len(l.SLIs))
		}
		for _, s := range l.SLIs {
			if s.Name == "" || s.Verdict == "" || (s.Samples == nil && s.Verdict != "hold") {
				t.Errorf("line %d: SLI %+v lacks name, verdict or samples", i, s)
			}
			var wins []string
			for w := range s.Burn {
				wins = append(wins, w)
			}
			if len(wins) != 4 {
				t.Errorf("line %d: %s burn by window %v, want 4 windows", i, s.Name, s.Burn)
			}
		}
		onset := b.Truth.Fault.Onset
		if ts.Before(onset) && l.Verdict == "fail" {
			t.Errorf("line %d at %s: failed before the fault began at %s: %s", i, l.Time, onset, l.Reason)
		}
		if !ts.Before(onset.Add(2*time.Minute)) && l.Verdict != "fail" {
			t.Errorf("line %d at %s: %s two minutes after the onset: %s", i, l.Time, l.Verdict, l.Reason)
		}
	}
	// Hold when the canary has no data yet at the start of the stage, pass
	// until the fault, fail after it.
	if diff := cmp.Diff(map[string]bool{"hold": true, "pass": true, "fail": true}, verdicts); diff != "" {
		t.Errorf("verdicts seen (-want +got):\n%s", diff)
	}
}

func TestLint(t *testing.T) {
	t.Parallel()
	code, out, _ := runCLI(t, "lint", "../../policies/examples/checkout.yaml", "../../policies/examples/scheduler.yaml")
	if code != exitPass || strings.Count(out, ": ok: policy") != 2 {
		t.Errorf("good policies: exit %d\n%s", code, out)
	}
	code, out, _ = runCLI(t, "lint", "../../policies/testdata/unknown-field.bad.yml", "../../policies/testdata/bad-promql.bad.yml")
	if code != exitFail {
		t.Errorf("bad policies: exit %d, want %d", code, exitFail)
	}
	for _, want := range []string{
		`unknown-field.bad.yml: line 5: spec.alpah: unknown field (did you mean "alpha"?)`,
		`bad-promql.bad.yml: line 9: spec.slis[0].ratio.bad: bad PromQL`,
	} {
		if !strings.Contains(unwrapped(out), want) {
			t.Errorf("lint output lacks %q:\n%s", want, out)
		}
	}
}

func TestUsageAndErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		args    []string
		want    int
		wantErr string
	}{
		{nil, exitUsage, ""},
		{[]string{"frobnicate"}, exitUsage, `unknown command "frobnicate"`},
		{[]string{"evaluate", "--nope"}, exitUsage, "flag provided but not defined"},
		{[]string{"evaluate", "--service", "x", "--canary-hash", "abc"}, exitError, "give exactly one of --prometheus URL and --replay FILE"},
		{[]string{"evaluate", "--prometheus", "ftp://x", "--service", "x", "--canary-hash", "abc"}, exitError, "scheme must be http or https"},
		{[]string{"evaluate", "--replay", "healthy", "--canary-hash", `x"} or vector(1)`}, exitError, "canary-hash"},
		{[]string{"evaluate", "--replay", "no-such-file.om"}, exitError, "not a file and not a bundled scenario"},
		{[]string{"evaluate", "--replay", "healthy", "--policy", "no-such-policy"}, exitError, "no-such-policy"},
		{[]string{"evaluate", "--replay", "healthy", "--at", "yesterday"}, exitError, `--at "yesterday"`},
		{[]string{"backtest", "--prometheus", "http://127.0.0.1:1", "--service", "x", "--canary-hash", "abc"}, exitError, "--from and --to are required"},
		{[]string{"backtest", "--replay", "healthy", "--step", "10ms"}, exitError, "--step 10ms"},
		{[]string{"evaluate", "--replay", "healthy", "--bearer-token-file", "/etc/hostname"}, exitError, "--http-config, --bearer-token-file and --header apply to --prometheus, not --replay"},
		// A month early, the flapping canary's fail read as a hold.
		{[]string{"evaluate", "--replay", "flapping", "--since", "2025-12-01T00:00:00Z"}, exitError, "--since 2025-12-01T00:00:00Z is more than 1w before the look at 2026-01-01T00:40:00Z"},
		{[]string{"watch", "--replay", "flapping", "--stage", "canary-50", "--since", "2025-12-01T00:00:00Z"}, exitError, "--since 2025-12-01T00:00:00Z is more than 1w before the look"},
		// After the data's end every SLI would read as an exporter gone quiet.
		{[]string{"evaluate", "--replay", "healthy", "--at", "2027-01-01T00:00:00Z"}, exitError, "--at 2027-01-01T00:00:00Z: the replayed data runs from 2026-01-01T00:00:00Z to 2026-01-01T00:40:00Z"},
		{[]string{"backtest", "--replay", "healthy", "--from", "2025-12-31T23:00:00Z"}, exitError, "--from 2025-12-31T23:00:00Z: the replayed data runs from"},
		{[]string{"backtest", "--replay", "healthy", "--to", "2026-01-01T01:00:00Z"}, exitError, "--to 2026-01-01T01:00:00Z: the replayed data runs from"},
		{[]string{"lint"}, exitUsage, "Usage: phaseguard lint"},
		{[]string{"presets", "nope"}, exitError, "unknown preset"},
		{[]string{"help", "nope"}, exitPass, ""},
		{[]string{"help", "evaluate"}, exitPass, "Usage: phaseguard evaluate [flags]"},
		{[]string{"plan", "--policy", "../../policies/testdata/minimal.good.yml"}, exitError, "has no stages (spec.stages): a plan is per stage"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			t.Parallel()
			code, _, errOut := runCLI(t, tt.args...)
			if code != tt.want || !strings.Contains(unwrapped(errOut), tt.wantErr) {
				t.Errorf("exit %d (want %d), stderr %q (want %q)", code, tt.want, errOut, tt.wantErr)
			}
		})
	}
}

// TestPrometheusUnreachable: a Prometheus that is not there holds, it never
// passes, and the exit code says hold.
func TestPrometheusUnreachable(t *testing.T) {
	t.Parallel()
	code, out, errOut := runCLI(t, "evaluate", "--prometheus", "http://127.0.0.1:1", "--service", "checkout", "--canary-hash", "abc", "--timeout", "2s")
	if code != exitHold || !strings.Contains(out, "query error") {
		t.Errorf("exit %d (want %d)\nstdout:\n%s\nstderr:\n%s", code, exitHold, out, errOut)
	}
}

// TestPresets: `presets` lists every built-in policy and SLI preset in
// 100 columns; `presets NAME` prints a policy as YAML that loads as that
// policy, with each SLI's queries, presets expanded; an SLI preset as the
// fields of a spec.slis entry, which load as that preset, with each query
// exactly as the engine sends it. Policy and SLI preset names never
// collide, so NAME is never ambiguous.
func TestPresets(t *testing.T) {
	t.Parallel()
	code, out, errOut := runCLI(t, "presets")
	if code != exitPass {
		t.Fatalf("presets: exit %d\n%s", code, errOut)
	}
	for _, n := range append(policies.PresetNames(), policies.SLIPresetNames()...) {
		if !regexp.MustCompile(`(?m)^  ` + regexp.QuoteMeta(n) + `  `).MatchString(out) {
			t.Errorf("presets does not list %s:\n%s", n, out)
		}
	}
	for _, l := range strings.Split(out, "\n") {
		if n := utf8.RuneCountInString(l); n > 100 {
			t.Errorf("line of %d columns:\n%s", n, l)
		}
	}
	for _, n := range policies.PresetNames() {
		if slices.Contains(policies.SLIPresetNames(), n) {
			t.Errorf("%s is a policy and an SLI preset", n)
		}
	}

	placeholders := policies.Target{Service: policies.PlaceholderService, Namespace: policies.PlaceholderNamespace, Hash: policies.PlaceholderHash}
	for _, name := range policies.PresetNames() {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			code, out, errOut := runCLI(t, "presets", name)
			if code != exitPass {
				t.Fatalf("exit %d\n%s", code, errOut)
			}
			want, err := policies.Preset(name)
			if err != nil {
				t.Fatal(err)
			}
			got, err := policies.Load([]byte(out), "output")
			if err != nil {
				t.Fatalf("the output does not load as a policy: %v\n%s", err, out)
			}
			if got.Metadata.Name != name || len(got.Spec.SLIs) != len(want.Spec.SLIs) {
				t.Errorf("the output loads as policy %s with %d SLIs, want %s with %d", got.Metadata.Name, len(got.Spec.SLIs), name, len(want.Spec.SLIs))
			}
			for _, s := range want.Spec.SLIs {
				if !strings.Contains(out, "\n# "+s.Name+": ") {
					t.Errorf("no PromQL of %s:\n%s", s.Name, out)
				}
				for _, q := range s.Queries() {
					if !strings.Contains(out, q.Expr) {
						t.Errorf("%s %s query %s not printed:\n%s", s.Name, q.Field, q.Expr, out)
					}
				}
			}
		})
	}
	for _, name := range policies.SLIPresetNames() {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			code, out, errOut := runCLI(t, "presets", name)
			if code != exitPass {
				t.Fatalf("exit %d\n%s", code, errOut)
			}
			want, err := sliPreset(name)
			if err != nil {
				t.Fatal(err)
			}
			// The fields, as a spec.slis entry of a policy with the
			// default windows, give the preset's queries.
			var entry map[string]any
			if err := yaml.Unmarshal([]byte(out), &entry); err != nil || entry["preset"] != nil {
				t.Fatalf("the output is not a spec.slis entry without preset (%v):\n%s", err, out)
			}
			doc, err := yaml.Marshal(map[string]any{"apiVersion": "phaseguard.dev/v1alpha1", "kind": "Policy",
				"metadata": map[string]any{"name": "copy"}, "spec": map[string]any{"slis": []any{entry}}})
			if err != nil {
				t.Fatal(err)
			}
			p, err := policies.Load(doc, "copy")
			if err != nil {
				t.Fatalf("the fields do not load as an SLI: %v\n%s", err, out)
			}
			got := &p.Spec.SLIs[0]
			if got.Name != name || got.Kind() != want.Kind() || got.Budget() != want.Budget() || !slices.Equal(got.Parts(), want.Parts()) {
				t.Errorf("the fields load as %s (%s, budget %g, parts %v), want %s (%s, budget %g, parts %v)",
					got.Name, got.Kind(), got.Budget(), got.Parts(), name, want.Kind(), want.Budget(), want.Parts())
			}
			// Each part's query as sent, read back from the comments,
			// is the engine's (printed over several lines).
			w := slices.Max(want.windows)
			for _, part := range want.Parts() {
				if policies.IsFamily(part) {
					continue
				}
				if q := got.PartQuery(part, w, placeholders); q != want.PartQuery(part, w, placeholders) {
					t.Errorf("%s as copied: %s, want %s", part, q, want.PartQuery(part, w, placeholders))
				}
				printed := commentBlock(out, "# "+fieldOf(want.SLI, part)+":")
				if printed == "" {
					t.Errorf("no PromQL of %s:\n%s", part, out)
					continue
				}
				expr, err := promqlParser.ParseExpr(printed)
				if err != nil {
					t.Errorf("%s as printed does not parse: %v\n%s", part, err, printed)
					continue
				}
				if got, want := expr.String(), want.PartQuery(part, w, placeholders); got != want {
					t.Errorf("%s as printed:\n%s\nwant the query sent:\n%s", part, got, want)
				}
			}
		})
	}

	code, _, errOut = runCLI(t, "presets", "nope")
	if code != exitError || !strings.Contains(errOut, "phase-default") || !strings.Contains(errOut, "drain-failure") {
		t.Errorf("presets nope: exit %d, want %d naming policies and SLI presets:\n%s", code, exitError, errOut)
	}
}

// commentBlock returns the comment lines of out after the line head, up
// to the next line that is not indented under it, without "#   ".
func commentBlock(out, head string) string {
	_, rest, ok := strings.Cut(out, "\n"+head+"\n")
	if !ok {
		return ""
	}
	var b strings.Builder
	for _, l := range strings.Split(rest, "\n") {
		q, ok := strings.CutPrefix(l, "#   ")
		if !ok {
			break
		}
		b.WriteString(q + "\n")
	}
	return b.String()
}

// failingWriter fails every write, as stdout on a full disk or a closed
// pipe does.
type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("no space left on device") }

// TestUnwritableOutput: a command whose output cannot be written says so
// on stderr and never exits 0 (a pass nobody could read is no pass); a
// hold keeps its code, and evaluate, which checks its writes, exits 3.
func TestUnwritableOutput(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		want int
	}{
		{[]string{"help"}, exitError},
		{nil, exitUsage},
		{[]string{"demo", "--brief"}, exitError},
		{[]string{"presets"}, exitError},
		{[]string{"lint", "../../policies/examples/checkout.yaml"}, exitError},
		{[]string{"plan"}, exitError},
		{[]string{"evaluate", "--replay", "healthy"}, exitError},
		{[]string{"backtest", "--replay", "thin-traffic"}, exitHold},
		{[]string{"evaluate", "--replay", "flapping"}, exitError},
	} {
		var stderr bytes.Buffer
		code := run(context.Background(), tc.args, strings.NewReader(""), failingWriter{}, &stderr, func(string) string { return "" })
		if code != tc.want || !strings.Contains(stderr.String(), "no space left on device") {
			t.Errorf("%v: exit %d (want %d), stderr %q", tc.args, code, tc.want, stderr.String())
		}
	}
}
