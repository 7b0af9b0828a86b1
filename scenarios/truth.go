package scenarios

import (
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/common/model"
)

func modelDuration(d time.Duration) model.Duration { return model.Duration(d) }

// SLI names used as keys of the burn maps in [Truth].
const (
	SLIDrainFailure     = "drain_failure"     // ratio: phase_requests_total{phase!="active"} / phase_requests_total
	SLIPhaseMismatch    = "phase_mismatch"    // ratio: phase_observations_total{agree="false"} / phase_observations_total
	SLIDuplicate        = "duplicate"         // ratio: phase_job_executions_total{duplicate="true"} / phase_job_executions_total
	SLISchemaErrors     = "schema_errors"     // ratio: phase_schema_errors_total / phase_requests_total
	SLISlowPropagation  = "slow_propagation"  // ratio: propagations slower than 2 s / all propagations
	SLIFlaps            = "flaps"             // rate: transitions draining->active and active->init per hour, per service
	SLIReconcileRetries = "reconcile_retries" // rate: phase_reconcile_retries_total per hour, per service
)

// DefaultBudgets returns the budgets that expected burn multiples are
// computed against, by SLI name: the error ratio a ratio SLI may spend, or
// the events per hour (over all pods of one version of the service) a rate
// SLI may spend.
func DefaultBudgets() map[string]float64 { return maps.Clone(defaultBudgets) }

var defaultBudgets = map[string]float64{
	SLIDrainFailure:     0.001,
	SLIPhaseMismatch:    0.001,
	SLIDuplicate:        0.001,
	SLISchemaErrors:     0.001,
	SLISlowPropagation:  0.01,
	SLIFlaps:            2,
	SLIReconcileRetries: 60,
}

// Truth is what a scenario contains, for scoring verdicts. It is written as
// NAME.truth.json next to NAME.om. Times are RFC 3339 in UTC.
type Truth struct {
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
	Seed        int64  `json:"seed"`
	Namespace   string `json:"namespace"`
	Service     string `json:"service"`
	// CanaryHash and StableHash are the values of pod_template_hash (and of
	// label_rollouts_pod_template_hash and destination_version).
	CanaryHash string `json:"canary_hash"`
	StableHash string `json:"stable_hash"`
	// CanaryPods and StablePods are the names of every pod of each
	// version, including the ones that replaced a restarted pod.
	CanaryPods []string `json:"canary_pods"`
	StablePods []string `json:"stable_pods"`

	// Start and End bound the data: first and last sample.
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
	// StageStart is when the canary takes its stage's traffic; StageEnd ==
	// End.
	StageStart time.Time `json:"stage_start"`
	StageEnd   time.Time `json:"stage_end"`
	// CanaryStart is when the canary starts serving: StageStart less
	// Spec.Prior, its time in a prior stage. Its JSON is omitted when it
	// equals StageStart (no prior stage), and read back as StageStart, so
	// that a scenario without a prior stage has the truth file it had
	// before the field existed.
	CanaryStart time.Time `json:"canary_start,omitzero"`
	// PriorRate is the canary's nominal request rate in its prior stage
	// (CanaryRate × Spec.PriorWeight), in requests per second; 0 without
	// one.
	PriorRate      float64        `json:"prior_rate,omitempty"`
	ScrapeInterval model.Duration `json:"scrape_interval"`

	// CanaryRate and StableRate are the nominal request rates during the
	// stage, in requests per second; the shape varies them (bursts add to
	// them).
	CanaryRate float64 `json:"canary_rate"`
	StableRate float64 `json:"stable_rate"`
	Shape      Shape   `json:"shape"`

	Background BackgroundTruth `json:"background"`
	Restarts   []RestartTruth  `json:"restarts"`
	// Gaps lists every pod's time without application samples, the pods
	// of a Cutoff included.
	Gaps []GapTruth `json:"gaps"`
	// LazyChildren is Spec.LazyChildren: labelled counter children are
	// created on their first event, not at zero.
	LazyChildren bool          `json:"lazy_children"`
	Cutoffs      []CutoffTruth `json:"cutoffs"`
	Drops        []DropTruth   `json:"drops"`
	// Fault is nil (JSON null) for a healthy scenario.
	Fault *FaultTruth `json:"fault"`
	// Answer is the right decision at the end of the stage.
	Answer Answer `json:"answer"`
}

// truthFields is Truth without its JSON methods.
type truthFields Truth

// MarshalJSON encodes t, without canary_start when it equals stage_start.
func (t Truth) MarshalJSON() ([]byte, error) {
	if t.CanaryStart.Equal(t.StageStart) {
		t.CanaryStart = time.Time{}
	}
	return json.Marshal(truthFields(t))
}

// UnmarshalJSON decodes a truth file; a missing canary_start is
// stage_start.
func (t *Truth) UnmarshalJSON(b []byte) error {
	if err := json.Unmarshal(b, (*truthFields)(t)); err != nil {
		return err
	}
	if t.CanaryStart.IsZero() {
		t.CanaryStart = t.StageStart
	}
	return nil
}

// CutoffTruth is a version whose application metrics end early: no pod of
// Version has an application sample at or after At.
type CutoffTruth struct {
	Version Version   `json:"version"`
	At      time.Time `json:"at"`
}

// DropTruth is an export the canary build changed, and the SLI it hides.
type DropTruth struct {
	Drop Drop   `json:"drop"`
	SLI  string `json:"sli"`
}

// Decisions an engine gives, as [Answer] names them; they are the values
// of phaseguard's analysis.Decision.
const (
	Pass = "pass"
	Fail = "fail"
	Hold = "hold"
)

// AnswerWindow is the shortest window the right answer assumes a policy
// evaluates: every window pair of the built-in policies has a short window
// of at least 1m, and a pass needs every pair evaluated (DESIGN.md, "What a
// response means"). A version whose pods have fewer than two application
// samples in the last AnswerWindow (what increase() needs) has no data in
// that window.
const AnswerWindow = time.Minute

// Answer is the right decision about the canary at the end of the stage,
// following DESIGN.md: no data in a window is not zero burn; an absent bad
// series is zero only when the canary demonstrably exports the metric;
// both versions equally bad is not the canary's fault.
//
//	healthy canary, every SLI observable           pass; fail is wrong
//	canary without data in the last AnswerWindow    hold; pass is wrong, and fail too for a healthy canary
//	canary build that dropped an SLI's export       hold (fail if another SLI shows a fault); pass is wrong
//	fault of the canary at >= 1x its budget         fail; pass is wrong
//	fault on canary and stable alike, >= 1x         hold; pass and fail are wrong
//	fault under 1x its budget                       pass; nothing is wrong
//
// A stable version without recent data changes nothing: the canary's own
// SLIs are all observable (a hold for the missing baseline is not wrong).
type Answer struct {
	// Right is the decision a correct engine with enough evidence gives:
	// "pass", "fail" or "hold".
	Right string `json:"right"`
	// Wrong lists the decisions that are wrong here; a decision neither
	// Right nor Wrong is acceptable (a hold where a pass is right costs a
	// human's look, but vouches for nothing).
	Wrong []string `json:"wrong"`
	// Why says so in one line.
	Why string `json:"why"`
	// NoRecentData is set when the canary's pods have fewer than two
	// application samples in the last AnswerWindow.
	NoRecentData bool `json:"no_recent_data"`
	// Hidden lists the SLIs the canary build's Drops hide.
	Hidden []string `json:"hidden"`
}

// IsWrong reports whether decision d ("pass", "fail" or "hold") is wrong.
func (a Answer) IsWrong(d string) bool { return slices.Contains(a.Wrong, d) }

// BackgroundTruth is the background error level of every pod.
type BackgroundTruth struct {
	DrainFailure    float64 `json:"drain_failure"`
	Mismatch        float64 `json:"mismatch"`
	Duplicate       float64 `json:"duplicate"`
	SchemaError     float64 `json:"schema_error"`
	SlowPropagation float64 `json:"slow_propagation"`
	FlapsPerHour    float64 `json:"flaps_per_hour_per_pod"`
	RetriesPerHour  float64 `json:"retries_per_hour_per_pod"`
	// CanaryBurn is the expected burn multiple of every SLI of the canary
	// without a fault, against DefaultBudgets.
	CanaryBurn map[string]float64 `json:"canary_burn"`
}

// RestartTruth is one pod restart. Counters of Pod (and NewPod) restart
// from zero: the first sample at or after At is a counter reset.
type RestartTruth struct {
	Version Version   `json:"version"`
	Pod     string    `json:"pod"`
	NewPod  string    `json:"new_pod,omitempty"` // set when the pod was replaced
	At      time.Time `json:"at"`
	// Unready is when kube_pod_status_ready went to 0; Ready when it went
	// back to 1.
	Unready time.Time `json:"unready"`
	Ready   time.Time `json:"ready"`
}

// GapTruth is a time without samples of a pod's application metrics.
type GapTruth struct {
	Version Version   `json:"version"`
	Pod     string    `json:"pod"`
	From    time.Time `json:"from"`
	To      time.Time `json:"to"`
}

// FaultTruth is the injected fault.
type FaultTruth struct {
	Kind  FaultKind `json:"kind"`
	Name  string    `json:"name"`
	Scope Scope     `json:"scope"`
	Onset time.Time `json:"onset"`
	// Severity is the fault's parameter, a fraction; Parameter says what it
	// measures.
	Severity  float64 `json:"severity"`
	Parameter string  `json:"parameter"`
	// CanaryBurn is the expected burn multiple, after the onset, of each
	// SLI the fault raises, for the canary, against DefaultBudgets,
	// background included.
	CanaryBurn map[string]float64 `json:"canary_burn"`
	// StableBurn is the same for the stable version: non-nil only for
	// scope "both".
	StableBurn map[string]float64 `json:"stable_burn,omitempty"`
}

// Rates per pod that are not part of a Spec. Observation, job and
// propagation rates are events per second.
const (
	obsPerRequest      = 0.5  // phase observations per request, per consumer
	obsHeartbeat       = 0.1  // phase observations per second per consumer without traffic
	jobsPerRequest     = 0.1  // job executions per request
	minJobRate         = 0.05 // job executions per second per pod without traffic
	propagationRate    = 0.2  // phase propagations per second per pod (an announcement every 5 s)
	flapsPerHourAtFull = 240  // F4 flaps per hour per pod at Severity 1: one per scrape at 15 s
	meanFlapSeconds    = 6.5  // mean length of one flap, uniform in [3 s, 10 s]
)

// faultParameter describes what Severity measures for each kind.
var faultParameter = map[FaultKind]string{
	DrainMisrouting:      "share of requests served by draining instances",
	LeaderFlipOverlap:    "share of job executions that are duplicates",
	SchemaMismatch:       "share of requests with a schema error (half as many phase observations disagree)",
	ReadinessFlapping:    "flaps per hour per pod divided by 240",
	MissingAnnouncements: "share of phase observations that disagree and of propagations slower than 2 s",
}

// either is the chance of a fault or a background event: 1-(1-f)(1-b).
func either(fault, bg float64) float64 { return fault + (1-fault)*bg }

// burns returns the expected burn multiples of a version with pods pods,
// under fault f (nil for the background) against DefaultBudgets.
func burns(b Background, pods int, f *Fault) map[string]float64 {
	var sev float64
	kind := FaultKind("")
	if f != nil {
		sev, kind = f.Severity, f.Kind
	}
	at := func(k FaultKind) float64 {
		if kind == k {
			return sev
		}
		return 0
	}
	mismatch := either(at(MissingAnnouncements), either(at(SchemaMismatch)/2, b.Mismatch))
	flaps := (at(ReadinessFlapping)*flapsPerHourAtFull + b.FlapsPerHour) * float64(pods)
	all := map[string]float64{
		SLIDrainFailure:     either(at(DrainMisrouting), b.DrainFailure),
		SLIPhaseMismatch:    mismatch,
		SLIDuplicate:        either(at(LeaderFlipOverlap), b.Duplicate),
		SLISchemaErrors:     either(at(SchemaMismatch), b.SchemaError),
		SLISlowPropagation:  either(at(MissingAnnouncements), b.SlowPropagation),
		SLIFlaps:            flaps,
		SLIReconcileRetries: b.RetriesPerHour * float64(pods),
	}
	raised := map[FaultKind][]string{
		DrainMisrouting:      {SLIDrainFailure},
		LeaderFlipOverlap:    {SLIDuplicate},
		SchemaMismatch:       {SLISchemaErrors, SLIPhaseMismatch},
		ReadinessFlapping:    {SLIFlaps},
		MissingAnnouncements: {SLIPhaseMismatch, SLISlowPropagation},
	}
	out := map[string]float64{}
	for sli, v := range all {
		out[sli] = round4(v / defaultBudgets[sli])
	}
	if f == nil {
		return out
	}
	only := map[string]float64{}
	for _, sli := range raised[kind] {
		only[sli] = out[sli]
	}
	return only
}

// round4 rounds x to 4 significant digits, so that the JSON stays readable.
func round4(x float64) float64 {
	if x == 0 || math.IsInf(x, 0) || math.IsNaN(x) {
		return x
	}
	p := math.Pow(10, 3-math.Floor(math.Log10(math.Abs(x))))
	return math.Round(x*p) / p
}

// answer returns the right decision about the canary at the end of the
// stage; see Answer.
func (p *plan) answer() Answer {
	a, blind, hidden := p.decide()
	a.NoRecentData, a.Hidden = blind, hidden
	return a
}

// decide returns the answer's decisions and reason, whether the canary has
// no recent data and the SLIs its build hides.
func (p *plan) decide() (a Answer, blind bool, hidden []string) {
	s := p.spec
	win := AnswerWindow.Milliseconds()
	blind = p.appSamples(Canary, p.end-win, p.end) < 2
	hidden = []string{}
	for _, d := range s.Drops {
		hidden = append(hidden, DropSLI(d))
	}
	slices.Sort(hidden)
	why := func(base string) string {
		var parts []string
		if blind {
			parts = append(parts, fmt.Sprintf("no canary data in the last %s", modelDuration(AnswerWindow)))
		}
		if len(hidden) > 0 {
			parts = append(parts, fmt.Sprintf("the canary build hides %s", strings.Join(hidden, ", ")))
		}
		if len(parts) == 0 {
			return base
		}
		return base + "; " + strings.Join(parts, "; ")
	}
	f := s.Fault
	burn := 0.0
	if f != nil {
		for _, b := range burns(*s.Background, s.CanaryPods, f) {
			burn = math.Max(burn, b)
		}
	}
	switch {
	case f == nil || burn < 1:
		base := "healthy canary"
		if f != nil {
			base = fmt.Sprintf("%s at %.3gx, under its budget", f.Kind, burn)
		}
		wrong := []string{Fail}
		if f != nil {
			wrong = nil
		}
		switch {
		case blind:
			return Answer{Right: Hold, Wrong: []string{Pass, Fail}, Why: why(base)}, blind, hidden
		case len(hidden) > 0:
			return Answer{Right: Hold, Wrong: []string{Pass}, Why: why(base)}, blind, hidden
		}
		return Answer{Right: Pass, Wrong: wrong, Why: base}, blind, hidden
	case f.Scope == ScopeBoth:
		return Answer{Right: Hold, Wrong: []string{Pass, Fail},
			Why: why(fmt.Sprintf("%s at %.3gx on canary and stable alike: not the canary's fault", f.Kind, burn))}, blind, hidden
	}
	// The fault shows if an SLI it raises over budget is not hidden, in
	// at least two canary samples after the onset.
	visible := 0.0
	for sli, b := range burns(*s.Background, s.CanaryPods, f) {
		if !slices.Contains(hidden, sli) {
			visible = math.Max(visible, b)
		}
	}
	seen := p.appSamples(Canary, p.onset, p.end) >= 2
	base := fmt.Sprintf("%s at %.3gx its budget", f.Kind, burn)
	if visible >= 1 && seen {
		return Answer{Right: Fail, Wrong: []string{Pass}, Why: why(base)}, blind, hidden
	}
	if !seen {
		base += ", with no canary data after the onset"
	}
	return Answer{Right: Hold, Wrong: []string{Pass}, Why: why(base)}, blind, hidden
}
