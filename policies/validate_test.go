package policies

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
)

// TestLintPolicies checks that each testdata/*.lint.yml loads (lint
// findings never stop a policy) and that Lint reports exactly the findings
// in its .err file, each with its line and field path.
func TestLintPolicies(t *testing.T) {
	t.Parallel()
	files, _ := filepath.Glob("testdata/*.lint.yml")
	if len(files) == 0 {
		t.Fatal("no testdata/*.lint.yml")
	}
	for _, f := range files {
		t.Run(f, func(t *testing.T) {
			t.Parallel()
			p, err := LoadFile(f)
			if err != nil {
				t.Fatalf("does not load: %v", err)
			}
			if len(p.Warnings()) == 0 {
				t.Error("loaded with no warnings; want lint's findings")
			}
			if _, err = LintFile(f); err == nil {
				t.Fatal("lint found nothing")
			}
			compareGolden(t, strings.TrimSuffix(f, ".yml")+".err", err.Error()+"\n")
		})
	}
}

// TestLintCleanPolicies: lint finds nothing in the examples, the presets
// and the good fixtures (the built-in slow-propagation SLI writes
// le=~"2|2\\.0").
func TestLintCleanPolicies(t *testing.T) {
	t.Parallel()
	files, _ := filepath.Glob("testdata/*.good.yml")
	examples, _ := filepath.Glob("examples/*.yaml")
	for _, f := range append(files, examples...) {
		if _, err := LintFile(f); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
	for _, n := range PresetNames() {
		data, err := PresetYAML(n)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Lint(data, n); err != nil {
			t.Errorf("preset %s: %v", n, err)
		}
	}
}

// TestSpellingProblem checks the le/quantile rule matcher by matcher: which
// are flagged, and the matcher suggested instead, which must hold for every
// spelling.
func TestSpellingProblem(t *testing.T) {
	t.Parallel()
	tests := []struct {
		sel     string
		wantFix string // "" when not flagged
	}{
		{`le="2"`, `le=~"2|2\\.0"`},
		{`le="2.0"`, `le=~"2\\.0|2"`},
		{`le=~"2|2\\.0"`, ""},
		{`le=~"2"`, `le=~"2|2\\.0"`},
		{`le!="2"`, `le!~"2|2\\.0"`},
		{`le!~"2|2\\.0"`, ""},
		{`le="1e+06"`, `le=~"1e\\+06|1000000\\.0"`},
		{`le="1000000.0"`, `le=~"1000000\\.0|1e\\+06"`},
		{`le="0.25"`, ""},
		{`le="+Inf"`, ""},
		{`le="Inf"`, `le=~"Inf|\\+Inf"`},
		{`le=~".*"`, ""},
		{`quantile="0.5"`, ""},
		{`quantile="0.50"`, `quantile=~"0\\.50|0\\.5"`},
		{`quantile="1"`, `quantile=~"1|1\\.0"`},
		{`code="2"`, ""},
		{`le="fast"`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.sel, func(t *testing.T) {
			t.Parallel()
			msg := spellingProblem(matcherOf(t, tt.sel))
			if tt.wantFix == "" {
				if msg != "" {
					t.Errorf("flagged: %s", msg)
				}
				return
			}
			if !strings.Contains(msg, "; use "+tt.wantFix+", which") {
				t.Fatalf("message %q does not suggest %s", msg, tt.wantFix)
			}
			// The suggestion itself is not flagged.
			if again := spellingProblem(matcherOf(t, tt.wantFix)); again != "" {
				t.Errorf("suggestion %s is flagged too: %s", tt.wantFix, again)
			}
		})
	}
}

// TestPartTargetsCheckedPerPart: a part that selects nothing fails even
// when another part of its SLI selects the target, and the problem names
// the part's field, not the SLI.
func TestPartTargetsCheckedPerPart(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, parts, wantPath string
	}{
		{"bad of everyone", "ratio: {bad: 'sum(increase(b[$window]))', total: 'sum(increase(t{service=\"$service\"}[$window]))'}", "spec.slis[0].ratio.bad"},
		{"good of everyone", "ratio: {good: 'sum(increase(g[$window]))', total: 'sum(increase(t{pod_template_hash=\"$hash\"}[$window]))'}", "spec.slis[0].ratio.good"},
		{"total of everyone", "ratio: {bad: 'sum(increase(b{pod_template_hash=\"$hash\"}[$window]))', total: 'sum(increase(t[$window]))'}", "spec.slis[0].ratio.total"},
		{"events of everyone", "rate: {events: 'sum(increase(e[$window]))', presence: 'sum(count_over_time(e{service=\"$service\"}[$window]))'}", "spec.slis[0].rate.events"},
		{"presence of everyone", "rate: {events: 'sum(increase(e{service=\"$service\"}[$window]))', presence: 'sum(count_over_time(up[$window]))'}", "spec.slis[0].rate.presence"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			kind := "objective: 99.9"
			if strings.HasPrefix(tt.parts, "rate") {
				kind = "allowance: 2"
			}
			doc := "apiVersion: phaseguard.dev/v1alpha1\nkind: Policy\nmetadata: {name: t}\nspec:\n  slis:\n    - name: s\n      " + kind + "\n      " + tt.parts + "\n"
			_, err := Load([]byte(doc), "test")
			var pe *Error
			if !errors.As(err, &pe) || len(pe.Errs) != 1 {
				t.Fatalf("got %v; want exactly one problem", err)
			}
			var fe *FieldError
			if !errors.As(pe.Errs[0], &fe) || fe.Path != tt.wantPath || fe.Line != 8 || !strings.Contains(fe.Msg, "does not select the target") {
				t.Errorf("got %v; want line 8: %s: does not select the target", pe.Errs[0], tt.wantPath)
			}
		})
	}
}

// matcherOf parses one label matcher.
func matcherOf(t *testing.T, sel string) *labels.Matcher {
	t.Helper()
	e, ok := parsePart("x{" + sel + "}")
	vs, isVS := e.(*parser.VectorSelector)
	if !ok || !isVS {
		t.Fatalf("%s does not parse as a selector", sel)
	}
	for _, m := range vs.LabelMatchers {
		if m.Name != model.MetricNameLabel {
			return m
		}
	}
	t.Fatalf("%s has no matcher", sel)
	return nil
}

// TestDefaultsOnlyForAbsentFields: an absent or null field takes its
// default; minBurn defaults to 1 (a canary inside its budget is not rolled
// back for being worse than stable) and keeps an explicit 0.
func TestDefaultsOnlyForAbsentFields(t *testing.T) {
	t.Parallel()
	type got struct {
		Alpha, MinSamples, MaxRatio, MinBurn, Objective float64
		Interval                                        string
		Windows                                         int
	}
	tests := []struct {
		file string
		want got
	}{
		{"testdata/minimal.good.yml", got{Alpha: 0.05, MinSamples: 100, MaxRatio: 2, MinBurn: 1, Objective: 99.9, Interval: "30s", Windows: 2}},
		{"testdata/explicit-nulls.good.yml", got{Alpha: 0.05, MinSamples: 100, MaxRatio: 2, MinBurn: 0, Objective: 99.9, Interval: "30s", Windows: 2}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			t.Parallel()
			p, err := LoadFile(tt.file)
			if err != nil {
				t.Fatal(err)
			}
			s := p.Spec
			g := got{s.Alpha, s.MinSamples, s.Baseline.MaxRatio, s.Baseline.MinBurn, s.SLIs[0].Objective, s.Interval.String(), len(s.Windows)}
			if diff := cmp.Diff(tt.want, g); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}
