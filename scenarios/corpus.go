package scenarios

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// corpusServices are the service names a corpus draws from.
var corpusServices = []string{"checkout", "cart", "payments", "search", "ledger", "inventory", "shipping", "accounts"}

// Corpus draws a varied corpus of healthy and faulty specs, deterministically
// from seed. Each spec has its own namespace (its name), so a whole corpus
// can be backfilled into one Prometheus. It draws:
//
//   - canary rates log-uniform in [0.2, 500] requests/s, a canary weight of
//     5 %, 10 %, 20 %, 25 % or 50 %, and a traffic shape;
//   - 1 to 3 stable pods, 1 or 2 canary pods, 1 or 2 consumers;
//   - a scrape interval of 15 s (70 %), 30 s (20 %) or 10 s (10 %);
//   - background levels under every default budget;
//   - a pod restart in 30 % of specs (half of them with a new pod name) and
//     a scrape gap of 30 s to 4 min in 25 %;
//   - for faulty specs: a kind, a severity log-uniform in [0.1 %, 100 %],
//     an onset uniform within the stage and, in 10 %, scope "both";
//
// and, from a stream of their own (so the draws above are those of a
// corpus without them), what real exporters and servers do:
//
//   - labelled counter children created on their first event
//     (Spec.LazyChildren) in 30 % of specs; the rest follow the convention;
//   - canary pods rescheduled mid-stage (a pod dies, its series end, a new
//     pod and its series are born) in 20 %, once or twice;
//   - a canary container restart (its counters drop to zero) in 10 %;
//   - the newest 75 s to 4 min of application metrics missing (a Cutoff),
//     of the canary in 8 % and of the stable version in 4 %;
//   - a canary build that renamed or dropped an export (a Drop) in 6 %.
//
// Names are healthy-NNN and faulty-NNN-fK (fK is the fault kind).
func Corpus(seed int64, healthy, faulty int) []Spec {
	r := newRNG(seed, "corpus")
	var specs []Spec
	for i := range healthy + faulty {
		s := Spec{
			Seed:       int64(r.Uint64() >> 1),
			Service:    corpusServices[r.IntN(len(corpusServices))],
			StableHash: r.suffix(10),
			CanaryHash: r.suffix(10),
			StablePods: 1 + r.IntN(3),
			CanaryPods: 1 + r.IntN(2),
			CanaryRate: round4(r.logUniform(0.2, 500)),
			Shape:      Shapes[r.IntN(len(Shapes))],
		}
		s.Consumers = []string{"router", "worker"}[:1+r.IntN(2)]
		weight := []float64{0.05, 0.1, 0.2, 0.25, 0.5}[r.IntN(5)]
		s.StableRate = round4(s.CanaryRate * (1 - weight) / weight)
		switch x := r.Float64(); {
		case x < 0.7:
			s.ScrapeInterval = 15 * time.Second
		case x < 0.9:
			s.ScrapeInterval = 30 * time.Second
		default:
			s.ScrapeInterval = 10 * time.Second
		}
		s.Background = &Background{
			DrainFailure:    round4(r.uniform(0.0001, 0.0005)),
			Mismatch:        round4(r.uniform(0.00005, 0.0003)),
			Duplicate:       round4(r.uniform(0.00005, 0.0003)),
			SchemaError:     round4(r.uniform(0.00002, 0.0002)),
			SlowPropagation: round4(r.uniform(0.001, 0.004)),
			FlapsPerHour:    round4(r.uniform(0, 0.1)),
			RetriesPerHour:  round4(r.uniform(2, 10)),
		}
		span := DefaultWarmUp + DefaultStage
		if r.Float64() < 0.3 {
			v, pods := Stable, s.StablePods
			if r.Float64() < 0.5 {
				v, pods = Canary, s.CanaryPods
			}
			lo := time.Minute
			if v == Canary {
				lo = DefaultWarmUp + time.Minute
			}
			s.Restarts = []Restart{{
				Version: v,
				Pod:     r.IntN(pods),
				At:      (lo + time.Duration(r.Int64N(int64(span-lo-time.Minute)))).Truncate(time.Second),
				NewPod:  r.Float64() < 0.5,
			}}
		}
		if r.Float64() < 0.25 {
			v, pods := Stable, s.StablePods
			if r.Float64() < 0.5 {
				v, pods = Canary, s.CanaryPods
			}
			lo := time.Duration(0)
			if v == Canary {
				lo = DefaultWarmUp
			}
			s.Gaps = []Gap{{
				Version: v,
				Pod:     r.IntN(pods),
				At:      (lo + time.Duration(r.Int64N(int64(span-lo)))).Truncate(time.Second),
				For:     time.Duration(r.uniform(30, 240)) * time.Second,
			}}
		}
		if i < healthy {
			s.Name = fmt.Sprintf("healthy-%03d", i)
			s.Description = fmt.Sprintf("healthy canary at %.3g requests/s, %s traffic", s.CanaryRate, s.Shape)
		} else {
			f := &Fault{
				Kind:     FaultKinds[r.IntN(len(FaultKinds))],
				Severity: round4(r.logUniform(0.001, 1)),
				Onset:    time.Duration(r.Int64N(int64(DefaultStage))).Truncate(time.Second),
				Scope:    ScopeCanary,
			}
			if r.Float64() < 0.1 {
				f.Scope = ScopeBoth
			}
			s.Fault = f
			s.Name = fmt.Sprintf("faulty-%03d-%s", i-healthy, strings.ToLower(string(f.Kind)))
			s.Description = fmt.Sprintf("%s (%s) at severity %.3g, scope %s, canary at %.3g requests/s, %s traffic",
				f.Kind, f.Kind.Name(), f.Severity, f.Scope, s.CanaryRate, s.Shape)
		}
		s.Namespace = s.Name
		realism(&s, newRNG(seed, fmt.Sprintf("realism/%d", i)))
		specs = append(specs, s)
	}
	return specs
}

// realism draws the exporter and server behaviours of a corpus spec: see
// Corpus. Restarts of one pod are at least 4 minutes apart, so that a
// benchmark may shorten the stage by half and the spec stays valid.
func realism(s *Spec, r *rng) {
	s.LazyChildren = r.Float64() < 0.3
	restart := func(pod int, newPod bool) {
		at := (DefaultWarmUp + time.Minute + time.Duration(r.Int64N(int64(DefaultStage-2*time.Minute)))).Truncate(time.Second)
		for _, o := range s.Restarts {
			if o.Version == Canary && o.Pod == pod && (o.At-at).Abs() < 4*time.Minute {
				return
			}
		}
		s.Restarts = append(s.Restarts, Restart{Version: Canary, Pod: pod, At: at, NewPod: newPod})
	}
	if r.Float64() < 0.2 {
		for range 1 + r.IntN(2) {
			restart(r.IntN(s.CanaryPods), true)
		}
	}
	if r.Float64() < 0.1 {
		restart(r.IntN(s.CanaryPods), false)
	}
	cut := (75*time.Second + time.Duration(r.Int64N(int64(165*time.Second)))).Truncate(time.Second)
	switch x := r.Float64(); {
	case x < 0.08:
		s.Cutoffs = []Cutoff{{Version: Canary, For: cut}}
	case x < 0.12:
		s.Cutoffs = []Cutoff{{Version: Stable, For: cut}}
	}
	if r.Float64() < 0.06 {
		s.Drops = []Drop{Drops[r.IntN(len(Drops))]}
	}
}

// WriteDir generates every spec and writes NAME.om and NAME.truth.json into
// dir, which it creates if needed.
func WriteDir(dir string, specs []Spec) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("write scenarios: %w", err)
	}
	for _, spec := range specs {
		sc, err := Generate(spec)
		if err != nil {
			return fmt.Errorf("write scenarios: %w", err)
		}
		tj, err := sc.Truth.MarshalIndent()
		if err != nil {
			return fmt.Errorf("write scenario %q: %w", spec.Name, err)
		}
		if err := os.WriteFile(filepath.Join(dir, sc.Spec.Name+".om"), sc.OpenMetrics, 0o644); err != nil {
			return fmt.Errorf("write scenario %q: %w", spec.Name, err)
		}
		if err := os.WriteFile(filepath.Join(dir, sc.Spec.Name+".truth.json"), tj, 0o644); err != nil {
			return fmt.Errorf("write scenario %q: %w", spec.Name, err)
		}
	}
	return nil
}

// MarshalIndent returns t as indented JSON ending in a newline, the form of
// NAME.truth.json files.
func (t Truth) MarshalIndent() ([]byte, error) {
	b, err := json.MarshalIndent(t, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("marshal truth %q: %w", t.Name, err)
	}
	return append(b, '\n'), nil
}
