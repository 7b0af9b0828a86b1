package scenarios

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/common/model"
)

var update = flag.Bool("update", false, "regenerate the embedded demo scenarios in data/")

func mustGenerate(t *testing.T, s Spec) Scenario {
	t.Helper()
	sc, err := Generate(s)
	if err != nil {
		t.Fatalf("Generate(%q): %v", s.Name, err)
	}
	return sc
}

func mustParse(t *testing.T, name string, b []byte) *parsed {
	t.Helper()
	p, err := parseOM(b)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return p
}

func TestEmbeddedDataIsFresh(t *testing.T) {
	if *update {
		if err := WriteDir("data", DemoSpecs()); err != nil {
			t.Fatal(err)
		}
	}
	t.Parallel()
	bundled := Demo()
	if len(bundled) != len(DemoSpecs()) {
		t.Fatalf("Demo() returned %d scenarios, want %d: run go generate ./scenarios/", len(bundled), len(DemoSpecs()))
	}
	for _, b := range bundled {
		t.Run(b.Name, func(t *testing.T) {
			t.Parallel()
			sc := mustGenerate(t, b.Spec)
			if !bytes.Equal(sc.OpenMetrics, b.OpenMetrics) {
				t.Errorf("data/%s.om differs from a fresh generation: run go generate ./scenarios/", b.Name)
			}
			if diff := cmp.Diff(sc.Truth, b.Truth); diff != "" {
				t.Errorf("Demo() truth differs from a fresh generation (-want +got):\n%s", diff)
			}
			want, err := sc.Truth.MarshalIndent()
			if err != nil {
				t.Fatal(err)
			}
			got, err := data.ReadFile("data/" + b.Name + ".truth.json")
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(string(want), string(got)); diff != "" {
				t.Errorf("data/%s.truth.json differs from a fresh generation: run go generate ./scenarios/ (-want +got):\n%s", b.Name, diff)
			}
			// A few hundred KB each, give or take: see DemoSpecs.
			if n := len(b.OpenMetrics); n > 1500<<10 {
				t.Errorf("data/%s.om is %d bytes, more than 1.5 MiB", b.Name, n)
			}
		})
	}
}

func TestDemo(t *testing.T) {
	t.Parallel()
	var names []string
	for _, b := range Demo() {
		names = append(names, b.Name)
		if b.Description == "" || b.Truth.Description != b.Description {
			t.Errorf("%s: description %q, truth description %q", b.Name, b.Description, b.Truth.Description)
		}
	}
	want := []string{"healthy", "drain-misrouting", "flapping", "thin-traffic", "stable-also-bad"}
	if diff := cmp.Diff(want, names); diff != "" {
		t.Errorf("Demo() names (-want +got):\n%s", diff)
	}
	b, ok := Lookup("drain-misrouting")
	if !ok || b.Truth.Fault == nil || b.Truth.Fault.Kind != DrainMisrouting {
		t.Errorf("Lookup(drain-misrouting) = %+v, %v", b.Truth.Fault, ok)
	}
	if _, ok := Lookup("nope"); ok {
		t.Error("Lookup(nope) found a scenario")
	}
	for _, b := range Demo() {
		tr := b.Truth
		if !tr.StageStart.Equal(time.Date(2026, 1, 1, 0, 10, 0, 0, time.UTC)) || !tr.StageEnd.Equal(time.Date(2026, 1, 1, 0, 40, 0, 0, time.UTC)) {
			t.Errorf("%s: stage %s..%s, want 00:10..00:40", b.Name, tr.StageStart, tr.StageEnd)
		}
	}
}

func TestGenerateIsDeterministic(t *testing.T) {
	t.Parallel()
	specs := append(DemoSpecs()[1:2], Corpus(3, 1, 2)...)
	for _, s := range specs {
		a, b := mustGenerate(t, s), mustGenerate(t, s)
		if !bytes.Equal(a.OpenMetrics, b.OpenMetrics) {
			t.Errorf("%s: two generations differ", s.Name)
		}
		s.Seed++
		c := mustGenerate(t, s)
		if bytes.Equal(a.OpenMetrics, c.OpenMetrics) {
			t.Errorf("%s: another seed gives the same bytes", s.Name)
		}
	}
}

// TestFaultLeavesBackgroundAlone checks that each purpose draws from its own
// stream: adding a fault changes nothing before its onset.
func TestFaultLeavesBackgroundAlone(t *testing.T) {
	t.Parallel()
	faulty := DemoSpecs()[1]
	healthy := faulty
	healthy.Fault = nil
	pf := mustParse(t, "faulty", mustGenerate(t, faulty).OpenMetrics)
	ph := mustParse(t, "healthy", mustGenerate(t, healthy).OpenMetrics)
	onset := ms(faulty.WithDefaults().StageStart().Add(faulty.Fault.Onset))
	for _, key := range ph.order {
		a, b := ph.series[key], pf.series[key]
		if b == nil {
			t.Errorf("series %s missing with the fault", key)
			continue
		}
		for i, p := range a.points {
			if p.t >= onset {
				break
			}
			if b.points[i] != p {
				t.Errorf("%s at %d: %v with the fault, %v without", key, p.t, b.points[i], p)
				break
			}
		}
	}
}

func TestOutputParses(t *testing.T) {
	t.Parallel()
	specs := append(DemoSpecs(), Corpus(11, 4, 12)...)
	// Label values that need escaping.
	odd := DemoSpecs()[0]
	odd.Name, odd.Namespace, odd.Consumers = "odd", "a\"b\\c\nd", []string{`r"1`, "w\\2"}
	specs = append(specs, odd)
	for _, s := range specs {
		t.Run(s.Name, func(t *testing.T) {
			t.Parallel()
			sc := mustGenerate(t, s)
			if !bytes.HasSuffix(sc.OpenMetrics, []byte("\n# EOF\n")) {
				t.Error("data does not end with # EOF")
			}
			p := mustParse(t, s.Name, sc.OpenMetrics)
			sp := sc.Spec
			start, end, step := ms(sp.Start), ms(sp.StageEnd()), sp.ScrapeInterval.Milliseconds()
			families := map[string]bool{}
			validLE := map[string]bool{}
			for _, b := range bucketBounds {
				validLE[b.le] = true
			}
			for _, key := range p.order {
				se := p.series[key]
				families[se.family] = true
				for _, pt := range se.points {
					if pt.t < start || pt.t > end || (pt.t-start)%step != 0 {
						t.Fatalf("%s: sample at %d off the scrape grid", key, pt.t)
					}
				}
				if le := se.labels.Get("le"); le != "" && !validLE[le] {
					t.Errorf("%s: le %q was rewritten by the parser", key, le)
				}
				if ns := se.labels.Get("namespace"); ns != "" && ns != sp.Namespace {
					t.Errorf("%s: namespace %q, want %q", key, ns, sp.Namespace)
				}
			}
			for _, f := range []string{"phase_requests", "phase_transitions", "phase_observations", "phase_job_executions",
				"phase_schema_errors", "phase_propagation_seconds", "phase_reconcile_retries",
				"kube_pod_status_ready", "kube_pod_labels", "istio_requests"} {
				if !families[f] {
					t.Errorf("family %s missing", f)
				}
			}
			// Every pod of the truth has its series, labelled with its hash.
			for _, v := range []struct {
				hash string
				pods []string
			}{{sc.Truth.StableHash, sc.Truth.StablePods}, {sc.Truth.CanaryHash, sc.Truth.CanaryPods}} {
				for _, pod := range v.pods {
					// A lazy exporter has the children that had an event.
					switch n := len(p.match("phase_requests_total", "pod", pod, "pod_template_hash", v.hash)); {
					case n > len(phases), n < len(phases) && !sp.LazyChildren:
						t.Errorf("pod %s: %d phase_requests_total series with hash %s, want %d", pod, n, v.hash, len(phases))
					}
					if len(p.match("phase_schema_errors_total", "pod", pod, "pod_template_hash", v.hash))+
						len(p.match("phase_schema_failures_total", "pod", pod, "pod_template_hash", v.hash)) != 1 {
						t.Errorf("pod %s: no schema error counter with hash %s", pod, v.hash)
					}
					if len(p.match("kube_pod_labels", "pod", pod, "label_rollouts_pod_template_hash", v.hash)) != 1 {
						t.Errorf("pod %s: no kube_pod_labels with hash %s", pod, v.hash)
					}
				}
			}
			if len(p.match("istio_requests_total", "destination_version", sc.Truth.CanaryHash, "response_code", "200")) != 1 {
				t.Error("no istio_requests_total 200 for the canary")
			}
		})
	}
}

// TestCountersAreMonotonic checks that counters only fall at the restarts
// the truth lists, and histograms stay consistent.
func TestCountersAreMonotonic(t *testing.T) {
	t.Parallel()
	specs := append(DemoSpecs(), Corpus(5, 5, 5)...)
	resets := 0
	for _, s := range specs {
		sc := mustGenerate(t, s)
		p := mustParse(t, s.Name, sc.OpenMetrics)
		restarts := map[string][]int64{}
		for _, r := range sc.Truth.Restarts {
			if r.NewPod == "" {
				restarts[r.Pod] = append(restarts[r.Pod], ms(r.At))
			}
		}
		for _, key := range p.order {
			se := p.series[key]
			if se.typ != model.MetricTypeCounter && se.typ != model.MetricTypeHistogram {
				continue
			}
			for i := 1; i < len(se.points); i++ {
				prev, cur := se.points[i-1], se.points[i]
				if cur.v >= prev.v {
					continue
				}
				designed := slices.ContainsFunc(restarts[se.labels.Get("pod")], func(r int64) bool { return r > prev.t && r <= cur.t })
				if !designed {
					t.Errorf("%s: %s falls from %g to %g at %d without a restart", s.Name, key, prev.v, cur.v, cur.t)
				}
				resets++
			}
		}
		// _count equals the +Inf bucket.
		for _, c := range p.match("phase_propagation_seconds_count") {
			inf := p.match("phase_propagation_seconds_bucket", "pod", c.labels.Get("pod"), "le", "+Inf")
			if len(inf) != 1 || !slices.Equal(inf[0].points, c.points) {
				t.Errorf("%s: %s differs from its +Inf bucket", s.Name, c.labels)
			}
		}
	}
	if resets == 0 {
		t.Error("no counter reset in the whole set: restarts are not simulated")
	}
}

// ratio is bad / all events of the canary in [from, to].
type ratioQuery struct {
	sli       string
	bad, all  func(p *parsed, from, to int64, hash string) float64
	minEvents float64 // below this many events the ratio is not checked
}

func inc(name string, pairs ...string) func(p *parsed, from, to int64, hash string) float64 {
	return func(p *parsed, from, to int64, hash string) float64 {
		return p.increase(from, to, name, append([]string{"pod_template_hash", hash}, pairs...)...)
	}
}

var ratioQueries = []ratioQuery{
	{SLIDrainFailure, inc("phase_requests_total", "phase", "!active"), inc("phase_requests_total"), 20000},
	{SLIPhaseMismatch, inc("phase_observations_total", "agree", "false"), inc("phase_observations_total"), 20000},
	{SLIDuplicate, inc("phase_job_executions_total", "duplicate", "true"), inc("phase_job_executions_total"), 20000},
	{SLISchemaErrors, inc("phase_schema_errors_total"), inc("phase_requests_total"), 20000},
	{SLISlowPropagation, func(p *parsed, from, to int64, hash string) float64 {
		return inc("phase_propagation_seconds_count")(p, from, to, hash) - inc("phase_propagation_seconds_bucket", "le", "2.0")(p, from, to, hash)
	}, inc("phase_propagation_seconds_count"), 3000},
}

func flapsOf(p *parsed, from, to int64, hash string) float64 {
	return inc("phase_transitions_total", "from", "draining", "to", "active")(p, from, to, hash) +
		inc("phase_transitions_total", "from", "active", "to", "init")(p, from, to, hash)
}

func TestHealthyIsUnderBudget(t *testing.T) {
	t.Parallel()
	specs := []Spec{DemoSpecs()[0], DemoSpecs()[3]}
	// Mostly specs with enough traffic to check ratios, and a few thin ones.
	thin := 0
	for _, s := range Corpus(21, 40, 0) {
		if s.CanaryRate >= 10 || thin < 2 {
			specs = append(specs, s)
		}
		if s.CanaryRate < 10 {
			thin++
		}
		if len(specs) == 12 {
			break
		}
	}
	checked := 0
	for _, s := range specs {
		sc := mustGenerate(t, s)
		p := mustParse(t, s.Name, sc.OpenMetrics)
		from, to := ms(sc.Truth.StageStart), ms(sc.Truth.StageEnd)
		hours := float64(to-from) / 3.6e6
		for _, q := range ratioQueries {
			bad, all := q.bad(p, from, to, sc.Truth.CanaryHash), q.all(p, from, to, sc.Truth.CanaryHash)
			if all < q.minEvents {
				continue
			}
			checked++
			if r := bad / all; r >= defaultBudgets[q.sli] {
				t.Errorf("%s: %s ratio %.5f (%g/%g) over the budget %g", s.Name, q.sli, r, bad, all, defaultBudgets[q.sli])
			}
		}
		if f := flapsOf(p, from, to, sc.Truth.CanaryHash) / hours; f > defaultBudgets[SLIFlaps] {
			t.Errorf("%s: %.2f flaps per hour", s.Name, f)
		}
		if r := inc("phase_reconcile_retries_total")(p, from, to, sc.Truth.CanaryHash) / hours; r > defaultBudgets[SLIReconcileRetries] {
			t.Errorf("%s: %.2f reconcile retries per hour", s.Name, r)
		}
		if sc.Truth.Fault != nil {
			t.Errorf("%s: healthy scenario has a fault", s.Name)
		}
	}
	if checked < 20 {
		t.Errorf("only %d ratios had enough events to check", checked)
	}
}

// TestFaultMatchesSeverity checks that after the onset the canary's bad
// share is the severity (plus background) within sampling error.
func TestFaultMatchesSeverity(t *testing.T) {
	t.Parallel()
	type tc struct {
		kind FaultKind
		sev  float64
	}
	var cases []tc
	for _, k := range FaultKinds {
		for _, sev := range []float64{0.003, 0.05, 1} {
			cases = append(cases, tc{k, sev})
		}
	}
	for i, c := range cases {
		t.Run(fmt.Sprintf("%s-%g", c.kind, c.sev), func(t *testing.T) {
			t.Parallel()
			s := Spec{
				Name: "sev", Seed: int64(1000 + i), CanaryRate: 200, CanaryPods: 2, Shape: Shapes[i%3],
				Consumers: []string{"router", "worker"},
				Fault:     &Fault{Kind: c.kind, Severity: c.sev, Onset: 5 * time.Minute},
			}
			sc := mustGenerate(t, s)
			p := mustParse(t, s.Name, sc.OpenMetrics)
			// From the first scrape after the onset to the end.
			onset := ms(sc.Truth.Fault.Onset)
			from := onset + sc.Spec.ScrapeInterval.Milliseconds()
			to := ms(sc.Truth.StageEnd)
			checked := 0
			for _, q := range ratioQueries {
				want, ok := sc.Truth.Fault.CanaryBurn[q.sli]
				if !ok {
					continue
				}
				checked++
				want *= defaultBudgets[q.sli]
				bad, all := q.bad(p, from, to, sc.Truth.CanaryHash), q.all(p, from, to, sc.Truth.CanaryHash)
				got := bad / all
				tol := 5*math.Sqrt(want*(1-want)/all) + 0.05*want
				if math.Abs(got-want) > tol {
					t.Errorf("%s: ratio %.5f (%g/%g), want %.5f ± %.5f", q.sli, got, bad, all, want, tol)
				}
				// The stable version is untouched.
				sb, sa := q.bad(p, from, to, sc.Truth.StableHash), q.all(p, from, to, sc.Truth.StableHash)
				if sa > 0 && sb/sa > defaultBudgets[q.sli] && sb/sa > want/2 {
					t.Errorf("%s: stable ratio %.5f with a canary-only fault", q.sli, sb/sa)
				}
			}
			if want, ok := sc.Truth.Fault.CanaryBurn[SLIFlaps]; ok {
				checked++
				hours := float64(to-from) / 3.6e6
				wantN := want * defaultBudgets[SLIFlaps] * hours
				got := flapsOf(p, from, to, sc.Truth.CanaryHash)
				if tol := 5*math.Sqrt(wantN) + 0.1*wantN + 2; math.Abs(got-wantN) > tol {
					t.Errorf("flaps: %g in %.2f h, want %.1f ± %.1f", got, hours, wantN, tol)
				}
			}
			if checked == 0 {
				t.Errorf("no SLI checked for %s", c.kind)
			}
			if c.kind == DrainMisrouting {
				// Istio sees the misrouted requests as 503.
				failed := p.increase(from, to, "istio_requests_total", "destination_version", sc.Truth.CanaryHash, "response_code", "503")
				all := p.increase(from, to, "istio_requests_total", "destination_version", sc.Truth.CanaryHash)
				if got := failed / all; got < 0.8*c.sev {
					t.Errorf("istio 503 share %.5f, want about %g", got, c.sev)
				}
			}
		})
	}
}

func TestScopeBothHitsStable(t *testing.T) {
	t.Parallel()
	b, _ := Lookup("stable-also-bad")
	p := mustParse(t, b.Name, b.OpenMetrics)
	from, to := ms(b.Truth.Fault.Onset)+15000, ms(b.Truth.StageEnd)
	q := ratioQueries[0]
	for _, hash := range []string{b.Truth.CanaryHash, b.Truth.StableHash} {
		if r := q.bad(p, from, to, hash) / q.all(p, from, to, hash); math.Abs(r-0.05) > 0.01 {
			t.Errorf("%s: drain-failure ratio %.4f, want 0.05", hash, r)
		}
	}
	if b.Truth.Fault.StableBurn[SLIDrainFailure] < 40 {
		t.Errorf("stable burn %v", b.Truth.Fault.StableBurn)
	}
}

func TestGapsAndRestarts(t *testing.T) {
	t.Parallel()
	b, _ := Lookup("healthy")
	p := mustParse(t, b.Name, b.OpenMetrics)
	if len(b.Truth.Gaps) != 1 || len(b.Truth.Restarts) != 1 {
		t.Fatalf("healthy: gaps %v, restarts %v", b.Truth.Gaps, b.Truth.Restarts)
	}
	g := b.Truth.Gaps[0]
	for _, se := range p.match("phase_requests_total", "pod", g.Pod) {
		for _, pt := range se.points {
			if pt.t >= ms(g.From) && pt.t < ms(g.To) {
				t.Errorf("sample at %d inside the gap %s..%s", pt.t, g.From, g.To)
			}
		}
	}
	r := b.Truth.Restarts[0]
	ready := p.match("kube_pod_status_ready", "pod", r.Pod)
	if len(ready) != 1 {
		t.Fatalf("kube_pod_status_ready of %s: %d series", r.Pod, len(ready))
	}
	for _, pt := range ready[0].points {
		want := 1.0
		if pt.t >= ms(r.Unready) && pt.t < ms(r.Ready) {
			want = 0
		}
		if pt.v != want {
			t.Errorf("ready at %d = %g, want %g", pt.t, pt.v, want)
		}
	}

	// A restart with a new pod name ends one pod's series and starts another's.
	s := Spec{Name: "newpod", Seed: 9, StablePods: 1, Restarts: []Restart{{Version: Stable, Pod: 0, At: 20 * time.Minute, NewPod: true}}}
	sc := mustGenerate(t, s)
	p = mustParse(t, s.Name, sc.OpenMetrics)
	rt := sc.Truth.Restarts[0]
	if rt.NewPod == "" || !slices.Contains(sc.Truth.StablePods, rt.NewPod) {
		t.Fatalf("restart truth %+v, stable pods %v", rt, sc.Truth.StablePods)
	}
	oldS, newS := p.match("phase_reconcile_retries_total", "pod", rt.Pod), p.match("phase_reconcile_retries_total", "pod", rt.NewPod)
	if len(oldS) != 1 || len(newS) != 1 {
		t.Fatalf("old %d series, new %d series", len(oldS), len(newS))
	}
	if last, first := oldS[0].points[len(oldS[0].points)-1].t, newS[0].points[0].t; last >= ms(rt.At) || first < ms(rt.At) {
		t.Errorf("old pod's last sample %d, new pod's first %d, restart %d", last, first, ms(rt.At))
	}
}

func TestCorpus(t *testing.T) {
	t.Parallel()
	a, b := Corpus(42, 40, 160), Corpus(42, 40, 160)
	if diff := cmp.Diff(a, b); diff != "" {
		t.Fatalf("Corpus is not deterministic:\n%s", diff)
	}
	if len(a) != 200 {
		t.Fatalf("%d specs, want 200", len(a))
	}
	names := map[string]bool{}
	kinds := map[FaultKind]int{}
	shapes := map[Shape]int{}
	both, healthy, restarts, gaps := 0, 0, 0, 0
	minRate, maxRate, minSev, maxSev := math.Inf(1), 0.0, math.Inf(1), 0.0
	for _, s := range a {
		if err := s.WithDefaults().Validate(); err != nil {
			t.Error(err)
		}
		if names[s.Name] {
			t.Errorf("duplicate name %s", s.Name)
		}
		names[s.Name] = true
		shapes[s.Shape]++
		minRate, maxRate = min(minRate, s.CanaryRate), max(maxRate, s.CanaryRate)
		restarts += len(s.Restarts)
		gaps += len(s.Gaps)
		if s.Fault == nil {
			healthy++
			continue
		}
		kinds[s.Fault.Kind]++
		minSev, maxSev = min(minSev, s.Fault.Severity), max(maxSev, s.Fault.Severity)
		if s.Fault.Scope == ScopeBoth {
			both++
		}
	}
	if healthy != 40 || len(kinds) != len(FaultKinds) || len(shapes) != len(Shapes) {
		t.Errorf("healthy %d, kinds %v, shapes %v", healthy, kinds, shapes)
	}
	if both < 5 || both > 35 {
		t.Errorf("%d of 160 faults with scope both, want about 10 %%", both)
	}
	if minRate < 0.2 || maxRate > 500 || minRate > 1 || maxRate < 100 {
		t.Errorf("canary rates in [%g, %g], want spread over [0.2, 500]", minRate, maxRate)
	}
	if minSev < 0.001 || maxSev > 1 || minSev > 0.005 || maxSev < 0.3 {
		t.Errorf("severities in [%g, %g], want spread over [0.001, 1]", minSev, maxSev)
	}
	if restarts == 0 || gaps == 0 {
		t.Errorf("%d restarts, %d gaps", restarts, gaps)
	}
	if c := Corpus(43, 40, 160); cmp.Equal(a, c) {
		t.Error("another seed gives the same corpus")
	}
}

func TestWriteDir(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "out")
	specs := Corpus(8, 1, 1)
	if err := WriteDir(dir, specs); err != nil {
		t.Fatal(err)
	}
	for _, s := range specs {
		om, err := os.ReadFile(filepath.Join(dir, s.Name+".om"))
		if err != nil {
			t.Fatal(err)
		}
		mustParse(t, s.Name, om)
		raw, err := os.ReadFile(filepath.Join(dir, s.Name+".truth.json"))
		if err != nil {
			t.Fatal(err)
		}
		var tr Truth
		if err := json.Unmarshal(raw, &tr); err != nil {
			t.Fatal(err)
		}
		if tr.Name != s.Name || tr.Seed != s.Seed || (tr.Fault == nil) != (s.Fault == nil) {
			t.Errorf("truth %+v for spec %s", tr, s.Name)
		}
		if tr.Fault != nil && !strings.Contains(string(raw), `"onset": "2026-01-01T00:`) {
			t.Errorf("onset not in RFC 3339: %s", raw)
		}
	}
	if err := WriteDir(dir, []Spec{{Name: "Bad Name"}}); err == nil {
		t.Error("WriteDir accepted an invalid spec")
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		spec Spec
		want []string // substrings of the error, all reported at once
	}{
		{"ok", Spec{Name: "ok"}, nil},
		{"name", Spec{Name: "Has Space"}, []string{"name:"}},
		{"rates", Spec{Name: "r", CanaryRate: -1, StableRate: 1e9}, []string{"canary_rate:", "stable_rate:"}},
		{"same hash", Spec{Name: "h", StableHash: "x", CanaryHash: "x"}, []string{"canary_hash:"}},
		{"fault", Spec{Name: "f", Fault: &Fault{Kind: "F9", Severity: 2, Onset: time.Hour, Scope: "all"}},
			[]string{"fault.kind:", "fault.severity:", "fault.onset:", "fault.scope:"}},
		{"restart", Spec{Name: "r", Restarts: []Restart{{Version: "blue", At: time.Minute}, {Version: Canary, Pod: 3, At: time.Minute}}},
			[]string{"restarts[0].version:", "restarts[1].pod:", "restarts[1].at:"}},
		{"gap", Spec{Name: "g", Gaps: []Gap{{Version: Stable, At: -time.Second}}}, []string{"gaps[0].at:", "gaps[0].for:"}},
		{"interval", Spec{Name: "i", ScrapeInterval: time.Millisecond}, []string{"scrape_interval:"}},
		{"shape", Spec{Name: "s", Shape: "spiky"}, []string{"shape:"}},
		{"consumers", Spec{Name: "c", Consumers: []string{"a", "a"}}, []string{"consumers[1]:"}},
		{"cutoffs", Spec{Name: "c", Cutoffs: []Cutoff{{Version: "blue", For: time.Minute}, {Version: Canary, For: time.Second}, {Version: Canary, For: time.Hour}}},
			[]string{"cutoffs[0].version:", "cutoffs[1].for:", "cutoffs[2].for:", "cutoffs[2].version:"}},
		{"drops", Spec{Name: "d", Drops: []Drop{"everything", DropRetries, DropRetries}}, []string{"drops[0]:", "drops[2]:"}},
		{"prior", Spec{Name: "p", Prior: 10 * time.Minute, PriorWeight: 0.2}, nil},
		{"prior negative", Spec{Name: "p", Prior: -time.Minute, PriorWeight: 0.5}, []string{"prior:", "prior_weight:"}},
		{"prior without warm-up", Spec{Name: "p", WarmUp: 10 * time.Minute, Prior: 10 * time.Minute, PriorWeight: 0.2}, []string{"prior:"}},
		{"prior weight missing", Spec{Name: "p", Prior: 5 * time.Minute}, []string{"prior_weight:"}},
		{"prior weight over 1", Spec{Name: "p", Prior: 5 * time.Minute, PriorWeight: 1.5}, []string{"prior_weight:"}},
		{"prior weight alone", Spec{Name: "p", PriorWeight: 0.2}, []string{"prior_weight:"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := tt.spec.WithDefaults().Validate()
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("Validate() = %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate() = nil, want %v", tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate() = %v, want it to contain %q", err, w)
				}
			}
			if _, gerr := Generate(tt.spec); gerr == nil {
				t.Error("Generate accepted an invalid spec")
			}
		})
	}
}

func TestFormatMillis(t *testing.T) {
	t.Parallel()
	for in, want := range map[int64]string{0: "0", 1500: "1.5", 2000: "2", 1767225600000: "1767225600", 1767225600125: "1767225600.125", 5: "0.005", -1500: "-1.5"} {
		if got := formatMillis(in); got != want {
			t.Errorf("formatMillis(%d) = %q, want %q", in, got, want)
		}
	}
	if got := escapeLabelValue("a\"b\\c\nd"); got != `a\"b\\c\nd` {
		t.Errorf("escapeLabelValue = %q", got)
	}
}
