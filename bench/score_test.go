package bench

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/phaseguard/phaseguard/analysis"
	"github.com/phaseguard/phaseguard/scenarios"
)

// TestScoreAnswers checks that Score judges each run by its truth's
// answer: a hold is right where the canary can't be told and a pass is
// wrong there; a fail of a healthy canary is a false rollback unless the
// truth allows it.
func TestScoreAnswers(t *testing.T) {
	t.Parallel()
	start := time.Date(2026, 1, 1, 0, 10, 0, 0, time.UTC)
	answer := func(right string, wrong ...string) scenarios.Answer {
		return scenarios.Answer{Right: right, Wrong: wrong, Why: "test"}
	}
	fault := &scenarios.FaultTruth{Kind: scenarios.DrainMisrouting, Scope: scenarios.ScopeCanary, Onset: start,
		CanaryBurn: map[string]float64{scenarios.SLIDrainFailure: 20}}
	run := func(name string, set Set, f *scenarios.FaultTruth, a scenarios.Answer, end analysis.Decision, mod func(*scenarios.Truth)) *Run {
		tr := scenarios.Truth{Name: name, Start: start.Add(-10 * time.Minute), StageStart: start, StageEnd: start.Add(15 * time.Minute),
			ScrapeInterval: 15_000_000_000, Fault: f, Answer: a, CanaryPods: []string{"p"}}
		if mod != nil {
			mod(&tr)
		}
		return &Run{Name: name, Set: set, Truth: tr, Guard: []analysis.Decision{analysis.Hold, end}}
	}
	blind := func(tr *scenarios.Truth) {
		tr.Answer.NoRecentData = true
		tr.Cutoffs = []scenarios.CutoffTruth{{Version: scenarios.Canary, At: start.Add(13 * time.Minute)}}
	}
	dropped := func(tr *scenarios.Truth) { tr.Drops = []scenarios.DropTruth{{Drop: scenarios.DropRetries}} }
	runs := []*Run{
		run("healthy-pass", Healthy, nil, answer(scenarios.Pass, scenarios.Fail), analysis.Pass, nil),
		run("healthy-hold", Healthy, nil, answer(scenarios.Pass, scenarios.Fail), analysis.Hold, nil),
		run("healthy-fail", Healthy, nil, answer(scenarios.Pass, scenarios.Fail), analysis.Fail, nil),
		run("blind-pass", Healthy, nil, answer(scenarios.Hold, scenarios.Pass, scenarios.Fail), analysis.Pass, blind),
		run("blind-hold", Healthy, nil, answer(scenarios.Hold, scenarios.Pass, scenarios.Fail), analysis.Hold, blind),
		run("blind-fail", Healthy, nil, answer(scenarios.Hold, scenarios.Pass, scenarios.Fail), analysis.Fail, blind),
		run("dropped-fail", Healthy, nil, answer(scenarios.Hold, scenarios.Pass), analysis.Fail, dropped),
		run("dropped-pass", Healthy, nil, answer(scenarios.Hold, scenarios.Pass), analysis.Pass, dropped),
		run("hidden-fault-pass", Faulty, fault, answer(scenarios.Hold, scenarios.Pass), analysis.Pass, dropped),
		run("fault-fail", Faulty, fault, answer(scenarios.Fail, scenarios.Pass), analysis.Fail, nil),
		run("fault-pass", Faulty, fault, answer(scenarios.Fail, scenarios.Pass), analysis.Pass, nil),
	}
	f := Score("phaseguard", runs, 30*time.Second, GuardOutcome)
	type got struct {
		Healthy, FalseRollbacks, HealthyFails, HealthyHolds, FalsePasses int
		Untold                                                           Decisions
		Faults                                                           Tally
	}
	want := got{
		Healthy: 8, FalseRollbacks: 2, HealthyFails: 3, HealthyHolds: 2, FalsePasses: 4,
		Untold: Decisions{Runs: 6, Pass: 3, Hold: 1, Fail: 2, Wrong: 4},
		Faults: Tally{Runs: 2, Detected: 1},
	}
	if diff := cmp.Diff(want, got{f.Healthy, f.FalseRollbacks, f.HealthyFails, f.HealthyHolds, f.FalsePasses, f.Untold, f.Faults}); diff != "" {
		t.Errorf("Score (-want +got):\n%s", diff)
	}
	// The breakdown: the convention row has the plain runs, the cutoff
	// row the blind ones, the drop row the dropped ones.
	rows := map[string][2]Decisions{}
	for i, re := range Realisms {
		rows[re.Name] = f.ByRealism[i]
	}
	checks := []struct {
		row             string
		healthy, faulty Decisions
	}{
		{Realisms[0].Name, Decisions{Runs: 3, Pass: 1, Hold: 1, Fail: 1, Wrong: 1}, Decisions{Runs: 2, Pass: 1, Fail: 1, Wrong: 1}},
		{"canary's newest minutes missing", Decisions{Runs: 3, Pass: 1, Hold: 1, Fail: 1, Wrong: 2}, Decisions{}},
		{"canary build dropped or renamed an export", Decisions{Runs: 2, Pass: 1, Fail: 1, Wrong: 1}, Decisions{Runs: 1, Pass: 1, Wrong: 1}},
	}
	for _, c := range checks {
		if diff := cmp.Diff([2]Decisions{c.healthy, c.faulty}, rows[c.row]); diff != "" {
			t.Errorf("row %q (-want +got):\n%s", c.row, diff)
		}
	}
	// The floor holds what can't be told and fails only the faults it
	// can see.
	floor := Score("floor", runs, 30*time.Second, FloorOutcome(30*time.Second))
	if floor.FalseRollbacks != 0 || floor.FalsePasses != 0 || floor.Untold.Hold != floor.Untold.Runs || floor.Faults.Detected != 2 {
		t.Errorf("floor: false rollbacks %d, false passes %d, untold %+v, faults %+v; want 0, 0, all held, 2 detected",
			floor.FalseRollbacks, floor.FalsePasses, floor.Untold, floor.Faults)
	}
}

// TestHoldReasons: healthy runs the truth says to pass that ended held
// are grouped by their reason without its figures, per traffic band; a
// pass, a fault and a canary that cannot be told are left out.
func TestHoldReasons(t *testing.T) {
	t.Parallel()
	pass := scenarios.Answer{Right: scenarios.Pass, Wrong: []string{scenarios.Fail}}
	run := func(rate float64, a scenarios.Answer, f *scenarios.FaultTruth, end analysis.Decision, reason string) *Run {
		return &Run{Truth: scenarios.Truth{CanaryRate: rate, Answer: a, Fault: f}, Guard: []analysis.Decision{analysis.Hold, end}, Reason: reason}
	}
	runs := []*Run{
		run(0.5, pass, nil, analysis.Hold, "flaps: thin evidence: 0 events since the canary's start (10m) cannot yet rule out a 10× burn"),
		run(2, pass, nil, analysis.Hold, "flaps: thin evidence: 1 events since the canary's start (25m) cannot yet rule out a 10× burn"),
		run(50, pass, nil, analysis.Hold, "drain-failure: burn 8.00× over 15m from 4 events: over budget at 95% confidence, not yet at the 99.8% a rollback needs: watching"),
		run(50, pass, nil, analysis.Pass, "all 7 SLIs pass"),
		run(50, scenarios.Answer{Right: scenarios.Hold}, nil, analysis.Hold, "flaps: no data"),
		run(50, pass, &scenarios.FaultTruth{}, analysis.Hold, "flaps: thin evidence: 0 events"),
	}
	want := []HoldReason{
		{"flaps: thin evidence", []int{1, 1, 0}},
		{"drain-failure: over budget at alpha, not yet at a test's level (watching)", []int{0, 0, 1}},
	}
	if diff := cmp.Diff(want, HoldReasons(runs)); diff != "" {
		t.Errorf("HoldReasons (-want +got):\n%s", diff)
	}
	if got := reasonKind("duplicate-processing: the canary has no bad series in 15m while stable x has"); got != "duplicate-processing: the canary has no bad series in" {
		t.Errorf("reasonKind = %q", got)
	}
}
