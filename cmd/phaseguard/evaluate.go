package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"time"

	"github.com/phaseguard/phaseguard/analysis"
	"github.com/phaseguard/phaseguard/report"
)

func runEvaluate(ctx context.Context, e env, args []string) int {
	fs := flag.NewFlagSet("evaluate", flag.ContinueOnError)
	var t targetFlags
	t.register(fs)
	at := fs.String("at", "", "evaluation time: RFC 3339, Unix seconds or now (default: now; with --replay, the end of the data)")
	if code, ok := parse(fs, e, args); !ok {
		return code
	}
	src, p, err := t.open(e)
	if err != nil {
		return fail(e, "evaluate", err)
	}
	defer src.Close()
	now := time.Now()
	if src.store != nil {
		_, now = src.store.Range()
	}
	when, err := parseTime("at", *at, now)
	if err == nil {
		err = errors.Join(src.checkReplayTime("at", when), t.checkSince(when))
	}
	if err != nil {
		return fail(e, "evaluate", err)
	}
	ctx, cancel := context.WithTimeout(ctx, t.timeout)
	defer cancel()
	v, err := analysis.New(src.querier).Evaluate(ctx, t.request(p, when))
	if err != nil {
		return fail(e, "evaluate", err)
	}
	if err := writeVerdict(e.stdout, t.output, v); err != nil {
		return fail(e, "evaluate", err)
	}
	return exitCode(v.Decision)
}

func writeVerdict(w io.Writer, format string, v *analysis.Verdict) error {
	if format == "json" {
		return json.NewEncoder(w).Encode(v)
	}
	return report.Verdict(w, v)
}
