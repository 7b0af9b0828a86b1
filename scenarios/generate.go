package scenarios

import (
	"math"
	"slices"
)

// Scenario is a generated scenario.
type Scenario struct {
	// Spec is the Spec it was generated from, with defaults applied.
	Spec Spec
	// OpenMetrics is the data: OpenMetrics text with timestamps, ending in
	// "# EOF\n".
	OpenMetrics []byte
	Truth       Truth
}

// Generate validates spec, with its defaults applied, and generates its
// data and truth. The same spec always yields the same bytes.
func Generate(spec Spec) (Scenario, error) {
	s := spec.WithDefaults()
	if err := s.Validate(); err != nil {
		return Scenario{}, err
	}
	p := newPlan(s)
	g := newGenerator(p)
	g.run()
	return Scenario{Spec: s, OpenMetrics: writeOpenMetrics(g.families()), Truth: p.truth()}, nil
}

// Per-tick traffic noise: the rate of a version in one scrape interval is
// the nominal rate times a log-normal factor of mean 1 and this sigma, so
// counts are overdispersed like real traffic, not plain Poisson.
const trafficSigma = 0.1

// Istio response classes, in output order.
var istioClasses = [...]struct{ code, flags string }{
	{"200", "-"},
	{"503", "UH"}, // no healthy upstream
	{"503", "UF"}, // upstream connection failure
}

// uhShare is the share of requests reaching a draining or stopped instance
// that the proxy reports as 503 UH; the rest are 503 UF.
const uhShare = 0.7

// podState holds a pod's counters and series.
type podState struct {
	*pod
	schema, retries int64
	tr              [len(transitions)]int64
	obs             [][2]int64 // per consumer: agree true, false
	jobs            [2]int64   // duplicate false, true
	hist            histPoint

	// streams
	rReq, rObs, rJobs, rProp, rRetry *rng

	reqs [len(phases)]int64

	// series, created on the first sample
	sReq    [len(phases)]*series
	sTr     [len(transitions)]*series
	sObs    [][2]*series
	sJobs   [2]*series
	sSchema *series
	sHist   *series
	sRetry  *series
	sReady  *series
	sLabels *series
	// created is set once the application series exist.
	created bool
}

type generator struct {
	p     *plan
	pods  []*podState
	fams  map[string]*family
	order []string
	// istio counters and series per version
	istio  map[Version]*[len(istioClasses)]int64
	sIstio map[Version]*[len(istioClasses)]*series
	noise  map[Version]*rng
	rIstio map[Version]*rng
}

func newGenerator(p *plan) *generator {
	g := &generator{
		p:      p,
		fams:   map[string]*family{},
		istio:  map[Version]*[len(istioClasses)]int64{},
		sIstio: map[Version]*[len(istioClasses)]*series{},
		noise:  map[Version]*rng{},
		rIstio: map[Version]*rng{},
	}
	def := func(name string, typ metricType, unit, help string) {
		g.fams[name] = &family{name: name, typ: typ, unit: unit, help: help}
		g.order = append(g.order, name)
	}
	def("phase_requests", counterType, "", "Requests served, by phase of the serving instance.")
	def("phase_transitions", counterType, "", "Phase transitions of the instance.")
	def("phase_observations", counterType, "", "Observations of the instance's phase by a consumer, by whether they agreed with it.")
	def("phase_job_executions", counterType, "", "Job executions, by whether another instance already ran the job.")
	def("phase_schema_errors", counterType, "", "Requests that failed on a schema of the wrong phase.")
	def("phase_propagation_seconds", histogramType, "seconds", "Seconds from a phase change until every consumer saw it.")
	def("phase_reconcile_retries", counterType, "", "Reconcile loop retries.")
	def("kube_pod_status_ready", gaugeType, "", "Describes whether the pod is ready to serve requests.")
	def("kube_pod_labels", gaugeType, "", "Kubernetes labels converted to Prometheus labels.")
	def("istio_requests", counterType, "", "Requests seen by the source proxy.")
	// The names a canary build with a Drop exports instead.
	def("phase_schema_failures", counterType, "", "Requests that failed on a schema of the wrong phase.")
	def("phase_propagation_duration_seconds", histogramType, "seconds", "Seconds from a phase change until every consumer saw it.")

	s := p.spec
	for _, v := range []Version{Stable, Canary} {
		g.istio[v] = &[len(istioClasses)]int64{}
		g.sIstio[v] = &[len(istioClasses)]*series{}
		g.noise[v] = newRNG(s.Seed, "traffic/"+string(v))
		g.rIstio[v] = newRNG(s.Seed, "istio/"+string(v))
	}
	for _, pd := range p.pods {
		ps := &podState{
			pod:    pd,
			obs:    make([][2]int64, len(s.Consumers)),
			sObs:   make([][2]*series, len(s.Consumers)),
			rReq:   newRNG(s.Seed, "requests/"+pd.name),
			rObs:   newRNG(s.Seed, "observations/"+pd.name),
			rJobs:  newRNG(s.Seed, "jobs/"+pd.name),
			rProp:  newRNG(s.Seed, "propagation/"+pd.name),
			rRetry: newRNG(s.Seed, "retries/"+pd.name),
		}
		g.pods = append(g.pods, ps)
	}
	return g
}

func (g *generator) families() []*family {
	out := make([]*family, 0, len(g.order))
	for _, n := range g.order {
		out = append(out, g.fams[n])
	}
	return out
}

// run simulates every scrape interval and records a sample of every live
// series at every scrape.
func (g *generator) run() {
	p := g.p
	g.history()
	g.scrape(p.start)
	for t := p.start + p.interval; t <= p.end; t += p.interval {
		g.tick(t-p.interval, t)
		g.scrape(t)
	}
}

// history fills the counters of pods that started before the data.
func (g *generator) history() {
	p := g.p
	bg := *p.spec.Background
	hist := newRNG(p.spec.Seed, "istio-history")
	for _, ps := range g.pods {
		if !ps.history {
			continue
		}
		secs := float64(p.start-ps.born) / 1000
		rate := p.baseRate(ps.version, p.start) * ps.weight / p.weights[ps.version]
		ps.tr[trInitActive] = 1
		flaps := ps.rReq.poisson(bg.FlapsPerHour * secs / 3600)
		toInit := ps.rReq.binomial(flaps, 0.3)
		ps.tr[trActiveDraining] += flaps - toInit
		ps.tr[trDrainingActive] += flaps - toInit
		ps.tr[trActiveInit] += toInit
		ps.tr[trInitActive] += toInit
		g.events(ps, rate*secs, 0, 0)
		g.flows(ps, rate, secs, 0, 0, 0)
	}
	// The source proxies have run longer than any pod.
	secs := hist.uniform(48, 96) * 3600
	v := Stable
	n := hist.poisson(p.baseRate(v, p.start) * secs)
	bad := hist.binomial(n, bg.DrainFailure*0.7) // draining and stopped shares
	uh := hist.binomial(bad, uhShare)
	c := g.istio[v]
	c[0], c[1], c[2] = n-bad, uh, bad-uh
}

// events draws the requests of a pod given their expected count, and
// counts them by phase and schema error: f1 is the share of requests sent to
// draining instances by the fault, f3 the share of schema errors.
func (g *generator) events(ps *podState, expected, f1, f3 float64) {
	bg := g.p.spec.Background
	r := ps.rReq
	n := r.poisson(expected)
	fault := r.binomial(n, f1)
	rest := n - fault
	bad := r.binomial(rest, bg.DrainFailure)
	init := r.binomial(bad, 0.3)
	stopped := r.binomial(bad-init, 0.2)
	ps.reqs[phInit] += init
	ps.reqs[phActive] += rest - bad
	ps.reqs[phDraining] += fault + bad - init - stopped
	ps.reqs[phStopped] += stopped
	ps.schema += r.mixed(n, f3, bg.SchemaError)

	// The source proxy sees every request; those served by a draining or
	// stopped instance fail.
	failed := fault + bad - init
	ri := g.rIstio[ps.version]
	uh := ri.binomial(failed, uhShare)
	c := g.istio[ps.version]
	c[0] += n - failed
	c[1] += uh
	c[2] += failed - uh
}

// flows draws the observations, job executions, propagations and retries
// of a pod serving rate requests per second during secs seconds, under the
// fault shares fMismatch (observations that disagree), fDup (duplicate jobs)
// and fSlow (propagations slower than 2 s).
func (g *generator) flows(ps *podState, rate, secs, fMismatch, fDup, fSlow float64) {
	bg := g.p.spec.Background
	for i := range ps.obs {
		m := ps.rObs.poisson((obsPerRequest*rate + obsHeartbeat) * secs)
		bad := ps.rObs.mixed(m, fMismatch, bg.Mismatch)
		ps.obs[i][0] += m - bad
		ps.obs[i][1] += bad
	}
	j := ps.rJobs.poisson(math.Max(minJobRate, jobsPerRequest*rate) * secs)
	dup := ps.rJobs.mixed(j, fDup, bg.Duplicate)
	ps.jobs[0] += j - dup
	ps.jobs[1] += dup

	r := ps.rProp
	k := r.poisson(propagationRate * secs)
	slow := r.mixed(k, fSlow, bg.SlowPropagation)
	for i := int64(0); i < k; i++ {
		var d int64 // milliseconds
		if i < slow {
			// Slow: 2 s plus a log-normal delay of median 1.2 s.
			d = max(2001, int64(math.Round((2+r.lognormal(1.2, 0.9))*1000)))
		} else {
			// Fast: log-normal of median 120 ms, cut at 2 s.
			x := r.lognormal(0.12, 0.9)
			for x > 2 {
				x = r.lognormal(0.12, 0.9)
			}
			d = max(1, int64(math.Round(x*1000)))
		}
		ps.hist.sumMs += d
		for b, bb := range bucketBounds {
			if bb.max < 0 || d <= bb.max {
				ps.hist.buckets[b]++
				break
			}
		}
	}
	ps.retries += ps.rRetry.poisson(bg.RetriesPerHour / 3600 * secs)
}

// tick draws the events of the scrape interval (lo, hi].
func (g *generator) tick(lo, hi int64) {
	p := g.p
	noise := map[Version]float64{}
	for _, v := range []Version{Stable, Canary} {
		noise[v] = math.Exp(trafficSigma*g.noise[v].NormFloat64() - trafficSigma*trafficSigma/2)
	}
	for _, ps := range g.pods {
		if !ps.alive(hi) {
			continue
		}
		from := lo
		if at, ok := ps.lastReset(lo, hi); ok {
			ps.reset()
			from = at
		}
		for _, e := range ps.events {
			if e.t > from && e.t <= hi {
				ps.tr[e.tr]++
			}
		}
		share := ps.weight / p.weights[ps.version]
		for _, seg := range ps.serving(from, hi, p.canaryStart, p.stageStart, p.onset) {
			secs := float64(seg.to-seg.from) / 1000
			mid := (seg.from + seg.to) / 2
			rate := p.baseRate(ps.version, mid) * p.shape(mid) * noise[ps.version] * share
			var f1, f2, f3, f5 float64
			if seg.from >= p.onset {
				f1 = p.faultSeverity(ps.version, DrainMisrouting)
				f2 = p.faultSeverity(ps.version, LeaderFlipOverlap)
				f3 = p.faultSeverity(ps.version, SchemaMismatch)
				f5 = p.faultSeverity(ps.version, MissingAnnouncements)
			}
			g.events(ps, rate*secs, f1, f3)
			g.flows(ps, rate, secs, either(f5, f3/2), f2, f5)
		}
	}
}

// reset sets every counter of a restarted pod to zero.
func (ps *podState) reset() {
	ps.reqs = [len(phases)]int64{}
	ps.schema, ps.retries = 0, 0
	ps.tr = [len(transitions)]int64{}
	for i := range ps.obs {
		ps.obs[i] = [2]int64{}
	}
	ps.jobs = [2]int64{}
	ps.hist = histPoint{}
}

// scrape records a sample of every live series at t.
func (g *generator) scrape(t int64) {
	p := g.p
	s := p.spec
	for _, ps := range g.pods {
		if !ps.alive(t) {
			continue
		}
		if ps.sReady == nil {
			ps.sReady = g.fams["kube_pod_status_ready"].add(
				label{"namespace", s.Namespace}, label{"pod", ps.name}, label{"condition", "true"})
			ps.sLabels = g.fams["kube_pod_labels"].add(
				label{"namespace", s.Namespace}, label{"pod", ps.name},
				label{"label_app", s.Service}, label{"label_rollouts_pod_template_hash", ps.hash})
		}
		ready := int64(0)
		if ps.ready(t) {
			ready = 1
		}
		ps.sReady.points = append(ps.sReady.points, point{t, ready})
		ps.sLabels.points = append(ps.sLabels.points, point{t, 1})
		if ps.inGap(t) {
			continue
		}
		if !ps.created {
			g.createPodSeries(ps)
		}
		// A labelled child of a lazy exporter exists from its first event
		// since the process started; a dropped export has no series.
		child := func(se *series, v int64) {
			if se != nil && (v > 0 || !s.LazyChildren) {
				se.points = append(se.points, point{t, v})
			}
		}
		for i := range phases {
			child(ps.sReq[i], ps.reqs[i])
		}
		for i := range transitions {
			child(ps.sTr[i], ps.tr[i])
		}
		for i := range ps.obs {
			for j := range 2 {
				child(ps.sObs[i][j], ps.obs[i][j])
			}
		}
		for j := range 2 {
			child(ps.sJobs[j], ps.jobs[j])
		}
		ps.sSchema.points = append(ps.sSchema.points, point{t, ps.schema})
		if ps.sHist != nil {
			h := ps.hist
			h.t = t
			ps.sHist.hist = append(ps.sHist.hist, h)
		}
		if ps.sRetry != nil {
			ps.sRetry.points = append(ps.sRetry.points, point{t, ps.retries})
		}
	}
	// Istio creates a series on its first request.
	for _, v := range []Version{Stable, Canary} {
		hash := s.StableHash
		if v == Canary {
			hash = s.CanaryHash
		}
		for i, c := range istioClasses {
			n := g.istio[v][i]
			se := g.sIstio[v][i]
			if se == nil {
				if n == 0 {
					continue
				}
				se = g.fams["istio_requests"].add(
					label{"reporter", "source"},
					label{"destination_service_name", s.Service},
					label{"destination_workload_namespace", s.Namespace},
					label{"destination_version", hash},
					label{"response_code", c.code},
					label{"response_flags", c.flags})
				g.sIstio[v][i] = se
			}
			se.points = append(se.points, point{t, n})
		}
	}
}

// createPodSeries creates the application series of a pod. Every label
// combination starts at zero, as the Prometheus instrumentation guide
// recommends, so ratios have a denominator from the first scrape; with
// Spec.LazyChildren a labelled child gets its first sample at its first
// event instead (see scrape). A canary pod exports its Spec.Drops: a
// renamed family, a bad label value spelled another way, or no series.
func (g *generator) createPodSeries(ps *podState) {
	s := g.p.spec
	ps.created = true
	base := func(extra ...label) []label {
		return append([]label{
			{"namespace", s.Namespace}, {"service", s.Service},
			{"pod_template_hash", ps.hash}, {"pod", ps.name},
		}, extra...)
	}
	drops := func(d Drop) bool { return ps.version == Canary && slices.Contains(s.Drops, d) }
	for i, ph := range phases {
		ps.sReq[i] = g.fams["phase_requests"].add(base(label{"phase", ph})...)
	}
	if !drops(DropTransitions) {
		for i, tr := range transitions {
			ps.sTr[i] = g.fams["phase_transitions"].add(base(label{"from", tr.from}, label{"to", tr.to})...)
		}
	}
	disagree, duplicate := "false", "true"
	if drops(DropAgreeValue) {
		disagree = "no"
	}
	if drops(DropDuplicateValue) {
		duplicate = "yes"
	}
	for i, c := range s.Consumers {
		ps.sObs[i][0] = g.fams["phase_observations"].add(base(label{"consumer", c}, label{"agree", "true"})...)
		ps.sObs[i][1] = g.fams["phase_observations"].add(base(label{"consumer", c}, label{"agree", disagree})...)
	}
	ps.sJobs[0] = g.fams["phase_job_executions"].add(base(label{"duplicate", "false"})...)
	ps.sJobs[1] = g.fams["phase_job_executions"].add(base(label{"duplicate", duplicate})...)
	schema, prop := "phase_schema_errors", "phase_propagation_seconds"
	if drops(DropSchemaErrors) {
		schema = "phase_schema_failures"
	}
	if drops(DropPropagation) {
		prop = "phase_propagation_duration_seconds"
	}
	ps.sSchema = g.fams[schema].add(base()...)
	ps.sHist = g.fams[prop].add(base()...)
	if !drops(DropRetries) {
		ps.sRetry = g.fams["phase_reconcile_retries"].add(base()...)
	}
}
