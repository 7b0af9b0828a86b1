package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/prometheus/common/model"

	"github.com/phaseguard/phaseguard/analysis"
	"github.com/phaseguard/phaseguard/policies"
	"github.com/phaseguard/phaseguard/report"
)

// runPlan tells, for a policy and a canary's traffic, per stage and SLI,
// whether the stage's soak can pass a clean canary, and the least traffic
// that can (analysis.Plan). Exit 0 when every stage can pass, 2 when one
// cannot (a canary at that traffic would be held at its end).
func runPlan(_ context.Context, e env, args []string) int {
	fs := flag.NewFlagSet("plan", flag.ContinueOnError)
	policy := fs.String("policy", "phase-default", "policy: a built-in preset name or a file")
	rate := fs.Float64("rate", 1, "the canary's events per second for each ratio SLI (requests, jobs), > 0")
	output := fs.String("output", "text", "output format: text or json")
	if code, ok := parse(fs, e, args); !ok {
		return code
	}
	if math.IsNaN(*rate) || math.IsInf(*rate, 0) || *rate <= 0 {
		return fail(e, "plan", fmt.Errorf("--rate %v: want events per second, a finite number above 0", *rate))
	}
	if *output != "text" && *output != "json" {
		return fail(e, "plan", fmt.Errorf("--output %q: want text or json", *output))
	}
	p, err := policies.Resolve(*policy)
	if err != nil {
		return fail(e, "plan", err)
	}
	if len(p.Spec.Stages) == 0 {
		return fail(e, "plan", fmt.Errorf("policy %s has no stages (spec.stages): a plan is per stage", p.Metadata.Name))
	}
	rows := analysis.Plan(p, *rate)
	code := exitPass
	for _, r := range rows {
		if !r.CanPass {
			code = exitHold
		}
	}
	if *output == "json" {
		if err := json.NewEncoder(e.stdout).Encode(rows); err != nil {
			return fail(e, "plan", err)
		}
		return code
	}
	unit := "events/s"
	if *rate == 1 {
		unit = "event/s"
	}
	fmt.Fprintf(e.stdout, "policy %s, a clean canary at %g %s per ratio SLI: can each stage's soak pass?\n\n", p.Metadata.Name, *rate, unit)
	table := [][]string{{"STAGE", "SOAK", "LIFE", "SLI", "KIND", "NEEDS", "PASS", "LEAST TRAFFIC"}}
	for _, r := range rows {
		least := "-"
		if r.LeastRate > 0 {
			least = fmt.Sprintf("%.3g events/s", r.LeastRate)
		}
		pass := "yes"
		if !r.CanPass {
			pass = "no"
		}
		table = append(table, []string{r.Stage, model.Duration(r.Soak).String(), model.Duration(r.Life).String(), r.SLI, r.Kind, needs(r.Needs), pass, least})
	}
	if err := report.Table(e.stdout, table, 3); err != nil {
		return fail(e, "plan", err)
	}
	fmt.Fprintln(e.stdout, "\n"+strings.Join(report.Wrap("NEEDS: the traffic time the evidence since the canary's start must hold to rule out the fastest pair's burn with no bad event; a pass at a stage's end needs it within every soak so far (the canary's life then).", report.Width, "", "  "), "\n"))
	return code
}

// needs shows a time needed, rounded up (a need shown shorter than it is
// would read as a pass): whole minutes from 2m, else seconds.
func needs(d time.Duration) string {
	const decade = 10 * 365 * 24 * time.Hour
	if d > decade {
		return "over 10y"
	}
	if d >= 2*time.Minute {
		if r := d.Truncate(time.Minute); r < d {
			d = r + time.Minute
		}
		return model.Duration(d).String()
	}
	return model.Duration(d.Round(time.Second)).String()
}
