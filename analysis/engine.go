// Package analysis is phaseguard's decision engine. It queries phase SLIs
// for a canary (and optionally its stable baseline) over the policy's
// burn-rate windows, bounds every ratio and rate with an exact confidence
// bound, and decides pass, fail or hold with a reason a human can act on.
// Decisions live here only: the CLI, the Argo Rollouts plugin and the
// GitHub Action translate requests and verdicts, nothing more.
package analysis

import (
	"context"
	"errors"
	"fmt"
	"math"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/prometheus/common/model"

	"github.com/phaseguard/phaseguard/policies"
)

// Querier runs one PromQL instant query at ts. promapi.Client (a live
// Prometheus, Thanos, Mimir, ...) and replay.Store (recorded data in the
// embedded PromQL engine) implement it.
type Querier interface {
	Query(ctx context.Context, query string, ts time.Time) (model.Vector, error)
}

// Engine evaluates requests. It is safe for concurrent use.
type Engine struct {
	q           Querier
	now         func() time.Time
	parallelism int
}

// Option configures an Engine.
type Option func(*Engine)

// WithClock sets the clock used when a request gives no evaluation time.
func WithClock(now func() time.Time) Option { return func(e *Engine) { e.now = now } }

// WithParallelism bounds the queries in flight per evaluation (default 4).
func WithParallelism(n int) Option { return func(e *Engine) { e.parallelism = max(n, 1) } }

// New returns an engine reading from q.
func New(q Querier, opts ...Option) *Engine {
	e := &Engine{q: q, now: time.Now, parallelism: 4}
	for _, o := range opts {
		o(e)
	}
	return e
}

// MaxSinceAge is the oldest canary start (Request.Since) the front ends
// that take it from a person (the CLI's --since, the Action's since)
// accept before the look. The tests' levels over the canary's life shrink
// as it ages (restart shares, README "Statistics"): given a month too
// early, the flapping demo canary's 27.7× burn holds instead of failing,
// a mistake (the Rollout's creation time) that would stop rollbacks. The
// plugin reads the start from the Rollout's AnalysisRuns and is not bound.
const MaxSinceAge = 7 * 24 * time.Hour

// Request is one evaluation.
type Request struct {
	Policy *policies.Policy
	// Stage names the policy stage being judged, for the verdict; the
	// tests do not depend on it (they are anytime-valid). Empty: none.
	Stage string
	// At is the evaluation time; zero means the engine's clock.
	At time.Time
	// Service and Namespace select the service; CanaryHash and StableHash
	// its two versions (Argo's rollouts-pod-template-hash). StableHash is
	// optional: without it there is no baseline comparison.
	Service    string
	Namespace  string
	CanaryHash string
	StableHash string
	// Since is when the canary started serving (the CLI's --since or a
	// scenario's stage start, the Action's since input); zero means
	// unknown. Windows reaching back before it are cut to the time since,
	// for canary and stable alike: the two are compared over time both
	// cover, and a rate SLI's events are divided by that time, not by the
	// window's. Without it a canary minutes old is judged on windows that
	// hold only its short life, and a fault that hit stable at the same
	// moment is diluted in stable's longer past. It is the canary's start,
	// not a later stage's: cutting there would drop evidence the canary
	// gathered in earlier stages.
	Since time.Time
}

// InputError is a request value that cannot be used: it names the input.
type InputError struct {
	Input string
	Value string
	Msg   string
}

func (e *InputError) Error() string {
	return fmt.Sprintf("%s %q: %s", e.Input, e.Value, e.Msg)
}

// Label values that reach PromQL are checked against Kubernetes' syntax
// for label values (service, hashes) and namespaces (DNS-1123 labels):
// nothing else can be a real service, hash or namespace, and nothing that
// passes can break out of a PromQL string.
var (
	labelValueRE = regexp.MustCompile(`^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$`)
	namespaceRE  = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$`)
)

// Validate checks every value of r that reaches PromQL.
func (r *Request) Validate() error {
	var errs []error
	check := func(input, v string, re *regexp.Regexp, what string, required bool) {
		if v == "" {
			if required {
				errs = append(errs, &InputError{Input: input, Value: v, Msg: "required"})
			}
			return
		}
		if !re.MatchString(v) {
			errs = append(errs, &InputError{Input: input, Value: v, Msg: "not a valid " + what})
		}
	}
	if r.Policy == nil {
		return errors.New("request: no policy")
	}
	usesNS, usesService := false, false
	for i := range r.Policy.Spec.SLIs {
		usesNS = usesNS || r.Policy.Spec.SLIs[i].Uses(policies.PlaceholderNamespace)
		usesService = usesService || r.Policy.Spec.SLIs[i].Uses(policies.PlaceholderService)
	}
	check("service", r.Service, labelValueRE, "service name (Kubernetes label value: letters, digits, '-', '_', '.'; at most 63)", usesService)
	check("namespace", r.Namespace, namespaceRE, "namespace (DNS-1123 label)", usesNS)
	check("canary-hash", r.CanaryHash, labelValueRE, "pod template hash (Kubernetes label value)", true)
	check("stable-hash", r.StableHash, labelValueRE, "pod template hash (Kubernetes label value)", false)
	if r.StableHash != "" && r.StableHash == r.CanaryHash {
		errs = append(errs, &InputError{Input: "stable-hash", Value: r.StableHash, Msg: "equals canary-hash: the baseline would compare the canary with itself"})
	}
	if r.Stage != "" {
		if _, i := r.Policy.Stage(r.Stage); i < 0 {
			var names []string
			for _, s := range r.Policy.Spec.Stages {
				names = append(names, s.Name)
			}
			errs = append(errs, &InputError{Input: "stage", Value: r.Stage, Msg: fmt.Sprintf("not a stage of policy %s (stages: %s)", r.Policy.Metadata.Name, strings.Join(names, ", "))})
		}
	}
	return errors.Join(errs...)
}

// Evaluate judges the canary at r.At. The error is for a request that
// cannot be evaluated at all (bad input); query errors are part of the
// verdict, held or failed as the policy says.
func (e *Engine) Evaluate(ctx context.Context, r Request) (*Verdict, error) {
	if err := r.Validate(); err != nil {
		return nil, err
	}
	at := r.At
	if at.IsZero() {
		at = e.now()
	}
	p := r.Policy
	// span is the time the stage has run, when it is shorter than the
	// longest window; 0 leaves every window whole.
	var span time.Duration
	if !r.Since.IsZero() {
		if !at.After(r.Since) {
			// Nothing of the stage to judge yet: hold, never pass.
			return &Verdict{Time: at.UTC(), Policy: p.Metadata.Name, Stage: r.Stage, Since: r.Since.UTC(), Decision: Hold,
				Reason: fmt.Sprintf("the canary started serving at %s (since), no earlier than this look: nothing to judge yet", r.Since.UTC().Format(time.RFC3339)),
				SLIs:   []SLIResult{}}, nil
		}
		if d := at.Sub(r.Since); d < slices.Max(p.Windows()) {
			span = d.Truncate(time.Second)
			if span < d {
				span += time.Second // as policies.SLI.QueryWithin rounds
			}
		}
	}
	// The baseline compares the canary's pods with stable's. An SLI whose
	// queries do not select by $hash (a service-wide metric, such as an
	// ingress controller's) reads the same series for both: compared, a
	// canary fault would always be "stable burns too", a hold. It is
	// judged on its own.
	baseline := r.StableHash != "" && p.Spec.Baseline.On()
	compared := func(s *policies.SLI) bool { return baseline && s.Uses(policies.PlaceholderHash) }
	// Every SLI has one test per window pair (its restarts), one since
	// the canary's start, and one against stable when compared; the
	// policy's alpha is split evenly over them (a union bound), and each
	// is anytime-valid on its own (sequential.go), so looks spend
	// nothing.
	nCompared := 0
	for i := range p.Spec.SLIs {
		if compared(&p.Spec.SLIs[i]) {
			nCompared++
		}
	}
	lt := testsAt(p, r.Since, at, nCompared)
	a, extra := lt.a, lt.extra

	canary := policies.Target{Service: r.Service, Namespace: r.Namespace, Hash: r.CanaryHash}
	stable := policies.Target{Service: r.Service, Namespace: r.Namespace, Hash: r.StableHash}

	// One batched query per SLI per target.
	type job struct {
		sli    int
		stable bool
		query  string
		vec    model.Vector
		err    error
	}
	var jobs []*job
	query := func(s *policies.SLI, t policies.Target) (string, error) {
		return s.QueryRanges(t, span, extra)
	}
	for i := range p.Spec.SLIs {
		targets := []policies.Target{canary}
		if compared(&p.Spec.SLIs[i]) {
			targets = append(targets, stable)
		}
		for k, t := range targets {
			q, err := query(&p.Spec.SLIs[i], t)
			if err != nil {
				return nil, err
			}
			jobs = append(jobs, &job{sli: i, stable: k == 1, query: q})
		}
	}
	queries := make([]string, len(jobs))
	for i, j := range jobs {
		queries[i] = j.query
	}
	for i, a := range e.queryAll(ctx, queries, at) {
		jobs[i].vec, jobs[i].err = a.vec, a.err
	}

	v := &Verdict{
		Time:       at.UTC(),
		Policy:     p.Metadata.Name,
		Stage:      r.Stage,
		Confidence: 1 - a,
		Queries:    len(jobs),
	}
	if !r.Since.IsZero() {
		v.Since = r.Since.UTC()
	}
	var todo []diagnosis      // SLIs without canary data, whose cause to probe
	var checks []respellCheck // SLIs missing a part stable has: lazy or respelled
	for i := range p.Spec.SLIs {
		in := sliInput{sli: &p.Spec.SLIs[i], policy: p, lookTests: lt, span: span, canary: canary, stable: stable}
		if compared(in.sli) {
			in.stableHash = r.StableHash
		}
		for _, j := range jobs {
			if j.sli != i {
				continue
			}
			if j.stable {
				in.stableQuery, in.stableVec, in.stableErr = j.query, j.vec, j.err
			} else {
				in.canaryQuery, in.canaryVec, in.canaryErr = j.query, j.vec, j.err
			}
		}
		res, nd, respelled := judge(in)
		if res.Error != "" {
			v.QueryErrors++
		}
		if nd != nil {
			todo = append(todo, diagnosis{sli: len(v.SLIs), nd: nd})
		}
		if respelled != "" {
			checks = append(checks, respellCheck{sli: len(v.SLIs), in: in, part: respelled})
		}
		v.SLIs = append(v.SLIs, res)
	}
	if len(todo) > 0 {
		v.Queries += e.diagnose(ctx, at, p, canary, todo, v)
	}
	if len(checks) > 0 {
		v.Queries += e.checkRespelled(ctx, at, p, checks, v)
	}
	v.Decision, v.Reason = combine(v, p)
	return v, nil
}

// lookTests are the tests of one look, the same for every SLI: each
// test's level, the canary's age, the restarts of each window pair, and
// the ranges to count beyond the policy's windows.
type lookTests struct {
	a      float64         // each test's level (a restart's is a share of it)
	life   time.Duration   // time since the canary's start; 0 when unknown
	starts [][]start       // per window pair, the restarts this look tests
	extra  []time.Duration // ranges to count: the restarts' ages, and the life when longer than every window
}

// testsAt plans the tests of a look at now at a canary that started at
// since (zero: unknown), with compared SLIs judged against stable too.
// Every SLI has one test per window pair (its restarts), one since the
// canary's start, and one against stable when compared: the policy's
// alpha is split evenly over them (a union bound), and each is
// anytime-valid on its own (sequential.go), so looks spend nothing. A
// restart's level is its test's times its share (restartShare), H the
// restarts in the policy's planned canary (PlannedLife). Restarts younger
// than the policy's shortest window are left out: a count over less may
// hold one scrape or none.
func testsAt(p *policies.Policy, since, now time.Time, compared int) lookTests {
	tests := len(p.Spec.SLIs)*(len(p.Spec.Windows)+1) + compared
	lt := lookTests{a: p.Spec.Alpha / float64(max(tests, 1)), starts: make([][]start, len(p.Spec.Windows))}
	if !since.IsZero() && now.After(since) {
		lt.life = now.Sub(since).Truncate(time.Second)
	}
	shortest := slices.Min(p.Windows())
	for i, pair := range p.Spec.Windows {
		long := time.Duration(pair.Long)
		h := int(math.Ceil(float64(p.PlannedLife()) / float64(restartEvery(long))))
		for _, st := range liveStarts(long, since, now, h) {
			st.age = st.age.Truncate(time.Second)
			if st.age < shortest {
				continue
			}
			st.a = lt.a * restartShare(st.j, h)
			lt.starts[i] = append(lt.starts[i], st)
			if !slices.Contains(lt.extra, st.age) {
				lt.extra = append(lt.extra, st.age)
			}
		}
	}
	if lt.life > slices.Max(p.Windows()) && !slices.Contains(lt.extra, lt.life) {
		lt.extra = append(lt.extra, lt.life)
	}
	return lt
}

// combine turns per-SLI results into the verdict and its one-line reason.
func combine(v *Verdict, p *policies.Policy) (Decision, string) {
	worst := Pass
	for _, s := range v.SLIs {
		if s.Decision.Severity() > worst.Severity() {
			worst = s.Decision
		}
	}
	pick := func(match func(SLIResult) bool) []SLIResult {
		var out []SLIResult
		for _, s := range v.SLIs {
			if match(s) {
				out = append(out, s)
			}
		}
		// Highest burn first, so the reason names the worst offender.
		sort.SliceStable(out, func(i, j int) bool { return burnKey(out[i]) > burnKey(out[j]) })
		return out
	}
	more := func(n int) string {
		if n > 1 {
			return fmt.Sprintf(" (and %s more)", nSLIs(n-1))
		}
		return ""
	}
	switch worst {
	case Fail:
		f := pick(func(s SLIResult) bool { return s.Decision == Fail && s.Error == "" })
		if len(f) > 0 {
			return Fail, fmt.Sprintf("%s: %s%s", f[0].Name, f[0].Reason, more(len(f)))
		}
		e := pick(func(s SLIResult) bool { return s.Decision == Fail })
		return Fail, fmt.Sprintf("query error on %s and policy onQueryError=fail: %s: %s", nSLIs(len(e)), e[0].Name, e[0].Reason)
	case Hold:
		h := pick(func(s SLIResult) bool { return s.Decision == Hold && s.Error == "" })
		if len(h) > 0 {
			return Hold, fmt.Sprintf("%s: %s%s", h[0].Name, h[0].Reason, more(len(h)))
		}
		e := pick(func(s SLIResult) bool { return s.Decision == Hold })
		return Hold, fmt.Sprintf("query error on %s, holding (policy onQueryError=hold): %s: %s", nSLIs(len(e)), e[0].Name, e[0].Reason)
	}
	// A pass names the SLI nearest to tripping a window pair: the pairs
	// are what count, so a single window burning over budget (1.6× over
	// 15m, where the 15m/3m pair's limit is 2×) is no contradiction.
	if len(v.SLIs) == 1 {
		return Pass, "the SLI passes: no window pair trips" + nearestPair(v.SLIs, p)
	}
	return Pass, fmt.Sprintf("all %d SLIs pass: no window pair trips%s", len(v.SLIs), nearestPair(v.SLIs, p))
}

// nSLIs is "1 SLI" or "7 SLIs".
func nSLIs(n int) string {
	if n == 1 {
		return "1 SLI"
	}
	return fmt.Sprintf("%d SLIs", n)
}

// nearestPair names the SLI and window pair nearest to tripping, the one
// whose lower burn of the two windows is the largest share of the pair's
// factor, and why it did not trip: "; nearest, slow-propagation: 1.61×
// over 15m and 5.13× over 3m (a pair trips only when both exceed its
// limit, 2×)", or, when both do, that the long window is not significantly
// over budget (judge: a trip needs it). Empty when no pair has burns on
// both windows.
func nearestPair(slis []SLIResult, p *policies.Policy) string {
	best, out := -1.0, ""
	for _, s := range slis {
		for _, pair := range p.Spec.Windows {
			long, short := s.Burn[pair.Long.String()], s.Burn[pair.Short.String()]
			lo := math.Min(float64(long), float64(short))
			if math.IsNaN(lo) || pair.Factor <= 0 || lo/pair.Factor <= best {
				continue
			}
			best = lo / pair.Factor
			why := fmt.Sprintf("a pair trips only when both exceed its limit, %g×", pair.Factor)
			if lo > pair.Factor {
				why = fmt.Sprintf("both over its limit, %g×, but with too few events to show the %s window over budget", pair.Factor, pair.Long)
			}
			out = fmt.Sprintf("; nearest, %s: %s over %s and %s over %s (%s)", s.Name, fmtBurn(long), pair.Long, fmtBurn(short), pair.Short, why)
		}
	}
	return out
}

func burnKey(s SLIResult) float64 {
	b := float64(s.MaxBurn())
	if math.IsNaN(b) {
		return -1
	}
	return b
}

func fmtBurn(b Num) string {
	f := float64(b)
	switch {
	case math.IsNaN(f):
		return "n/a"
	case f >= 100:
		return fmt.Sprintf("%.0f×", f)
	case f >= 10:
		return fmt.Sprintf("%.1f×", f)
	}
	return fmt.Sprintf("%.2f×", f)
}

// answer is one query's result.
type answer struct {
	vec model.Vector
	err error
}

// queryAll sends queries at evaluation time at, at most e.parallelism at
// a time, and returns their answers in the same order. It returns by
// ctx's deadline whatever the Querier does: a query that has not answered
// by then gets a "no answer by the deadline" error, and its late answer
// is dropped.
func (e *Engine) queryAll(ctx context.Context, queries []string, at time.Time) []answer {
	type indexed struct {
		i int
		answer
	}
	out := make([]answer, len(queries))
	answers := make(chan indexed, len(queries))
	sem := make(chan struct{}, e.parallelism)
	go func() {
		for i, q := range queries {
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				answers <- indexed{i, answer{err: ctx.Err()}}
				continue
			}
			go func() {
				defer func() { <-sem }()
				vec, err := e.q.Query(ctx, q, at)
				answers <- indexed{i, answer{vec, err}}
			}()
		}
	}()
	done := make([]bool, len(queries))
	for range queries {
		select {
		case a := <-answers:
			out[a.i], done[a.i] = a.answer, true
		case <-ctx.Done():
			for i := range out {
				if !done[i] {
					out[i].err = fmt.Errorf("no answer by the deadline: %w", ctx.Err())
				}
			}
			return out
		}
	}
	return out
}
