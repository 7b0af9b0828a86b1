package analysis

import (
	"encoding/json"
	"math"
	"strconv"
	"time"
)

// Decision is the outcome of an evaluation.
type Decision string

// Decisions. Pass lets the rollout go on, Fail rolls it back, Hold pauses it
// for a human (thin evidence, no data, a query error under the default
// policy, or a fault that is not the canary's).
const (
	Pass Decision = "pass"
	Fail Decision = "fail"
	Hold Decision = "hold"
)

// Severity orders decisions: pass 0, hold 1, fail 2. The worst of several
// looks or SLIs is the one with the highest severity.
func (d Decision) Severity() int {
	switch d {
	case Fail:
		return 2
	case Hold:
		return 1
	}
	return 0
}

// Verdict is the engine's answer for one evaluation time.
type Verdict struct {
	Time   time.Time `json:"time"`
	Policy string    `json:"policy"`
	Stage  string    `json:"stage,omitempty"`
	// Since is the canary's start, when the request gave one.
	Since    time.Time `json:"since,omitzero"`
	Decision Decision  `json:"verdict"`
	// Reason is one line a release manager can act on.
	Reason string `json:"reason"`
	// Confidence is 1 minus each test's level (alpha split over every
	// SLI's tests; a restart of a window pair's test takes a share of it):
	// the level of the windows' bounds. The tests are anytime-valid, so it
	// does not depend on how often the canary is looked at.
	Confidence float64     `json:"confidence"`
	SLIs       []SLIResult `json:"slis"`
	// Queries is the number of PromQL queries this evaluation sent, the
	// probes of SLIs without data included.
	Queries int `json:"queries"`
	// QueryErrors counts SLIs whose queries failed.
	QueryErrors int `json:"queryErrors"`
}

// MaxBurn is the largest canary burn rate over every SLI and window, NaN
// when no SLI has data.
func (v *Verdict) MaxBurn() float64 {
	m := math.NaN()
	for _, s := range v.SLIs {
		if b := float64(s.MaxBurn()); !math.IsNaN(b) && (math.IsNaN(m) || b > m) {
			m = b
		}
	}
	return m
}

// SLIResult is the verdict of one SLI.
type SLIResult struct {
	Name     string   `json:"name"`
	Kind     string   `json:"kind"`
	Decision Decision `json:"verdict"`
	Reason   string   `json:"reason"`
	// Budget is the allowed bad share (ratio SLIs, 0..1) or the allowed
	// events per hour (rate SLIs).
	Budget Num `json:"budget"`
	// Value is the canary's bad share or events per hour in the longest
	// window.
	Value Num `json:"value"`
	// Samples is the canary's events in the longest window: requests (or
	// observations, jobs) for a ratio SLI, counted events for a rate SLI.
	Samples Num `json:"samples"`
	// Burn, BurnLower and BurnUpper are the canary's burn rate and its
	// confidence bounds per window, keyed by window ("5m").
	Burn      map[string]Num `json:"burn"`
	BurnLower map[string]Num `json:"burnLower"`
	BurnUpper map[string]Num `json:"burnUpper"`
	// Windows holds the same per window with raw counts, longest first.
	Windows []WindowResult `json:"windows"`
	// Life holds the counts since the canary's start, when the canary is
	// older than the longest window (before that, the longest window holds
	// them): the evidence a pass needs.
	Life *WindowResult `json:"life,omitempty"`
	// Tripped names the window pairs ("5m/1m>10×") whose both windows
	// burned above the pair's factor, the long one's evidence (a restart)
	// significantly over budget; "since the start" for the canary's life.
	Tripped []string `json:"tripped,omitempty"`
	// Baseline is the stable version's side, when compared.
	Baseline *BaselineResult `json:"baseline,omitempty"`
	// Queries are the exact PromQL queries sent: canary first, then
	// stable, then the probes of an SLI without canary data (what is
	// missing: the metric, a label, a value).
	Queries []string `json:"queries"`
	// Error is the query error, when there was one.
	Error string `json:"error,omitempty"`
}

// MaxBurn is the largest canary burn over the SLI's windows.
func (s *SLIResult) MaxBurn() Num {
	m := Num(math.NaN())
	for _, w := range s.Windows {
		if !math.IsNaN(float64(w.Burn)) && (math.IsNaN(float64(m)) || w.Burn > m) {
			m = w.Burn
		}
	}
	return m
}

// WindowResult is one window of one target.
type WindowResult struct {
	Window string `json:"window"`
	// Span is the time the window counted when the stage is younger than
	// the window (Request.Since), empty when it counted all of it.
	Span string `json:"span,omitempty"`
	// Bad and Total are event counts in the window (ratio SLIs); Events
	// the counted events (rate SLIs), with Total the window in hours.
	Bad   Num `json:"bad"`
	Total Num `json:"total"`
	// Value is Bad/Total: a share (ratio) or events per hour (rate).
	Value     Num `json:"value"`
	Burn      Num `json:"burn"`
	BurnLower Num `json:"burnLower"`
	BurnUpper Num `json:"burnUpper"`
}

// BaselineResult is the stable version's side of a comparison.
type BaselineResult struct {
	Hash    string         `json:"hash"`
	Value   Num            `json:"value"`
	Samples Num            `json:"samples"`
	Burn    map[string]Num `json:"burn"`
	Windows []WindowResult `json:"windows"`
	// PValue is the anytime-valid p-value (the inverse of the e-value,
	// scaled to the test's level: Ville) of "the canary is no worse than
	// maxRatio times stable", the least over the longest pair's restarts;
	// 1 when none had a bad canary event.
	PValue Num `json:"pValue"`
	// Worse is true when the canary is significantly worse than stable.
	Worse bool `json:"worse"`
	// AlsoBad is true when stable burns too: the fault is not the canary's.
	AlsoBad bool `json:"alsoBad"`
}

// Num is a float64 that encodes NaN and ±Inf as JSON null: JSON has no
// such numbers, and a missing value must never read as zero.
type Num float64

// MarshalJSON encodes n, or null when it is not finite.
func (n Num) MarshalJSON() ([]byte, error) {
	f := float64(n)
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return []byte("null"), nil
	}
	return strconv.AppendFloat(nil, f, 'g', -1, 64), nil
}

// UnmarshalJSON decodes a number, or null as NaN.
func (n *Num) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*n = Num(math.NaN())
		return nil
	}
	var f float64
	if err := json.Unmarshal(b, &f); err != nil {
		return err
	}
	*n = Num(f)
	return nil
}
