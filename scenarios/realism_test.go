package scenarios

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// The tests of this file check that what real exporters and servers do is
// in the generated data, not only in the spec: lazily created children,
// pods that die and are born mid-stage, counter resets, missing recent
// minutes and a canary build that stopped exporting a metric.

// lazyChildren are the labelled children a lazy exporter creates on first
// use: the family name and one of its labels.
var lazyChildren = []struct{ name, label string }{
	{"phase_requests_total", "phase"},
	{"phase_transitions_total", "to"},
	{"phase_observations_total", "agree"},
	{"phase_job_executions_total", "duplicate"},
}

// TestLazyChildren checks that a lazy exporter's data is the convention's
// data without the samples of children that had no event yet: a bad child
// appears only at its first event, with the count so far, after the stage
// starts, and the family's other children are still exported.
func TestLazyChildren(t *testing.T) {
	t.Parallel()
	convention := Spec{
		Name: "lazy", Seed: 31, CanaryRate: 20, CanaryPods: 2,
		Consumers: []string{"router", "worker"},
		// (A container restart may hide a reset of a lazy child from
		// increase(): see TestCounterResets.)
		Restarts: []Restart{{Version: Canary, Pod: 0, At: 16 * time.Minute, NewPod: true}},
		Fault:    &Fault{Kind: DrainMisrouting, Onset: 12 * time.Minute, Severity: 0.01},
	}
	lazy := convention
	lazy.LazyChildren = true
	sc, lc := mustGenerate(t, convention), mustGenerate(t, lazy)
	pc, pl := mustParse(t, "convention", sc.OpenMetrics), mustParse(t, "lazy", lc.OpenMetrics)
	if !lc.Truth.LazyChildren || sc.Truth.LazyChildren {
		t.Errorf("truth lazy_children: convention %v, lazy %v", sc.Truth.LazyChildren, lc.Truth.LazyChildren)
	}
	stageStart := ms(lc.Truth.StageStart)
	var bornLate, firstAboveZero, missing int
	for _, key := range pc.order {
		c := pc.series[key]
		lazyChild := slices.ContainsFunc(lazyChildren, func(lc struct{ name, label string }) bool {
			return c.labels.Get("__name__") == lc.name
		})
		l := pl.series[key]
		if !lazyChild {
			if l == nil || !slices.Equal(l.points, c.points) {
				t.Errorf("%s: not a labelled child, yet it differs with a lazy exporter", key)
			}
			continue
		}
		// The lazy series is the convention's without its zero samples
		// (a restarted process has no children until their next event).
		var want []parsedPoint
		for _, pt := range c.points {
			if pt.v > 0 {
				want = append(want, pt)
			}
		}
		if len(want) == 0 {
			missing++
			if l != nil {
				t.Errorf("%s: a child without events is exported by a lazy exporter", key)
			}
			continue
		}
		if l == nil {
			t.Errorf("%s: a child with events is missing", key)
			continue
		}
		if diff := cmp.Diff(want, l.points, cmp.AllowUnexported(parsedPoint{})); diff != "" {
			t.Errorf("%s: lazy samples differ from the convention's non-zero ones (-want +got):\n%s", key, diff)
		}
		if c.labels.Get("pod_template_hash") == lc.Truth.CanaryHash && c.labels.Get("phase") == "draining" {
			if l.points[0].t > stageStart {
				bornLate++
			}
			if l.points[0].v > 0 && l.points[0].t > c.points[0].t {
				firstAboveZero++
			}
		}
	}
	if bornLate == 0 || firstAboveZero == 0 {
		t.Errorf("canary draining children: %d first sampled after the stage start, %d first sampled above zero; want both", bornLate, firstAboveZero)
	}
	if missing == 0 {
		t.Error("every child had an event: the lazy exporter is not exercised")
	}
	// The family is still exported by every canary pod: its active child.
	for _, pod := range lc.Truth.CanaryPods {
		if len(pl.match("phase_requests_total", "pod", pod, "phase", "active")) != 1 {
			t.Errorf("canary pod %s: no phase_requests_total{phase=\"active\"}", pod)
		}
	}
	// Counting each child from zero at its birth gives the same events.
	from, to := stageStart, ms(lc.Truth.StageEnd)
	for _, q := range ratioQueries {
		for _, part := range []func(p *parsed, from, to int64, hash string) float64{q.bad, q.all} {
			if a, b := part(pc, from, to, lc.Truth.CanaryHash), part(pl, from, to, lc.Truth.CanaryHash); a != b {
				t.Errorf("%s: %g events with the convention, %g counted from zero with a lazy exporter", q.sli, a, b)
			}
		}
	}
}

// TestPodsDieAndAreBorn checks that a rescheduled canary pod's series end
// at its death and its successor's start after it, lazily or not.
func TestPodsDieAndAreBorn(t *testing.T) {
	t.Parallel()
	for _, lazy := range []bool{false, true} {
		t.Run(fmt.Sprint("lazy=", lazy), func(t *testing.T) {
			t.Parallel()
			s := Spec{Name: "churn", Seed: 5, CanaryRate: 30, LazyChildren: lazy,
				Restarts: []Restart{{Version: Canary, Pod: 0, At: 18 * time.Minute, NewPod: true}, {Version: Canary, Pod: 0, At: 28 * time.Minute, NewPod: true}}}
			sc := mustGenerate(t, s)
			p := mustParse(t, s.Name, sc.OpenMetrics)
			if len(sc.Truth.CanaryPods) != 3 || len(sc.Truth.Restarts) != 2 {
				t.Fatalf("canary pods %v, restarts %+v", sc.Truth.CanaryPods, sc.Truth.Restarts)
			}
			end := ms(sc.Truth.StageEnd)
			for i, pod := range sc.Truth.CanaryPods {
				born, died := ms(sc.Truth.StageStart)-canaryLead, end+1
				if i > 0 {
					born = ms(sc.Truth.Restarts[i-1].At)
				}
				if i < len(sc.Truth.Restarts) {
					died = ms(sc.Truth.Restarts[i].At)
				}
				series := p.match("phase_requests_total", "pod", pod)
				if len(series) == 0 {
					t.Fatalf("pod %s has no phase_requests_total", pod)
				}
				for _, se := range series {
					first, last := se.points[0].t, se.points[len(se.points)-1].t
					if first < born || last >= died {
						t.Errorf("%s: samples %d..%d outside the pod's life %d..%d", se.labels, first, last, born, died)
					}
					if i < len(sc.Truth.Restarts) && last < died-5*time.Minute.Milliseconds() && se.labels.Get("phase") == "active" {
						t.Errorf("%s: active series ends at %d, long before the pod dies at %d", se.labels, last, died)
					}
				}
			}
		})
	}
}

// TestCounterResets checks that a container restart drops the same
// series to zero (convention), or removes a lazy child until its next
// event, which then comes back with the count since the restart.
func TestCounterResets(t *testing.T) {
	t.Parallel()
	const down = 40 * time.Second
	s := Spec{Name: "reset", Seed: 8, CanaryRate: 40, Restarts: []Restart{{Version: Canary, Pod: 0, At: 20 * time.Minute, Downtime: down}}}
	sc := mustGenerate(t, s)
	p := mustParse(t, s.Name, sc.OpenMetrics)
	at, pod := ms(sc.Truth.Restarts[0].At), sc.Truth.Restarts[0].Pod
	active := p.match("phase_requests_total", "pod", pod, "phase", "active")
	if len(active) != 1 {
		t.Fatalf("%d active series of %s", len(active), pod)
	}
	dropped := false
	pts := active[0].points
	for i := 1; i < len(pts); i++ {
		if pts[i].t >= at && pts[i-1].t < at {
			dropped = pts[i].v < pts[i-1].v && pts[i].v <= 1
		}
	}
	if !dropped {
		t.Errorf("%s: active requests do not drop to zero at the restart %d", pod, at)
	}

	// While the restarted container serves nothing yet, the convention's
	// children are there at zero, a lazy exporter's are not; the lazy
	// active child comes back with the count since the restart.
	inDowntime := func(p *parsed) (samples int) {
		for _, se := range p.match("phase_requests_total", "pod", pod) {
			for _, pt := range se.points {
				if pt.t >= at && pt.t < at+down.Milliseconds() {
					samples++
				}
			}
		}
		return samples
	}
	if inDowntime(p) == 0 {
		t.Fatal("convention: no sample while the container restarts")
	}
	s.LazyChildren = true
	lc := mustGenerate(t, s)
	pl := mustParse(t, s.Name, lc.OpenMetrics)
	if n := inDowntime(pl); n != 0 {
		t.Errorf("lazy: %d samples while the restarted container serves nothing", n)
	}
	la := pl.match("phase_requests_total", "pod", pod, "phase", "active")
	if len(la) != 1 {
		t.Fatalf("lazy: %d active series of %s", len(la), pod)
	}
	back := slices.IndexFunc(la[0].points, func(pt parsedPoint) bool { return pt.t >= at })
	if back < 1 || la[0].points[back].v >= la[0].points[back-1].v {
		t.Errorf("lazy: active child does not come back lower after the restart: %v", la[0].points[max(back-1, 0):min(back+1, len(la[0].points))])
	}
}

// TestCutoffs checks that a cutoff leaves no application sample of its
// version in its last minutes, and what the truth says of it.
func TestCutoffs(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		version Version
		right   string
		wrong   []string
	}{
		{"canary", Canary, Hold, []string{Pass, Fail}},
		{"stable", Stable, Pass, []string{Fail}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := Spec{Name: "cut", Seed: 12, CanaryPods: 2, LazyChildren: true,
				Restarts: []Restart{{Version: Canary, Pod: 1, At: 30 * time.Minute, NewPod: true}},
				Cutoffs:  []Cutoff{{Version: tt.version, For: 150 * time.Second}}}
			sc := mustGenerate(t, s)
			p := mustParse(t, s.Name, sc.OpenMetrics)
			cut := ms(sc.Truth.StageEnd) - 150_000
			if len(sc.Truth.Cutoffs) != 1 || ms(sc.Truth.Cutoffs[0].At) != cut || sc.Truth.Cutoffs[0].Version != tt.version {
				t.Errorf("truth cutoffs %+v, want %s at %d", sc.Truth.Cutoffs, tt.version, cut)
			}
			hash := map[Version]string{Canary: sc.Truth.CanaryHash, Stable: sc.Truth.StableHash}
			for v, h := range hash {
				last := int64(0)
				for _, key := range p.order {
					se := p.series[key]
					if se.labels.Get("pod_template_hash") == h && strings.HasPrefix(se.family, "phase_") {
						last = max(last, se.points[len(se.points)-1].t)
					}
				}
				if cutHere := v == tt.version; cutHere != (last < cut) {
					t.Errorf("%s: last application sample at %d, cutoff at %d", v, last, cut)
				}
			}
			// kube-state-metrics goes on: the pods are there.
			for _, pod := range []string{sc.Truth.CanaryPods[0], sc.Truth.Restarts[0].NewPod} {
				ready := p.match("kube_pod_status_ready", "pod", pod)
				if len(ready) != 1 || ready[0].points[len(ready[0].points)-1].t < cut {
					t.Errorf("kube_pod_status_ready of %s ends before the cutoff", pod)
				}
			}
			if a := sc.Truth.Answer; a.Right != tt.right || !slices.Equal(a.Wrong, tt.wrong) || a.NoRecentData != (tt.version == Canary) {
				t.Errorf("answer %+v, want %s, wrong %v, no recent data %v", a, tt.right, tt.wrong, tt.version == Canary)
			}
		})
	}
}

// TestDrops checks that each Drop removes, from canary pods only, what the
// convention's query of its SLI selects, and that its events are still
// there under the new name.
func TestDrops(t *testing.T) {
	t.Parallel()
	// Each drop: the series the convention selects (name, label, value),
	// and the one the canary build exports instead ("" for none).
	tests := []struct {
		drop          Drop
		name          string
		pairs         []string
		instead       string
		insteadPairs  []string
		insteadEvents bool
	}{
		{DropSchemaErrors, "phase_schema_errors_total", nil, "phase_schema_failures_total", nil, true},
		{DropDuplicateValue, "phase_job_executions_total", []string{"duplicate", "true"}, "phase_job_executions_total", []string{"duplicate", "yes"}, true},
		{DropAgreeValue, "phase_observations_total", []string{"agree", "false"}, "phase_observations_total", []string{"agree", "no"}, true},
		{DropTransitions, "phase_transitions_total", nil, "", nil, false},
		{DropRetries, "phase_reconcile_retries_total", nil, "", nil, false},
		{DropPropagation, "phase_propagation_seconds_count", nil, "phase_propagation_duration_seconds_count", nil, true},
	}
	if len(tests) != len(Drops) {
		t.Fatalf("%d drops tested, %d defined", len(tests), len(Drops))
	}
	for i, tt := range tests {
		t.Run(string(tt.drop), func(t *testing.T) {
			t.Parallel()
			s := Spec{Name: "drop", Seed: int64(40 + i), CanaryRate: 200, Drops: []Drop{tt.drop},
				Fault: &Fault{Kind: SchemaMismatch, Severity: 0.05, Onset: time.Minute}}
			if tt.drop == DropDuplicateValue || tt.drop == DropRetries {
				s.Fault = &Fault{Kind: LeaderFlipOverlap, Severity: 0.05, Onset: time.Minute}
			}
			sc := mustGenerate(t, s)
			p := mustParse(t, s.Name, sc.OpenMetrics)
			canary := append([]string{"pod_template_hash", sc.Truth.CanaryHash}, tt.pairs...)
			stable := append([]string{"pod_template_hash", sc.Truth.StableHash}, tt.pairs...)
			if n := len(p.match(tt.name, canary...)); n != 0 {
				t.Errorf("canary: %d series of %s%v, want none", n, tt.name, tt.pairs)
			}
			if n := len(p.match(tt.name, stable...)); n == 0 {
				t.Errorf("stable: no %s%v, want it exported as before", tt.name, tt.pairs)
			}
			if tt.instead != "" {
				got := p.increase(ms(sc.Truth.StageStart), ms(sc.Truth.StageEnd), tt.instead, append([]string{"pod_template_hash", sc.Truth.CanaryHash}, tt.insteadPairs...)...)
				if tt.insteadEvents && got == 0 {
					t.Errorf("canary: no events in %s%v", tt.instead, tt.insteadPairs)
				}
			}
			want := DropTruth{Drop: tt.drop, SLI: DropSLI(tt.drop)}
			if len(sc.Truth.Drops) != 1 || sc.Truth.Drops[0] != want || want.SLI == "" {
				t.Errorf("truth drops %+v, want %+v", sc.Truth.Drops, want)
			}
			if a := sc.Truth.Answer; !a.IsWrong(Pass) || !slices.Equal(a.Hidden, []string{want.SLI}) {
				t.Errorf("answer %+v: a pass must be wrong when the canary build hides %s", a, want.SLI)
			}
		})
	}
}

// TestAnswer checks the right answer of each kind of scenario.
func TestAnswer(t *testing.T) {
	t.Parallel()
	f1 := func(sev float64, onset time.Duration, scope Scope) *Fault {
		return &Fault{Kind: DrainMisrouting, Severity: sev, Onset: onset, Scope: scope}
	}
	cut := func(v Version, d time.Duration) []Cutoff { return []Cutoff{{Version: v, For: d}} }
	tests := []struct {
		name  string
		spec  Spec
		right string
		wrong []string
	}{
		{"healthy", Spec{}, Pass, []string{Fail}},
		{"healthy, lazy", Spec{LazyChildren: true}, Pass, []string{Fail}},
		{"healthy, canary cut", Spec{Cutoffs: cut(Canary, 90*time.Second)}, Hold, []string{Pass, Fail}},
		{"healthy, stable cut", Spec{Cutoffs: cut(Stable, 90*time.Second)}, Pass, []string{Fail}},
		{"healthy, drop", Spec{Drops: []Drop{DropRetries}}, Hold, []string{Pass}},
		// A gap on the one canary pod over the last 2 minutes is a cutoff.
		{"healthy, gap at the end", Spec{Gaps: []Gap{{Version: Canary, At: 38 * time.Minute, For: 5 * time.Minute}}}, Hold, []string{Pass, Fail}},
		{"healthy, gap on one of two pods", Spec{CanaryPods: 2, Gaps: []Gap{{Version: Canary, At: 38 * time.Minute, For: 5 * time.Minute}}}, Pass, []string{Fail}},
		{"fault", Spec{Fault: f1(0.02, 5*time.Minute, "")}, Fail, []string{Pass}},
		{"fault, lazy", Spec{LazyChildren: true, Fault: f1(0.02, 5*time.Minute, "")}, Fail, []string{Pass}},
		{"fault seen before the cutoff", Spec{Cutoffs: cut(Canary, 2*time.Minute), Fault: f1(0.02, 5*time.Minute, "")}, Fail, []string{Pass}},
		{"fault after the cutoff", Spec{Cutoffs: cut(Canary, 4*time.Minute), Fault: f1(0.02, 27*time.Minute, "")}, Hold, []string{Pass}},
		{"fault hidden by a drop", Spec{Drops: []Drop{DropDuplicateValue}, Fault: &Fault{Kind: LeaderFlipOverlap, Severity: 0.02, Onset: time.Minute}}, Hold, []string{Pass}},
		{"fault beside a drop", Spec{Drops: []Drop{DropSchemaErrors}, Fault: &Fault{Kind: SchemaMismatch, Severity: 0.02, Onset: time.Minute}}, Fail, []string{Pass}},
		{"fault under budget", Spec{Fault: f1(0.0003, 5*time.Minute, "")}, Pass, nil},
		{"fault on both", Spec{Fault: f1(0.02, 5*time.Minute, ScopeBoth)}, Hold, []string{Pass, Fail}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.spec.Name, tt.spec.Seed = "answer", int64(60+i)
			a := mustGenerate(t, tt.spec).Truth.Answer
			if a.Right != tt.right || !slices.Equal(a.Wrong, tt.wrong) || a.Why == "" {
				t.Errorf("answer %+v, want %s, wrong %v, and a reason", a, tt.right, tt.wrong)
			}
		})
	}
}

// TestCorpusRealism checks that the corpus holds every behaviour, in the
// shares Corpus documents, with most services on the convention.
func TestCorpusRealism(t *testing.T) {
	t.Parallel()
	const n = 1000
	specs := Corpus(7, n/2, n/2)
	var lazy, churn, resets, canaryCut, stableCut, drops int
	for _, s := range specs {
		if err := s.WithDefaults().Validate(); err != nil {
			t.Error(err)
		}
		if s.LazyChildren {
			lazy++
		}
		for _, r := range s.Restarts {
			if r.Version == Canary && r.NewPod {
				churn++
			} else if !r.NewPod {
				resets++
			}
		}
		for _, c := range s.Cutoffs {
			if c.Version == Canary {
				canaryCut++
			} else {
				stableCut++
			}
		}
		drops += len(s.Drops)
	}
	share := func(name string, got int, lo, hi float64) {
		if f := float64(got) / n; f < lo || f > hi {
			t.Errorf("%s in %.1f %% of specs, want %g..%g %%", name, 100*f, 100*lo, 100*hi)
		}
	}
	share("lazy children", lazy, 0.25, 0.35)
	share("canary cutoffs", canaryCut, 0.05, 0.11)
	share("stable cutoffs", stableCut, 0.02, 0.06)
	share("drops", drops, 0.035, 0.085)
	share("rescheduled canary pods", churn, 0.15, 0.5)
	share("container restarts", resets, 0.15, 0.35)

	// A canary cutoff is never a pass, whatever else the spec holds.
	checked := 0
	for _, s := range specs {
		if len(s.Cutoffs) == 0 || s.Cutoffs[0].Version != Canary || checked == 8 {
			continue
		}
		checked++
		if a := mustGenerate(t, s).Truth.Answer; !a.IsWrong(Pass) {
			t.Errorf("%s: answer %+v with no recent canary data", s.Name, a)
		}
	}
}
