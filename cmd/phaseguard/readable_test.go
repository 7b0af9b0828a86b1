package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/phaseguard/phaseguard/internal/redact"
	"github.com/phaseguard/phaseguard/policies"
	"github.com/phaseguard/phaseguard/report"
)

// lookStart is the first line of a look of backtest's text output.
var lookStart = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ  (pass|hold|fail)  peak window burn `)

// TestBacktestReadable: backtest's text output fits report.Width, one look
// an entry: its first line starts with the look's time, verdict and peak
// burn, and the reason wraps under it indented by four spaces, whole (the
// entry read as one line ends with the reason of the look's JSON).
func TestBacktestReadable(t *testing.T) {
	t.Parallel()
	for _, scenario := range []string{"healthy", "flapping", "drain-misrouting"} {
		t.Run(scenario, func(t *testing.T) {
			t.Parallel()
			_, out, errOut := runCLI(t, "backtest", "--replay", scenario, "--step", "2m")
			_, js, _ := runCLI(t, "backtest", "--replay", scenario, "--step", "2m", "--output", "json")
			if out == "" {
				t.Fatalf("no output: %s", errOut)
			}
			checkReadable(t, "backtest "+scenario, out, report.Width)
			var looks []string
			for _, l := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
				switch {
				case lookStart.MatchString(l):
					looks = append(looks, l)
				case strings.HasPrefix(l, "    ") && l[4] != ' ' && len(looks) > 0:
					looks[len(looks)-1] += " " + l[4:]
				default:
					t.Fatalf("a line neither starts a look nor continues one: %q", l)
				}
			}
			var reasons []string
			for _, l := range strings.Split(strings.TrimSuffix(js, "\n"), "\n") {
				var v backtestLine
				if err := json.Unmarshal([]byte(l), &v); err != nil {
					t.Fatalf("%v: %s", err, l)
				}
				reasons = append(reasons, v.Reason)
			}
			if len(looks) != len(reasons) || len(looks) < 10 {
				t.Fatalf("%d looks in text, %d in JSON", len(looks), len(reasons))
			}
			for i, l := range looks {
				if !strings.HasSuffix(l, "  "+reasons[i]) {
					t.Errorf("look %d does not end with its reason %q:\n%s", i+1, reasons[i], l)
				}
			}
		})
	}
}

// TestWatchLinesReadable: a watch that is not on a terminal logs each look
// within report.Width, its reason wrapped under the look's line.
func TestWatchLinesReadable(t *testing.T) {
	t.Parallel()
	code, out, errOut := runCLI(t, "watch", "--replay", "flapping", "--stage", "canary-50")
	if code != exitFail {
		t.Fatalf("exit %d, want %d\n%s%s", code, exitFail, out, errOut)
	}
	checkReadable(t, "watch", out, report.Width)
	// The look that fails the stage names the SLI, its burn and, wrapped
	// under the line, the whole reason.
	if !regexp.MustCompile(`(?m)^\S+  look 10/30  fail  10m left  worst flaps \S+ over \S+  flaps:.*\n    \S`).MatchString(out) {
		t.Errorf("no deciding look with its reason wrapped under it:\n%s", out)
	}
}

// TestLintReadable: lint's findings and its ok lines fit report.Width; a
// longer one wraps under its first line, indented by four spaces, and
// only a finding's first line starts with the file's name.
func TestLintReadable(t *testing.T) {
	t.Parallel()
	files := []string{"../../policies/testdata/bad-promql.bad.yml", "../../policies/testdata/bad-values.bad.yml",
		"../../policies/testdata/le-spelling.lint.yml", "testdata/ratio-rate/rate.yaml", "../../policies/presets/phase-default.yaml"}
	code, out, errOut := runCLI(t, append([]string{"lint"}, files...)...)
	if code != exitFail {
		t.Fatalf("exit %d, want %d\n%s%s", code, exitFail, out, errOut)
	}
	checkReadable(t, "lint", out, report.Width)
	findings := map[string]int{}
	for _, l := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		if strings.HasPrefix(l, "    ") {
			continue
		}
		file, _, ok := strings.Cut(l, ": ")
		if !ok || !strings.HasPrefix(l, file+": line ") && !strings.HasPrefix(l, file+": ok: ") {
			t.Errorf("a line neither starts a finding with its file nor continues one: %q", l)
		}
		findings[file]++
	}
	for _, f := range files {
		if findings[f] == 0 {
			t.Errorf("no finding of %s:\n%s", f, out)
		}
	}
	if !strings.Contains(unwrapped(out), "phase-default.yaml: ok: policy phase-default, 7 SLIs, 2 window pairs, stages canary-10(10m) -> canary-50(15m) -> full(5m)") {
		t.Errorf("the ok line of phase-default is not whole:\n%s", out)
	}
}

// TestUsageReadable: the command list and every command's -h fit
// report.Width, a tab counted as the columns it fills, and say all they
// said on one line.
func TestUsageReadable(t *testing.T) {
	t.Parallel()
	code, out, _ := runCLI(t, "help")
	if code != exitPass {
		t.Fatalf("help: exit %d", code)
	}
	checkReadable(t, "help", out, report.Width)
	words := strings.Join(strings.Fields(out), " ")
	for name, c := range commands() {
		if !strings.Contains(words, name+" "+c.summary) {
			t.Errorf("help lacks %s: %s\n%s", name, c.summary, out)
		}
	}
	var names []string
	for name := range commands() {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			_, out, errOut := runCLI(t, name, "-h")
			if errOut == "" {
				t.Fatalf("%s -h says nothing:\n%s", name, out)
			}
			checkReadable(t, name+" -h", strings.ReplaceAll(errOut, "\t", "    "), report.Width)
		})
	}
	_, _, errOut := runCLI(t, "backtest", "-h")
	for _, want := range []string{"Usage: phaseguard backtest [flags]\n\nFlags:\n", "\n  -since string\n    \twhen the canary started serving", "\n  -timeout duration\n", `(default "text")`} {
		if !strings.Contains(errOut, want) {
			t.Errorf("backtest -h lacks %q:\n%s", want, errOut)
		}
	}
}

// TestFlagUsage: flagUsage prints what flag.PrintDefaults prints, type
// names and defaults included, with each usage text wrapped to
// report.Width under its flag.
func TestFlagUsage(t *testing.T) {
	t.Parallel()
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	fs.String("since", "", strings.TrimSpace(strings.Repeat("when the canary started serving, as RFC 3339 or Unix seconds; ", 4)))
	fs.String("output", "text", "output `format`: text or json")
	fs.Duration("timeout", 30*time.Second, "deadline for one evaluation")
	fs.Bool("v", false, "verbose")
	var want strings.Builder
	fs.SetOutput(&want)
	fs.PrintDefaults()
	var got strings.Builder
	flagUsage(&got, fs)
	for _, l := range strings.Split(got.String(), "\n") {
		if n := len([]rune(strings.ReplaceAll(l, "\t", "    "))); n > report.Width {
			t.Errorf("line of %d columns: %q", n, l)
		}
	}
	text, ok := strings.CutPrefix(got.String(), "\nFlags:\n")
	if !ok {
		t.Fatalf("no Flags: line:\n%s", got.String())
	}
	// Joined back, the wrapped lines are PrintDefaults'.
	if diff := cmp.Diff(strings.Split(want.String(), "\n"), rejoin(text)); diff != "" {
		t.Errorf("flagUsage, its wrapped lines joined, differs from PrintDefaults (-want +got):\n%s", diff)
	}
	if !strings.Contains(text, "  -since string\n    \twhen") || strings.Count(text, "\n    \twhen") != 1 {
		t.Errorf("-since's usage is not wrapped under it:\n%s", text)
	}
	var none strings.Builder
	flagUsage(&none, flag.NewFlagSet("y", flag.ContinueOnError))
	if none.Len() != 0 {
		t.Errorf("a command without flags: %q", none.String())
	}
}

// rejoin joins each usage line of flagUsage's output ("    \t...") that
// continues the one before it, as PrintDefaults would have written them.
func rejoin(text string) []string {
	var lines []string
	for _, l := range strings.Split(text, "\n") {
		if rest, ok := strings.CutPrefix(l, "    \t"); ok && len(lines) > 0 && strings.HasPrefix(lines[len(lines)-1], "    \t") {
			lines[len(lines)-1] += " " + rest
			continue
		}
		lines = append(lines, l)
	}
	return lines
}

// TestErrorReadable: an error longer than report.Width wraps at spaces
// under "phaseguard CMD:", indented by two spaces, every word kept; each
// problem of a joined error starts its own line, indented by two.
func TestErrorReadable(t *testing.T) {
	t.Parallel()
	code, _, errOut := runCLI(t, "presets", "nosuch")
	if code != exitError {
		t.Fatalf("exit %d, want %d: %s", code, exitError, errOut)
	}
	checkReadable(t, "presets nosuch", errOut, report.Width)
	want := fmt.Sprintf("phaseguard presets: unknown preset %q (policies: %s; SLI presets: %s)\n", "nosuch",
		strings.Join(policies.PresetNames(), ", "), strings.Join(policies.SLIPresetNames(), ", "))
	if got := unwrapped(errOut); got != want || !strings.Contains(errOut, "\n  ") {
		t.Errorf("presets nosuch:\n%s\nwant, wrapped:\n%s", errOut, want)
	}

	code, _, errOut = runCLI(t, "evaluate", "--replay", "healthy", "--policy", "../../policies/testdata/bad-values.bad.yml")
	if code != exitError {
		t.Fatalf("exit %d, want %d: %s", code, exitError, errOut)
	}
	checkReadable(t, "evaluate with a bad policy", errOut, report.Width)
	lines := strings.Split(strings.TrimSuffix(errOut, "\n"), "\n")
	if !strings.HasPrefix(lines[0], "phaseguard evaluate: policy ") || !strings.HasSuffix(lines[0], ": 14 problems") {
		t.Errorf("first line %q", lines[0])
	}
	problems := 0
	for _, l := range lines[1:] {
		switch {
		case strings.HasPrefix(l, "    line "):
			problems++
		case strings.HasPrefix(l, "      ") && l[6] != ' ':
		default:
			t.Errorf("a line neither starts a problem nor continues one: %q", l)
		}
	}
	if problems != 14 {
		t.Errorf("%d problems, want 14:\n%s", problems, errOut)
	}
}

// TestErrorWrapRedacts: a secret of several words in an error is redacted
// before the error wraps, so that no wrap splits it where stderr's
// redaction, line by line, would not find it.
func TestErrorWrapRedacts(t *testing.T) {
	t.Parallel()
	const secret = "correct horse battery staple"
	secrets := redact.New(secret)
	// The secret starts at every column from 60 to 100: some wraps would
	// split it.
	for pad := 0; pad <= 40; pad++ {
		var b strings.Builder
		stderr := secrets.Writer(&b)
		err := fmt.Errorf("%s the server quoted the header it was sent, X-Api-Key: %s, in its answer 401", strings.Repeat("x", pad), secret)
		fail(env{stderr: stderr, secrets: secrets}, "evaluate", err)
		if err := stderr.Flush(); err != nil {
			t.Fatal(err)
		}
		if strings.Contains(b.String(), "horse") || strings.Contains(b.String(), "staple") || !strings.Contains(b.String(), redact.Mark) {
			t.Errorf("stderr shows the secret, or no mark:\n%s", b.String())
		}
		checkReadable(t, "error", b.String(), report.Width)
	}
}
