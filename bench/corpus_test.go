package bench

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/phaseguard/phaseguard/scenarios"
)

// TestCorpusPrior checks that every case, healthy, faulty and full drain,
// is fitted after the prior stage of the geometry: its canary starts
// g.Prior before the stage at g.PriorWeight of its stage traffic, the
// warm-up without the canary keeps its length, restarts and gaps drawn in
// the stage stay in it (none falls in the prior stage), and the engine is
// told the canary's start. Without a prior stage the cases are those of a
// canary born at the stage start.
func TestCorpusPrior(t *testing.T) {
	t.Parallel()
	g := DefaultGeometry
	if g.Prior <= 0 || !(g.PriorWeight > 0 && g.PriorWeight <= 1) {
		t.Fatalf("DefaultGeometry %+v has no prior stage", g)
	}
	j := judge(t)
	cases := Corpus(11, 20, 30, 5, g)
	raw := append(scenarios.Corpus(11, 20, 30), make([]scenarios.Spec, 5)...)
	sets := map[Set]int{}
	for i, c := range cases {
		s := c.Spec.WithDefaults()
		sets[c.Set]++
		if s.Prior != g.Prior || s.PriorWeight != g.PriorWeight {
			t.Errorf("%s: prior %s at %g, want %s at %g", s.Name, s.Prior, s.PriorWeight, g.Prior, g.PriorWeight)
		}
		if s.WarmUp != scenarios.DefaultWarmUp+g.Prior {
			t.Errorf("%s: warm-up %s, want %s", s.Name, s.WarmUp, scenarios.DefaultWarmUp+g.Prior)
		}
		canaryStart := s.WarmUp - s.Prior
		for k, r := range s.Restarts {
			if r.At >= canaryStart && r.At < s.WarmUp {
				t.Errorf("%s: restarts[%d] at %s, in the prior stage [%s, %s)", s.Name, k, r.At, canaryStart, s.WarmUp)
			}
			if c.Set != FullDrain {
				if from := raw[i].Restarts[k].At; from >= scenarios.DefaultWarmUp && r.At < s.WarmUp {
					t.Errorf("%s: restarts[%d] drawn in the stage at %s, fitted before it at %s", s.Name, k, from, r.At)
				}
			}
		}
		for k, gp := range s.Gaps {
			if gp.At >= canaryStart && gp.At < s.WarmUp {
				t.Errorf("%s: gaps[%d] at %s, in the prior stage [%s, %s)", s.Name, k, gp.At, canaryStart, s.WarmUp)
			}
		}
	}
	if sets[Healthy] != 20 || sets[Faulty] != 30 || sets[FullDrain] != 5 {
		t.Errorf("sets %v", sets)
	}
	// The engine is told the canary's start, before the stage.
	for _, c := range []Case{cases[0], cases[20], cases[50]} {
		sc, err := scenarios.Generate(c.Spec)
		if err != nil {
			t.Fatal(err)
		}
		tr := sc.Truth
		if want := tr.StageStart.Add(-g.Prior); !tr.CanaryStart.Equal(want) {
			t.Errorf("%s: canary start %s, want %s", tr.Name, tr.CanaryStart, want)
		}
		if got := Request(j, tr).Since; !got.Equal(tr.CanaryStart) {
			t.Errorf("%s: Request.Since %s, want the canary's start %s", tr.Name, got, tr.CanaryStart)
		}
	}
	// Without a prior stage: no prior, the default warm-up, the canary
	// born at the stage start.
	none := g
	none.Prior, none.PriorWeight = 0, 0
	for _, c := range Corpus(11, 3, 3, 1, none) {
		if c.Spec.Prior != 0 || c.Spec.PriorWeight != 0 || c.Spec.WarmUp != scenarios.DefaultWarmUp {
			t.Errorf("%s without a prior stage: prior %s at %g, warm-up %s", c.Spec.Name, c.Spec.Prior, c.Spec.PriorWeight, c.Spec.WarmUp)
		}
	}
	// A Truth without CanaryStart (made by hand) is judged since its
	// stage start.
	tr := scenarios.Truth{StageStart: time.Date(2026, 1, 1, 0, 20, 0, 0, time.UTC)}
	if diff := cmp.Diff(tr.StageStart, Request(j, tr).Since); diff != "" {
		t.Errorf("Request.Since of a truth without a canary start (-want +got):\n%s", diff)
	}
}
