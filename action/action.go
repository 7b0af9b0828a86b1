// Package action is phaseguard's GitHub Action: a step between canary
// stages that asks the engine (package analysis) whether the stage passes,
// enforces stage order and soak time through a ledger of GitHub
// deployments, writes step outputs, a job summary and annotations, and
// triggers rollback. It decides nothing itself: the verdict is the
// engine's; this package reads inputs, records the stage and reports.
//
// # Runner contract
//
// Inputs arrive as INPUT_<NAME> with the name upper-cased and hyphens kept
// (INPUT_CANARY-HASH), read through sethvargo/go-githubactions; outputs are
// appended to $GITHUB_OUTPUT and the summary to $GITHUB_STEP_SUMMARY by
// this package (see files.go for why not by the library). Every input is
// validated before it reaches PromQL, the GitHub API or Kubernetes, and a
// bad one fails the step with an error naming it. Credentials are masked
// (::add-mask::) before anything is printed, and replaced by redact.Mark
// in the text the step prints, writes or sends to the GitHub API, even
// when a server quotes them back; identifiers (a tenant, the ledger's
// environment, the outputs but reason) are left as they are (see
// redact.go). Paths in the workspace stay in it (see paths.go).
//
// # Stage ledger
//
// Each stage of each commit is a GitHub deployment with task
// "deploy:phaseguard" to the environment <environment-prefix><stage>. A run
// creates its deployment, marks it in_progress with log_url pointing at
// the run, and ends it with success (pass), failure (fail), error (hold or
// a broken run) or inactive (yielded to a concurrent run). Statuses are
// written with auto_inactive false, so one commit's record never erases
// another's.
//
// Stage ordering: before judging stage N, the newest deployment of stage
// N-1 for the same commit that is not inactive must be success, and the
// soak of stage N-1 must have passed since that deployment was created
// (when phaseguard started judging stage N-1). Measuring from the start
// rather than from the success means a stage watched with wait: true
// (which ends after its soak) lets the next stage start at once, while a
// single-look check makes the next stage wait until the previous one has
// run for its soak. A stage that is still being judged, failed, or held
// blocks the next one. Otherwise the run fails with a reason starting
// "out-of-order" that names the missing stage, and creates no deployment.
//
// Concurrency: after creating its in_progress deployment, a run lists the
// deployments of the same commit and environment; if an older one is
// still running (no final status and its run's deadline, stored in the
// deployment payload, not yet past), this run marks its own deployment
// inactive and fails with a reason starting "concurrent". Deployment ids
// increase, so of two runs that overlap exactly one proceeds; a run that
// died without a final status stops blocking once its deadline passes.
//
// # Exit status
//
// 0 for pass (and for hold with on-hold: neutral, and for every verdict
// under dry-run), 1 for fail, out-of-order, concurrent and hold with
// on-hold: fail, 2 for invalid inputs and broken infrastructure (the
// ledger or the job summary could not be written).
package action

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/common/model"
	"github.com/sethvargo/go-githubactions"
	"k8s.io/client-go/dynamic"

	"github.com/phaseguard/phaseguard/analysis"
	"github.com/phaseguard/phaseguard/internal/redact"
	"github.com/phaseguard/phaseguard/policies"
	"github.com/phaseguard/phaseguard/promapi"
)

// Exit statuses of Run.
const (
	ExitPass  = 0
	ExitFail  = 1
	ExitError = 2
)

// Env is what the runner hands the step.
type Env struct {
	// Getenv reads the step's environment (INPUT_*, GITHUB_*, KUBECONFIG).
	// Nil means os.Getenv.
	Getenv func(string) string
	// Stdout receives the log and the workflow commands (annotations,
	// masks). Nil means os.Stdout.
	Stdout io.Writer
}

// OSEnv is the process's environment and standard output.
func OSEnv() Env { return Env{Getenv: os.Getenv, Stdout: os.Stdout} }

// Clock tells the time and waits; tests inject one that does not sleep.
type Clock interface {
	Now() time.Time
	// Sleep waits d, or returns ctx's error when ctx ends first.
	Sleep(ctx context.Context, d time.Duration) error
}

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

func (realClock) Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Option configures Run.
type Option func(*options)

type options struct {
	httpClient *http.Client
	clock      Clock
	kube       KubeClientFunc
}

// WithGitHubHTTPClient sets the HTTP client for the GitHub API (default: a
// client with a 30 s timeout). The token is added by Run.
func WithGitHubHTTPClient(c *http.Client) Option { return func(o *options) { o.httpClient = c } }

// WithClock sets the clock (default: the system clock).
func WithClock(c Clock) Option { return func(o *options) { o.clock = c } }

// WithKubeClient sets how the Kubernetes client that aborts a Rollout is
// made (default: from the kubeconfig input, $KUBECONFIG or the in-cluster
// configuration).
func WithKubeClient(f KubeClientFunc) Option { return func(o *options) { o.kube = f } }

// Run runs the Action as one step of a job and returns the process exit
// status. It never panics on a missing runner file: $GITHUB_OUTPUT and
// $GITHUB_STEP_SUMMARY are checked first. Everything it writes to
// env.Stdout but ::add-mask:: commands goes through a redact.Writer,
// flushed before Run returns.
func Run(ctx context.Context, env Env, opts ...Option) int {
	if env.Getenv == nil {
		env.Getenv = os.Getenv
	}
	if env.Stdout == nil {
		env.Stdout = os.Stdout
	}
	o := options{httpClient: &http.Client{Timeout: 30 * time.Second}, clock: realClock{}}
	for _, opt := range opts {
		opt(&o)
	}
	sec := redact.New()
	log := sec.Writer(env.Stdout)
	defer log.Flush()
	// Only masks go to the runner unredacted: it hides them, and a
	// redacted mask would hide nothing.
	masks := githubactions.New(githubactions.WithGetenv(env.Getenv), githubactions.WithWriter(env.Stdout))
	gha := githubactions.New(githubactions.WithGetenv(env.Getenv), githubactions.WithWriter(log))
	var missing []string
	for _, v := range []string{"GITHUB_OUTPUT", "GITHUB_STEP_SUMMARY"} {
		if env.Getenv(v) == "" {
			missing = append(missing, "$"+v)
		}
	}
	if len(missing) > 0 {
		gha.WithFieldsMap(map[string]string{"title": "phaseguard: not in a GitHub Actions step"}).Errorf("%s",
			strings.Join(missing, " and ")+" unset: run phaseguard action as a step of a GitHub Actions job (outputs and the job summary are written to the files these name)")
		return ExitError
	}
	r := &run{o: o, get: env.Getenv, gha: gha, sec: sec, mask: masks.AddMask}
	r.main(ctx)
	return r.finish(ctx)
}

// run is one step.
type run struct {
	o   options
	get func(string) string
	gha *githubactions.Action
	// sec holds every secret of the run; see redact.go.
	sec *redact.Set
	// mask prints ::add-mask:: around the redacting writer.
	mask func(string)
	renv *runnerEnv
	in   *inputs

	led  *ledger
	kube dynamic.Interface

	// Outcome.
	decision     analysis.Decision
	reason       string
	looks        []*analysis.Verdict
	start        time.Time
	inputErrs    []inputError
	notes        []string
	broken       bool // exit ExitError
	rollback     bool
	aborted      bool
	deploymentID int64
	finalState   string // the deployment status to write; "" from decision
	environment  string
	report       string
}

func (r *run) logf(format string, args ...any) {
	r.gha.Infof("%s", oneLine(r.sec.String(fmt.Sprintf(format, args...))))
}

// maxLintAnnotations bounds the warnings lintWarnings makes: GitHub shows
// at most 10 warning annotations of a step.
const maxLintAnnotations = 3

// lintWarnings makes a warning annotation of each thing phaseguard lint
// finds in the policy (policies.Policy.Warnings: an le spelling one server
// version lacks, a ratio SLI counted with rate()), which a hold or a pass
// may owe to it: at most maxLintAnnotations, then one that counts the rest.
func (r *run) lintWarnings(p *policies.Policy) {
	ws := p.Warnings()
	title := "phaseguard: policy " + p.Metadata.Name + ": phaseguard lint finds"
	for i, w := range ws {
		if i == maxLintAnnotations {
			r.annotate("warning", title, fmt.Sprintf("%d more: run phaseguard lint on %s", len(ws)-i, p.Source()))
			return
		}
		r.annotate("warning", title, w.Error())
	}
}

func (r *run) annotate(level, title, msg string) {
	title, msg = oneLine(r.sec.String(title)), r.sec.String(msg)
	a := r.gha.WithFieldsMap(map[string]string{"title": title})
	switch level {
	case "error":
		a.Errorf("%s", msg)
	case "warning":
		a.Warningf("%s", msg)
	default:
		a.Noticef("%s", msg)
	}
}

// refuse ends the run without a verdict of the engine: the stage is not
// passed, nothing is rolled back.
func (r *run) refuse(reason string, broken bool) {
	r.decision, r.reason, r.broken = analysis.Fail, oneLine(reason), broken
}

func (r *run) main(ctx context.Context) {
	clock := r.o.clock
	renv, renvErr := readRunnerEnv(r.get)
	r.renv = renv
	in, inErr := readInputs(r.gha.GetInput, clock.Now(), renv)
	r.in = in
	// Mask before anything else is printed.
	r.learn(in.secrets...)
	in.addSecrets(r.sec)
	errs := []error{renvErr, inErr}
	if in.githubToken != "" && r.get("GITHUB_REPOSITORY") == "" {
		errs = append(errs, &InputError{Input: "$GITHUB_REPOSITORY", Msg: "not set: the stage ledger needs owner/name"})
	}
	if err := errors.Join(errs...); err != nil {
		r.invalid(err)
		return
	}
	q, err := promapi.New(promapi.Config{URL: in.promURL, HTTP: in.promHTTP, Timeout: in.promTimeout, Redact: r.sec})
	if err != nil {
		r.invalid(&InputError{Input: inPromURL, Secret: true, Msg: err.Error()})
		return
	}
	if in.rollout != "" {
		f := r.o.kube
		if f == nil {
			f = func(kc []byte) (dynamic.Interface, error) {
				cfg, err := kubeConfig(kc, renv.kubeconfigPath, renv.workspace, renv.inClusterService)
				if err != nil {
					return nil, err
				}
				r.learn(kubeSecretsOf(cfg)...)
				cfg.WarningHandler = kubeWarnings(func(text string) { r.logf("Kubernetes API warning: %s", text) })
				return kubeDynamic(cfg)
			}
		}
		if r.kube, err = f(in.kubeconfig); err != nil {
			ie := &InputError{Input: inRollout, Value: in.rollout, Msg: "no Kubernetes client to abort it with: " + err.Error()}
			if !in.dryRun {
				r.invalid(ie)
				return
			}
			r.notes = append(r.notes, "dry run, not enforced: "+ie.Error())
			r.annotate("warning", "phaseguard: rollback not possible (dry run)", ie.Error())
		}
	}
	if in.githubToken != "" {
		r.led = newLedger(r.o.httpClient, in.githubToken, renv.apiURL, r.sec, renv.owner, renv.repo, in.sha, clock.Now)
		r.environment = in.environment(in.stage.Name)
	}
	r.logf("phaseguard: stage %s of policy %s (%s), canary %s, stable %s", in.stage.Name, in.policy.Metadata.Name, in.policy.Source(), in.canaryHash, orNone(in.stableHash))
	r.lintWarnings(in.policy)

	// The deadline covers the ledger and the looks; recording the verdict
	// and rolling back get their own time in finish.
	ctx, cancel := context.WithTimeout(ctx, in.timeout)
	defer cancel()
	deadline := clock.Now().Add(in.timeout)

	if r.led != nil && in.stageOrdering {
		if prev, ok := in.policy.Previous(in.stage.Name); ok {
			reason, err := r.led.checkPrevious(ctx, prev, in.environment(prev.Name))
			switch {
			case err != nil:
				r.refuse("stage ledger: cannot check previous stage "+prev.Name+": "+err.Error(), true)
				return
			case reason != "" && in.dryRun:
				r.notes = append(r.notes, "dry run, not enforced: "+reason)
				r.annotate("warning", "phaseguard: stage "+in.stage.Name+" out of order (dry run)", reason)
			case reason != "":
				r.refuse(reason, false)
				return
			default:
				r.logf("stage order: %s passed and soaked %s for commit %s", prev.Name, prev.Soak, short(in.sha))
			}
		}
	}

	if r.led != nil && !in.dryRun {
		p := payload{
			Tool: "phaseguard", Stage: in.stage.Name, Policy: in.policy.Metadata.Name, Service: in.service,
			CanaryHash: in.canaryHash, StableHash: in.stableHash, RunID: renv.runID, RunURL: renv.runURL(), Deadline: deadline.UTC(),
		}
		production := in.stageIndex == len(in.policy.Spec.Stages)-1
		d, err := r.led.create(ctx, r.environment, fmt.Sprintf("phaseguard: %s of %s", in.stage.Name, orNone(in.service)), p, production, renv.runURL())
		if d != nil {
			r.deploymentID = d.GetID()
		}
		if err != nil {
			r.refuse("stage ledger: "+err.Error(), true)
			return
		}
		r.logf("ledger: deployment %d to %s in progress", r.deploymentID, r.environment)
		first, err := r.led.firstRunning(ctx, r.environment, r.deploymentID)
		if err != nil {
			r.refuse("stage ledger: "+err.Error(), true)
			return
		}
		if first != nil {
			var fp payload
			_ = json.Unmarshal(first.d.Payload, &fp)
			by := ""
			if fp.RunURL != "" {
				by = " by " + fp.RunURL
			}
			r.refuse(fmt.Sprintf("concurrent: deployment %d%s is already judging stage %s for commit %s; this run yields", first.d.GetID(), by, in.stage.Name, short(in.sha)), false)
			r.finalState = stateInactive
			return
		}
	}

	eng := analysis.New(q, analysis.WithClock(clock.Now))
	r.judge(ctx, eng, deadline)
}

// learn masks secrets and adds them to the run's set. A multi-line secret
// is masked line by line, as the runner matches masks per log line.
func (r *run) learn(secrets ...string) {
	for _, s := range secrets {
		for _, line := range strings.Split(s, "\n") {
			if line = strings.TrimSpace(line); line != "" {
				r.mask(line)
			}
		}
		addSecret(r.sec, s)
	}
}

// invalid records input errors.
func (r *run) invalid(err error) {
	errs := []error{err}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	}
	for _, e := range errs {
		if e == nil {
			continue
		}
		r.inputErrs = append(r.inputErrs, newInputError(e.Error()))
	}
	reason := "invalid input: " + r.inputErrs[0].String()
	if n := len(r.inputErrs); n > 1 {
		reason += fmt.Sprintf(" (+%d more)", n-1)
	}
	r.refuse(reason, true)
}

// judge looks at the stage once, or, with wait, at every interval until
// the engine fails it or the soak ends.
func (r *run) judge(ctx context.Context, eng *analysis.Engine, deadline time.Time) {
	in, clock := r.in, r.o.clock
	r.start = in.at
	if r.start.IsZero() {
		r.start = clock.Now().UTC()
	}
	if !in.wait {
		v, err := eng.Evaluate(ctx, in.request(r.start, in.since))
		if err != nil {
			r.invalid(errors.Join(engineInputErrors(err)...))
			return
		}
		r.looks = append(r.looks, v)
		r.logLook(1, 1, v)
		r.decision, r.reason = v.Decision, oneLine(v.Reason)
		return
	}
	// Windows are cut only at the since input: the canary's start. The
	// watch's start is only this stage's: the canary has served since an
	// earlier stage, and cutting its evidence there would hold a short
	// stage (5m) whose rate SLIs cannot rule out a fast burn in 5 minutes.
	since := in.since
	n := in.policy.PlannedLooks(in.stage.Name)
	interval, soak := time.Duration(in.policy.Spec.Interval), time.Duration(in.stage.Soak)
	r.logf("watching stage %s for its soak of %s: %d looks every %s from %s", in.stage.Name, in.stage.Soak, n, in.policy.Spec.Interval, r.start.Format(time.RFC3339))
	if end := r.start.Add(soak); deadline.Before(end) {
		r.annotate("warning", "phaseguard: timeout before the soak's end",
			fmt.Sprintf("timeout %s ends the watch at %s, before stage %s's soak ends at %s: the step can fail the stage but not pass it; %s",
				model.Duration(in.timeout), deadline.UTC().Format(time.RFC3339), in.stage.Name, end.UTC().Format(time.RFC3339), timeoutHint))
	}
	var stopped string
	for k := 1; k <= n; k++ {
		t := r.start.Add(time.Duration(k) * interval)
		if wait := t.Sub(clock.Now()); wait > 0 {
			if t.After(deadline) {
				stopped = "timeout"
				break
			}
			if err := clock.Sleep(ctx, wait); err != nil {
				stopped = stopReason(err)
				break
			}
		}
		v, err := eng.Evaluate(ctx, in.request(t, since))
		if err != nil {
			r.invalid(errors.Join(engineInputErrors(err)...))
			return
		}
		if ctx.Err() != nil {
			// Queries cut short are no evidence.
			stopped = stopReason(ctx.Err())
			break
		}
		r.looks = append(r.looks, v)
		r.logLook(k, n, v)
		if analysis.StageDecided(v, r.start, soak) {
			break
		}
	}
	var last *analysis.Verdict
	if len(r.looks) > 0 {
		last = r.looks[len(r.looks)-1]
	}
	switch {
	case last != nil && analysis.StageDecided(last, r.start, soak):
		// A failing look, or the first look at the soak's end.
		r.decision, r.reason = last.Decision, oneLine(last.Reason)
	case last == nil:
		r.decision, r.reason = analysis.Hold, fmt.Sprintf("%s before the first look (timeout %s)", stopped, model.Duration(in.timeout))
	default:
		// The soak was not watched to its end: not a pass, whatever the
		// last look said.
		watched := last.Time.Sub(r.start).Truncate(time.Second)
		r.decision = analysis.Hold
		r.reason = oneLine(fmt.Sprintf("%s after watching %s of the %s soak (%d of %d looks); last look %s: %s",
			stopped, model.Duration(watched), in.stage.Soak, len(r.looks), n, last.Decision, last.Reason))
		if stopped == "timeout" {
			r.reason += "; " + timeoutHint
		}
	}
}

// timeoutHint is what a watch cut by its timeout needs: a pass needs the
// soak watched to its end.
const timeoutHint = "a pass needs the soak watched to its end: raise the timeout input (at most 6h) above the soak left, and the job's timeout-minutes above that"

func stopReason(err error) string {
	if errors.Is(err, context.DeadlineExceeded) {
		return "timeout"
	}
	return "cancelled"
}

func (r *run) logLook(k, n int, v *analysis.Verdict) {
	r.logf("look %d/%d at %s: %s (max burn %s): %s", k, n, v.Time.Format(time.RFC3339), v.Decision, fmtBurn(v.MaxBurn()), v.Reason)
}

// finish records the verdict in the ledger, rolls back on fail, writes the
// report, outputs and summary, annotates, and returns the exit status.
func (r *run) finish(ctx context.Context) int {
	in := r.in
	// Recording and rollback must happen even when the step's deadline or
	// the job was cancelled.
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
	defer cancel()
	var last *analysis.Verdict
	if len(r.looks) > 0 {
		last = r.looks[len(r.looks)-1]
	}
	engineFail := r.decision == analysis.Fail && last != nil && last.Decision == analysis.Fail

	// Ledger.
	if r.led != nil && r.deploymentID != 0 {
		state := r.finalState
		if state == "" {
			switch {
			case r.broken:
				state = stateError
			case r.decision == analysis.Pass:
				state = stateSuccess
			case r.decision == analysis.Fail:
				state = stateFailure
			default:
				state = stateError
			}
		}
		desc := string(r.decision) + ": " + r.reason
		if err := r.led.setStatus(fctx, r.deploymentID, state, desc, r.renv.runURL()); err != nil {
			r.broken = true
			r.notes = append(r.notes, "stage ledger: "+err.Error())
			r.annotate("error", "phaseguard: stage ledger", "recording the verdict failed: "+err.Error())
		} else {
			r.logf("ledger: deployment %d to %s is %s", r.deploymentID, r.environment, state)
		}
	}

	// Rollback: only on the engine's fail, never under dry-run.
	if engineFail && in != nil {
		if in.dryRun {
			r.notes = append(r.notes, "dry run: the stage would have been rolled back")
		} else {
			r.rollback = true
			if in.rollout != "" && r.kube != nil {
				if err := abortRollout(fctx, r.kube, in.namespace, in.rollout); err != nil {
					r.broken = true
					r.annotate("error", "phaseguard: rollback of "+in.rollout+" failed", err.Error())
					r.notes = append(r.notes, err.Error())
				} else {
					r.aborted = true
					r.logf("rollback: Argo Rollout %s/%s aborted", in.namespace, in.rollout)
				}
			}
		}
	}

	// Report.
	if in != nil && in.reportPath != "" {
		v := last
		if v == nil || v.Decision != r.decision || v.Reason != r.reason {
			v = r.synthetic(last)
		}
		if err := r.writeReport(v); err != nil {
			r.broken = true
			r.annotate("error", "phaseguard: report not written", err.Error())
		} else {
			r.report = in.reportPath
		}
	}

	// Annotations.
	stage := "?"
	if in != nil && in.stage.Name != "" {
		stage = in.stage.Name
	}
	for _, e := range r.inputErrs {
		r.annotate("error", "phaseguard: invalid input", e.String())
	}
	switch {
	case len(r.inputErrs) > 0:
	case r.decision == analysis.Fail && in != nil && in.dryRun:
		r.annotate("warning", "phaseguard: stage "+stage+" would fail (dry run)", r.reason)
	case r.decision == analysis.Fail:
		r.annotate("error", "phaseguard: stage "+stage+" failed", r.reason)
	case r.decision == analysis.Hold:
		r.annotate("warning", "phaseguard: stage "+stage+" on hold", r.reason)
	default:
		r.annotate("notice", "phaseguard: stage "+stage+" passed", r.reason)
	}

	// Summary, then outputs.
	if err := r.writeSummary(last); err != nil {
		r.broken = true
		r.annotate("error", "phaseguard: job summary", err.Error())
	}
	maxBurn := ""
	if last != nil {
		if b := last.MaxBurn(); !math.IsNaN(b) && !math.IsInf(b, 0) {
			maxBurn = strconv.FormatFloat(round4(b), 'f', -1, 64)
		}
	}
	stageName, deployment := "", ""
	if in != nil {
		stageName = in.stage.Name
	}
	if r.deploymentID != 0 {
		deployment = strconv.FormatInt(r.deploymentID, 10)
	}
	// Only the reason is free text; the rest is the Action's syntax or
	// identifiers made of inputs, which later jobs use as given.
	outs := []output{
		{name: "verdict", value: string(r.decision), id: true},
		{name: "reason", value: oneLine(r.reason)},
		{name: "max-burn", value: maxBurn, id: true},
		{name: "rollback", value: strconv.FormatBool(r.rollback), id: true},
		{name: "rollout-aborted", value: strconv.FormatBool(r.aborted), id: true},
		{name: "report", value: r.report, id: true},
		{name: "stage", value: stageName, id: true},
		{name: "environment", value: r.environment, id: true},
		{name: "deployment-id", value: deployment, id: true},
		{name: "looks", value: strconv.Itoa(len(r.looks)), id: true},
	}
	if err := writeOutputs(r.sec, r.renv.outputFile, outs); err != nil {
		r.annotate("error", "phaseguard: outputs", err.Error())
		return ExitError
	}

	switch {
	case r.broken:
		return ExitError
	case in != nil && in.dryRun:
		return ExitPass
	case r.decision == analysis.Pass:
		return ExitPass
	case r.decision == analysis.Hold && in != nil && in.onHold == onHoldNeutral:
		return ExitPass
	}
	return ExitFail
}

// synthetic is the verdict written to the report when the engine's last
// look is not the outcome: a refusal, an input error, a cut-short watch.
func (r *run) synthetic(last *analysis.Verdict) *analysis.Verdict {
	v := &analysis.Verdict{Time: r.o.clock.Now().UTC(), Decision: r.decision, Reason: r.reason}
	if last != nil {
		c := *last
		c.Decision, c.Reason = r.decision, r.reason
		return &c
	}
	if r.in.policy != nil {
		v.Policy = r.in.policy.Metadata.Name
	}
	v.Stage = r.in.stage.Name
	return v
}

// writeReport writes v, redacted, to the report-path input inside the
// workspace (writeInWorkspace: its path is resolved again, as it may have
// changed during the run). The error names the input.
func (r *run) writeReport(v *analysis.Verdict) error {
	// Every string of a copy is redacted, then the JSON text again.
	c := *v
	redactStrings(r.sec, reflect.ValueOf(&c))
	data, err := json.MarshalIndent(&c, "", "  ")
	if err != nil {
		return fmt.Errorf("report: %w", err)
	}
	if err := writeInWorkspace(r.renv.workspace, r.in.reportPath, redactJSON(r.sec, append(data, '\n'))); err != nil {
		return &InputError{Input: inReportPath, Value: r.in.reportPath, Msg: err.Error()}
	}
	return nil
}

func (r *run) writeSummary(last *analysis.Verdict) error {
	in := r.in
	s := &summary{
		Decision:     string(r.decision),
		Reason:       r.reason,
		Environment:  r.environment,
		DeploymentID: r.deploymentID,
		RunURL:       r.renv.runURL(),
		Looks:        len(r.looks),
		Rollback:     r.rollback,
		Aborted:      r.aborted,
		Notes:        r.notes,
		InputErrors:  r.inputErrs,
	}
	if in != nil {
		s.Stage = in.stage.Name
		s.Service, s.Namespace = in.service, in.namespace
		s.CanaryHash, s.StableHash = in.canaryHash, in.stableHash
		s.Wait, s.DryRun, s.Rollout = in.wait, in.dryRun, in.rollout
		if in.policy != nil {
			s.Policy = in.policy.Metadata.Name
			s.PlannedLooks = 1
			if in.wait {
				s.PlannedLooks = in.policy.PlannedLooks(in.stage.Name)
			}
		}
	}
	if len(r.inputErrs) > 0 {
		// Echo nothing of a rejected configuration but the errors, the
		// stage asked for and the policy named.
		s.Service, s.Namespace, s.CanaryHash, s.StableHash, s.Rollout = "", "", "", "", ""
		if s.Stage == "" {
			s.Stage = cutWords(oneLine(r.gha.GetInput(inStage)), 80)
		}
		if s.Policy == "" {
			ref := r.gha.GetInput(inPolicy)
			if ref == "" {
				ref = defaultPolicy
			}
			s.PolicyFailed = true
			if s.PolicyInline = strings.Contains(ref, "\n") || strings.HasPrefix(ref, "apiVersion"); !s.PolicyInline {
				s.Policy = cutWords(oneLine(ref), 200)
			}
		}
	}
	if s.Stage == "" {
		s.Stage = "?"
	}
	if last != nil {
		s.At = last.Time.UTC().Format(time.RFC3339)
		s.Confidence = strconv.FormatFloat(round4(last.Confidence*100), 'f', -1, 64) + " %"
		s.MaxBurn = fmtBurn(last.MaxBurn())
		s.SLIs = sliSummaries(last)
		s.Queries = last.Queries
		s.Chart, s.Legend = burnChart(r.looks, r.start)
	}
	// Markdown escaping changes a secret's text ('_' becomes '\_'):
	// redact before rendering, and the page again at the sink, before it
	// is cut to GitHub's limit (a secret cut in two would match no more).
	redactStrings(r.sec, reflect.ValueOf(s))
	md, err := renderSummary(s)
	if err != nil {
		return err
	}
	return appendFile(r.renv.summaryFile, boundPage(r.sec.String(md), summaryLimit, r.sec.String(r.report)))
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}
