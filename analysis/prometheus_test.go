package analysis_test

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/phaseguard/phaseguard/analysis"
	"github.com/phaseguard/phaseguard/internal/promtest"
	"github.com/phaseguard/phaseguard/promapi"
	"github.com/phaseguard/phaseguard/scenarios"
)

// TestRealPrometheusAgrees backfills bundled scenarios into a real
// Prometheus server (Debian's, through promtool) and checks that it and the
// embedded engine give the same verdicts, SLI by SLI, and the same burn
// rates, at every other minute of the stage.
func TestRealPrometheusAgrees(t *testing.T) {
	t.Parallel()
	p := preset(t)
	for _, name := range []string{"drain-misrouting", "thin-traffic", "flapping"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			b, _ := scenarios.Lookup(name)
			srv := promtest.Start(t, promtest.Backfill(b.OpenMetrics))
			live, err := promapi.New(promapi.Config{URL: srv.URL()})
			if err != nil {
				t.Fatal(err)
			}
			st, tr := loadScenario(t, name)
			ctx := context.Background()
			decisions := map[analysis.Decision]int{}
			// Looks fall between scrapes: Prometheus 3 (the embedded engine)
			// selects range windows left-open, (t-w, t], where 2.x (Debian's
			// server) selects [t-w, t]; on a look aligned with a scrape the two
			// differ by the boundary sample. Live looks are never aligned.
			for at := tr.StageStart.Add(time.Minute + 7*time.Second); !at.After(tr.StageEnd); at = at.Add(2 * time.Minute) {
				req := request(p, tr, at)
				want, err := analysis.New(st).Evaluate(ctx, req)
				if err != nil {
					t.Fatal(err)
				}
				got, err := analysis.New(live).Evaluate(ctx, req)
				if err != nil {
					t.Fatal(err)
				}
				decisions[got.Decision]++
				if got.Decision != want.Decision || got.QueryErrors != 0 {
					t.Errorf("%s: real Prometheus %s (%s), embedded %s (%s)", at.Format(time.TimeOnly), got.Decision, got.Reason, want.Decision, want.Reason)
					continue
				}
				for i := range got.SLIs {
					g, w := got.SLIs[i], want.SLIs[i]
					if g.Decision != w.Decision {
						t.Errorf("%s %s: real %s, embedded %s", at.Format(time.TimeOnly), g.Name, g.Decision, w.Decision)
					}
					for win, gb := range g.Burn {
						if !same(float64(gb), float64(w.Burn[win])) {
							t.Errorf("%s %s burn %s: real %v, embedded %v", at.Format(time.TimeOnly), g.Name, win, gb, w.Burn[win])
						}
					}
				}
			}
			t.Logf("decisions over the stage: %v", decisions)
			if len(decisions) == 0 {
				t.Fatal("no evaluations")
			}
		})
	}
}

func same(a, b float64) bool {
	if math.IsNaN(a) || math.IsNaN(b) {
		return math.IsNaN(a) && math.IsNaN(b)
	}
	return math.Abs(a-b) <= 1e-9*math.Max(1, math.Abs(b))
}

// TestPrometheusStopped: a Prometheus that goes away mid-stage holds with
// a message naming the failure; it never passes.
func TestPrometheusStopped(t *testing.T) {
	t.Parallel()
	p := preset(t)
	b, _ := scenarios.Lookup("healthy")
	srv := promtest.Start(t, promtest.Backfill(b.OpenMetrics))
	live, err := promapi.New(promapi.Config{URL: srv.URL(), Retries: 1})
	if err != nil {
		t.Fatal(err)
	}
	req := request(p, b.Truth, b.Truth.StageStart.Add(25*time.Minute))
	v, err := analysis.New(live).Evaluate(context.Background(), req)
	if err != nil || v.Decision != analysis.Pass {
		t.Fatalf("before the stop: %v, %v; want pass", v, err)
	}
	srv.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	v, err = analysis.New(live).Evaluate(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if v.Decision != analysis.Hold || v.QueryErrors != len(p.Spec.SLIs) {
		t.Errorf("after the stop: %s with %d query errors: %s", v.Decision, v.QueryErrors, v.Reason)
	}
	t.Logf("reason: %s", v.Reason)
}

// BenchmarkEvaluatePrometheus is one evaluation of the full default policy
// (7 SLIs, canary and stable: 14 queries) against a real local Prometheus.
// Run: go test -run ^$ -bench EvaluatePrometheus -benchmem ./analysis/
func BenchmarkEvaluatePrometheus(b *testing.B) {
	p := preset(b)
	sc, _ := scenarios.Lookup("drain-misrouting")
	srv := promtest.Start(b, promtest.Backfill(sc.OpenMetrics))
	live, err := promapi.New(promapi.Config{URL: srv.URL()})
	if err != nil {
		b.Fatal(err)
	}
	eng := analysis.New(live)
	req := request(p, sc.Truth, sc.Truth.StageStart.Add(20*time.Minute))
	ctx := context.Background()
	lat := make([]time.Duration, 0, b.N)
	b.ReportAllocs()
	for b.Loop() {
		start := time.Now()
		if _, err := eng.Evaluate(ctx, req); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(start))
	}
	reportLatency(b, lat)
	b.ReportMetric(14, "queries/eval")
}
