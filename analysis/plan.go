package analysis

import (
	"math"
	"time"

	"github.com/phaseguard/phaseguard/policies"
)

// PlanRow says whether one SLI of a clean canary can pass one stage: the
// traffic its evidence since the canary's start needs to rule out the
// fastest window pair's burn at the policy's alpha (the pass test of the
// engine, with no bad event seen), and whether the canary's life to the
// end of the stage's soak gives it.
type PlanRow struct {
	Stage string        `json:"stage"`
	Soak  time.Duration `json:"soak"`
	SLI   string        `json:"sli"`
	Kind  string        `json:"kind"`
	// Rate is the canary's events per second the plan assumes (ratio
	// SLIs); rate SLIs are judged on time alone.
	Rate float64 `json:"rate,omitempty"`
	// Needs is the time of traffic the evidence must hold; Life is the
	// canary's age at the end of this stage's soak (every soak so far).
	// A pass needs Needs <= Life.
	Needs time.Duration `json:"needs"`
	Life  time.Duration `json:"life"`
	// CanPass: the canary's life at Rate gives the evidence.
	CanPass bool `json:"canPass"`
	// LeastRate is the fewest events per second (ratio SLIs) with which
	// the canary's life to this stage's end holds enough.
	LeastRate float64 `json:"leastRate,omitempty"`
}

// Plan tells, for a clean canary whose ratio SLIs see eventsPerSecond
// events each through every stage, per stage and SLI, whether it can pass
// at the end of the stage's soak, the time of traffic a pass needs, and
// the least traffic that can. It uses the engine's pass test
// (window.rulesOut: the counts since the canary's start reject the
// fastest pair's burn at the policy's alpha) and minSamples events.
func Plan(p *policies.Policy, eventsPerSecond float64) []PlanRow {
	fastest := fastestFactor(p)
	var rows []PlanRow
	var life time.Duration
	for _, st := range p.Spec.Stages {
		soak := time.Duration(st.Soak)
		life += soak
		for i := range p.Spec.SLIs {
			s := &p.Spec.SLIs[i]
			kind := s.Kind()
			row := PlanRow{Stage: st.Name, Soak: soak, SLI: s.Name, Kind: kind, Life: life}
			if kind == policies.KindRate {
				// No event in an hour of watching: the test depends on
				// time alone.
				need, ok := exposureToPass(window{total: 1}, time.Hour, kind, p.Spec.Alpha, s.Budget(), fastest, 0)
				row.Needs, row.CanPass = need, ok && need <= life
				rows = append(rows, row)
				continue
			}
			row.Rate = eventsPerSecond
			// At one event a second the time needed is the events needed.
			events, ok := exposureToPass(window{total: 1}, time.Second, kind, p.Spec.Alpha, s.Budget(), fastest, p.Spec.MinSamples)
			if ok {
				row.LeastRate = events.Seconds() / life.Seconds()
				if eventsPerSecond > 0 {
					// Decided in seconds: at a rate of 1e-8/s the time
					// needed overflows a Duration (to a negative one,
					// which read as a pass).
					secs := events.Seconds() / eventsPerSecond
					row.CanPass = secs <= life.Seconds()
					row.Needs = saturatingSeconds(secs)
				}
			}
			rows = append(rows, row)
		}
	}
	return rows
}

// saturatingSeconds converts seconds to a Duration, at most the largest
// one (about 292 years) where the conversion would overflow.
func saturatingSeconds(secs float64) time.Duration {
	if secs >= float64(math.MaxInt64)/float64(time.Second) || math.IsNaN(secs) {
		return math.MaxInt64
	}
	return time.Duration(secs * float64(time.Second))
}
