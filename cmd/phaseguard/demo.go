package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"strings"
	"time"

	"github.com/phaseguard/phaseguard/analysis"
	"github.com/phaseguard/phaseguard/policies"
	"github.com/phaseguard/phaseguard/replay"
	"github.com/phaseguard/phaseguard/report"
	"github.com/phaseguard/phaseguard/scenarios"
)

// demoRollout is one bundled scenario replayed as a whole rollout.
type demoRollout struct {
	Scenario    string      `json:"scenario"`
	Description string      `json:"description"`
	FaultOnset  *time.Time  `json:"faultOnset,omitempty"`
	Outcome     string      `json:"outcome"`
	Stages      []demoStage `json:"stages"`
}

// demoStage is one stage of a replayed rollout.
type demoStage struct {
	Stage   string            `json:"stage"`
	Start   time.Time         `json:"start"`
	Looks   int               `json:"looks"`
	Verdict *analysis.Verdict `json:"verdict"`
}

// runDemo replays every bundled scenario through the real engine as a
// front end would run its rollout: the policy's stages in order from the
// moment the canary takes traffic, a look every interval, a stage ending
// when the engine fails it or its soak is over; a failed stage rolls back
// and a held one pauses, so later stages do not run.
func runDemo(ctx context.Context, e env, args []string) int {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	policyRef := fs.String("policy", "phase-default", "policy: a built-in preset name or a file")
	output := fs.String("output", "text", "output format: text or json")
	brief := fs.Bool("brief", false, "one line per scenario, no SLI tables")
	if code, ok := parse(fs, e, args); !ok {
		return code
	}
	if *output != "text" && *output != "json" {
		return fail(e, "demo", fmt.Errorf("--output %q: want text or json", *output))
	}
	p, err := policies.Resolve(*policyRef)
	if err != nil {
		return fail(e, "demo", err)
	}
	if len(p.Spec.Stages) == 0 {
		return fail(e, "demo", fmt.Errorf("policy %s has no stages to replay", p.Metadata.Name))
	}
	var rollouts []demoRollout
	for _, b := range scenarios.Demo() {
		r, err := replayRollout(ctx, p, b)
		if err != nil {
			return fail(e, "demo", fmt.Errorf("scenario %s: %w", b.Name, err))
		}
		rollouts = append(rollouts, r)
	}
	if *output == "json" {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rollouts); err != nil {
			return fail(e, "demo", err)
		}
		return exitPass
	}
	var stages []string
	for _, s := range p.Spec.Stages {
		stages = append(stages, fmt.Sprintf("%s (%s)", s.Name, s.Soak))
	}
	fmt.Fprintf(e.stdout, "phaseguard demo: %d canaries replayed through the real engine with policy %s.\n", len(rollouts), p.Metadata.Name)
	intro := fmt.Sprintf("Stages %s, a look every %s; the bundled data runs in Prometheus's PromQL engine, in process.",
		strings.Join(stages, " -> "), p.Spec.Interval)
	fmt.Fprintln(e.stdout, strings.Join(report.Wrap(intro, report.Width, "", ""), "\n")+"\n")
	for _, r := range rollouts {
		fmt.Fprintf(e.stdout, "%-17s %s\n", r.Scenario, r.Outcome)
		for _, s := range r.Stages {
			head := fmt.Sprintf("  %-10s %-4s ", s.Stage, report.Badge(s.Verdict.Decision))
			for _, l := range report.Wrap(stageLine(r, s), report.Width, head, strings.Repeat(" ", len(head)+2)) {
				fmt.Fprintln(e.stdout, l)
			}
		}
	}
	if *brief {
		return exitPass
	}
	for _, r := range rollouts {
		last := r.Stages[len(r.Stages)-1]
		fmt.Fprintln(e.stdout, "\n"+strings.Join(report.Wrap(r.Description, report.Width, "── "+r.Scenario+": ", "   "), "\n"))
		if err := report.Verdict(e.stdout, last.Verdict); err != nil {
			return fail(e, "demo", err)
		}
	}
	return exitPass
}

func stageLine(r demoRollout, s demoStage) string {
	at := s.Verdict.Time.Sub(s.Start)
	switch s.Verdict.Decision {
	case analysis.Fail:
		line := fmt.Sprintf("at +%s", at)
		if r.FaultOnset != nil && !s.Verdict.Time.Before(*r.FaultOnset) {
			line += fmt.Sprintf(", %s after the fault began", s.Verdict.Time.Sub(*r.FaultOnset))
		}
		return line + ": " + s.Verdict.Reason
	case analysis.Hold:
		return fmt.Sprintf("at +%s: %s", at, s.Verdict.Reason)
	}
	return fmt.Sprintf("after %d looks: %s", s.Looks, s.Verdict.Reason)
}

// replayRollout runs the policy's stages over one bundled scenario.
func replayRollout(ctx context.Context, p *policies.Policy, b scenarios.Bundled) (demoRollout, error) {
	store, err := replay.Load(bytes.NewReader(b.OpenMetrics))
	if err != nil {
		return demoRollout{}, err
	}
	defer store.Close()
	tr := b.Truth
	r := demoRollout{Scenario: b.Name, Description: b.Description, Outcome: "rolled out: every stage passed"}
	if tr.Fault != nil {
		onset := tr.Fault.Onset
		r.FaultOnset = &onset
	}
	eng := analysis.New(store)
	step := time.Duration(p.Spec.Interval)
	start := tr.StageStart
	_, last := store.Range()
	for _, st := range p.Spec.Stages {
		s := demoStage{Stage: st.Name, Start: start}
		end := start.Add(max(time.Duration(st.Soak), step))
		for at := start.Add(step); !at.After(end) && !at.After(last); at = at.Add(step) {
			v, err := eng.Evaluate(ctx, analysis.Request{Policy: p, Stage: st.Name, At: at,
				Service: tr.Service, Namespace: tr.Namespace, CanaryHash: tr.CanaryHash, StableHash: tr.StableHash,
				Since: tr.StageStart}) // the canary's start: later stages keep its earlier evidence
			if err != nil {
				return r, err
			}
			s.Verdict = v
			s.Looks++
			if analysis.StageDecided(v, start, time.Duration(st.Soak)) {
				break
			}
		}
		if s.Verdict == nil {
			break // the data ends before this stage starts
		}
		r.Stages = append(r.Stages, s)
		switch s.Verdict.Decision {
		case analysis.Fail:
			r.Outcome = "rolled back in " + st.Name
			return r, nil
		case analysis.Hold:
			r.Outcome = "paused in " + st.Name + " for a release manager"
			return r, nil
		}
		start = end
	}
	if len(r.Stages) == 0 {
		return r, fmt.Errorf("the data ends before the first stage")
	}
	return r, nil
}
