package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/phaseguard/phaseguard/analysis"
)

func TestPlan(t *testing.T) {
	t.Parallel()
	code, out, errOut := runCLI(t, "plan", "--rate", "50", "--output", "json")
	var rows []analysis.PlanRow
	if err := json.Unmarshal([]byte(out), &rows); err != nil {
		t.Fatalf("json: %v\n%s%s", err, out, errOut)
	}
	got := map[string]analysis.PlanRow{}
	for _, r := range rows {
		got[r.Stage+"/"+r.SLI] = r
	}
	// phase-default: flaps (a rate SLI, 2/h) needs about 9m40s without a
	// flap to rule out 20/h at alpha 0.05; full soaks only 5m, but the
	// evidence since the canary's start counts: 30m by then.
	if r := got["canary-10/drain-failure"]; !r.CanPass || r.LeastRate <= 0 || r.Needs <= 0 {
		t.Errorf("canary-10/drain-failure at 50 events/s: %+v, want a pass", r)
	}
	if r := got["full/flaps"]; !r.CanPass || r.Life.Minutes() != 30 || r.Needs < 9*time.Minute || r.Needs > 10*time.Minute {
		t.Errorf("full/flaps: %+v, want a pass with 30m of life, needing 9m to 10m", r)
	}
	if code != exitPass {
		t.Errorf("exit %d, want %d: every stage can pass", code, exitPass)
	}

	code, out, _ = runCLI(t, "plan", "--rate", "0.1")
	if code != exitHold || !strings.Contains(out, "  no") {
		t.Errorf("plan at 0.1 events/s: exit %d\n%s", code, out)
	}
	for _, args := range [][]string{{"--rate", "0"}, {"--rate", "-3"}, {"--rate", "NaN"}, {"--rate", "Inf"}, {"--output", "xml"}, {"--policy", "no-such-preset-or-file"}} {
		code, _, errOut := runCLI(t, append([]string{"plan"}, args...)...)
		if code != exitError || !strings.Contains(errOut, args[0]) && !strings.Contains(errOut, "no-such") {
			t.Errorf("plan %v: exit %d, stderr %q; want an error naming %s", args, code, errOut, args[0])
		}
	}
}
