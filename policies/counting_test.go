package policies

import (
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// bornAware is what countFromZero makes of increase(sel[w]).
func bornAware(sel, w string) string {
	before := fmt.Sprintf("present_over_time(%s[1h] offset %s)", sel, w)
	return fmt.Sprintf("((max_over_time(%s[%s]) unless %s) or increase(%s[%s]))", sel, w, before, sel, w)
}

// TestCountFromZero checks the rewrite of every counter increase, exact
// query strings in the manner of pyrra's slo tests, and what it leaves
// alone.
func TestCountFromZero(t *testing.T) {
	t.Parallel()
	m := `m_total{service="$service"}`
	for _, tc := range []struct {
		name, in, want string
	}{
		{"increase", `sum(increase(m_total{service="$service"}[5m]))`, "sum(" + bornAware(m, "5m") + ")"},
		{"rate is increase over the window's seconds", `sum(rate(m_total{service="$service"}[5m]))`, "sum((" + bornAware(m, "5m") + " / 300))"},
		{"offset adds to the look before", `sum(increase(m_total{service="$service"}[5m] offset 1m))`,
			`sum(((max_over_time(m_total{service="$service"}[5m] offset 1m) unless present_over_time(m_total{service="$service"}[1h] offset 6m)) or increase(m_total{service="$service"}[5m] offset 1m)))`},
		{"both sides of arithmetic", `sum(increase(m_total{service="$service"}[5m])) - sum(increase(n_total{service="$service"}[5m]))`,
			"sum(" + bornAware(m, "5m") + ") - sum(" + bornAware(`n_total{service="$service"}`, "5m") + ")"},
		{"nested in functions and aggregations", `clamp_min(sum by (pod) (increase(m_total{service="$service"}[5m])), 0)`,
			"clamp_min(sum by (pod) (" + bornAware(m, "5m") + "), 0)"},
		{"@ is left alone", `sum(increase(m_total{service="$service"}[5m] @ 1000))`, `sum(increase(m_total{service="$service"}[5m] @ 1000.000))`},
		{"a subquery is left alone", `sum(increase(m_total{service="$service"}[5m:1m]))`, `sum(increase(m_total{service="$service"}[5m:1m]))`},
		{"other functions are left alone", `sum(resets(m_total{service="$service"}[5m]))`, `sum(resets(m_total{service="$service"}[5m]))`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e, err := promqlParser.ParseExpr(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			got, err := countFromZero(e)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got.String()); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

// TestAbsence checks which families each part's absence needs and which
// parts cannot tell absence from zero.
func TestAbsence(t *testing.T) {
	t.Parallel()
	p, err := Load([]byte(`
apiVersion: phaseguard.dev/v1alpha1
kind: Policy
metadata: {name: absence}
spec:
  slis:
    - name: minus-bucket
      objective: 99
      ratio:
        bad: sum(increase(h_count{service="$service",pod_template_hash="$hash"}[$window])) - sum(increase(h_bucket{service="$service",pod_template_hash="$hash",le="2.0",job="x"}[$window]))
        total: sum(increase(h_count{service="$service",pod_template_hash="$hash"}[$window]))
    - name: lazy-child
      objective: 99.9
      ratio:
        bad: sum(increase(req_total{service="$service",pod_template_hash="$hash",code=~"5.."}[$window])) or sum(increase(other_total{service="$service",pod_template_hash="$hash",code="503"}[$window]))
        total: sum(increase(req_total{service="$service",pod_template_hash="$hash"}[$window]))
`), "absence")
	if err != nil {
		t.Fatal(err)
	}
	tgt := Target{Service: "checkout", Hash: "abc"}
	type fam struct {
		Needs []string
		Safe  bool
	}
	got := map[string]fam{}
	for _, s := range p.Spec.SLIs {
		for _, part := range s.Parts() {
			if IsFamily(part) {
				continue
			}
			a := s.Absence(part)
			f := fam{Safe: a.Safe, Needs: []string{}}
			for _, n := range a.Needs {
				f.Needs = append(f.Needs, s.Family(n, tgt))
			}
			got[s.Name+" "+string(part)] = f
		}
	}
	want := map[string]fam{
		// le is kept (buckets always exist), job only as a label that must
		// exist (its values may be created on first use); an arithmetic
		// part can't tell.
		"minus-bucket bad":   {Needs: []string{`h_count{pod_template_hash="abc",service="checkout"}`, `h_bucket{job=~".+",le="2.0",pod_template_hash="abc",service="checkout"}`}, Safe: false},
		"minus-bucket total": {Needs: []string{`h_count{pod_template_hash="abc",service="checkout"}`}, Safe: true},
		"lazy-child bad":     {Needs: []string{`req_total{code=~".+",pod_template_hash="abc",service="checkout"}`, `other_total{code=~".+",pod_template_hash="abc",service="checkout"}`}, Safe: true},
		"lazy-child total":   {Needs: []string{`req_total{pod_template_hash="abc",service="checkout"}`}, Safe: true},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("absence (-want +got):\n%s", diff)
	}
	if q := p.Spec.SLIs[0].Query(tgt); !strings.Contains(q, `"phaseguard_part", "presence/1"`) {
		t.Errorf("the batched query has no presence check of the second family: %s", q)
	}
}

// TestAuthoredQuery: the part as written, for baselines that model what
// Argo and Flagger users send.
func TestAuthoredQuery(t *testing.T) {
	t.Parallel()
	p, err := Preset("phase-default")
	if err != nil {
		t.Fatal(err)
	}
	s := p.Spec.SLIs[0]
	got := s.AuthoredQuery(PartBad, 5*60e9, Target{Service: "checkout", Hash: "abc"})
	want := `sum(increase(phase_requests_total{phase!="active",pod_template_hash="abc",service="checkout"}[5m]))`
	if got != want {
		t.Errorf("AuthoredQuery = %s, want %s", got, want)
	}
	if got := s.AuthoredQuery(PartBad, 7*60e9, Target{}); got != "" {
		t.Errorf("a window the policy does not have: %q, want empty", got)
	}
}

// TestPartsCountTheWindow: a part that does not use $window, or a rate
// SLI's events counted per second with rate(), would read a failing canary
// as healthy; both are refused naming the part.
func TestPartsCountTheWindow(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, sli, want string }{
		{"fixed range", `{name: s, objective: 99.9, ratio: {bad: 'sum(increase(b{service="$service"}[1m]))', total: 'sum(increase(t{service="$service"}[$window]))'}}`,
			`spec.slis[0].ratio.bad: query "sum(increase(b{service=\"$service\"}[1m]))" does not use $window`},
		{"rate() for events", `{name: s, allowance: 2, rate: {events: 'sum(rate(e{service="$service"}[$window]))'}}`,
			`spec.slis[0].rate.events: SLI "s": query "sum(rate(e{service=\"$service\"}[$window]))" uses rate() or irate()`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := Load([]byte("apiVersion: phaseguard.dev/v1alpha1\nkind: Policy\nmetadata: {name: t}\nspec:\n  slis:\n    - "+tc.sli+"\n"), "t")
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v; want an error with %s", err, tc.want)
			}
		})
	}
}
