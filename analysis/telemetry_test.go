package analysis_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/common/model"

	"github.com/phaseguard/phaseguard/analysis"
	"github.com/phaseguard/phaseguard/policies"
)

// answers is a Querier that answers every query with fixed series, one
// per (part, window): what a server returns for the batched query. A part
// missing from the map is absent from the answer.
type answers map[policies.Part]map[string]float64

// A range the query asks for beyond the map's windows (a restart of a
// pair's test, the canary's life) counts at the pace of the shortest
// window at least as long, or of the longest: its value scaled by length,
// as a steady canary's would be.
func (a answers) Query(_ context.Context, q string, _ time.Time) (model.Vector, error) {
	var v model.Vector
	asked := windowLabelRE.FindAllStringSubmatch(q, -1)
	for part, wins := range a {
		seen := map[string]bool{}
		add := func(w string, x float64) {
			if !seen[w] {
				seen[w] = true
				v = append(v, &model.Sample{Value: model.SampleValue(x), Metric: model.Metric{
					policies.PartLabel: model.LabelValue(part), policies.WindowLabel: model.LabelValue(w)}})
			}
		}
		for w, x := range wins {
			add(w, x)
		}
		for _, m := range asked {
			d, err := model.ParseDuration(m[1])
			if err != nil || seen[m[1]] || len(wins) == 0 || slices.Contains([]string{"15m", "5m", "3m", "1m"}, m[1]) {
				continue
			}
			var from model.Duration
			for w := range wins {
				wd, _ := model.ParseDuration(w)
				if from == 0 || wd >= d && (from < d || wd < from) || from < d && wd > from {
					from = wd
				}
			}
			if strings.HasPrefix(string(part), "presence") {
				add(m[1], wins[from.String()])
				continue
			}
			add(m[1], wins[from.String()]*float64(d)/float64(from))
		}
	}
	return v, nil
}

var countByRE = regexp.MustCompile(`^count by \(([a-z_]+)\)`)

var windowLabelRE = regexp.MustCompile(`"` + policies.WindowLabel + `", "([0-9a-z]+)"`)

// every gives the same value in every window of phase-default's pairs,
// scaled by window length (events per minute).
func every(perMinute float64) map[string]float64 {
	return map[string]float64{"15m": 15 * perMinute, "5m": 5 * perMinute, "3m": 3 * perMinute, "1m": perMinute}
}

func loadPolicy(t *testing.T, yaml string) *policies.Policy {
	t.Helper()
	p, err := policies.Load([]byte(yaml), t.Name())
	if err != nil {
		t.Fatal(err)
	}
	return p
}

const drainPolicy = `
apiVersion: phaseguard.dev/v1alpha1
kind: Policy
metadata: {name: drain}
spec:
  stages: [{name: canary-10, soak: 10m}]
  slis: [{preset: drain-failure}]
`

func evaluate(t *testing.T, q analysis.Querier, p *policies.Policy, stable string) *analysis.Verdict {
	t.Helper()
	v, err := analysis.New(q).Evaluate(context.Background(), analysis.Request{Policy: p, Stage: p.Spec.Stages[0].Name,
		Service: "checkout", Namespace: "shop", CanaryHash: "7f8c9d6b4", StableHash: stable, At: time.Unix(1767226800, 0)})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestWindowsWithoutData: a window whose series are missing (the newest
// minutes not scraped or not ingested) is not a window within budget.
// Whatever the other windows say, the SLI never passes, and the reason
// names the windows without data; a fail still needs only the windows
// that have data.
func TestWindowsWithoutData(t *testing.T) {
	t.Parallel()
	p := loadPolicy(t, drainPolicy)
	presence := policies.Part("presence/0")
	drop := func(m map[string]float64, wins ...string) map[string]float64 {
		out := map[string]float64{}
		for w, x := range m {
			if !slices.Contains(wins, w) {
				out[w] = x
			}
		}
		return out
	}
	for _, tc := range []struct {
		name    string
		a       answers
		want    analysis.Decision
		windows []string // named in the reason
	}{
		{"healthy, every window", answers{"bad": every(0), "total": every(1000), presence: every(1)}, analysis.Pass, nil},
		{"healthy, newest 3 minutes missing", answers{"bad": drop(every(0), "3m", "1m"), "total": drop(every(1000), "3m", "1m"), presence: drop(every(1), "3m", "1m")}, analysis.Hold, []string{"3m", "1m"}},
		{"healthy, newest minute missing", answers{"bad": drop(every(0), "1m"), "total": drop(every(1000), "1m"), presence: drop(every(1), "1m")}, analysis.Hold, []string{"1m"}},
		{"5x burn, short windows missing", answers{"bad": drop(every(5), "3m", "1m"), "total": drop(every(1000), "3m", "1m"), presence: drop(every(1), "3m", "1m")}, analysis.Hold, []string{"3m", "1m"}},
		{"30x burn, only the 15m/3m pair has data: it fails", answers{"bad": drop(every(30), "5m", "1m"), "total": drop(every(1000), "5m", "1m"), presence: drop(every(1), "5m", "1m")}, analysis.Fail, nil},
		{"no requests in the last minute is data, not a gap", answers{"bad": every(0), "total": map[string]float64{"15m": 14000, "5m": 4000, "3m": 2000, "1m": 0}, presence: every(1)}, analysis.Pass, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			v := evaluate(t, tc.a, p, "")
			if v.Decision != tc.want {
				t.Fatalf("verdict %s (%s), want %s", v.Decision, v.Reason, tc.want)
			}
			if tc.windows != nil && !strings.Contains(v.Reason, "no data for the canary in "+strings.Join(tc.windows, ", ")+" ") {
				t.Errorf("reason %q does not name the windows %v", v.Reason, tc.windows)
			}
		})
	}
}

// TestRateWindowsWithoutData: the same for a rate SLI, whose events are
// absent when nothing happened.
func TestRateWindowsWithoutData(t *testing.T) {
	t.Parallel()
	p := loadPolicy(t, `
apiVersion: phaseguard.dev/v1alpha1
kind: Policy
metadata: {name: flaps}
spec:
  stages: [{name: canary-10, soak: 10m}]
  slis: [{preset: flaps}]
`)
	all := every(1)
	some := map[string]float64{"15m": 1, "5m": 1}
	v := evaluate(t, answers{"presence/0": all}, p, "")
	if v.Decision == analysis.Pass && !strings.Contains(v.Reason, "no window pair trips") {
		t.Errorf("no flaps with the family exported: %s %q", v.Decision, v.Reason)
	}
	v = evaluate(t, answers{"presence/0": some}, p, "")
	if v.Decision != analysis.Hold || !strings.Contains(v.Reason, "3m, 1m") {
		t.Errorf("no series of phase_transitions_total in 3m and 1m: %s %q, want hold naming them", v.Decision, v.Reason)
	}
}

// TestAbsentPart: an absent bad (good, events) series reads as zero only
// when the canary exports every family the part reads in that window.
func TestAbsentPart(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, sli string
		a         answers
		want      analysis.Decision
		reason    string
	}{
		{"lazily created child, family exported: zero", `{preset: drain-failure}`,
			answers{"total": every(1000), "presence/0": every(1)}, analysis.Pass, "no window pair over its limit"},
		{"renamed or dropped bad counter: hold naming it", `{preset: schema-errors}`,
			answers{"total": every(1000), "presence/1": every(1)}, analysis.Hold, `no series of phase_schema_errors_total{pod_template_hash="7f8c9d6b4",service="checkout"}`},
		{"bucket spelled another way: hold naming the le", `{name: slow, objective: 99, ratio: {good: 'sum(increase(h_bucket{service="$service",pod_template_hash="$hash",le="2"}[$window]))', total: 'sum(increase(h_count{service="$service",pod_template_hash="$hash"}[$window]))'}}`,
			answers{"total": every(1000), "presence/1": every(1)}, analysis.Hold, `le="2"`},
		{"arithmetic with an empty side: cannot tell", `{name: slow, objective: 99, ratio: {bad: 'sum(increase(h_count{service="$service",pod_template_hash="$hash"}[$window])) - sum(increase(h_bucket{service="$service",pod_template_hash="$hash",le="2.0"}[$window]))', total: 'sum(increase(h_count{service="$service",pod_template_hash="$hash"}[$window]))'}}`,
			answers{"total": every(1000), "presence/0": every(1), "presence/1": every(1)}, analysis.Hold, "cannot be told from zero"},
		{"arithmetic with both sides: counted", `{name: slow, objective: 99, ratio: {bad: 'sum(increase(h_count{service="$service",pod_template_hash="$hash"}[$window])) - sum(increase(h_bucket{service="$service",pod_template_hash="$hash",le="2.0"}[$window]))', total: 'sum(increase(h_count{service="$service",pod_template_hash="$hash"}[$window]))'}}`,
			answers{"bad": every(300), "total": every(1000), "presence/0": every(1), "presence/1": every(1)}, analysis.Fail, "roll back"},
		{"rate events whose family is gone: hold", `{preset: reconcile-retries}`,
			answers{}, analysis.Hold, "phase_reconcile_retries_total"},
		{"a fallback value for a renamed metric: hold", `{name: fb, objective: 99.9, ratio: {bad: 'sum(increase(renamed_total{service="$service",pod_template_hash="$hash"}[$window])) or vector(0)', total: 'sum(increase(req_total{service="$service",pod_template_hash="$hash"}[$window]))'}}`,
			answers{"bad": every(0), "total": every(1000), "presence/1": every(1)}, analysis.Hold, `no series of renamed_total{pod_template_hash="7f8c9d6b4",service="checkout"}`},
		{"a renamed label (code to status_code): hold", `{name: http, objective: 99.9, ratio: {bad: 'sum(increase(req_total{service="$service",pod_template_hash="$hash",code=~"5.."}[$window]))', total: 'sum(increase(req_total{service="$service",pod_template_hash="$hash"}[$window]))'}}`,
			answers{"total": every(1000), "presence/1": every(1)}, analysis.Hold, `no series of req_total{code=~".+",pod_template_hash="7f8c9d6b4",service="checkout"}`},
		{"a total no series measured (one sample each): no data, not zero requests", `{preset: drain-failure}`,
			answers{"presence/0": every(1)}, analysis.Hold, "no total series"},
		{"a bad count of -2.2e-16 (the server's rounding): zero", `{preset: drain-failure}`,
			answers{"bad": every(-2.2e-16 / 15), "total": every(1000), "presence/0": every(1)}, analysis.Pass, "no window pair over its limit"},
		{"a negative bad count: not a count, hold", `{preset: drain-failure}`,
			answers{"bad": every(-1), "total": every(1000), "presence/0": every(1)}, analysis.Hold, "is -15: not a count"},
		{"bad well above total: a data error", `{preset: drain-failure}`,
			answers{"bad": every(500), "total": every(100), "presence/0": every(1)}, analysis.Hold, "exceeds total"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := loadPolicy(t, strings.Replace(drainPolicy, "{preset: drain-failure}", tc.sli, 1))
			v := evaluate(t, tc.a, p, "")
			if v.Decision != tc.want || !strings.Contains(v.SLIs[0].Reason, tc.reason) {
				t.Errorf("verdict %s %q; want %s with %q", v.Decision, v.Reason, tc.want, tc.reason)
			}
		})
	}
}

// TestMinSamplesGatesPassOnly: exact bounds are valid at any sample size,
// so a canary with 25 bad of 55 requests against a 0.1 % budget fails
// whatever minSamples says (DESIGN.md "Evidence"); the same few requests
// without bad ones hold.
func TestMinSamplesGatesPassOnly(t *testing.T) {
	t.Parallel()
	p := loadPolicy(t, drainPolicy)
	scale := func(n float64) map[string]float64 {
		return map[string]float64{"15m": n, "5m": n, "3m": n, "1m": n}
	}
	v := evaluate(t, answers{"bad": scale(25), "total": scale(55), "presence/0": scale(1)}, p, "")
	if v.Decision != analysis.Fail {
		t.Errorf("25 bad of 55: %s %q, want fail", v.Decision, v.Reason)
	}
	v = evaluate(t, answers{"bad": scale(0), "total": scale(55), "presence/0": scale(1)}, p, "")
	if v.Decision != analysis.Hold || !strings.Contains(v.Reason, "thin evidence: 55 of 100") {
		t.Errorf("0 bad of 55: %s %q, want hold for thin evidence", v.Decision, v.Reason)
	}
}

// byTarget answers canary and stable queries differently. The probes
// that tell a counter child created on first use from a respelled label
// value (count by a label) get one series per value in canaryValues or
// stableValues.
type byTarget struct {
	canary, stable             answers
	canaryValues, stableValues []string
}

func (b byTarget) Query(ctx context.Context, q string, ts time.Time) (model.Vector, error) {
	if m := countByRE.FindStringSubmatch(q); m != nil {
		vals := b.stableValues
		if strings.Contains(q, `"7f8c9d6b4"`) {
			vals = b.canaryValues
		}
		var v model.Vector
		for _, x := range vals {
			v = append(v, &model.Sample{Value: 1, Metric: model.Metric{model.LabelName(m[1]): model.LabelValue(x)}})
		}
		return v, nil
	}
	if strings.Contains(q, `"7f8c9d6b4"`) {
		return b.canary.Query(ctx, q, ts)
	}
	return b.stable.Query(ctx, q, ts)
}

// TestBaselineRules: DESIGN.md "Baseline". A canary inside its budget is
// not rolled back for being worse than a perfect stable unless the policy
// asks (minBurn: 0); one over budget and worse is; a baseline asked for
// without data holds naming the stable hash.
func TestBaselineRules(t *testing.T) {
	t.Parallel()
	healthyStable := answers{"bad": every(0), "total": every(30000), "presence/0": every(1)}
	lowBad := answers{"bad": every(1.4), "total": every(20000), "presence/0": every(1)}  // 0.07x
	overBudget := answers{"bad": every(3), "total": every(2000), "presence/0": every(1)} // 1.5x, no pair trips
	for _, tc := range []struct {
		name           string
		policy         string
		canary, stable answers
		want           analysis.Decision
		reason         string
		// the values of the respelled part's label, canary's then stable's
		values [2][]string
	}{
		{"0.07x beside a perfect stable passes", drainPolicy, lowBad, healthyStable, analysis.Pass, "no window pair over its limit", [2][]string{}},
		{"0.07x fails when the policy asks", strings.Replace(drainPolicy, "spec:", "spec:\n  baseline: {minBurn: 0}", 1), lowBad, healthyStable, analysis.Fail, "significantly worse than stable", [2][]string{}},
		{"1.5x and worse than stable fails", drainPolicy, overBudget, healthyStable, analysis.Fail, "significantly worse than stable", [2][]string{}},
		{"stable without data holds naming it", drainPolicy, lowBad, answers{}, analysis.Hold, "stable 6d4b9c7f5 has no data", [2][]string{}},
		{"a bad series stable has and the canary lacks holds (a respelled label value)", strings.Replace(drainPolicy, "drain-failure", "duplicate-processing", 1),
			answers{"total": every(20000), "presence/0": every(1), "presence/1": every(1)},
			answers{"bad": every(0), "total": every(30000), "presence/0": every(1), "presence/1": every(1)},
			analysis.Hold, `the canary has no bad series in 15m while stable 6d4b9c7f5 has: its build may spell a label value another way (or creates the series on first use; initialise labelled counters at zero) (the canary has duplicate="no", which stable never has)`,
			[2][]string{{"no", "yes"}, {"false", "true"}}},
		{"a bad series stable has and the canary lacks, every canary value stable's too: a child created on first use, zero", strings.Replace(drainPolicy, "drain-failure", "duplicate-processing", 1),
			answers{"total": every(20000), "presence/0": every(1), "presence/1": every(1)},
			answers{"bad": every(0), "total": every(30000), "presence/0": every(1), "presence/1": every(1)},
			analysis.Pass, "no window pair over its limit",
			[2][]string{{"false"}, {"false", "true"}}},
		{"a bad series stable has and the canary lacks, no canary series to tell by: holds", strings.Replace(drainPolicy, "drain-failure", "duplicate-processing", 1),
			answers{"total": every(20000), "presence/0": every(1), "presence/1": every(1)},
			answers{"bad": every(0), "total": every(30000), "presence/0": every(1), "presence/1": every(1)},
			analysis.Hold, "the canary has no bad series in 15m while stable 6d4b9c7f5 has",
			[2][]string{nil, {"false", "true"}}},
		{"a canary without the family stable exports holds naming both", strings.Replace(drainPolicy, "drain-failure", "schema-errors", 1),
			answers{"total": every(1000), "presence/1": every(1)}, answers{"bad": every(0), "total": every(1000), "presence/0": every(1), "presence/1": every(1)},
			analysis.Hold, "stable 6d4b9c7f5 has data there, so the canary build may have renamed or dropped a metric", [2][]string{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			v := evaluate(t, byTarget{tc.canary, tc.stable, tc.values[0], tc.values[1]}, loadPolicy(t, tc.policy), "6d4b9c7f5")
			if v.Decision != tc.want || !strings.Contains(v.SLIs[0].Reason, tc.reason) {
				t.Errorf("verdict %s %q; want %s with %q", v.Decision, v.Reason, tc.want, tc.reason)
			}
		})
	}
}

// failing is a Querier whose every query fails.
type failing struct{}

func (failing) Query(context.Context, string, time.Time) (model.Vector, error) {
	return nil, errors.New("server error 503")
}

// TestVerdictShape: the JSON of an SLI has the same keys whatever
// happened (argoproj/argo-rollouts#2758): every window in windows and
// burn, null where there is no value.
func TestVerdictShape(t *testing.T) {
	t.Parallel()
	p := loadPolicy(t, drainPolicy)
	shape := func(q analysis.Querier) (string, any) {
		v := evaluate(t, q, p, "")
		b, err := json.Marshal(v.SLIs[0])
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		var wins []string
		for _, w := range m["windows"].([]any) {
			wins = append(wins, w.(map[string]any)["window"].(string))
		}
		return fmt.Sprint(wins), m["burn"]
	}
	noDataWins, noDataBurn := shape(answers{})
	errWins, errBurn := shape(failing{})
	if noDataWins != "[15m 5m 3m 1m]" || errWins != noDataWins {
		t.Errorf("windows: no data %s, query error %s; want [15m 5m 3m 1m] in both", noDataWins, errWins)
	}
	if diff := cmp.Diff(noDataBurn, errBurn); diff != "" {
		t.Errorf("burn keys differ between no data and a query error (-no data +error):\n%s", diff)
	}
	if m, ok := errBurn.(map[string]any); !ok || len(m) != 4 || m["1m"] != nil {
		t.Errorf("burn on a query error = %v, want every window null", errBurn)
	}
}

// blocking never answers until its context ends (a server that trickles
// its answer past the deadline).
type blocking struct{}

func (blocking) Query(ctx context.Context, _ string, _ time.Time) (model.Vector, error) {
	<-ctx.Done()
	time.Sleep(2 * time.Second) // a Querier that does not return at once when told
	return nil, ctx.Err()
}

// TestEvaluateByDeadline: Evaluate returns by its context's deadline
// whatever the Querier does, counting unanswered queries as query errors.
func TestEvaluateByDeadline(t *testing.T) {
	t.Parallel()
	p, err := policies.Preset("phase-default")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	v, err := analysis.New(blocking{}).Evaluate(ctx, analysis.Request{Policy: p, Service: "checkout", CanaryHash: "7f8c9d6b4", StableHash: "6d4b9c7f5", At: time.Unix(1767226800, 0)})
	took := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	if took > 300*time.Millisecond+time.Second {
		t.Errorf("Evaluate took %s against a 300ms deadline", took)
	}
	if v.Decision != analysis.Hold || v.QueryErrors != len(p.Spec.SLIs) || !strings.Contains(v.Reason, "deadline") {
		t.Errorf("verdict %s with %d query errors: %q; want hold, every SLI a query error naming the deadline", v.Decision, v.QueryErrors, v.Reason)
	}
	if math.IsNaN(float64(v.Confidence)) {
		t.Error("confidence NaN")
	}
}
