package action

import (
	"context"
	"strings"
	"testing"
)

// TestLintFindingsAnnotated: a policy that loads but that phaseguard lint
// flags (two ratio SLIs counted with rate(), bad and total each: four
// findings) runs, and the step says so in warning annotations: the first
// three findings, each naming its line, field and SLI, and one counting
// the rest. GitHub shows at most 10 warning annotations of a step. The
// policy as the presets write it gets none.
func TestLintFindingsAnnotated(t *testing.T) {
	t.Parallel()
	p := startScenario(t, "healthy")
	const sli = `
    - name: %s
      objective: 99.9
      ratio:
        bad: sum(rate(phase_requests_total{service="$service",pod_template_hash="$hash",phase!="active"}[$window]))
        total: sum(rate(phase_requests_total{service="$service",pod_template_hash="$hash"}[$window]))`
	policy := "apiVersion: phaseguard.dev/v1alpha1\nkind: Policy\nmetadata: {name: by-rate}\nspec:\n  stages: [{name: canary-10, soak: 10m}]\n  slis:" +
		strings.ReplaceAll(sli, "%s", "drain-a") + strings.ReplaceAll(sli, "%s", "drain-b") + "\n"

	for _, tc := range []struct {
		policy string
		want   []string
	}{
		{policy, []string{
			`line 10: spec.slis[0].ratio.bad: SLI "drain-a": query "sum(rate(`,
			`line 11: spec.slis[0].ratio.total: SLI "drain-a"`,
			`line 15: spec.slis[1].ratio.bad: SLI "drain-b"`,
			"1 more: run phaseguard lint on ",
		}},
		{"phase-default", nil},
	} {
		in := p.inputs(p.truth.StageEnd)
		in["policy"] = tc.policy
		in["github-token"], in["stage-ordering"] = "", "false"
		r := newStep(t, in).run(context.Background())
		var got []string
		for _, a := range r.annotations {
			if strings.HasSuffix(a.title, "phaseguard lint finds") {
				got = append(got, a.msg)
			}
		}
		if len(got) != len(tc.want) {
			t.Errorf("policy %.20q: %d lint annotations, want %d: %q", tc.policy, len(got), len(tc.want), got)
			continue
		}
		for i, want := range tc.want {
			if !strings.Contains(got[i], want) {
				t.Errorf("lint annotation %d %q lacks %q", i, got[i], want)
			}
		}
		if r.outputs["verdict"] == "" {
			t.Errorf("policy %.20q: no verdict; the findings must not stop the step", tc.policy)
		}
	}
}
