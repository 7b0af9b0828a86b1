package bench

import (
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"github.com/phaseguard/phaseguard/scenarios"
)

// Set names the part of the corpus a case belongs to.
type Set string

// Sets of the corpus.
const (
	// Healthy canaries: no fault. Any rollback is a false rollback.
	Healthy Set = "healthy"
	// Faulty canaries: one fault of a random kind, severity, onset and
	// scope, as scenarios.Corpus draws them.
	Faulty Set = "faulty"
	// FullDrain canaries: drain misrouting of every request (F1 at
	// severity 1) on a canary serving 20 to 500 requests/s, for the
	// "failed within 30 s of onset" target. They keep the corpus' lazy
	// children, restarts and gaps, not its cutoffs and drops (which may
	// hide the fault: the healthy and faulty sets count those).
	FullDrain Set = "full-drain"
)

// Case is one scenario of the corpus.
type Case struct {
	Set  Set
	Spec scenarios.Spec
}

// Geometry is the time layout every case is fitted to.
type Geometry struct {
	// Stage is the length of the canary stage the data covers, which is
	// also the soak of the policy stage judged: every look of the stage
	// has data.
	Stage time.Duration
	// Exposure is the least time between a fault's onset and the end of
	// the stage: onsets are drawn in [0, Stage-Exposure), so that every
	// fault is visible for at least Exposure and recall is not lowered by
	// faults that start seconds before the stage ends.
	Exposure time.Duration
	// Prior is how long the canary served the policy's earlier stages
	// before the one judged (scenarios.Spec.Prior): it is judged on the
	// evidence of its whole life, as it would be in a rollout. 0: the
	// canary is born at the stage start.
	Prior time.Duration
	// PriorWeight is the canary's traffic in the prior stages as a share
	// of its traffic in the stage judged (scenarios.Spec.PriorWeight), in
	// (0, 1]; unused without Prior.
	PriorWeight float64
}

// DefaultGeometry fits the corpus to stage canary-50 of the phase-default
// policy (15m soak, 30 looks at 30 s) with at least 5 minutes of exposure,
// after the canary served stage canary-10 (10m at 10 % of the traffic, a
// fifth of its 50 %).
var DefaultGeometry = Geometry{Stage: 15 * time.Minute, Exposure: 5 * time.Minute, Prior: 10 * time.Minute, PriorWeight: 0.2}

// Corpus draws the benchmark corpus from seed: healthy and faulty cases from
// scenarios.Corpus(seed, healthy, faulty) and fullDrain cases drawn from a
// stream of their own, every one fitted to g. The same arguments always
// give the same cases.
func Corpus(seed int64, healthy, faulty, fullDrain int, g Geometry) []Case {
	var out []Case
	for _, s := range scenarios.Corpus(seed, healthy, faulty) {
		set := Healthy
		if s.Fault != nil {
			set = Faulty
		}
		out = append(out, Case{Set: set, Spec: g.fit(s)})
	}
	r := rand.New(rand.NewPCG(uint64(seed), 0xF1F1))
	base := scenarios.Corpus(int64(r.Uint64()>>1), fullDrain, 0)
	for i, s := range base {
		rate := math.Round(20*math.Pow(25, r.Float64())*100) / 100 // log-uniform in [20, 500]
		s.StableRate *= rate / s.CanaryRate
		s.CanaryRate = rate
		s.Fault = &scenarios.Fault{
			Kind:     scenarios.DrainMisrouting,
			Severity: 1,
			Onset:    time.Duration(r.Int64N(int64(scenarios.DefaultStage))).Truncate(time.Second),
			Scope:    scenarios.ScopeCanary,
		}
		s.Cutoffs, s.Drops = nil, nil
		s.Name = fmt.Sprintf("drain100-%03d", i)
		s.Namespace = s.Name
		s.Description = fmt.Sprintf("F1 (drain-misrouting) of every request, canary at %.4g requests/s, %s traffic", rate, s.Shape)
		out = append(out, Case{Set: FullDrain, Spec: g.fit(s)})
	}
	return out
}

// fit returns s with its stage shortened to g.Stage, after a prior stage
// of g.Prior at g.PriorWeight. scenarios.Corpus draws times for its
// default stage, after a warm-up without the canary: restarts and scrape
// gaps before the stage keep their place in that warm-up, those within
// it keep their relative position in the shortened stage (none falls in
// the prior stage), and the fault onset is scaled into
// [0, g.Stage-g.Exposure). The warm-up grows by g.Prior. Cutoffs keep
// their length: they are measured against the policy's windows, not the
// stage.
func (g Geometry) fit(s scenarios.Spec) scenarios.Spec {
	warm := s.WarmUp
	if warm == 0 {
		warm = scenarios.DefaultWarmUp
	}
	from := s.Stage
	if from == 0 {
		from = scenarios.DefaultStage
	}
	scale := func(d time.Duration, to time.Duration) time.Duration {
		return time.Duration(float64(d) * float64(to) / float64(from)).Truncate(time.Second)
	}
	inStage := func(at time.Duration) time.Duration {
		if at < warm {
			return at
		}
		return warm + g.Prior + scale(at-warm, g.Stage)
	}
	s.WarmUp, s.Stage = warm+g.Prior, g.Stage
	if g.Prior > 0 {
		s.Prior, s.PriorWeight = g.Prior, g.PriorWeight
	}
	s.Restarts = append([]scenarios.Restart(nil), s.Restarts...)
	for i := range s.Restarts {
		s.Restarts[i].At = inStage(s.Restarts[i].At)
	}
	s.Gaps = append([]scenarios.Gap(nil), s.Gaps...)
	for i := range s.Gaps {
		s.Gaps[i].At = inStage(s.Gaps[i].At)
	}
	if s.Fault != nil {
		f := *s.Fault
		f.Onset = scale(f.Onset, g.Stage-g.Exposure)
		s.Fault = &f
	}
	return s
}
