package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/prometheus/common/model"

	"github.com/phaseguard/phaseguard/analysis"
	"github.com/phaseguard/phaseguard/policies"
	"github.com/phaseguard/phaseguard/report"
)

// maxPace bounds --pace: a replay is for watching, not waiting.
const maxPace = time.Hour

// runWatch looks at one stage every interval, as the Argo plugin and the
// Action's wait mode do, until analysis.StageDecided: a fail at any look,
// else the look at the soak's end. On a terminal it keeps a live status
// (report.Status) in place; elsewhere it prints a timestamped line per
// look (report.Status.Line). Then it prints the deciding verdict and exits
// by it. Interrupted (Ctrl-C) or cut short by the data's end, it prints the
// verdict so far and exits hold: a stage not watched to its end is not a
// pass, whatever its last look said.
func runWatch(ctx context.Context, e env, args []string) int {
	fs := flag.NewFlagSet("watch", flag.ContinueOnError)
	var t targetFlags
	t.register(fs)
	startFlag := fs.String("start", "", "when this stage started: RFC 3339, Unix seconds or now (default now; with --replay, the stage's start in the data: a bundled scenario's stages follow each other from its canary's start)")
	pace := fs.Duration("pace", 0, "with --replay: wall-clock time between looks (default 0: as fast as the engine answers)")
	status := fs.String("status", "auto", "auto (a live status on a terminal, lines otherwise), live or lines")
	if code, ok := parse(fs, e, args); !ok {
		return code
	}
	switch {
	case *status != "auto" && *status != "live" && *status != "lines":
		return fail(e, "watch", fmt.Errorf("--status %q: want auto, live or lines", *status))
	case *pace < 0 || *pace > maxPace:
		return fail(e, "watch", fmt.Errorf("--pace %s: want 0 to %s", *pace, model.Duration(maxPace)))
	}
	src, p, err := t.open(e)
	if err != nil {
		return fail(e, "watch", err)
	}
	defer src.Close()
	if len(p.Spec.Stages) == 0 {
		return fail(e, "watch", fmt.Errorf("policy %s has no stages: a watch ends at a stage's soak", p.Metadata.Name))
	}
	stage, idx := p.Stage(t.stage)
	if idx < 0 {
		return fail(e, "watch", fmt.Errorf("--stage %q: want a stage of policy %s (%s): its soak ends the watch", t.stage, p.Metadata.Name, stageNames(p)))
	}
	if *pace > 0 && src.store == nil {
		return fail(e, "watch", errors.New("--pace is for --replay: a live watch looks every interval of the policy"))
	}
	start, err := watchStart(*startFlag, src, p, idx)
	if err != nil {
		return fail(e, "watch", err)
	}
	if err := errors.Join(checkStart(start, t.sinceTime, src, time.Duration(p.Spec.Interval)), t.checkSince(start)); err != nil {
		return fail(e, "watch", err)
	}
	w := &watch{
		e: e, t: &t, src: src, policy: p, stage: stage, start: start,
		interval: time.Duration(p.Spec.Interval), looks: p.PlannedLooks(stage.Name), pace: *pace,
		live:  t.output == "text" && (*status == "live" || (*status == "auto" && e.terminal > 0)),
		width: report.Width,
	}
	if e.terminal > 0 {
		w.width = min(e.terminal-1, report.Width) // a full line would wrap on some terminals
	}
	return w.run(ctx)
}

// watchStart is the stage's start: --start, else for replayed data the
// stage's start in it (a bundled scenario's first stage starts at its
// canary's start, each later one when the one before it soaked), else
// now.
func watchStart(flagValue string, src *source, p *policies.Policy, idx int) (time.Time, error) {
	def := time.Now()
	if src.store != nil {
		def, _ = src.store.Range()
		if src.truth != nil {
			def = src.truth.StageStart
			for _, s := range p.Spec.Stages[:idx] {
				def = def.Add(time.Duration(s.Soak))
			}
		}
	}
	return parseTime("start", flagValue, def)
}

// checkStart refuses a stage start the watch cannot judge: before the
// canary's start (--since), outside replayed data, or later than an
// interval from now (a live watch would wait for it in silence).
func checkStart(start, since time.Time, src *source, interval time.Duration) error {
	at := start.Format(time.RFC3339)
	if !since.IsZero() && start.Before(since) {
		return fmt.Errorf("--start %s is before --since %s: the stage starts when the canary has served since its start, not before", at, since.Format(time.RFC3339))
	}
	if src.store != nil {
		first, last := src.store.Range()
		if start.Before(first) || !start.Before(last) {
			return fmt.Errorf("--start %s: the replayed data runs from %s to %s", at, first.Format(time.RFC3339), last.Format(time.RFC3339))
		}
		return nil
	}
	if start.After(time.Now().Add(interval)) {
		return fmt.Errorf("--start %s is in the future: give the stage's start, or leave it out for now", at)
	}
	return nil
}

func stageNames(p *policies.Policy) string {
	var names []string
	for _, s := range p.Spec.Stages {
		names = append(names, s.Name)
	}
	return strings.Join(names, ", ")
}

// watch is one watch of a stage.
type watch struct {
	e        env
	t        *targetFlags
	src      *source
	policy   *policies.Policy
	stage    policies.Stage
	start    time.Time
	interval time.Duration
	looks    int           // planned looks: the soak in intervals
	pace     time.Duration // replay: wall time between looks
	live     bool
	width    int

	shown int // lines of the live status on screen
}

func (w *watch) run(ctx context.Context) int {
	eng := analysis.New(w.src.querier)
	soak := time.Duration(w.stage.Soak)
	var dataEnd time.Time
	if w.src.store != nil {
		_, dataEnd = w.src.store.Range()
	}
	// Looks already due (a stage that started before the watch) are all
	// made at once: a fault seen only at one of them fails the stage, as
	// it would have then.
	w.announce()
	st := report.Status{Policy: w.policy.Metadata.Name, Stage: w.stage.Name, Looks: w.looks, Soak: soak, Factor: maxFactor(w.policy)}
	var last *analysis.Verdict
	stopped := ""
	for k := 1; k <= w.looks; k++ {
		at := w.start.Add(time.Duration(k) * w.interval)
		if !dataEnd.IsZero() && at.After(dataEnd) {
			stopped = fmt.Sprintf("the data ends at %s", dataEnd.Format(time.RFC3339))
			break
		}
		if err := w.wait(ctx, at, &st); err != nil {
			stopped = "interrupted"
			break
		}
		lookCtx, cancel := context.WithTimeout(ctx, w.t.timeout)
		v, err := eng.Evaluate(lookCtx, w.t.request(w.policy, at))
		cancel()
		if ctx.Err() != nil {
			// Queries cut short are no evidence.
			stopped = "interrupted"
			break
		}
		if err != nil {
			w.clear()
			return fail(w.e, "watch", err)
		}
		last = v
		st.Look, st.Verdict, st.Left = k, v, w.start.Add(soak).Sub(at)
		st.Final = analysis.StageDecided(v, w.start, soak)
		st.Burns = append(st.Burns, v.MaxBurn())
		if w.live {
			st.NextIn = 0
			if !st.Final {
				st.NextIn = w.untilNext(at.Add(w.interval))
			}
			w.draw(st)
		} else if w.t.output == "json" {
			if err := writeVerdict(w.e.stdout, "json", v); err != nil {
				return fail(w.e, "watch", err)
			}
		} else {
			logged := st
			logged.Verdict = redactedReason(w.e.secrets, v)
			fmt.Fprintln(w.e.stdout, strings.Join(logged.Line(w.width), "\n"))
		}
		if st.Final {
			break
		}
	}
	return w.finish(last, stopped)
}

// announce says what will be watched before the first look, which may be
// an interval away.
func (w *watch) announce() {
	line := fmt.Sprintf("watching stage %s of %s: %d looks every %s from %s, the first at %s", w.stage.Name, w.policy.Metadata.Name,
		w.looks, model.Duration(w.interval), w.start.Format(time.RFC3339), w.start.Add(w.interval).Format(time.RFC3339))
	if w.t.output == "json" {
		fmt.Fprintln(w.e.stderr, "phaseguard watch: "+line)
		return
	}
	fmt.Fprintln(w.e.stdout, strings.Join(report.Wrap(line, w.width, "", "  "), "\n"))
}

// wait sleeps until the look at at is due, redrawing the live status's
// countdown every second; replayed data waits the pace instead.
func (w *watch) wait(ctx context.Context, at time.Time, st *report.Status) error {
	var until time.Time
	if w.src.store != nil {
		until = time.Now().Add(w.pace)
	} else {
		until = at
	}
	for {
		left := time.Until(until)
		if left <= 0 {
			return ctx.Err()
		}
		step := min(left, time.Second)
		if !w.live {
			step = left
		}
		timer := time.NewTimer(step)
		select {
		case <-ctx.Done():
			timer.Stop()
			return ctx.Err()
		case <-timer.C:
		}
		if w.live && st.Verdict != nil {
			st.NextIn = time.Until(until).Round(time.Second)
			w.draw(*st)
		}
	}
}

// untilNext is the wall time until the next look: the pace for replayed
// data, else until the look's time.
func (w *watch) untilNext(next time.Time) time.Duration {
	if w.src.store != nil {
		return w.pace
	}
	return max(time.Until(next), 0).Round(time.Second)
}

// draw replaces the live status on screen: the cursor goes up over the
// last one and clears to the end of the screen, in one write ending with
// a newline (stdout's redaction holds a line back until its newline).
func (w *watch) draw(st report.Status) {
	var b strings.Builder
	if w.shown > 0 {
		fmt.Fprintf(&b, "\x1b[%dA\x1b[J", w.shown)
	}
	lines := st.Lines(w.width)
	b.WriteString(strings.Join(lines, "\n") + "\n")
	io.WriteString(w.e.stdout, b.String())
	w.shown = len(lines)
}

// clear removes the live status, before an error or the final report.
func (w *watch) clear() {
	if w.shown > 0 {
		fmt.Fprintf(w.e.stdout, "\x1b[%dA\x1b[J", w.shown)
		w.shown = 0
	}
}

// finish prints the deciding verdict, or the verdict so far with why the
// watch stopped, and returns the exit code.
func (w *watch) finish(last *analysis.Verdict, stopped string) int {
	out := w.e.stdout
	soak := time.Duration(w.stage.Soak)
	if w.live && w.shown > 0 {
		// The status stays on screen, above the report, as the watch's record.
		fmt.Fprintln(out)
	}
	undecided := last == nil || (stopped != "" && !analysis.StageDecided(last, w.start, soak))
	if undecided && last != nil {
		// The stage's verdict is a hold whatever the last look said: a
		// copy of it says so, with the look's reason after why.
		watched := model.Duration(last.Time.Sub(w.start).Truncate(time.Second))
		held := *last
		held.Decision = analysis.Hold
		held.Reason = fmt.Sprintf("%s after watching %s of the %s soak: the stage is undecided, which is not a pass; its last look (%s): %s",
			stopped, watched, w.stage.Soak, last.Decision, last.Reason)
		last = &held
	}
	if w.t.output == "json" {
		// Every look's verdict is on stdout already; an undecided stage
		// ends with its hold.
		if last == nil {
			fmt.Fprintf(w.e.stderr, "phaseguard watch: %s before the first look of stage %s: hold\n", cmpOr(stopped, "stopped"), w.stage.Name)
			return exitHold
		}
		if undecided {
			if err := writeVerdict(out, "json", last); err != nil {
				return fail(w.e, "watch", err)
			}
		}
		return exitCode(last.Decision)
	}
	if last == nil {
		fmt.Fprintf(out, "HOLD  stage %s: %s before the first look: not a pass\n", w.stage.Name, cmpOr(stopped, "stopped"))
		return exitHold
	}
	if err := report.Verdict(out, last); err != nil {
		return fail(w.e, "watch", err)
	}
	if undecided {
		return exitHold
	}
	fmt.Fprintf(out, "\nstage %s decided at +%s: %s\n", w.stage.Name, model.Duration(last.Time.Sub(w.start)), map[analysis.Decision]string{
		analysis.Pass: "pass: its soak was watched to its end",
		analysis.Fail: "fail: roll back",
		analysis.Hold: "hold at the soak's end: pause for a human",
	}[last.Decision])
	return exitCode(last.Decision)
}

// maxFactor is the largest window pair factor of p: the top of the burn
// sparkline.
func maxFactor(p *policies.Policy) float64 {
	f := 1.0
	for _, w := range p.Spec.Windows {
		f = max(f, w.Factor)
	}
	return f
}
