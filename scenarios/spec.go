package scenarios

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// Default values applied to the zero fields of a [Spec].
var (
	// DefaultStart is the time of the first sample.
	DefaultStart = time.Date(2026, time.January, 1, 0, 0, 0, 0, time.UTC)
)

// Default values applied to the zero fields of a [Spec].
const (
	DefaultNamespace      = "shop"
	DefaultService        = "checkout"
	DefaultStableHash     = "6d4b9c7f5"
	DefaultCanaryHash     = "7f8c9d6b4"
	DefaultStablePods     = 2
	DefaultCanaryPods     = 1
	DefaultWarmUp         = 10 * time.Minute
	DefaultStage          = 30 * time.Minute
	DefaultScrapeInterval = 15 * time.Second
	DefaultCanaryRate     = 50.0 // requests per second
	// DefaultStableWeight is the share of traffic the stable version keeps
	// during the stage when Spec.StableRate is zero: a 10 % canary.
	DefaultStableWeight = 0.9
	// DefaultRestartDowntime is how long a restarted pod is unready.
	DefaultRestartDowntime = 10 * time.Second
)

// DefaultConsumers are the components that observe a pod's phase when
// Spec.Consumers is empty.
var DefaultConsumers = []string{"router"}

// Version names one of the two ReplicaSets of a rollout.
type Version string

// The two versions of a rollout.
const (
	Stable Version = "stable"
	Canary Version = "canary"
)

// Shape is the form of the request rate over time.
type Shape string

// Traffic shapes.
const (
	// Steady traffic: a constant rate with per-scrape noise.
	Steady Shape = "steady"
	// Diurnal traffic: a sinusoid with a 24 h period around the nominal
	// rate (amplitude 50 %), at a phase of the day drawn from the seed.
	Diurnal Shape = "diurnal"
	// Bursty traffic: the nominal rate plus random bursts (6 per hour on
	// average, 30 s to 3 min long, 2x to 6x the rate).
	Bursty Shape = "bursty"
)

// Shapes lists every Shape.
var Shapes = []Shape{Steady, Diurnal, Bursty}

// FaultKind names a phase-flip fault.
type FaultKind string

// Fault kinds. Each one's Severity is a fraction in (0, 1]; its meaning per
// kind is given here and repeated in [FaultTruth.Parameter].
const (
	// DrainMisrouting (F1): the Severity share of requests is served by
	// instances that are draining (phase="draining"); the Istio proxy
	// reports them as 503 with response_flags "UH" or "UF".
	DrainMisrouting FaultKind = "F1"
	// LeaderFlipOverlap (F2): the Severity share of job executions are
	// duplicates (duplicate="true").
	LeaderFlipOverlap FaultKind = "F2"
	// SchemaMismatch (F3): the Severity share of requests hit a schema
	// error, and Severity/2 of phase observations disagree.
	SchemaMismatch FaultKind = "F3"
	// ReadinessFlapping (F4): each affected pod flaps Severity x 240 times
	// an hour (Severity 1 is one flap per 15 s): it goes active->draining->active
	// or active->init->active, and kube_pod_status_ready drops meanwhile.
	ReadinessFlapping FaultKind = "F4"
	// MissingAnnouncements (F5): the Severity share of phase observations
	// disagree (agree="false") and the Severity share of phase propagations
	// take longer than 2 s.
	MissingAnnouncements FaultKind = "F5"
)

// FaultKinds lists every FaultKind.
var FaultKinds = []FaultKind{DrainMisrouting, LeaderFlipOverlap, SchemaMismatch, ReadinessFlapping, MissingAnnouncements}

// Name returns the fault's descriptive name, e.g. "drain-misrouting".
func (k FaultKind) Name() string {
	switch k {
	case DrainMisrouting:
		return "drain-misrouting"
	case LeaderFlipOverlap:
		return "leader-flip-overlap"
	case SchemaMismatch:
		return "schema-mismatch"
	case ReadinessFlapping:
		return "readiness-flapping"
	case MissingAnnouncements:
		return "missing-announcements"
	}
	return ""
}

// Scope says which versions a fault hits.
type Scope string

// Fault scopes.
const (
	// ScopeCanary: only the canary is faulty; it is the canary's fault.
	ScopeCanary Scope = "canary"
	// ScopeBoth: stable and canary are equally faulty from the onset, so
	// the fault is not the canary's (a baseline comparison shows it).
	ScopeBoth Scope = "both"
)

// Fault is one injected phase-flip fault.
type Fault struct {
	Kind FaultKind
	// Onset is the fault's start as an offset from the stage start.
	Onset time.Duration
	// Severity is a fraction in (0, 1]; see each FaultKind for its meaning.
	Severity float64
	// Scope defaults to ScopeCanary.
	Scope Scope
}

// Background holds the error rates every pod shows without any fault. Ratios
// are fractions (0.0003 is 0.03 %), rates are events per hour per pod.
type Background struct {
	// DrainFailure is the share of requests served by a non-active
	// instance (phase init, draining or stopped).
	DrainFailure float64
	// Mismatch is the share of phase observations that disagree.
	Mismatch float64
	// Duplicate is the share of job executions that are duplicates.
	Duplicate float64
	// SchemaError is the share of requests that hit a schema error.
	SchemaError float64
	// SlowPropagation is the share of phase propagations slower than 2 s.
	SlowPropagation float64
	// FlapsPerHour is the rate of readiness flaps per pod, per hour.
	FlapsPerHour float64
	// RetriesPerHour is the rate of reconcile retries per pod, per hour.
	RetriesPerHour float64
}

// DefaultBackground returns the background used when Spec.Background is nil:
// every ratio well under the default budgets (see [DefaultBudgets]).
func DefaultBackground() Background {
	return Background{
		DrainFailure:    0.0003,
		Mismatch:        0.0002,
		Duplicate:       0.0002,
		SchemaError:     0.0001,
		SlowPropagation: 0.002,
		FlapsPerHour:    0.05,
		RetriesPerHour:  6,
	}
}

// Restart is a pod restart: the pod drains, stops and starts again with all
// its counters at zero. The pod is unready from 8 s before At until
// Downtime after it.
type Restart struct {
	Version Version
	// Pod is the index of the pod within its version, from 0.
	Pod int
	// At is the restart time as an offset from Spec.Start.
	At time.Duration
	// NewPod replaces the pod by a new one with a new name (a rescheduled
	// pod) instead of restarting its container under the same name.
	NewPod bool
	// Downtime defaults to DefaultRestartDowntime.
	Downtime time.Duration
}

// Gap is a time during which the application metrics of one pod are not
// scraped (the pod's counters go on counting). Kube-state-metrics and Istio
// are scraped as usual.
type Gap struct {
	Version Version
	// Pod is the index of the pod within its version, from 0.
	Pod int
	// At is the gap start as an offset from Spec.Start.
	At time.Duration
	// For is the gap's length.
	For time.Duration
}

// Cutoff is the newest minutes of one version's application metrics
// missing from the data: its pods crash-loop and are not scraped, a scrape
// gap, or the newest samples have not reached the query path yet
// (ingestion lag). kube-state-metrics and Istio, scraped from other pods,
// are not cut.
type Cutoff struct {
	Version Version
	// For is how long before the end of the data the cut starts: no pod of
	// the version has an application sample at or after End-For.
	For time.Duration
}

// Drop is an export the canary build changed so that the metric
// convention's queries no longer find it on canary pods: a renamed or
// dropped counter, or a bad label value spelled another way. Stable pods
// export as before. Each Drop hides one SLI of the canary (DropSLI); its
// events go on happening.
type Drop string

// Drops of a canary build.
const (
	// DropSchemaErrors: phase_schema_errors_total is renamed
	// phase_schema_failures_total. The schema_errors SLI's bad events are
	// absent while its total (phase_requests_total) is not.
	DropSchemaErrors Drop = "schema-errors-renamed"
	// DropDuplicateValue: phase_job_executions_total spells
	// duplicate="yes" for duplicate="true"; the total still counts them.
	DropDuplicateValue Drop = "duplicate-respelled"
	// DropAgreeValue: phase_observations_total spells agree="no" for
	// agree="false"; the total still counts them.
	DropAgreeValue Drop = "agree-respelled"
	// DropTransitions: phase_transitions_total is not exported.
	DropTransitions Drop = "transitions-dropped"
	// DropRetries: phase_reconcile_retries_total is not exported, while
	// phase_requests_total (the preset's presence check) is.
	DropRetries Drop = "retries-dropped"
	// DropPropagation: phase_propagation_seconds is renamed
	// phase_propagation_duration_seconds.
	DropPropagation Drop = "propagation-renamed"
)

// Drops lists every Drop.
var Drops = []Drop{DropSchemaErrors, DropDuplicateValue, DropAgreeValue, DropTransitions, DropRetries, DropPropagation}

// DropSLI returns the SLI (a key of the burn maps of [Truth]) that d hides,
// or "" for an unknown Drop.
func DropSLI(d Drop) string {
	switch d {
	case DropSchemaErrors:
		return SLISchemaErrors
	case DropDuplicateValue:
		return SLIDuplicate
	case DropAgreeValue:
		return SLIPhaseMismatch
	case DropTransitions:
		return SLIFlaps
	case DropRetries:
		return SLIReconcileRetries
	case DropPropagation:
		return SLISlowPropagation
	}
	return ""
}

// Spec describes one scenario. Zero fields take the defaults above.
//
// The data spans [Start, Start+WarmUp+Stage]. The stable pods run all along;
// the canary pods start 30 s before the canary's start (CanaryStart:
// Start+WarmUp-Prior) and take their traffic from it. Without a prior stage
// (Prior 0) the canary starts at the stage start (Start+WarmUp). In requests
// per second, nominal rates:
//
//	                          stable                                 canary
//	before the canary starts  StableRate+CanaryRate                  0
//	prior stage               StableRate+CanaryRate×(1-PriorWeight)  CanaryRate×PriorWeight
//	stage                     StableRate                             CanaryRate
//
// The prior stage is the canary's life in a policy's earlier, lighter stage
// (canary-10 before canary-50): its pods, exporters and background errors
// are as in the stage; faults, restarts of canary pods and cutoffs are
// within the stage.
type Spec struct {
	// Name is the scenario's name and file base name: lower-case letters,
	// digits, '-', '_' and '.'.
	Name string
	// Description is one line for humans.
	Description string
	// Seed seeds every random draw.
	Seed int64

	Namespace  string
	Service    string
	StableHash string // pod template hash of the stable ReplicaSet
	CanaryHash string // pod template hash of the canary ReplicaSet
	StablePods int
	CanaryPods int
	// Consumers are the values of the consumer label of
	// phase_observations_total.
	Consumers []string

	// Start is the time of the first sample.
	Start time.Time
	// WarmUp is the history before the stage starts, the prior stage
	// included: at least Prior+1m. Zero means DefaultWarmUp+Prior, so that
	// the stable version has DefaultWarmUp alone before the canary starts.
	WarmUp time.Duration
	// Stage is the length of the canary stage.
	Stage time.Duration
	// Prior is how long the canary served before the stage, at a lower
	// weight (see PriorWeight): the earlier stages of its rollout. Zero
	// means none: the canary starts serving at the stage start.
	Prior time.Duration
	// PriorWeight is the canary's request rate during Prior as a share of
	// CanaryRate, in (0, 1]: 0.2 for a canary at 10 % of the traffic before
	// a stage at 50 %. It must be 0 without a prior stage and has no
	// default.
	PriorWeight float64
	// ScrapeInterval is the time between two samples of a series.
	ScrapeInterval time.Duration

	// CanaryRate is the canary's mean request rate in requests per second.
	CanaryRate float64
	// StableRate is the stable version's mean request rate during the
	// stage, in requests per second; zero means 9 x CanaryRate.
	StableRate float64
	// Shape defaults to Steady.
	Shape Shape

	// Background defaults to DefaultBackground().
	Background *Background
	Restarts   []Restart
	Gaps       []Gap

	// LazyChildren makes the pods' exporters create each labelled child
	// of a counter on its first event, as client libraries do when the
	// application does not initialise its children: a child such as
	// phase_requests_total{phase="draining"} has no sample until its
	// first event, and its first sample is the count so far, often above
	// zero. A restarted process has no children until their next event.
	// When false, every labelled child is created at zero when the pod
	// starts, as the metric convention of DESIGN.md asks. Unlabelled
	// counters and the histogram start at zero either way.
	LazyChildren bool
	// Cutoffs are missing newest minutes, at most one per version.
	Cutoffs []Cutoff
	// Drops are exports the canary build changed, each at most once.
	Drops []Drop

	// Fault is nil for a healthy scenario.
	Fault *Fault
}

// StageStart returns the time the canary stage starts.
func (s Spec) StageStart() time.Time { return s.Start.Add(s.WarmUp) }

// CanaryStart returns the time the canary starts serving: the start of the
// prior stage, or the stage start without one.
func (s Spec) CanaryStart() time.Time { return s.Start.Add(s.WarmUp - s.Prior) }

// StageEnd returns the time the canary stage ends, which is also the time of
// the last sample.
func (s Spec) StageEnd() time.Time { return s.Start.Add(s.WarmUp + s.Stage) }

// WithDefaults returns s with every zero field set to its default.
func (s Spec) WithDefaults() Spec {
	if s.Namespace == "" {
		s.Namespace = DefaultNamespace
	}
	if s.Service == "" {
		s.Service = DefaultService
	}
	if s.StableHash == "" {
		s.StableHash = DefaultStableHash
	}
	if s.CanaryHash == "" {
		s.CanaryHash = DefaultCanaryHash
	}
	if s.StablePods == 0 {
		s.StablePods = DefaultStablePods
	}
	if s.CanaryPods == 0 {
		s.CanaryPods = DefaultCanaryPods
	}
	if len(s.Consumers) == 0 {
		s.Consumers = slices.Clone(DefaultConsumers)
	}
	if s.Start.IsZero() {
		s.Start = DefaultStart
	}
	s.Start = s.Start.UTC()
	if s.WarmUp == 0 {
		s.WarmUp = DefaultWarmUp + max(s.Prior, 0)
	}
	if s.Stage == 0 {
		s.Stage = DefaultStage
	}
	if s.ScrapeInterval == 0 {
		s.ScrapeInterval = DefaultScrapeInterval
	}
	if s.CanaryRate == 0 {
		s.CanaryRate = DefaultCanaryRate
	}
	if s.StableRate == 0 {
		s.StableRate = s.CanaryRate * DefaultStableWeight / (1 - DefaultStableWeight)
	}
	if s.Shape == "" {
		s.Shape = Steady
	}
	if s.Background == nil {
		b := DefaultBackground()
		s.Background = &b
	} else {
		b := *s.Background
		s.Background = &b
	}
	s.Restarts = slices.Clone(s.Restarts)
	for i := range s.Restarts {
		if s.Restarts[i].Downtime == 0 {
			s.Restarts[i].Downtime = DefaultRestartDowntime
		}
	}
	s.Gaps = slices.Clone(s.Gaps)
	s.Cutoffs = slices.Clone(s.Cutoffs)
	s.Drops = slices.Clone(s.Drops)
	if s.Fault != nil {
		f := *s.Fault
		if f.Scope == "" {
			f.Scope = ScopeCanary
		}
		s.Fault = &f
	}
	return s
}

var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]*$`)

// Limits enforced by Validate.
const (
	minRate    = 0.01   // requests per second
	maxRate    = 100000 // requests per second
	maxPods    = 50
	maxSamples = 100000 // samples per series
)

// Validate reports every problem of s, which must have its defaults
// applied, at once.
func (s Spec) Validate() error {
	var errs []error
	add := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...)))
	}
	if !nameRE.MatchString(s.Name) {
		add("name", "%q must match %s", s.Name, nameRE)
	}
	for field, v := range map[string]string{"namespace": s.Namespace, "service": s.Service, "stable_hash": s.StableHash, "canary_hash": s.CanaryHash} {
		if v == "" || !utf8.ValidString(v) {
			add(field, "%q must be a non-empty UTF-8 string", v)
		}
	}
	if s.StableHash == s.CanaryHash {
		add("canary_hash", "%q must differ from the stable hash", s.CanaryHash)
	}
	if s.StablePods < 1 || s.StablePods > maxPods {
		add("stable_pods", "%d must be in [1, %d]", s.StablePods, maxPods)
	}
	if s.CanaryPods < 1 || s.CanaryPods > maxPods {
		add("canary_pods", "%d must be in [1, %d]", s.CanaryPods, maxPods)
	}
	for i, c := range s.Consumers {
		if c == "" || !utf8.ValidString(c) || slices.Contains(s.Consumers[:i], c) {
			add(fmt.Sprintf("consumers[%d]", i), "%q must be a unique non-empty UTF-8 string", c)
		}
	}
	if s.Start.Unix() <= 0 {
		add("start", "%s must be after 1970", s.Start.Format(time.RFC3339))
	}
	if s.WarmUp < time.Minute {
		add("warm_up", "%s must be at least 1m", s.WarmUp)
	}
	if s.Stage < time.Minute {
		add("stage", "%s must be at least 1m", s.Stage)
	}
	switch {
	case s.Prior < 0:
		add("prior", "%s must not be negative", s.Prior)
	case s.Prior > 0 && s.WarmUp < s.Prior+time.Minute:
		add("prior", "%s must leave at least 1m of warm_up (%s) before it", s.Prior, s.WarmUp)
	}
	switch {
	case s.Prior > 0 && !(s.PriorWeight > 0 && s.PriorWeight <= 1):
		add("prior_weight", "%g must be in (0, 1] with a prior stage", s.PriorWeight)
	case s.Prior <= 0 && s.PriorWeight != 0:
		add("prior_weight", "%g must be 0 without a prior stage", s.PriorWeight)
	}
	if s.ScrapeInterval < time.Second || s.ScrapeInterval%time.Millisecond != 0 {
		add("scrape_interval", "%s must be at least 1s, in whole milliseconds", s.ScrapeInterval)
	} else if n := (s.WarmUp + s.Stage) / s.ScrapeInterval; n > maxSamples {
		add("scrape_interval", "%s gives %d samples per series, more than %d", s.ScrapeInterval, n, maxSamples)
	}
	if s.Start.Nanosecond()%int(time.Millisecond) != 0 {
		add("start", "%s must be in whole milliseconds", s.Start.Format(time.RFC3339Nano))
	}
	for field, r := range map[string]float64{"canary_rate": s.CanaryRate, "stable_rate": s.StableRate} {
		if !(r >= minRate && r <= maxRate) {
			add(field, "%g requests/s must be in [%g, %g]", r, minRate, float64(maxRate))
		}
	}
	if !slices.Contains(Shapes, s.Shape) {
		add("shape", "%q must be one of %v", s.Shape, Shapes)
	}
	if b := s.Background; b != nil {
		for field, r := range map[string]float64{
			"background.drain_failure": b.DrainFailure, "background.mismatch": b.Mismatch,
			"background.duplicate": b.Duplicate, "background.schema_error": b.SchemaError,
			"background.slow_propagation": b.SlowPropagation,
		} {
			if !(r >= 0 && r <= 0.5) {
				add(field, "%g must be in [0, 0.5]", r)
			}
		}
		if !(b.FlapsPerHour >= 0 && b.FlapsPerHour <= 60) {
			add("background.flaps_per_hour", "%g must be in [0, 60]", b.FlapsPerHour)
		}
		if !(b.RetriesPerHour >= 0 && b.RetriesPerHour <= 36000) {
			add("background.retries_per_hour", "%g must be in [0, 36000]", b.RetriesPerHour)
		}
	}
	span := s.WarmUp + s.Stage
	podsOf := func(v Version) int {
		switch v {
		case Stable:
			return s.StablePods
		case Canary:
			return s.CanaryPods
		}
		return -1
	}
	checkPod := func(field string, v Version, pod int) {
		switch n := podsOf(v); {
		case n < 0:
			add(field+".version", "%q must be %q or %q", v, Stable, Canary)
		case pod < 0 || pod >= n:
			add(field+".pod", "%d must be in [0, %d)", pod, n)
		}
	}
	for i, r := range s.Restarts {
		field := fmt.Sprintf("restarts[%d]", i)
		checkPod(field, r.Version, r.Pod)
		lo := time.Duration(0)
		if r.Version == Canary {
			lo = s.WarmUp
		}
		if r.At <= lo || r.At >= span {
			add(field+".at", "%s must be inside (%s, %s)", r.At, lo, span)
		}
		if r.Downtime < 0 || r.Downtime > 10*time.Minute {
			add(field+".downtime", "%s must be in [0, 10m]", r.Downtime)
		}
		for j, o := range s.Restarts[:i] {
			if o.Version == r.Version && o.Pod == r.Pod && (r.At-o.At).Abs() < o.Downtime+r.Downtime+time.Minute {
				add(field+".at", "%s is too close to restarts[%d] of the same pod", r.At, j)
			}
		}
	}
	for i, g := range s.Gaps {
		field := fmt.Sprintf("gaps[%d]", i)
		checkPod(field, g.Version, g.Pod)
		if g.At < 0 || g.At >= span {
			add(field+".at", "%s must be inside [0, %s)", g.At, span)
		}
		if g.For <= 0 {
			add(field+".for", "%s must be positive", g.For)
		}
	}
	for i, c := range s.Cutoffs {
		field := fmt.Sprintf("cutoffs[%d]", i)
		if c.Version != Stable && c.Version != Canary {
			add(field+".version", "%q must be %q or %q", c.Version, Stable, Canary)
		}
		if c.For < s.ScrapeInterval || c.For >= s.Stage {
			add(field+".for", "%s must be in [%s, %s) (the scrape interval, the stage)", c.For, s.ScrapeInterval, s.Stage)
		}
		if slices.ContainsFunc(s.Cutoffs[:i], func(o Cutoff) bool { return o.Version == c.Version }) {
			add(field+".version", "%q has a cutoff already", c.Version)
		}
	}
	for i, d := range s.Drops {
		field := fmt.Sprintf("drops[%d]", i)
		if !slices.Contains(Drops, d) {
			add(field, "%q must be one of %v", d, Drops)
		} else if slices.Contains(s.Drops[:i], d) {
			add(field, "%q is listed twice", d)
		}
	}
	if f := s.Fault; f != nil {
		if !slices.Contains(FaultKinds, f.Kind) {
			add("fault.kind", "%q must be one of %v", f.Kind, FaultKinds)
		}
		if f.Onset < 0 || f.Onset >= s.Stage {
			add("fault.onset", "%s must be inside [0, %s) (an offset from the stage start)", f.Onset, s.Stage)
		}
		if !(f.Severity > 0 && f.Severity <= 1) {
			add("fault.severity", "%g must be in (0, 1]", f.Severity)
		}
		if f.Scope != ScopeCanary && f.Scope != ScopeBoth {
			add("fault.scope", "%q must be %q or %q", f.Scope, ScopeCanary, ScopeBoth)
		}
	}
	slices.SortFunc(errs, func(a, b error) int { return strings.Compare(a.Error(), b.Error()) })
	if len(errs) > 0 {
		return fmt.Errorf("spec %q: %w", s.Name, errors.Join(errs...))
	}
	return nil
}
