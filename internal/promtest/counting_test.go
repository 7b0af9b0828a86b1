package promtest_test

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/common/model"

	"github.com/phaseguard/phaseguard/internal/promtest"
	"github.com/phaseguard/phaseguard/promapi"
	"github.com/phaseguard/phaseguard/replay"
)

// countingData is three counters scraped every 15s, for
// TestCountingByBackend:
//
//   - c_total{s="old"}: from t0 to t0+70m, +10 a scrape, except +100 from
//     t0+60m to t0+60m15s;
//   - c_total{s="newsmall"}: born at t0+65m at 3, +1 a scrape;
//   - c_total{s="newbig"}: born at t0+65m at 500, +1 a scrape.
func countingData() []byte {
	var b bytes.Buffer
	b.WriteString("# TYPE c counter\n")
	v := 0
	for i := 0; i <= 280; i++ {
		if i > 0 {
			v += 10
			if i == 241 {
				v += 90
			}
		}
		fmt.Fprintf(&b, "c_total{s=\"old\"} %d %d\n", v, t0.Unix()+15*int64(i))
	}
	for _, s := range []struct {
		name  string
		first int
	}{{"newsmall", 3}, {"newbig", 500}} {
		for i := 260; i <= 280; i++ {
			fmt.Fprintf(&b, "c_total{s=%q} %d %d\n", s.name, s.first+i-260, t0.Unix()+15*int64(i))
		}
	}
	b.WriteString("# EOF\n")
	return b.Bytes()
}

// TestCountingByBackend shows, on countingData, how the embedded engine,
// Prometheus 2.42 and VictoriaMetrics 1.79 count a counter's events, and
// that the engine's way of counting series born inside a window gives
// them the same count everywhere. The expected values are worked out from
// the data; the README's "Backends" section quotes them.
//
// The look is at t0+70m07.5s, a 10m window: (60m07.5s, 70m07.5s].
//   - old: 40 samples in the window, from 60m15s to 70m, rising 390.
//     Prometheus extrapolates them to the window's 600s: 390*600/585 =
//     400. VictoriaMetrics counts from the sample before the window (60m):
//     100 + 390 = 490.
//   - newsmall: 3 at 65m to 23 at 70m. Prometheus: 20 over 300s,
//     extrapolated by half a scrape interval at the start (the series
//     starts inside the window) and 7.5s at the end: 20*315/300 = 21.
//     VictoriaMetrics counts the first value from zero, as it is small
//     next to the increase after it (3 < 10*(1+1)): 23.
//   - newbig: 500 at 65m to 520: Prometheus 21 as above; VictoriaMetrics
//     drops a first value that large: 20.
//   - The engine's form, increase() for series present in the hour before
//     the window and max_over_time() for series born in it, counts newsmall
//     and newbig from zero on every backend: 400+23+520 = 943 against
//     490+23+520 = 1033, the difference being old's 90.
func TestCountingByBackend(t *testing.T) {
	t.Parallel()
	data := countingData()
	store, err := replay.Load(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	prom := promtest.Start(t, promtest.Backfill(data))
	vm := promtest.StartVictoriaMetrics(t, promtest.Backfill(data))
	backends := []struct {
		name string
		q    querier
	}{{"embedded", store}}
	for _, s := range []struct {
		name string
		srv  *promtest.Server
	}{{"prometheus", prom}, {"victoria-metrics", vm}} {
		c, err := promapi.New(promapi.Config{URL: s.srv.URL()})
		if err != nil {
			t.Fatal(err)
		}
		backends = append(backends, struct {
			name string
			q    querier
		}{s.name, c})
	}

	look := t0.Add(70*time.Minute + 7500*time.Millisecond)
	one := func(at time.Time, v float64, labels ...string) model.Vector {
		m := model.Metric{}
		for i := 0; i < len(labels); i += 2 {
			m[model.LabelName(labels[i])] = model.LabelValue(labels[i+1])
		}
		return model.Vector{{Metric: m, Value: model.SampleValue(v), Timestamp: model.TimeFromUnixNano(at.UnixNano())}}
	}
	const bornCounted = `sum((increase(c_total[10m]) and present_over_time(c_total[1h] offset 10m)) or (max_over_time(c_total[10m]) unless present_over_time(c_total[1h] offset 10m)))`
	tests := []struct {
		name  string
		query string
		at    time.Time
		prom  model.Vector // the embedded engine and Prometheus
		vm    model.Vector
	}{
		{
			name: "old series: extrapolated vs from the sample before the window", query: `increase(c_total{s="old"}[10m])`, at: look,
			prom: one(look, 400, "s", "old"), vm: one(look, 490, "s", "old"),
		},
		{
			name: "series born inside the window, small first value", query: `increase(c_total{s="newsmall"}[10m])`, at: look,
			prom: one(look, 21, "s", "newsmall"), vm: one(look, 23, "s", "newsmall"),
		},
		{
			name: "series born inside the window, large first value", query: `increase(c_total{s="newbig"}[10m])`, at: look,
			prom: one(look, 21, "s", "newbig"), vm: one(look, 20, "s", "newbig"),
		},
		{
			name: "born series counted from zero, the engine's form", query: bornCounted, at: look,
			prom: one(look, 943), vm: one(look, 1033),
		},
		{
			name: "max_over_time keeps the metric name on VictoriaMetrics", query: `max_over_time(c_total{s="newsmall"}[10m])`, at: look,
			prom: one(look, 23, "s", "newsmall"), vm: one(look, 23, "__name__", "c_total", "s", "newsmall"),
		},
		{
			name: "a presence count of nothing is empty, not 0", query: `count(present_over_time(c_total{s="gone"}[10m]))`, at: look,
			prom: model.Vector{}, vm: model.Vector{},
		},
		{
			name: "at the exact time of a series' first sample", query: `c_total{s="newsmall"}`, at: t0.Add(65 * time.Minute),
			prom: one(t0.Add(65*time.Minute), 3, "__name__", "c_total", "s", "newsmall"),
			vm:   one(t0.Add(65*time.Minute), 3, "__name__", "c_total", "s", "newsmall"),
		},
		{
			name: "at the exact time of the loaded data's first sample", query: `c_total{s="old"}`, at: t0,
			prom: one(t0, 0, "__name__", "c_total", "s", "old"), vm: model.Vector{},
		},
		{
			name: "a millisecond after it", query: `c_total{s="old"}`, at: t0.Add(time.Millisecond),
			prom: one(t0.Add(time.Millisecond), 0, "__name__", "c_total", "s", "old"),
			vm:   one(t0.Add(time.Millisecond), 0, "__name__", "c_total", "s", "old"),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			for _, b := range backends {
				want := tt.prom
				if b.name == "victoria-metrics" {
					want = tt.vm
				}
				got, err := b.q.Query(context.Background(), tt.query, tt.at)
				if err != nil {
					t.Errorf("%s: %v", b.name, err)
					continue
				}
				if diff := cmp.Diff(want, sorted(got), promtest.ApproxVectors); diff != "" {
					t.Errorf("%s: %s at %s (-want +got):\n%s", b.name, tt.query, tt.at.Sub(t0), diff)
				}
			}
		})
	}
}
