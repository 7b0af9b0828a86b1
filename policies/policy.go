// Package policies defines the phaseguard policy format: which phase SLIs a
// canary is judged on, their objectives, the burn-rate windows, the evidence
// required before a verdict, the stages of a rollout and what a query error
// does. Policies are YAML, decoded strictly (an unknown field or a wrong type
// is an error naming its field path and line), then defaulted, then
// validated, with every PromQL expression parsed once at load time.
package policies

import (
	"fmt"
	"math"
	"time"

	"github.com/prometheus/common/model"
)

// APIVersion and Kind identify a policy document.
const (
	APIVersion = "phaseguard.dev/v1alpha1"
	Kind       = "Policy"
)

// Policy is one loaded, defaulted and validated policy.
type Policy struct {
	APIVersion string   `yaml:"apiVersion"`
	Kind       string   `yaml:"kind"`
	Metadata   Metadata `yaml:"metadata"`
	Spec       Spec     `yaml:"spec"`

	// source names where the policy came from (file path or preset name),
	// for error messages.
	source string
	// warnings are what lint finds in a policy that loads (see Warnings).
	warnings []error
}

// Metadata names a policy.
type Metadata struct {
	Name        string `yaml:"name"`
	Description string `yaml:"description"`
}

// Spec is the body of a policy. A default applies only to a field the
// document leaves out (or gives as null): a field written as zero
// (`alpha: 0`, `interval: 0s`, `windows: []`, `maxRatio: 0`,
// `minSamples: 0`) is an error naming its line, except minBurn, where 0
// means what it says.
type Spec struct {
	// Alpha bounds the chance of failing a healthy canary over its whole
	// life, however often it is looked at (the engine's tests are
	// anytime-valid), and, per SLI, of passing a canary that burns the
	// fastest pair's factor (0 < alpha < 0.5). Default 0.05.
	Alpha float64 `yaml:"alpha"`
	// Interval is how often a front end looks at a running stage; it
	// spends nothing of alpha (PlannedLooks). Default 30s.
	Interval model.Duration `yaml:"interval"`
	// MinSamples is the number of events (requests, observations, jobs) a
	// ratio SLI needs since the canary's start (or in its longest window,
	// when the start is unknown) before it may pass; below it
	// the SLI holds, unless the events it has already fail it (a fail
	// needs only significance: DESIGN.md, "Evidence"). Default 100; at
	// least 1 (an explicit 0 is an error, not "no floor").
	MinSamples float64 `yaml:"minSamples"`
	// OnQueryError says what a query error does to the verdict: "hold"
	// (default: an outage of Prometheus pauses the rollout) or "fail".
	OnQueryError string `yaml:"onQueryError"`
	// Windows are the (long, short, factor) burn-rate pairs. A pair trips
	// only when both of its windows burn above factor and the long one is
	// significantly over budget (analysis decides); pairs are OR-ed.
	Windows []WindowPair `yaml:"windows"`
	// Baseline configures the comparison of the canary with the stable
	// version over the same windows.
	Baseline Baseline `yaml:"baseline"`
	// Stages are the steps of a rollout, in order.
	Stages []Stage `yaml:"stages"`
	// SLIs are the phase SLIs the canary is judged on.
	SLIs []SLI `yaml:"slis"`
}

// WindowPair is one multi-window burn-rate alert condition (Google SRE
// Workbook, "Alerting on SLOs", multiwindow multi-burn-rate alerts), with
// windows scaled down to canary stages.
type WindowPair struct {
	Long   model.Duration `yaml:"long"`
	Short  model.Duration `yaml:"short"`
	Factor float64        `yaml:"factor"`
}

// String names the pair as "long/short>factor×".
func (w WindowPair) String() string {
	return fmt.Sprintf("%s/%s>%g×", w.Long, w.Short, w.Factor)
}

// Baseline configures the canary-versus-stable comparison.
type Baseline struct {
	// Enabled turns the comparison on when a stable target is given.
	// Default true.
	Enabled *bool `yaml:"enabled"`
	// MaxRatio is how many times worse than stable the canary may be before
	// a significant difference fails it. Default 2.
	MaxRatio float64 `yaml:"maxRatio"`
	// MinBurn is the canary burn rate (its bad share over its budget, or
	// its rate over its allowance, in the longest window) below which a
	// significant difference from stable is not acted on. Default 1: a
	// canary inside its own budget is never rolled back for being worse
	// than stable (DESIGN.md, "Baseline"). An explicit 0 asks for that:
	// fail a canary significantly worse than stable even within its
	// budget. Must be 0 or more.
	MinBurn float64 `yaml:"minBurn"`
}

// On reports whether the baseline comparison is enabled.
func (b Baseline) On() bool { return b.Enabled == nil || *b.Enabled }

// Stage is one step of a rollout.
type Stage struct {
	Name string `yaml:"name"`
	// Soak is the minimum time the stage must run, and pass, before the
	// next stage may start.
	Soak model.Duration `yaml:"soak"`
}

// SLI kinds.
const (
	KindRatio = "ratio"
	KindRate  = "rate"
)

// SLI is one phase SLI. Either Preset names a built-in SLI whose fields
// are used where this one leaves them empty, or Ratio/Rate give the
// queries.
type SLI struct {
	Name        string `yaml:"name"`
	Preset      string `yaml:"preset"`
	Description string `yaml:"description"`
	// Objective is the share of good events, in percent (99.9 means a
	// 0.1 % budget). Ratio SLIs only.
	Objective float64 `yaml:"objective"`
	// Allowance is the number of events per hour the target may have.
	// Rate SLIs only.
	Allowance float64 `yaml:"allowance"`
	Ratio     *Ratio  `yaml:"ratio"`
	Rate      *Rate   `yaml:"rate"`

	// compiled holds the parsed queries, one set per window of the policy.
	compiled *compiledSLI
}

// Ratio gives the queries of a ratio SLI. Each is a PromQL expression that
// returns the number of events in the window $window as one series, with
// $service, $namespace and $hash as label matcher values selecting the
// target. Give Bad or Good, and Total.
type Ratio struct {
	Bad   string `yaml:"bad"`
	Good  string `yaml:"good"`
	Total string `yaml:"total"`
}

// Rate gives the queries of a rate SLI: Events counts the events in
// $window. Absent events are told from no data by the presence checks
// every part gets (SLI.Absence); Presence, when given, is one more: a
// query that returns a series whenever the target reports at all, and
// without whose series a window has no data.
type Rate struct {
	Events   string `yaml:"events"`
	Presence string `yaml:"presence"`
}

// Kind returns KindRatio or KindRate.
func (s *SLI) Kind() string {
	if s.Rate != nil {
		return KindRate
	}
	return KindRatio
}

// Budget is the allowed bad share (0..1) of a ratio SLI or the allowed
// events per hour of a rate SLI.
func (s *SLI) Budget() float64 {
	if s.Kind() == KindRate {
		return s.Allowance
	}
	// Rounded to 1e-12 so that 99.9 gives 0.001, not 0.000999...989.
	return math.Round((100-s.Objective)*1e10) / 1e12
}

// Source names where the policy came from.
func (p *Policy) Source() string { return p.source }

// Warnings returns what lint finds in a policy that loads, each a
// *FieldError with its line: an `le` or `quantile` matcher that only one
// spelling of its number satisfies, and a ratio SLI whose queries count
// with rate() or irate() instead of increase(). They do not stop a policy
// from loading; `phaseguard lint` fails on them.
func (p *Policy) Warnings() []error { return p.warnings }

// Windows returns every distinct window of the policy's pairs, longest first.
func (p *Policy) Windows() []time.Duration { return windowsOf(p.Spec.Windows) }

// Stage returns the named stage and its index, or -1.
func (p *Policy) Stage(name string) (Stage, int) {
	for i, s := range p.Spec.Stages {
		if s.Name == name {
			return s, i
		}
	}
	return Stage{}, -1
}

// Previous returns the stage before the named one, if any.
func (p *Policy) Previous(name string) (Stage, bool) {
	_, i := p.Stage(name)
	if i <= 0 {
		return Stage{}, false
	}
	return p.Spec.Stages[i-1], true
}

// PlannedLooks is the number of looks a front end takes at a stage looking
// every interval: its soak divided by the interval, at least 1. With no
// stage (or an unknown one) it is the largest over all stages. The
// engine's tests do not depend on it.
func (p *Policy) PlannedLooks(stage string) int {
	looks := func(s Stage) int {
		n := int((time.Duration(s.Soak) + time.Duration(p.Spec.Interval) - 1) / time.Duration(p.Spec.Interval))
		return max(n, 1)
	}
	if s, i := p.Stage(stage); i >= 0 {
		return looks(s)
	}
	n := 1
	for _, s := range p.Spec.Stages {
		n = max(n, looks(s))
	}
	return n
}

// PlannedLife is how long the policy plans to watch a canary: the sum of
// its stages' soaks, at least one interval. The anytime-valid tests of
// the engine spread their level over restarts so that those within this
// time get nearly equal shares, and later ones less.
func (p *Policy) PlannedLife() time.Duration {
	var d time.Duration
	for _, s := range p.Spec.Stages {
		d += time.Duration(s.Soak)
	}
	return max(d, time.Duration(p.Spec.Interval), time.Second)
}
