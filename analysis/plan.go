package analysis

import (
	"slices"
	"time"

	"github.com/phaseguard/phaseguard/policies"
)

// PlanRow says whether one SLI of a clean canary can pass one stage: the
// traffic its longest window needs to rule out the fastest window pair's
// burn at the policy's alpha (the pass test of the engine, with no bad
// event seen), and whether the stage's soak, and the window itself, give
// it.
type PlanRow struct {
	Stage string        `json:"stage"`
	Soak  time.Duration `json:"soak"`
	SLI   string        `json:"sli"`
	Kind  string        `json:"kind"`
	// Rate is the canary's events per second the plan assumes (ratio
	// SLIs); rate SLIs are judged on time alone.
	Rate float64 `json:"rate,omitempty"`
	// Needs is the time of traffic the longest window must hold;
	// Window is that window. A pass needs Needs <= min(Soak, Window).
	Needs  time.Duration `json:"needs"`
	Window time.Duration `json:"window"`
	// CanPass: the stage's soak at Rate gives the evidence.
	CanPass bool `json:"canPass"`
	// LeastRate is the fewest events per second (ratio SLIs) with which
	// the soak (and the window) hold enough.
	LeastRate float64 `json:"leastRate,omitempty"`
}

// Plan tells, for a clean canary whose ratio SLIs see eventsPerSecond
// events each, per stage and SLI, whether its soak can pass, the time of
// traffic a pass needs, and the least traffic that can within the soak.
// It uses the engine's pass test: the longest window's upper bound
// (Clopper–Pearson for a share, Garwood for a count, at the policy's
// alpha) at or under the fastest pair's factor times the budget, and a
// ratio window holding minSamples events.
func Plan(p *policies.Policy, eventsPerSecond float64) []PlanRow {
	longest := slices.Max(p.Windows())
	fastest := fastestFactor(p)
	var rows []PlanRow
	for _, st := range p.Spec.Stages {
		soak := time.Duration(st.Soak)
		room := min(soak, longest)
		for i := range p.Spec.SLIs {
			s := &p.Spec.SLIs[i]
			kind := s.Kind()
			limit := s.Budget() * fastest
			row := PlanRow{Stage: st.Name, Soak: soak, SLI: s.Name, Kind: kind, Window: longest}
			if kind == policies.KindRate {
				// No event in an hour of watching: the bound depends on
				// time alone.
				need, ok := exposureToPass(window{d: longest, total: 1}, time.Hour, kind, p.Spec.Alpha, limit, 0)
				row.Needs, row.CanPass = need, ok && need <= room
				rows = append(rows, row)
				continue
			}
			row.Rate = eventsPerSecond
			// At one event a second the time needed is the events needed.
			events, ok := exposureToPass(window{d: longest, total: 1}, time.Second, kind, p.Spec.Alpha, limit, p.Spec.MinSamples)
			if ok {
				row.LeastRate = events.Seconds() / room.Seconds()
				if eventsPerSecond > 0 {
					row.Needs = time.Duration(events.Seconds() / eventsPerSecond * float64(time.Second))
					row.CanPass = row.Needs <= room
				}
			}
			rows = append(rows, row)
		}
	}
	return rows
}
