package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

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
		if !strings.Contains(out, want) {
			t.Errorf("demo output lacks %q:\n%s", want, out)
		}
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
		if !strings.Contains(out, want) {
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
		{[]string{"lint"}, exitUsage, "Usage: phaseguard lint"},
		{[]string{"presets", "nope"}, exitError, "unknown preset"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			t.Parallel()
			code, _, errOut := runCLI(t, tt.args...)
			if code != tt.want || !strings.Contains(errOut, tt.wantErr) {
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

func TestPresets(t *testing.T) {
	t.Parallel()
	code, out, _ := runCLI(t, "presets")
	if code != exitPass || !strings.Contains(out, "phase-default") || !strings.Contains(out, "kube-readiness-flaps") {
		t.Errorf("exit %d\n%s", code, out)
	}
	code, out, _ = runCLI(t, "presets", "istio")
	if code != exitPass || !strings.Contains(out, "kind: Policy") {
		t.Errorf("exit %d\n%s", code, out)
	}
}
