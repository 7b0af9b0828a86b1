package scenarios

import (
	"cmp"
	"math"
	"slices"
	"time"
)

// This file lays out everything about a scenario that is not an event
// count: pods and their names, lifetimes, restarts, flaps, gaps and the
// traffic shape. All times are Unix milliseconds.

// interval is the half-open time range [from, to) in Unix milliseconds.
type interval struct{ from, to int64 }

func (i interval) contains(t int64) bool { return t >= i.from && t < i.to }

// Transitions of phase_transitions_total, in output order. The first three
// and init->active are the normal lifecycle; draining->active and
// active->init go back to an earlier phase: they are flaps.
var transitions = [...]struct{ from, to string }{
	{"init", "active"},
	{"active", "draining"},
	{"draining", "stopped"},
	{"draining", "active"},
	{"active", "init"},
}

const (
	trInitActive = iota
	trActiveDraining
	trDrainingStopped
	trDrainingActive
	trActiveInit
)

// Phases of phase_requests_total, in output order.
var phases = [...]string{"init", "active", "draining", "stopped"}

const (
	phInit = iota
	phActive
	phDraining
	phStopped
)

// Lifecycle timings of a pod, in milliseconds.
const (
	startupMs  = 5000  // from container start to ready (init->active)
	drainMs    = 8000  // from draining (unready) to exit
	stopMs     = 1000  // from stopped to exit
	canaryLead = 30000 // canary pods start this long before their traffic (Spec.CanaryStart)
)

// event is one phase transition of a pod at time t.
type event struct {
	t  int64
	tr int
}

// pod is one incarnation of a pod: a restart with NewPod ends one pod and
// starts another in the same slot.
type pod struct {
	version Version
	hash    string
	name    string
	slot    int
	weight  float64 // share of its version's traffic
	// born and died bound the pod's life; died is math.MaxInt64 for a pod
	// alive at the end. A pod born before the data starts has history.
	born, died int64
	history    bool
	// resets are the times of same-name restarts: counters drop to zero.
	resets []int64
	// down are the times the process is not serving: starting up, or
	// restarting.
	down []interval
	// unready are the times kube_pod_status_ready is 0.
	unready []interval
	events  []event
	gaps    []interval
}

func (p *pod) alive(t int64) bool { return t >= p.born && t < p.died }

func (p *pod) ready(t int64) bool {
	for _, u := range p.unready {
		if u.contains(t) {
			return false
		}
	}
	return true
}

func (p *pod) inGap(t int64) bool {
	for _, g := range p.gaps {
		if g.contains(t) {
			return true
		}
	}
	return false
}

// lastReset returns the last same-name restart in (lo, hi], or lo.
func (p *pod) lastReset(lo, hi int64) (int64, bool) {
	at, ok := lo, false
	for _, r := range p.resets {
		if r > lo && r <= hi {
			at, ok = r, true
		}
	}
	return at, ok
}

// serving returns the parts of (lo, hi] in which p serves, split at cuts.
func (p *pod) serving(lo, hi int64, cuts ...int64) []interval {
	segs := []interval{{max(lo, p.born), min(hi, p.died)}}
	for _, d := range p.down {
		var next []interval
		for _, s := range segs {
			if d.to <= s.from || d.from >= s.to {
				next = append(next, s)
				continue
			}
			if d.from > s.from {
				next = append(next, interval{s.from, d.from})
			}
			if d.to < s.to {
				next = append(next, interval{d.to, s.to})
			}
		}
		segs = next
	}
	for _, c := range cuts {
		var next []interval
		for _, s := range segs {
			if c > s.from && c < s.to {
				next = append(next, interval{s.from, c}, interval{c, s.to})
			} else {
				next = append(next, s)
			}
		}
		segs = next
	}
	return slices.DeleteFunc(segs, func(s interval) bool { return s.to <= s.from })
}

// appSamples returns the most application samples any pod of version v
// has in (from, to]: the samples an increase() over that range reads.
func (p *plan) appSamples(v Version, from, to int64) int {
	most := 0
	for _, pd := range p.pods {
		if pd.version != v {
			continue
		}
		n := 0
		// Scrapes fall on p.start + k*p.interval.
		t := p.start + max(0, (from-p.start)/p.interval+1)*p.interval
		for ; t <= to; t += p.interval {
			if t > from && pd.alive(t) && !pd.inGap(t) {
				n++
			}
		}
		most = max(most, n)
	}
	return most
}

// burst multiplies the request rate during [from, to).
type burst struct {
	interval
	factor float64
}

// plan is a Spec laid out in time.
type plan struct {
	spec                    Spec
	start, stageStart, end  int64
	canaryStart             int64 // stageStart-Prior: the canary's traffic starts
	interval                int64 // scrape interval in milliseconds
	onset                   int64 // fault onset; math.MaxInt64 without a fault
	pods                    []*pod
	weights                 map[Version]float64 // sum of slot weights
	diurnalPhase            float64
	bursts                  []burst
	restartTruth            []RestartTruth
	gapTruth                []GapTruth
	cutoffTruth             []CutoffTruth
	initialNames, allByVers map[Version][]string
}

func ms(t time.Time) int64 { return t.UnixMilli() }

func newPlan(s Spec) *plan {
	p := &plan{
		spec:        s,
		start:       ms(s.Start),
		stageStart:  ms(s.StageStart()),
		canaryStart: ms(s.CanaryStart()),
		end:         ms(s.StageEnd()),
		interval:    s.ScrapeInterval.Milliseconds(),
		onset:       math.MaxInt64,
		weights:     map[Version]float64{},
		allByVers:   map[Version][]string{},
	}
	if s.Fault != nil {
		p.onset = p.stageStart + s.Fault.Onset.Milliseconds()
	}
	names := newRNG(s.Seed, "names")
	newName := func(v Version) string {
		hash := s.StableHash
		if v == Canary {
			hash = s.CanaryHash
		}
		n := s.Service + "-" + hash + "-" + names.suffix(5)
		p.allByVers[v] = append(p.allByVers[v], n)
		return n
	}
	hist := newRNG(s.Seed, "history")
	slots := map[Version][]*pod{}
	for _, v := range []Version{Stable, Canary} {
		n, hash := s.StablePods, s.StableHash
		if v == Canary {
			n, hash = s.CanaryPods, s.CanaryHash
		}
		for i := range n {
			pd := &pod{version: v, hash: hash, name: newName(v), slot: i, died: math.MaxInt64}
			// Uneven load balancing: each pod takes 90 % to 110 % of a
			// fair share.
			pd.weight = names.uniform(0.9, 1.1)
			p.weights[v] += pd.weight
			if v == Stable {
				pd.born = p.start - int64(hist.uniform(1, 48)*float64(time.Hour.Milliseconds()))
				pd.history = true
				pd.events = nil // init->active is part of the history
			} else {
				pd.born = p.canaryStart - canaryLead
				pd.down = append(pd.down, interval{pd.born, pd.born + startupMs})
				pd.unready = append(pd.unready, interval{pd.born, pd.born + startupMs})
				pd.events = append(pd.events, event{pd.born + startupMs, trInitActive})
			}
			slots[v] = append(slots[v], pd)
			p.pods = append(p.pods, pd)
		}
	}
	p.initialNames = map[Version][]string{Stable: slices.Clone(p.allByVers[Stable]), Canary: slices.Clone(p.allByVers[Canary])}

	// current returns the incarnation of a slot alive at t.
	current := func(v Version, slot int, t int64) *pod {
		var found *pod
		for _, pd := range p.pods {
			if pd.version == v && pd.slot == slot && pd.born <= t {
				found = pd
			}
		}
		return found
	}
	restarts := slices.Clone(s.Restarts)
	slices.SortStableFunc(restarts, func(a, b Restart) int { return cmp.Compare(a.At, b.At) })
	for _, r := range restarts {
		at := p.start + r.At.Milliseconds()
		down := r.Downtime.Milliseconds()
		old := current(r.Version, r.Pod, at)
		old.events = append(old.events, event{at - drainMs, trActiveDraining}, event{at - stopMs, trDrainingStopped})
		rt := RestartTruth{Version: r.Version, Pod: old.name, At: time.UnixMilli(at).UTC(),
			Unready: time.UnixMilli(at - drainMs).UTC(), Ready: time.UnixMilli(at + down).UTC()}
		if r.NewPod {
			old.died = at
			old.unready = append(old.unready, interval{at - drainMs, at})
			nw := &pod{version: old.version, hash: old.hash, name: newName(r.Version), slot: old.slot,
				weight: old.weight, born: at, died: math.MaxInt64}
			nw.down = append(nw.down, interval{at, at + down})
			nw.unready = append(nw.unready, interval{at, at + down})
			nw.events = append(nw.events, event{at + down, trInitActive})
			p.pods = append(p.pods, nw)
			rt.NewPod = nw.name
		} else {
			old.resets = append(old.resets, at)
			old.down = append(old.down, interval{at, at + down})
			old.unready = append(old.unready, interval{at - drainMs, at + down})
			old.events = append(old.events, event{at + down, trInitActive})
		}
		p.restartTruth = append(p.restartTruth, rt)
	}
	for _, g := range s.Gaps {
		from := p.start + g.At.Milliseconds()
		to := min(from+g.For.Milliseconds(), p.end+1)
		at := from
		if g.Version == Canary {
			at = max(from, p.canaryStart-canaryLead) // a gap may start before the canary
		}
		pd := current(g.Version, g.Pod, at)
		for _, q := range p.pods {
			if q.version == g.Version && q.slot == g.Pod {
				q.gaps = append(q.gaps, interval{from, to})
			}
		}
		p.gapTruth = append(p.gapTruth, GapTruth{Version: g.Version, Pod: pd.name,
			From: time.UnixMilli(from).UTC(), To: time.UnixMilli(to).UTC()})
	}
	// A cutoff is a gap on every pod of its version, from End-For on.
	for _, c := range s.Cutoffs {
		from := p.end - c.For.Milliseconds()
		for _, q := range p.pods {
			if q.version != c.Version || q.died <= from {
				continue
			}
			q.gaps = append(q.gaps, interval{from, p.end + 1})
			p.gapTruth = append(p.gapTruth, GapTruth{Version: c.Version, Pod: q.name,
				From: time.UnixMilli(from).UTC(), To: time.UnixMilli(p.end + 1).UTC()})
		}
		p.cutoffTruth = append(p.cutoffTruth, CutoffTruth{Version: c.Version, At: time.UnixMilli(from).UTC()})
	}
	for _, pd := range p.pods {
		p.planFlaps(pd)
		slices.SortStableFunc(pd.events, func(a, b event) int { return cmp.Compare(a.t, b.t) })
	}
	p.planShape()
	return p
}

// affected tells whether the fault hits pods of version v.
func (p *plan) affected(v Version) bool {
	f := p.spec.Fault
	return f != nil && (v == Canary || f.Scope == ScopeBoth)
}

// faultSeverity returns the fault's severity for pods of version v if the
// fault is of kind k, else 0.
func (p *plan) faultSeverity(v Version, k FaultKind) float64 {
	if p.affected(v) && p.spec.Fault.Kind == k {
		return p.spec.Fault.Severity
	}
	return 0
}

// planFlaps lays out readiness flaps: the background rate all along, plus
// the F4 rate after the onset. A flap lasts 3 s to 10 s; the next one starts
// after an exponential wait chosen so that the flaps per hour match the
// target rate.
func (p *plan) planFlaps(pd *pod) {
	r := newRNG(p.spec.Seed, "flaps/"+pd.name)
	bg := p.spec.Background.FlapsPerHour
	fault := p.faultSeverity(pd.version, ReadinessFlapping) * flapsPerHourAtFull
	from := max(pd.born+startupMs, p.start)
	to := min(pd.died, p.end+1)
	busy := func(a, b int64) bool {
		for _, u := range pd.unready {
			if a < u.to+10000 && b > u.from-10000 {
				return true
			}
		}
		return false
	}
	var episodes []interval
	t := from
	for t < to {
		perHour := bg
		if t >= p.onset {
			perHour += fault
		}
		if perHour <= 0 {
			if t < p.onset && p.onset < to {
				t = p.onset
				continue
			}
			break
		}
		// Mean cycle of 3600/perHour seconds, of which meanFlapSeconds flapping.
		waitMean := math.Max(3600/perHour-meanFlapSeconds, 0.5)
		start := t + int64(r.ExpFloat64()*waitMean*1000)
		if t < p.onset && start >= p.onset && fault > 0 {
			t = p.onset // the rate changes at the onset; waits are memoryless
			continue
		}
		dur := int64(r.uniform(3, 10) * 1000)
		kind := r.Float64()
		if start+dur >= to {
			break
		}
		t = start + dur
		if busy(start, start+dur) {
			continue
		}
		episodes = append(episodes, interval{start, start + dur})
		if kind < 0.7 {
			pd.events = append(pd.events, event{start, trActiveDraining}, event{start + dur, trDrainingActive})
		} else {
			pd.events = append(pd.events, event{start, trActiveInit}, event{start + dur, trInitActive})
		}
	}
	pd.unready = append(pd.unready, episodes...)
}

// planShape draws the diurnal phase and the bursts.
func (p *plan) planShape() {
	r := newRNG(p.spec.Seed, "shape")
	switch p.spec.Shape {
	case Diurnal:
		p.diurnalPhase = r.uniform(0, 2*math.Pi)
	case Bursty:
		const perHour = 6
		t := p.start - 3*time.Minute.Milliseconds()
		for {
			t += int64(r.ExpFloat64() * 3600 / perHour * 1000)
			if t > p.end {
				break
			}
			dur := int64(r.uniform(30, 180) * 1000)
			p.bursts = append(p.bursts, burst{interval{t, t + dur}, r.uniform(2, 6)})
		}
	}
}

// shape returns the traffic multiplier at t; its mean over time is about 1
// for Steady and Diurnal and above 1 for Bursty.
func (p *plan) shape(t int64) float64 {
	switch p.spec.Shape {
	case Diurnal:
		day := float64(24 * time.Hour.Milliseconds())
		return 1 + 0.5*math.Sin(2*math.Pi*float64(t-p.start)/day+p.diurnalPhase)
	case Bursty:
		f := 1.0
		for _, b := range p.bursts {
			if b.contains(t) {
				f += b.factor - 1
			}
		}
		return f
	}
	return 1
}

// baseRate returns the mean request rate of version v at t, in requests
// per second, before the shape: see the table of Spec.
func (p *plan) baseRate(v Version, t int64) float64 {
	s := p.spec
	switch {
	case v == Canary && t >= p.stageStart:
		return s.CanaryRate
	case v == Canary && t >= p.canaryStart:
		return s.CanaryRate * s.PriorWeight
	case v == Canary:
		return 0
	case t >= p.stageStart:
		return s.StableRate
	case t >= p.canaryStart:
		return s.StableRate + s.CanaryRate*(1-s.PriorWeight)
	}
	return s.StableRate + s.CanaryRate
}

// truth returns the scenario's Truth.
func (p *plan) truth() Truth {
	s := p.spec
	b := *s.Background
	t := Truth{
		Name:           s.Name,
		Description:    s.Description,
		Seed:           s.Seed,
		Namespace:      s.Namespace,
		Service:        s.Service,
		CanaryHash:     s.CanaryHash,
		StableHash:     s.StableHash,
		CanaryPods:     p.allByVers[Canary],
		StablePods:     p.allByVers[Stable],
		Start:          s.Start,
		End:            s.StageEnd(),
		StageStart:     s.StageStart(),
		StageEnd:       s.StageEnd(),
		CanaryStart:    s.CanaryStart(),
		PriorRate:      s.CanaryRate * s.PriorWeight,
		ScrapeInterval: modelDuration(s.ScrapeInterval),
		CanaryRate:     s.CanaryRate,
		StableRate:     s.StableRate,
		Shape:          s.Shape,
		Background: BackgroundTruth{
			DrainFailure:    b.DrainFailure,
			Mismatch:        b.Mismatch,
			Duplicate:       b.Duplicate,
			SchemaError:     b.SchemaError,
			SlowPropagation: b.SlowPropagation,
			FlapsPerHour:    b.FlapsPerHour,
			RetriesPerHour:  b.RetriesPerHour,
			CanaryBurn:      burns(b, s.CanaryPods, nil),
		},
		Restarts:     append([]RestartTruth{}, p.restartTruth...),
		Gaps:         append([]GapTruth{}, p.gapTruth...),
		LazyChildren: s.LazyChildren,
		Cutoffs:      append([]CutoffTruth{}, p.cutoffTruth...),
		Drops:        []DropTruth{},
		Answer:       p.answer(),
	}
	for _, d := range s.Drops {
		t.Drops = append(t.Drops, DropTruth{Drop: d, SLI: DropSLI(d)})
	}
	if f := s.Fault; f != nil {
		ft := &FaultTruth{
			Kind:       f.Kind,
			Name:       f.Kind.Name(),
			Scope:      f.Scope,
			Onset:      s.StageStart().Add(f.Onset),
			Severity:   f.Severity,
			Parameter:  faultParameter[f.Kind],
			CanaryBurn: burns(b, s.CanaryPods, f),
		}
		if f.Scope == ScopeBoth {
			ft.StableBurn = burns(b, s.StablePods, f)
		}
		t.Fault = ft
	}
	return t
}
