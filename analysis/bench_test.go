package analysis_test

import (
	"context"
	"sort"
	"testing"
	"time"

	"github.com/phaseguard/phaseguard/analysis"
)

// BenchmarkEvaluateReplay is one evaluation of the full default policy (7
// phase SLIs, canary and stable: 14 queries) on the embedded PromQL engine.
// Run: go test -run ^$ -bench EvaluateReplay -benchmem ./analysis/
func BenchmarkEvaluateReplay(b *testing.B) {
	p := preset(b)
	st, tr := loadScenario(b, "drain-misrouting")
	eng := analysis.New(st)
	req := request(p, tr, tr.StageStart.Add(20*time.Minute))
	ctx := context.Background()
	lat := make([]time.Duration, 0, b.N)
	queries := 0
	b.ReportAllocs()
	for b.Loop() {
		start := time.Now()
		v, err := eng.Evaluate(ctx, req)
		if err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(start))
		queries = v.Queries
	}
	reportLatency(b, lat)
	b.ReportMetric(float64(queries), "queries/eval")
}

// BenchmarkBacktestHour is a backtest of one hour at 10 s steps (360
// evaluations of the default policy, canary and stable) on the embedded
// engine; the bundled scenario holds 40 minutes, the rest is no data.
// Run: go test -run ^$ -bench BacktestHour -benchtime 3x ./analysis/
func BenchmarkBacktestHour(b *testing.B) {
	p := preset(b)
	st, tr := loadScenario(b, "healthy")
	eng := analysis.New(st)
	ctx := context.Background()
	for b.Loop() {
		for i := range 360 {
			req := request(p, tr, tr.Start.Add(time.Duration(i)*10*time.Second))
			if _, err := eng.Evaluate(ctx, req); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/backtest-hour")
}

// reportLatency adds p50 and p99 of the per-evaluation latencies.
func reportLatency(b *testing.B, lat []time.Duration) {
	if len(lat) == 0 {
		return
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	q := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) / 1000 }
	b.ReportMetric(q(0.50), "p50-ms")
	b.ReportMetric(q(0.99), "p99-ms")
}
