package main

import (
	"strings"
	"testing"
)

// TestLintFindings: lint fails (exit 1) on le/quantile matchers that only
// one spelling satisfies, naming the file, line, field and matcher and
// suggesting one every spelling satisfies; the built-in le=~"2|2\\.0" is
// not flagged. The three policies are those of the shared le-spelling case.
func TestLintFindings(t *testing.T) {
	t.Parallel()
	tests := []struct {
		file string
		want int
		out  []string
	}{
		{"testdata/le-spelling/preset.yaml", exitPass, []string{"testdata/le-spelling/preset.yaml: ok: policy slow-preset"}},
		{"testdata/le-spelling/bad-minus-bucket.yaml", exitFail, []string{`testdata/le-spelling/bad-minus-bucket.yaml: line 16: spec.slis[0].ratio.bad: le="2" does not match "2.0"`, `use le=~"2|2\\.0", which matches every spelling`}},
		{"testdata/le-spelling/good-bucket.yaml", exitFail, []string{`testdata/le-spelling/good-bucket.yaml: line 13: spec.slis[0].ratio.good: le="2" does not match "2.0"`, `use le=~"2|2\\.0"`}},
		{"../../policies/testdata/le-spelling.lint.yml", exitFail, []string{`quantile="0.50" does not match "0.5"`, `le!="1" does not exclude "1.0"`}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			t.Parallel()
			code, out, errOut := runCLI(t, "lint", tt.file)
			if code != tt.want {
				t.Errorf("exit %d, want %d\n%s%s", code, tt.want, out, errOut)
			}
			for _, want := range tt.out {
				if !strings.Contains(unwrapped(out), want) {
					t.Errorf("output lacks %q:\n%s", want, out)
				}
			}
		})
	}
}

// TestLintOnePass: lint reports decode problems (unknown field, wrong
// type) and validation problems of the same file together, and a policy
// file that is not one (a directory, /dev/zero, an empty file) by name.
func TestLintOnePass(t *testing.T) {
	t.Parallel()
	code, out, _ := runCLI(t, "lint", "../../policies/testdata/one-pass.bad.yml", "/dev/zero", "testdata", "../../policies/testdata/empty.bad.yml")
	if code != exitFail {
		t.Errorf("exit %d, want %d", code, exitFail)
	}
	for _, want := range []string{
		"one-pass.bad.yml: line 10: spec.alpha: must be in (0, 0.5), got 0.7",
		`one-pass.bad.yml: line 11: spec.interval: not a valid duration string: "soon"`,
		`one-pass.bad.yml: line 16: spec.slis[0].objectve: unknown field (did you mean "objective"?)`,
		"one-pass.bad.yml: line 26: spec.slis[2].objective: must be a percentage",
		"/dev/zero: not a regular file (a device)",
		"testdata: not a regular file (a directory)",
		"empty.bad.yml: empty policy",
	} {
		if !strings.Contains(unwrapped(out), want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(unwrapped(out), "objective: missing") {
		t.Errorf("the misspelt objective is reported missing too:\n%s", out)
	}
}

// TestLintRatioRate: lint fails (exit 1) on a ratio SLI that counts with
// rate(), naming the file, line, field and SLI, and passes the same SLI
// counting with increase(). Both policies load, and the finding is what
// it says: on the bundled healthy canary the rate() SLI holds on thin
// evidence where the increase() one passes.
func TestLintRatioRate(t *testing.T) {
	t.Parallel()
	const rate, increase = "testdata/ratio-rate/rate.yaml", "testdata/ratio-rate/increase.yaml"
	code, out, errOut := runCLI(t, "lint", rate, increase)
	if code != exitFail {
		t.Errorf("exit %d, want %d\n%s%s", code, exitFail, out, errOut)
	}
	for _, want := range []string{
		rate + `: line 14: spec.slis[0].ratio.bad: SLI "drain-failure-rate": query "sum(rate(phase_requests_total{`,
		rate + `: line 15: spec.slis[0].ratio.total: SLI "drain-failure-rate": query "sum(rate(phase_requests_total{`,
		"counts with rate(), events per second", "use increase()",
		increase + ": ok: policy drain-by-increase, 1 SLI, 2 window pairs, stages none",
	} {
		if !strings.Contains(unwrapped(out), want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if n := strings.Count(unwrapped(out), "counts with rate()"); n != 2 {
		t.Errorf("%d findings, want 2 (bad and total of the rate() SLI, none of the increase() one):\n%s", n, out)
	}

	for _, tt := range []struct {
		policy string
		want   int
		reason string
	}{
		{rate, exitHold, "thin evidence"},
		{increase, exitPass, "PASS"},
	} {
		code, out, errOut := runCLI(t, "evaluate", "--replay", "healthy", "--policy", tt.policy)
		if code != tt.want || !strings.Contains(out, tt.reason) {
			t.Errorf("evaluate --policy %s: exit %d (want %d), output lacks %q?\n%s%s", tt.policy, code, tt.want, tt.reason, out, errOut)
		}
		// evaluate says on stderr what lint finds, and nothing when lint
		// finds nothing.
		notice := strings.Contains(errOut, "phaseguard: policy drain-by-rate: lint finds: line 14: spec.slis[0].ratio.bad: SLI")
		if notice != (tt.policy == rate) || (tt.policy == increase && errOut != "") {
			t.Errorf("evaluate --policy %s: stderr %q", tt.policy, errOut)
		}
	}
}
