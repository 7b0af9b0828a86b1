package scenarios

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// priorZeroSpecs are the specs whose output TestPriorZeroIsByteIdentical
// pins: the demo specs and a corpus with every realism behaviour (lazy
// children, rescheduled and restarted pods, gaps, cutoffs, drops), at the
// default stage and fitted to a 15m stage as the benchmark does.
func priorZeroSpecs() []Spec {
	specs := DemoSpecs()
	for _, s := range Corpus(20260101, 10, 20) {
		specs = append(specs, s)
		short := s
		short.Name += "-15m"
		short.Stage = 15 * time.Minute
		short.Restarts, short.Gaps, short.Cutoffs = nil, nil, nil
		if f := s.Fault; f != nil {
			g := *f
			g.Onset = f.Onset / 3
			short.Fault = &g
		}
		specs = append(specs, short)
	}
	return specs
}

// TestPriorZeroIsByteIdentical checks that a spec without a prior stage
// (Prior 0) generates the bytes the generator gave before Spec.Prior
// existed: testdata/prior-zero.sha256 holds, per spec, the SHA-256 of its
// OpenMetrics and of its truth JSON as generated at commit e456acc.
func TestPriorZeroIsByteIdentical(t *testing.T) {
	t.Parallel()
	path := filepath.Join("testdata", "prior-zero.sha256")
	var b strings.Builder
	for _, s := range priorZeroSpecs() {
		sc := mustGenerate(t, s)
		tj, err := sc.Truth.MarshalIndent()
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "%x %x %s\n", sha256.Sum256(sc.OpenMetrics), sha256.Sum256(tj), s.Name)
	}
	got := b.String()
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(string(want), got); diff != "" {
		t.Errorf("output without a prior stage differs from %s (-want +got):\n%s", path, diff)
	}
}

// TestPriorStage checks the canary's prior stage in the generated data:
// its pods start 30 s before CanaryStart and count no request before it;
// from CanaryStart to the stage start the canary serves about
// CanaryRate×PriorWeight requests per second, stable the rest of the
// total, with the stage's background errors; then the stage as without a
// prior stage.
func TestPriorStage(t *testing.T) {
	t.Parallel()
	const (
		rate, weight = 50.0, 0.2
		drain        = 0.02 // background drain failure share, high enough to count
		prior        = 10 * time.Minute
	)
	bg := DefaultBackground()
	bg.DrainFailure = drain
	base := Spec{Name: "prior", Seed: 41, CanaryRate: rate, Stage: 15 * time.Minute, Background: &bg,
		Prior: prior, PriorWeight: weight}
	lazy := base
	lazy.Name, lazy.LazyChildren = "prior-lazy", true
	churn := base
	churn.Name, churn.CanaryPods = "prior-churn", 2
	churn.Restarts = []Restart{{Version: Canary, Pod: 1, At: DefaultWarmUp + prior + 4*time.Minute, NewPod: true}}
	bursty := base
	bursty.Name, bursty.Shape = "prior-bursty", Bursty
	for _, s := range []Spec{base, lazy, churn, bursty} {
		t.Run(s.Name, func(t *testing.T) {
			t.Parallel()
			sc := mustGenerate(t, s)
			tr := sc.Truth
			if want := tr.StageStart.Add(-prior); !tr.CanaryStart.Equal(want) || !tr.CanaryStart.Equal(sc.Spec.CanaryStart()) {
				t.Errorf("truth canary_start %s, want %s", tr.CanaryStart, want)
			}
			if sc.Spec.WarmUp != DefaultWarmUp+prior {
				t.Errorf("warm-up %s, want %s: the default grows by the prior stage", sc.Spec.WarmUp, DefaultWarmUp+prior)
			}
			p := mustParse(t, s.Name, sc.OpenMetrics)
			canaryStart, stageStart, end := ms(tr.CanaryStart), ms(tr.StageStart), ms(tr.StageEnd)
			born := canaryStart - canaryLead
			for _, se := range p.match("phase_requests_total", "pod_template_hash", tr.CanaryHash) {
				for _, pt := range se.points {
					if pt.t < born {
						t.Errorf("%s has a sample at %d, before its pod starts at %d", se.labels, pt.t, born)
					}
					if pt.t <= canaryStart && pt.v != 0 {
						t.Errorf("%s counts %g at %d, before the canary starts at %d", se.labels, pt.v, pt.t, canaryStart)
					}
				}
			}
			if n := len(p.match("phase_requests_total", "pod_template_hash", tr.CanaryHash)); n == 0 {
				t.Fatal("no canary request series")
			}
			near := func(what string, got, want, tol float64) {
				t.Helper()
				if math.Abs(got-want) > tol*want {
					t.Errorf("%s: %.0f, want %.0f within %.0f %%", what, got, want, 100*tol)
				}
			}
			reqs := inc("phase_requests_total")
			secs := prior.Seconds()
			c, st := reqs(p, canaryStart, stageStart, tr.CanaryHash), reqs(p, canaryStart, stageStart, tr.StableHash)
			near("canary share of the prior stage's requests, per mille", 1000*c/(c+st), 1000*rate*weight/(tr.StableRate+rate), 0.1)
			bad := inc("phase_requests_total", "phase", "!active")(p, canaryStart, stageStart, tr.CanaryHash)
			near("canary drain failures in the prior stage, per mille of its requests", 1000*bad/c, 1000*drain, 0.35)
			if s.Shape == Bursty {
				return // bursts add traffic: the nominal counts below do not hold
			}
			near("canary requests in the prior stage", c, rate*weight*secs, 0.1)
			near("stable requests in the prior stage", st, (tr.StableRate+rate*(1-weight))*secs, 0.1)
			before := canaryStart - (5 * time.Minute).Milliseconds()
			near("stable requests in the 5m before the canary", reqs(p, before, canaryStart, tr.StableHash), (tr.StableRate+rate)*300, 0.1)
			near("canary requests in the stage", reqs(p, stageStart, end, tr.CanaryHash), rate*sc.Spec.Stage.Seconds(), 0.1)
		})
	}
}

// TestPriorTruthJSON checks that a truth file carries canary_start only
// with a prior stage, and reads back as the truth it was written from.
func TestPriorTruthJSON(t *testing.T) {
	t.Parallel()
	for _, s := range []Spec{
		{Name: "no-prior", Seed: 1},
		{Name: "prior", Seed: 1, Prior: 10 * time.Minute, PriorWeight: 0.2},
	} {
		t.Run(s.Name, func(t *testing.T) {
			t.Parallel()
			tr := mustGenerate(t, s).Truth
			b, err := tr.MarshalIndent()
			if err != nil {
				t.Fatal(err)
			}
			if got, want := strings.Contains(string(b), `"canary_start"`), s.Prior > 0; got != want {
				t.Errorf("canary_start in the JSON: %v, want %v:\n%s", got, want, b)
			}
			var back Truth
			if err := json.Unmarshal(b, &back); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tr, back); diff != "" {
				t.Errorf("truth read back differs (-written +read):\n%s", diff)
			}
		})
	}
}
