package main

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/phaseguard/phaseguard/bench"
	"github.com/phaseguard/phaseguard/scenarios"
)

func TestWithoutFlag(t *testing.T) {
	t.Parallel()
	tests := []struct {
		args, want []string
	}{
		{[]string{"-seed", "1", "-observations", "/tmp/x.gob", "-out", "B.md"}, []string{"-seed", "1", "-out", "B.md"}},
		{[]string{"--observations=/tmp/x.gob", "-seed", "1"}, []string{"-seed", "1"}},
		{[]string{"-seed", "1"}, []string{"-seed", "1"}},
		// A value that happens to equal the flag's name is kept.
		{[]string{"-out", "observations"}, []string{"-out", "observations"}},
	}
	for _, tt := range tests {
		if diff := cmp.Diff(tt.want, withoutFlag(tt.args, "observations")); diff != "" {
			t.Errorf("withoutFlag(%q) mismatch (-want +got):\n%s", tt.args, diff)
		}
	}
}

func TestCostSample(t *testing.T) {
	t.Parallel()
	cases := bench.Corpus(1, 3, 3, 2, bench.DefaultGeometry)
	var got []string
	for _, c := range costSample(cases, 5) {
		got = append(got, c.Spec.Name)
	}
	want := []string{"healthy-000", cases[3].Spec.Name, "healthy-001", cases[4].Spec.Name, "healthy-002"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("costSample mismatch (-want +got):\n%s", diff)
	}
}

// TestWithOracle checks that observations without the oracle's outcome on
// a run with a fault are observed again, and that healthy runs need none.
func TestWithOracle(t *testing.T) {
	t.Parallel()
	healthy := &bench.Run{Name: "h"}
	fault := func(o *bench.OracleRun) *bench.Run {
		r := &bench.Run{Name: "f", Oracle: o}
		r.Truth.Fault = &scenarios.FaultTruth{Kind: scenarios.DrainMisrouting}
		return r
	}
	tests := []struct {
		name string
		runs []*bench.Run
		want bool
	}{
		{"healthy only", []*bench.Run{healthy}, true},
		{"fault with the oracle", []*bench.Run{healthy, fault(&bench.OracleRun{Look: -1})}, true},
		{"fault from before the oracle", []*bench.Run{healthy, fault(nil)}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := withOracle(tt.runs); got != tt.want {
				t.Errorf("withOracle = %v, want %v", got, tt.want)
			}
		})
	}
}
