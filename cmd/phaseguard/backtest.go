package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"time"

	"github.com/phaseguard/phaseguard/analysis"
	"github.com/phaseguard/phaseguard/report"
)

// backtestLine is one line of `backtest --output json`. The fields are a
// contract that outside checks depend on: time, verdict, reason and slis
// (name, verdict, burn by window, samples) must stay.
type backtestLine struct {
	Time    time.Time    `json:"time"`
	Verdict string       `json:"verdict"`
	Reason  string       `json:"reason"`
	MaxBurn analysis.Num `json:"maxBurn"`
	SLIs    []lineSLI    `json:"slis"`
	Queries int          `json:"queries"`
}

type lineSLI struct {
	Name    string                  `json:"name"`
	Verdict string                  `json:"verdict"`
	Reason  string                  `json:"reason"`
	Burn    map[string]analysis.Num `json:"burn"`
	Samples analysis.Num            `json:"samples"`
	Value   analysis.Num            `json:"value"`
	// Windows are the canary's counts per window, longest first: every
	// window of the policy whatever happened, null where there is no
	// value, as in evaluate's JSON.
	Windows []analysis.WindowResult `json:"windows"`
}

func runBacktest(ctx context.Context, e env, args []string) int {
	fs := flag.NewFlagSet("backtest", flag.ContinueOnError)
	var t targetFlags
	t.register(fs)
	from := fs.String("from", "", "start: RFC 3339 or Unix seconds (with --replay, default the canary's start (--since) or else the start of the data)")
	to := fs.String("to", "", "end, inclusive (with --replay, default the end of the data)")
	step := fs.Duration("step", 0, "time between looks (default: the policy's interval)")
	if code, ok := parse(fs, e, args); !ok {
		return code
	}
	src, p, err := t.open(e)
	if err != nil {
		return fail(e, "backtest", err)
	}
	defer src.Close()
	var start, end time.Time
	if src.store != nil {
		start, end = src.store.Range()
		// Looks before the canary's start only say "nothing to judge yet".
		if t.sinceTime.After(start) && t.sinceTime.Before(end) {
			start = t.sinceTime
		}
	} else if *from == "" || *to == "" {
		return fail(e, "backtest", fmt.Errorf("--from and --to are required with --prometheus"))
	}
	if start, err = parseTime("from", *from, start); err != nil {
		return fail(e, "backtest", err)
	}
	if end, err = parseTime("to", *to, end); err != nil {
		return fail(e, "backtest", err)
	}
	if err := errors.Join(src.checkReplayTime("from", start), src.checkReplayTime("to", end), t.checkSince(end)); err != nil {
		return fail(e, "backtest", err)
	}
	if *step == 0 {
		*step = time.Duration(p.Spec.Interval)
	}
	switch {
	case *step < time.Second:
		return fail(e, "backtest", fmt.Errorf("--step %s: must be at least 1s", *step))
	case end.Before(start):
		return fail(e, "backtest", fmt.Errorf("--to %s is before --from %s", end.Format(time.RFC3339), start.Format(time.RFC3339)))
	case end.Sub(start)/(*step) > 100000:
		return fail(e, "backtest", fmt.Errorf("%s at --step %s is more than 100000 looks; use a larger step", end.Sub(start), *step))
	}
	eng := analysis.New(src.querier)
	worst := analysis.Pass
	enc := json.NewEncoder(e.stdout)
	for at := start; !at.After(end); at = at.Add(*step) {
		if err := ctx.Err(); err != nil {
			return fail(e, "backtest", err)
		}
		lookCtx, cancel := context.WithTimeout(ctx, t.timeout)
		v, err := eng.Evaluate(lookCtx, t.request(p, at))
		cancel()
		if err != nil {
			return fail(e, "backtest", err)
		}
		if v.Decision.Severity() > worst.Severity() {
			worst = v.Decision
		}
		if t.output == "json" {
			if err := enc.Encode(lineOf(v)); err != nil {
				return fail(e, "backtest", err)
			}
			continue
		}
		for _, l := range report.Line(redactedReason(e.secrets, v), report.Width) {
			fmt.Fprintln(e.stdout, l)
		}
	}
	return exitCode(worst)
}

func lineOf(v *analysis.Verdict) backtestLine {
	l := backtestLine{Time: v.Time, Verdict: string(v.Decision), Reason: v.Reason, MaxBurn: analysis.Num(v.MaxBurn()), Queries: v.Queries, SLIs: []lineSLI{}}
	for _, s := range v.SLIs {
		l.SLIs = append(l.SLIs, lineSLI{Name: s.Name, Verdict: string(s.Decision), Reason: s.Reason, Burn: s.Burn, Samples: s.Samples, Value: s.Value, Windows: s.Windows})
	}
	return l
}
