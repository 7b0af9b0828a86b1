// Package rollouts is phaseguard's Argo Rollouts metric provider plugin.
//
// It is an adapter: it translates an AnalysisRun metric whose provider is
// plugin "phaseguard/phaseguard" into an [analysis.Request], asks the engine
// for a verdict, and translates the verdict back into a Measurement:
//
//	fail -> Failed        (Argo aborts the Rollout and rolls back), at the first look that shows it
//	hold -> Inconclusive  (Argo pauses the Rollout for a human), at the stage's end
//	pass -> Successful
//
// A hold before the stage has soaked is thin evidence, not a reason to
// call a human (analysis.HoldPending): stage mode keeps its measurement
// Running, look mode reports the look Successful with verdict hold and
// pending true, and the stage's end decides. The engine's windows reach
// back to the canary's start, read from the Rollout's AnalysisRuns
// (canaryStart).
//
// A configuration the plugin cannot use (bad JSON, an unknown field, an
// unknown preset, an argument that is not a valid hash, a credential
// source that is not the operator's) is an Error measurement naming the
// problem, never a verdict.
//
// Credentials come from the operator's connections file ([Connection],
// named by the plugin's args) or from the AnalysisRun's own secret
// arguments, never from a file or an environment variable a template
// names (see [PrometheusConfig]); a policy file only from the operator's
// policy directory. Every text about a measurement is redacted with the
// credentials that measurement used (its connection's, or its own secret
// arguments and what its client sent) and the Kubernetes client's, never
// with another tenant's; a measurement's message and metadata hold at
// most [MaxMeasurementBytes]. Query errors are part of
// the verdict: the policy (or the config's onQueryError) holds them by
// default, so an outage of Prometheus pauses a rollout and never passes it.
//
// The plugin speaks Argo Rollouts' go-plugin RPC protocol
// (github.com/argoproj/argo-rollouts/metricproviders/plugin/rpc): [Serve]
// serves it when the controller starts the phaseguard binary with
// ARGO_ROLLOUTS_RPC_PLUGIN=metricprovider. One plugin process serves every
// AnalysisRun of the controller concurrently; each call has its own
// deadline, and clients and policies are shared between calls.
package rollouts

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/argoproj/argo-rollouts/metricproviders/plugin/rpc"
	"github.com/argoproj/argo-rollouts/pkg/apis/rollouts/v1alpha1"
	"github.com/argoproj/argo-rollouts/utils/plugin/types"
	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/common/model"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/phaseguard/phaseguard/analysis"
	"github.com/phaseguard/phaseguard/internal/redact"
	"github.com/phaseguard/phaseguard/policies"
	"github.com/phaseguard/phaseguard/promapi"
)

// Name is the plugin's name: the key of its configuration under
// provider.plugin in an AnalysisTemplate, and its name in the
// argo-rollouts-config ConfigMap.
const Name = "phaseguard/phaseguard"

// Plugin implements Argo Rollouts' rpc.MetricProviderPlugin. It is safe for
// concurrent use; create it with [New].
type Plugin struct {
	log hclog.Logger
	now func() time.Time
	// logSecrets is what the plugin's log is redacted with (WithRedact):
	// the operator's connections' credentials and the Kubernetes
	// client's, never a template's. What the log shows about a
	// measurement is redacted with the measurement's own set first (see
	// call).
	logSecrets *redact.Set
	// kube holds the Kubernetes client's credentials, part of every
	// measurement's set.
	kube      *redact.Set
	connsPath string
	conns     *connections
	// policyDir is the operator's policy directory: the only place
	// templates name policy files in.
	policyDir string
	// metaSecrets are what GetMetadata redacts with.
	metaSecrets *metadataSecrets
	// setupErr is a problem with the plugin's own args: every call is an
	// Error naming it.
	setupErr error

	runsMu  sync.Mutex
	runs    AnalysisRunLister
	newRuns func(...*redact.Set) (AnalysisRunLister, error)

	cache *cache
	// starts caches the canary's start per Rollout revision (canaryStart).
	starts starts
	// evals bounds the evaluations running at once in the process; calls
	// beyond it wait (within their deadline) holding only their request.
	evals chan struct{}
}

// DefaultMaxEvaluations bounds the evaluations one plugin process runs at
// once. The controller calls the plugin for every AnalysisRun metric at
// the same time; each evaluation sends its queries (bounded per server by
// prometheus.maxInFlight) and holds their results.
const DefaultMaxEvaluations = 16

var _ rpc.MetricProviderPlugin = (*Plugin)(nil)

// Option configures a Plugin.
type Option func(*Plugin)

// WithLogger sets the logger (default: hclog's null logger).
func WithLogger(l hclog.Logger) Option { return func(p *Plugin) { p.log = l } }

// WithClock sets the clock: evaluation times, stage soak, ResumeAt.
func WithClock(now func() time.Time) Option { return func(p *Plugin) { p.now = now } }

// WithRedact sets the set the plugin adds the operator's and the
// Kubernetes client's credentials to (default: a set of its own): give
// the set the logger's output is redacted with, as [Main] does. A
// template's secrets never join it: measurements, and what the log shows
// about them, are redacted with the credentials each measurement used.
func WithRedact(s *redact.Set) Option { return func(p *Plugin) { p.logSecrets = s } }

// WithConnectionsFile sets the operator's connections file (see
// [Connection]), read at InitPlugin and again whenever it changes.
func WithConnectionsFile(path string) Option { return func(p *Plugin) { p.connsPath = path } }

// WithPolicyDir sets the operator's policy directory: a template may
// name a policy file only inside it (symlinks resolved). Without it,
// templates use presets and inline policies only.
func WithPolicyDir(dir string) Option {
	return func(p *Plugin) {
		if dir != "" {
			dir = filepath.Clean(dir)
		}
		p.policyDir = dir
	}
}

// withSetupError makes every call an Error naming err: the plugin's args
// were wrong, and the controller should show it rather than lose the
// plugin.
func withSetupError(err error) Option { return func(p *Plugin) { p.setupErr = err } }

// WithAnalysisRuns sets where stage ordering reads AnalysisRuns from.
// Without it the plugin connects to Kubernetes at the first stage ordering
// check: KUBECONFIG when set, else the in-cluster service account (the
// controller's own credentials).
func WithAnalysisRuns(l AnalysisRunLister) Option { return func(p *Plugin) { p.runs = l } }

// WithMaxEvaluations bounds the evaluations running at once (default
// DefaultMaxEvaluations).
func WithMaxEvaluations(n int) Option {
	return func(p *Plugin) { p.evals = make(chan struct{}, max(n, 1)) }
}

// New returns a plugin.
func New(opts ...Option) *Plugin {
	p := &Plugin{log: hclog.NewNullLogger(), now: time.Now, newRuns: defaultAnalysisRuns}
	for _, o := range opts {
		o(p)
	}
	if p.evals == nil {
		p.evals = make(chan struct{}, DefaultMaxEvaluations)
	}
	if p.logSecrets == nil {
		p.logSecrets = redact.New()
	}
	p.kube = redact.New()
	if p.connsPath != "" {
		p.conns = newConnections(p.connsPath, p.logSecrets, p.log)
	}
	p.cache = newCache()
	p.metaSecrets = newMetadataSecrets()
	return p
}

// InitPlugin is called once when the controller starts the plugin. It
// reads the connections file, if any, and logs what it found; clients are
// created per configuration, on first use. It never fails: a problem is
// logged, and is an Error measurement of every metric it concerns.
func (p *Plugin) InitPlugin() types.RpcError {
	if p.setupErr != nil {
		p.log.Error("plugin args refused: every measurement is an Error until they are fixed", "error", p.logSecrets.String(p.setupErr.Error()))
	}
	p.conns.load()
	p.log.Info("phaseguard metric provider plugin ready", "plugin", Name, "connectionsFile", p.connsPath, "policyDir", p.policyDir)
	return types.RpcError{}
}

// Type returns the plugin's name.
func (p *Plugin) Type() string { return Name }

// GarbageCollect has nothing to collect (the plugin keeps no state outside
// the measurements) and never fails: a failing GarbageCollect makes the
// AnalysisRun status grow without bound.
func (p *Plugin) GarbageCollect(*v1alpha1.AnalysisRun, v1alpha1.Metric, int) types.RpcError {
	return types.RpcError{}
}

// GetMetadata describes the metric's configuration once per AnalysisRun
// metric: policy, stage, mode and Prometheus address. It holds no secret.
// It is bounded like a measurement's, and redacted with the set of the
// measurement the controller has just taken with the same metric, the
// config's own credential values and the Kubernetes client's
// credentials.
func (p *Plugin) GetMetadata(metric v1alpha1.Metric) map[string]string {
	set := redact.Union(p.metaSecrets.get(metric), p.kube)
	if cfg, err := configOf(metric); err == nil {
		for _, f := range cfg.Prometheus.credentialFields() {
			set.Add(f.value)
		}
		if b := cfg.Prometheus.BasicAuth; b != nil {
			set.AddBasicAuth(b.Username, b.Password)
		}
	}
	md := redactMetadata(set, p.metadataOf(metric))
	_, md, _ = fitMeasurement("", md)
	return md
}

func (p *Plugin) metadataOf(metric v1alpha1.Metric) map[string]string {
	cfg, err := configOf(metric)
	if err != nil {
		return map[string]string{"error": oneLine(err)}
	}
	md := map[string]string{
		"plugin": Name,
		"policy": policyLabel(cfg.Policy),
		"mode":   cfg.Mode,
	}
	if cfg.Prometheus.Connection != "" {
		md["connection"] = cfg.Prometheus.Connection
	} else {
		md["prometheus"] = cfg.Prometheus.Address
	}
	if cfg.Stage != "" {
		md["stage"] = cfg.Stage
	}
	if cfg.DryRun {
		md["dryRun"] = "true"
	}
	return md
}

// Run takes a measurement. In look mode it judges the windows ending now
// and finishes; in stage mode it starts the stage: Running with ResumeAt
// at the next look, unless the first look already fails.
func (p *Plugin) Run(ar *v1alpha1.AnalysisRun, metric v1alpha1.Metric) v1alpha1.Measurement {
	cl := p.newCall(ar, metric)
	return p.finish(cl, p.run(cl))
}

func (p *Plugin) run(cl *call) v1alpha1.Measurement {
	now := p.now()
	m := v1alpha1.Measurement{StartedAt: metaTime(now)}
	c, err := p.prepare(cl)
	if err != nil {
		return p.errorMeasurement(cl, m, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	if c.cfg.Ordering() {
		if prev, ok := c.policy.Previous(c.cfg.Stage); ok && c.cfg.Stage != "" {
			reason, err := p.checkOrder(ctx, cl, c, prev)
			if err != nil {
				return p.errorMeasurement(cl, m, err)
			}
			if reason != "" {
				return p.outOfOrder(cl, m, c, reason)
			}
		}
	}
	st := stageState{Start: now.UTC()}
	st.Since, st.SinceNote = p.canaryStart(ctx, cl, now)
	if c.cfg.Mode == ModeLook {
		lp, err := planLook(cl.ar, cl.metric, c.policy, c.cfg.Stage, now)
		if err != nil {
			return p.errorMeasurement(cl, m, &ConfigError{Errs: []error{err}})
		}
		c.look = &lp
	}
	return p.look(ctx, cl, m, c, st)
}

// Resume continues a stage-mode measurement: one more look, then Running
// until the next one, or finished (fail at once, pass or hold at the end
// of the soak). The stage's state is read back from the measurement's
// metadata, so a restarted plugin process resumes where it was.
func (p *Plugin) Resume(ar *v1alpha1.AnalysisRun, metric v1alpha1.Metric, m v1alpha1.Measurement) v1alpha1.Measurement {
	if m.Phase.Completed() {
		return m
	}
	cl := p.newCall(ar, metric)
	return p.finish(cl, p.resume(cl, m))
}

func (p *Plugin) resume(cl *call, m v1alpha1.Measurement) v1alpha1.Measurement {
	c, err := p.prepare(cl)
	if err != nil {
		return p.errorMeasurement(cl, m, err)
	}
	st := stageState{Start: p.now().UTC()}
	if c.cfg.Mode == ModeStage {
		if st, err = readState(m.Metadata); err != nil {
			return p.errorMeasurement(cl, m, err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	return p.look(ctx, cl, m, c, st)
}

// Terminate finishes a running stage-mode measurement when the controller
// stops the AnalysisRun (the Rollout was aborted or promoted, or another
// metric failed). The stage did not finish its soak, so, as Argo's own
// job provider does, the measurement ends Inconclusive (Successful in dry
// run); its metadata keeps the looks so far.
func (p *Plugin) Terminate(ar *v1alpha1.AnalysisRun, metric v1alpha1.Metric, m v1alpha1.Measurement) v1alpha1.Measurement {
	if m.Phase.Completed() {
		return m
	}
	cl := p.newCall(ar, metric)
	now := p.now()
	m.FinishedAt = metaTime(now)
	m.ResumeAt = nil
	md := make(map[string]string, len(m.Metadata)+1)
	for k, v := range m.Metadata {
		md[k] = v
	}
	md["terminated"] = now.UTC().Format(time.RFC3339)
	m.Metadata = md
	m.Phase = v1alpha1.AnalysisPhaseInconclusive
	if md["dryRun"] == "true" {
		m.Phase = v1alpha1.AnalysisPhaseSuccessful
	}
	m.Message = fmt.Sprintf("terminated by the controller after %s look(s) of stage %s, before its soak ended", orDefault(md[keyLooks], "0"), orDefault(md["stage"], "?"))
	p.log.Info("measurement terminated", cl.logFields("looks", md[keyLooks])...)
	return p.finish(cl, m)
}

// prepared is what a call needs: the decoded config, the policy and the
// shared engine.
type prepared struct {
	cfg     *Config
	policy  *policies.Policy
	engine  *analysis.Engine
	req     analysis.Request
	timeout time.Duration
	// look places a look-mode Run in its stage (nil in stage mode).
	look *lookPlan
}

// prepare decodes the config, checks where its credentials and its
// policy come from, loads the policy and builds the request, checking
// every input that reaches PromQL. It sets the call's client set.
func (p *Plugin) prepare(cl *call) (*prepared, error) {
	if p.setupErr != nil {
		return nil, p.setupErr
	}
	cfg, err := configOf(cl.metric)
	if err != nil {
		return nil, err
	}
	policyRef, err := p.policyRef(cfg.Policy)
	if err != nil {
		return nil, &ConfigError{Errs: []error{err}}
	}
	eng, err := p.engine(cl, &cfg.Prometheus)
	if err != nil {
		return nil, err
	}
	pol, err := p.cache.policy(policyRef)
	if err != nil {
		return nil, err
	}
	if cfg.OnQueryError != "" && cfg.OnQueryError != pol.Spec.OnQueryError {
		cp := *pol // shallow: only a Spec scalar changes, the shared policy is untouched
		cp.Spec.OnQueryError = cfg.OnQueryError
		pol = &cp
	}
	req := analysis.Request{
		Policy:     pol,
		Stage:      cfg.Stage,
		Service:    cfg.Service,
		Namespace:  cfg.Namespace,
		CanaryHash: cfg.CanaryHash,
		StableHash: cfg.StableHash,
	}
	if err := req.Validate(); err != nil {
		return nil, err
	}
	return &prepared{cfg: cfg, policy: pol, engine: eng, req: req, timeout: time.Duration(cfg.Timeout)}, nil
}

// engine returns the engine for a metric's Prometheus settings: the
// operator's connection it names, or its own address with credentials
// from the AnalysisRun's secret arguments only. It sets the call's client
// set: the connection's own set, or the set of the address's client,
// which holds only the credentials that client was given and what it
// sent.
func (p *Plugin) engine(cl *call, pc *PrometheusConfig) (*analysis.Engine, error) {
	if pc.Connection != "" {
		conn, version, err := p.conns.get(pc.Connection, namespaceOf(cl.ar))
		if err != nil {
			return nil, &ConfigError{Errs: []error{fmt.Errorf("prometheus.connection %q: %w", pc.Connection, err)}}
		}
		cl.client = conn.secrets
		key := fmt.Sprintf("connection\x00%s\x00%s\x00%d\x00%d\x00%d", conn.Name, version, pc.Timeout, pc.Retries, pc.MaxInFlight)
		cfg := promapi.Config{URL: conn.URL, HTTP: conn.HTTP, Timeout: time.Duration(pc.Timeout), Retries: pc.Retries, Redact: conn.secrets}
		eng, _, err := p.cache.engine(key, cfg, pc.MaxInFlight, p.now)
		return eng, err
	}
	fields := pc.credentialFields()
	if errs := checkSecretArgs(cl.ar, cl.metric.Name, fields); len(errs) > 0 {
		return nil, &ConfigError{Errs: errs}
	}
	for _, f := range fields {
		cl.args.Add(f.value)
	}
	if b := pc.BasicAuth; b != nil {
		cl.args.AddBasicAuth(b.Username, b.Password)
	}
	// The cache gives a new client a set of its own (cfg.Redact is nil):
	// the key is a hash of the settings, credentials included, so a
	// client and its set serve only templates giving the same ones.
	eng, set, err := p.cache.engine(pc.cacheKey(), pc.client(), pc.MaxInFlight, p.now)
	cl.client = set
	return eng, err
}

func namespaceOf(ar *v1alpha1.AnalysisRun) string {
	if ar == nil {
		return ""
	}
	return ar.Namespace
}

// configOf decodes the metric's plugin configuration.
func configOf(metric v1alpha1.Metric) (*Config, error) {
	raw, ok := metric.Provider.Plugin[Name]
	if !ok {
		return nil, &ConfigError{Errs: []error{fmt.Errorf("metric %q has no provider.plugin[%q]", metric.Name, Name)}}
	}
	return DecodeConfig(raw)
}

// look evaluates once at now and turns the verdict into the measurement.
func (p *Plugin) look(ctx context.Context, cl *call, m v1alpha1.Measurement, c *prepared, st stageState) v1alpha1.Measurement {
	select {
	case p.evals <- struct{}{}:
	case <-ctx.Done():
		busy := fmt.Errorf("plugin busy: no evaluation slot free (%d running) within the timeout %s", cap(p.evals), c.timeout)
		if c.cfg.Mode == ModeStage && st.Looks > 0 {
			// A running stage skips this look and keeps its state: an
			// overloaded plugin is no evidence about the canary.
			now := p.now()
			m.Phase = v1alpha1.AnalysisPhaseRunning
			m.ResumeAt = resumeAt(now.Add(time.Duration(c.policy.Spec.Interval)))
			m.Message = busy.Error() + "; look skipped"
			p.log.Warn("look skipped", cl.logFields("error", busy.Error())...)
			return m
		}
		return p.errorMeasurement(cl, m, busy)
	}
	now := p.now()
	req := c.req
	req.At = now
	req.Since = st.Since
	began := time.Now()
	v, err := c.engine.Evaluate(ctx, req)
	elapsed := time.Since(began)
	<-p.evals
	if err != nil {
		return p.errorMeasurement(cl, m, err)
	}
	st.Looks++
	if v.Decision == analysis.Hold {
		st.Holds++
	}
	if v.Decision.Severity() > st.Worst.Severity() || st.Worst == "" {
		st.Worst = v.Decision
	}

	md := verdictMetadata(v)
	md["mode"] = c.cfg.Mode
	md["evaluationMs"] = fmt.Sprintf("%.1f", float64(elapsed.Microseconds())/1000)
	m.Value = valueJSON(v)

	if !st.Since.IsZero() {
		md[keySince] = st.Since.UTC().Format(time.RFC3339)
	}
	if st.SinceNote != "" {
		md[keySinceNote] = st.SinceNote
	}
	if ws := c.policy.Warnings(); len(ws) > 0 {
		md[keyPolicyLint] = lintFindings(ws)
	}

	final := true
	phase := phaseOf(v.Decision)
	msg := v.Reason
	if lp := c.look; lp != nil {
		soakEnd := lp.start.Add(lp.soak)
		md[keyLook] = strconv.Itoa(lp.look)
		if lp.looks > 0 {
			md[keyLook] += "/" + strconv.Itoa(lp.looks)
		}
		md[keyLookSoakEnd] = soakEnd.UTC().Format(time.RFC3339)
		switch {
		case analysis.HoldPending(v, lp.start, lp.soak, lp.last):
			// Thin evidence early in the stage: go on. The stage's
			// end decides (analysis.HoldPending).
			phase = v1alpha1.AnalysisPhaseSuccessful
			md[keyPending] = "true"
			msg = fmt.Sprintf("look %s of stage %s, not decided before its soak ends %s (a hold then is Inconclusive): %s", md[keyLook], lp.stage, soakEnd.Format(time.RFC3339), v.Reason)
		case v.Decision == analysis.Hold && now.Before(soakEnd):
			msg = fmt.Sprintf("last look (%s) of stage %s, before its soak ends %s, without the evidence to pass: %s", md[keyLook], lp.stage, soakEnd.Format(time.RFC3339), v.Reason)
		case v.Decision == analysis.Hold:
			msg = fmt.Sprintf("stage %s soaked %s without the evidence to pass: %s", lp.stage, model.Duration(lp.soak), v.Reason)
		}
	}
	if c.cfg.Mode == ModeStage {
		stage, _ := c.policy.Stage(c.cfg.Stage)
		soakEnd := st.Start.Add(time.Duration(stage.Soak))
		st.write(md, soakEnd)
		switch {
		case !analysis.StageDecided(v, st.Start, time.Duration(stage.Soak)):
			final = false
			next := now.Add(time.Duration(c.policy.Spec.Interval))
			if next.After(soakEnd) {
				next = soakEnd
			}
			m.Phase = v1alpha1.AnalysisPhaseRunning
			m.ResumeAt = resumeAt(next)
			m.Message = fmt.Sprintf("stage %s look %d, soak ends %s: %s", stage.Name, st.Looks, soakEnd.Format(time.RFC3339), v.Reason)
		case v.Decision == analysis.Fail:
			msg = fmt.Sprintf("stage %s failed at look %d: %s", stage.Name, st.Looks, v.Reason)
		default:
			msg = fmt.Sprintf("stage %s soaked %s over %d looks: %s", stage.Name, stage.Soak, st.Looks, v.Reason)
		}
	}
	if c.cfg.DryRun {
		md["dryRun"] = "true"
		if final {
			md["wouldBe"] = string(phase)
			if phase != v1alpha1.AnalysisPhaseSuccessful {
				msg = fmt.Sprintf("dry run, would be %s: %s", phase, msg)
			}
			phase = v1alpha1.AnalysisPhaseSuccessful
		}
	}
	m.Metadata = md
	if final {
		m.Phase = phase
		m.Message = msg
		m.FinishedAt = metaTime(now)
		m.ResumeAt = nil
	}
	log := p.log.Info
	if !final {
		log = p.log.Debug // a look of a running stage; its end is logged at info
	}
	log("measurement", cl.logFields("phase", string(m.Phase), "verdict", string(v.Decision),
		"looks", st.Looks, "queries", v.Queries, "queryErrors", v.QueryErrors, "elapsed", elapsed.String(), "reason", v.Reason)...)
	return m
}

// outOfOrder fails a measurement whose stage started before its previous
// stage passed (or, in dry run, says it would have).
func (p *Plugin) outOfOrder(cl *call, m v1alpha1.Measurement, c *prepared, reason string) v1alpha1.Measurement {
	now := p.now()
	m.FinishedAt = metaTime(now)
	m.Phase = v1alpha1.AnalysisPhaseFailed
	m.Message = reason
	m.Metadata = map[string]string{
		"verdict":     string(analysis.Fail),
		"reason":      reason,
		"policy":      c.policy.Metadata.Name,
		"stage":       c.cfg.Stage,
		"mode":        c.cfg.Mode,
		"evaluatedAt": now.UTC().Format(time.RFC3339),
	}
	if c.cfg.DryRun {
		m.Metadata["dryRun"] = "true"
		m.Metadata["wouldBe"] = string(v1alpha1.AnalysisPhaseFailed)
		m.Phase = v1alpha1.AnalysisPhaseSuccessful
		m.Message = "dry run, would be Failed: " + reason
	}
	p.log.Warn("stage out of order", cl.logFields("phase", string(m.Phase), "reason", reason)...)
	return m
}

// errorMeasurement finishes m as an Error naming the problem: a config or
// input the plugin cannot use. Argo counts consecutive errors against the
// metric's consecutiveErrorLimit.
func (p *Plugin) errorMeasurement(cl *call, m v1alpha1.Measurement, err error) v1alpha1.Measurement {
	now := p.now()
	if m.StartedAt == nil {
		m.StartedAt = metaTime(now)
	}
	m.FinishedAt = metaTime(now)
	m.ResumeAt = nil
	m.Phase = v1alpha1.AnalysisPhaseError
	m.Message = oneLine(err)
	p.log.Warn("measurement error", cl.logFields("error", m.Message)...)
	return m
}

// phaseOf maps a decision to a measurement phase.
func phaseOf(d analysis.Decision) v1alpha1.AnalysisPhase {
	switch d {
	case analysis.Pass:
		return v1alpha1.AnalysisPhaseSuccessful
	case analysis.Fail:
		return v1alpha1.AnalysisPhaseFailed
	}
	return v1alpha1.AnalysisPhaseInconclusive
}

// oneLine flattens a (possibly joined) error into one line.
func oneLine(err error) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(err.Error(), "\n", "; ")), " ")
}

func metaTime(t time.Time) *metav1.Time {
	mt := metav1.NewTime(t)
	return &mt
}

// resumeAt is the ResumeAt for a look due at t, rounded up to the whole
// second: the AnalysisRun stores times to the second, and the controller
// resumes as soon as the stored time has passed. Rounded down, a look due
// at the soak's end at 12:00:40.8 would be stored as 12:00:40 and resumed
// over and over (each a look, spending the stage's false-alarm budget)
// until 12:00:40.8 had passed.
func resumeAt(t time.Time) *metav1.Time {
	if r := t.Truncate(time.Second); !r.Equal(t) {
		t = r.Add(time.Second)
	}
	return metaTime(t)
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// policyLabel names a policy reference for metadata: inline YAML is not
// repeated.
func policyLabel(ref string) string {
	ref = strings.TrimSpace(ref)
	if isInlinePolicy(ref) {
		return "inline"
	}
	return ref
}

// valueJSON is the measurement's value: the largest canary burn rate of
// each SLI over its windows, as compact JSON with 4 significant digits
// (null where there is no data), for humans and tools reading the
// AnalysisRun: {"drain-failure":0.2214,"flaps":null}.
func valueJSON(v *analysis.Verdict) string {
	burns := make(map[string]string, len(v.SLIs))
	for i := range v.SLIs {
		b := num(v.SLIs[i].MaxBurn())
		if b == "n/a" {
			b = "null"
		}
		burns[v.SLIs[i].Name] = b
	}
	var sb strings.Builder
	sb.WriteByte('{')
	for i, name := range sortedKeys(burns) {
		if i > 0 {
			sb.WriteByte(',')
		}
		key, _ := json.Marshal(name)
		sb.Write(key)
		sb.WriteByte(':')
		sb.WriteString(burns[name])
	}
	sb.WriteByte('}')
	return sb.String()
}

// errNoState is a stage-mode measurement whose metadata lost the stage.
var errNoState = errors.New("stage state missing from the measurement's metadata")
