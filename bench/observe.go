package bench

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/prometheus/common/model"

	"github.com/phaseguard/phaseguard/analysis"
	"github.com/phaseguard/phaseguard/policies"
	"github.com/phaseguard/phaseguard/replay"
	"github.com/phaseguard/phaseguard/scenarios"
)

// Judge is what one benchmark run judges: a policy stage, and the windows
// of the baselines' instant queries.
type Judge struct {
	Policy *policies.Policy
	// Stage is the policy stage judged; its soak must equal the corpus'
	// Geometry.Stage so that every planned look has data.
	Stage string
	// Windows are the range windows of the baselines' queries; each must
	// be one of the policy's windows (so the query is the SLI's own).
	Windows []time.Duration
}

// Looks returns the number of looks of the stage and the time between two.
func (j Judge) Looks() (int, time.Duration) {
	return j.Policy.PlannedLooks(j.Stage), time.Duration(j.Policy.Spec.Interval)
}

// Run is everything observed on one case.
type Run struct {
	Name  string
	Set   Set
	Truth scenarios.Truth
	// Guard holds phaseguard's decision at each look, up to and including
	// the first fail (the rollout is rolled back there).
	Guard []analysis.Decision
	// Reason is the verdict's reason at the first fail, or at the last look.
	Reason string
	// Probes holds the baselines' query results, one per Judge window.
	Probes []Probe
	// Queries is the number of PromQL queries phaseguard sent.
	Queries int
	// Excess is a fault's expected bad events beyond the canary's
	// background from the onset to the stage end, in the SLI where it is
	// largest (see ExpectedExcess); 0 for a run without a fault.
	Excess float64
	// Level is the per-test level of phaseguard's bounds and tests at each
	// look: 1 - analysis.Verdict.Confidence.
	Level float64
	// Outcomes are the baselines' rollbacks, filled by Collect.
	Outcomes Outcomes
	// Oracle is the oracle's outcome in a run with a fault (OracleRun);
	// nil without a fault, and in observations made before the oracle.
	Oracle *OracleRun
}

// Probe holds, for one query window, the result of each SLI's baseline
// query at each look: Results[look][sli].
type Probe struct {
	Window  time.Duration
	Results [][]Result
	// Argo holds Argo's measurement phase of each result for every
	// threshold of a sweep, in the compact form Classify writes.
	Argo [][]int8
}

// Result is one instant query result as a metric provider sees it.
type Result struct {
	// Empty is a query that returned no series.
	Empty bool
	// Value is the series' value; NaN when the ratio is 0/0.
	Value float64
}

// LookTime returns the time of look i (from 0) of a stage starting at start.
func LookTime(start time.Time, i int, every time.Duration) time.Time {
	return start.Add(time.Duration(i+1) * every)
}

// Observe generates c, replays it in the embedded PromQL engine, and
// records phaseguard's verdict, the baselines' query results and, for a
// case with a fault, the oracle's test (OracleRun) at every look of the
// stage.
func Observe(ctx context.Context, j Judge, c Case) (*Run, error) {
	sc, err := scenarios.Generate(c.Spec)
	if err != nil {
		return nil, err
	}
	st, err := replay.Load(bytes.NewReader(sc.OpenMetrics))
	if err != nil {
		return nil, fmt.Errorf("scenario %s: %w", c.Spec.Name, err)
	}
	defer st.Close()
	return observe(ctx, j, c.Set, sc.Truth, st)
}

func observe(ctx context.Context, j Judge, set Set, tr scenarios.Truth, q analysis.Querier) (*Run, error) {
	n, every := j.Looks()
	if last := LookTime(tr.StageStart, n-1, every); last.After(tr.StageEnd) {
		return nil, fmt.Errorf("scenario %s: look %d at %s is after the data ends at %s: the stage is shorter than the soak of %s",
			tr.Name, n, last.Format(time.RFC3339), tr.StageEnd.Format(time.RFC3339), j.Stage)
	}
	run := &Run{Name: tr.Name, Set: set, Truth: tr}
	eng := analysis.New(q)
	req := Request(j, tr)
	for i := range n {
		req.At = LookTime(tr.StageStart, i, every)
		v, err := eng.Evaluate(ctx, req)
		if err != nil {
			return nil, fmt.Errorf("scenario %s look %d: %w", tr.Name, i+1, err)
		}
		run.Guard = append(run.Guard, v.Decision)
		if len(v.SLIs) > 0 {
			run.Level = 1 - v.Confidence
		}
		run.Reason = v.Reason
		run.Queries += v.Queries
		if v.Decision == analysis.Fail {
			break
		}
	}
	target := policies.Target{Service: tr.Service, Namespace: tr.Namespace, Hash: tr.CanaryHash}
	var err error
	if run.Excess, err = ExpectedExcess(ctx, j.Policy, tr, q); err != nil {
		return nil, fmt.Errorf("scenario %s: %w", tr.Name, err)
	}
	if run.Oracle, err = observeOracle(ctx, j, tr, q); err != nil {
		return nil, fmt.Errorf("scenario %s: %w", tr.Name, err)
	}
	for _, w := range j.Windows {
		qs, err := ProbeQueries(j.Policy, w, target)
		if err != nil {
			return nil, err
		}
		p := Probe{Window: w}
		for i := range n {
			at := LookTime(tr.StageStart, i, every)
			row := make([]Result, len(qs))
			for k, query := range qs {
				vec, err := q.Query(ctx, query, at)
				if err != nil {
					return nil, fmt.Errorf("scenario %s look %d: %w", tr.Name, i+1, err)
				}
				switch len(vec) {
				case 0:
					row[k] = Result{Empty: true, Value: math.NaN()}
				case 1:
					row[k] = Result{Value: float64(vec[0].Value)}
				default:
					return nil, fmt.Errorf("scenario %s look %d: query %q returned %d series, want 1", tr.Name, i+1, query, len(vec))
				}
			}
			p.Results = append(p.Results, row)
		}
		run.Probes = append(run.Probes, p)
	}
	return run, nil
}

// Request is the engine request judging the canary of tr, compared with
// its stable version, at the judged stage, since the canary started
// serving (tr.CanaryStart: before the stage when it served a prior one; a
// Truth without it, StageStart). At is left zero.
func Request(j Judge, tr scenarios.Truth) analysis.Request {
	since := tr.CanaryStart
	if since.IsZero() {
		since = tr.StageStart
	}
	return analysis.Request{
		Policy:     j.Policy,
		Stage:      j.Stage,
		Service:    tr.Service,
		Namespace:  tr.Namespace,
		CanaryHash: tr.CanaryHash,
		StableHash: tr.StableHash,
		Since:      since,
	}
}

// ProbeQueries returns, for each SLI of p, the instant query a user of Argo
// Rollouts or Flagger writes for it over window w: the SLI's own
// selectors, as one number —
//
//	bad / total           ratio SLI with a bad query
//	1 - good / total      ratio SLI with a good query
//	events * (1h / w)     rate SLI, events per hour
//
// A sum of increase() over w divided by another is the same number as the
// sum of rate() over w divided by another, which is how the templates in
// Argo's and Flagger's documentation write it.
func ProbeQueries(p *policies.Policy, w time.Duration, t policies.Target) ([]string, error) {
	var out []string
	for i := range p.Spec.SLIs {
		s := &p.Spec.SLIs[i]
		part := func(pt policies.Part) (string, error) {
			q := s.AuthoredQuery(pt, w, t)
			if q == "" {
				return "", fmt.Errorf("sli %s: no %s query in window %s (the window must be one of the policy's)", s.Name, pt, w)
			}
			return q, nil
		}
		var q string
		var err error
		switch {
		case s.Kind() == policies.KindRate:
			var ev string
			ev, err = part(policies.PartEvents)
			q = fmt.Sprintf("(%s) * %g", ev, time.Hour.Seconds()/w.Seconds())
		case s.Ratio.Bad != "":
			var bad, total string
			if bad, err = part(policies.PartBad); err == nil {
				total, err = part(policies.PartTotal)
			}
			q = fmt.Sprintf("(%s) / (%s)", bad, total)
		default:
			var good, total string
			if good, err = part(policies.PartGood); err == nil {
				total, err = part(policies.PartTotal)
			}
			q = fmt.Sprintf("1 - (%s) / (%s)", good, total)
		}
		if err != nil {
			return nil, err
		}
		out = append(out, q)
	}
	return out, nil
}

// policySLI names, in the policies' presets, the SLIs of scenarios.Truth.
var policySLI = map[string]string{
	scenarios.SLIDrainFailure:     "drain-failure",
	scenarios.SLIPhaseMismatch:    "phase-mismatch",
	scenarios.SLIDuplicate:        "duplicate-processing",
	scenarios.SLISchemaErrors:     "schema-errors",
	scenarios.SLISlowPropagation:  "slow-propagation",
	scenarios.SLIFlaps:            "flaps",
	scenarios.SLIReconcileRetries: "reconcile-retries",
}

// ExpectedExcess returns the bad events a fault adds, on average, to the
// canary's background from its onset to the end of the stage, in the SLI
// of p it raises where that number is largest: the evidence any detector
// has. For a ratio SLI it is (fault burn − background burn) × budget × the
// canary's events counted after the onset (its total query over that time,
// at the stage end); for a rate SLI, the same burn difference × allowance
// × hours after the onset. Burns and budgets are scenarios' (Truth and
// DefaultBudgets). 0 without a fault.
func ExpectedExcess(ctx context.Context, p *policies.Policy, tr scenarios.Truth, q analysis.Querier) (float64, error) {
	if tr.Fault == nil {
		return 0, nil
	}
	span := tr.StageEnd.Sub(tr.Fault.Onset)
	if span <= 0 {
		return 0, nil
	}
	longest := slices.Max(p.Windows())
	target := policies.Target{Service: tr.Service, Namespace: tr.Namespace, Hash: tr.CanaryHash}
	budgets := scenarios.DefaultBudgets()
	best := 0.0
	for name, burn := range tr.Fault.CanaryBurn {
		i := slices.IndexFunc(p.Spec.SLIs, func(s policies.SLI) bool { return s.Name == policySLI[name] })
		if i < 0 {
			continue
		}
		s := &p.Spec.SLIs[i]
		excess := (burn - tr.Background.CanaryBurn[name]) * budgets[name]
		if s.Kind() == policies.KindRate {
			best = math.Max(best, excess*span.Hours())
			continue
		}
		// The longest window cut to the time since the onset; beyond the
		// longest window, its rate scaled to that time.
		query, err := s.QueryWithin(target, span)
		if err != nil {
			return 0, err
		}
		vec, err := q.Query(ctx, query, tr.StageEnd)
		if err != nil {
			return 0, fmt.Errorf("events after the onset of %s: %w", s.Name, err)
		}
		for _, smp := range vec {
			if smp.Metric[policies.PartLabel] == model.LabelValue(policies.PartTotal) && smp.Metric[policies.WindowLabel] == model.LabelValue(model.Duration(longest).String()) {
				events := float64(smp.Value) * math.Max(1, span.Seconds()/longest.Seconds())
				best = math.Max(best, excess*events)
			}
		}
	}
	return best, nil
}
