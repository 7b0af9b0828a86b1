package promtest_test

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"net/http/httptest"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/common/model"

	"github.com/phaseguard/phaseguard/internal/promtest"
	"github.com/phaseguard/phaseguard/promapi"
	"github.com/phaseguard/phaseguard/replay"
)

// t0 is the start of the scenario: in the past, as promtool backfills need
// not be but a server that also scrapes requires.
var t0 = time.Unix(1767225600, 0).UTC() // 2026-01-01T00:00:00Z

// scenario returns an hour of phase metrics from t0 in OpenMetrics text:
// counters with irregular increments, a counter reset, a series that stops
// at 30m, sparse transitions, a histogram per pod template and a gauge.
// Samples are on whole seconds, 15s apart with up to 3s of jitter.
func scenario() []byte {
	rng := rand.New(rand.NewPCG(7, 11))
	const steps = 241 // 0..60m
	stamp := func(i int) int64 { return t0.Unix() + 15*int64(i) + rng.Int64N(4) }
	var b bytes.Buffer

	b.WriteString("# HELP phase_requests Requests served, by the phase of the serving instance.\n# TYPE phase_requests counter\n")
	for _, hash := range []string{"canary", "stable", "old"} {
		for _, phase := range []string{"active", "draining"} {
			v := 0.0
			for i := range steps {
				if hash == "old" && i > 120 {
					break
				}
				switch {
				case hash == "canary" && phase == "active" && i == 100:
					v = float64(rng.IntN(5)) // the pod restarted
				case phase == "active":
					v += float64(50 + rng.IntN(50))
				default:
					v += float64(rng.IntN(3))
				}
				fmt.Fprintf(&b, "phase_requests_total{service=\"api\",pod_template_hash=%q,phase=%q} %g %d\n", hash, phase, v, stamp(i))
			}
		}
	}

	b.WriteString("# TYPE phase_transitions counter\n")
	v := 0.0
	for i := range steps {
		if rng.IntN(20) == 0 {
			v++
		}
		fmt.Fprintf(&b, "phase_transitions_total{service=\"api\",pod_template_hash=\"canary\",from=\"draining\",to=\"active\"} %g %d\n", v, stamp(i))
	}

	b.WriteString("# TYPE phase_propagation_seconds histogram\n")
	bounds := []string{"0.1", "0.5", "1.0", "2.0", "5.0", "+Inf"}
	for _, hash := range []string{"canary", "stable"} {
		counts := make([]float64, len(bounds))
		sum := 0.0
		for i := range steps {
			ts := stamp(i)
			for range 5 + rng.IntN(10) {
				obs := rng.ExpFloat64() * 0.6
				if hash == "canary" {
					obs *= 2
				}
				sum += obs
				for j, le := range bounds {
					if le == "+Inf" || obs <= mustFloat(le) {
						counts[j]++
					}
				}
			}
			for j, le := range bounds {
				fmt.Fprintf(&b, "phase_propagation_seconds_bucket{service=\"api\",pod_template_hash=%q,le=%q} %g %d\n", hash, le, counts[j], ts)
			}
			fmt.Fprintf(&b, "phase_propagation_seconds_count{service=\"api\",pod_template_hash=%q} %g %d\n", hash, counts[len(counts)-1], ts)
			fmt.Fprintf(&b, "phase_propagation_seconds_sum{service=\"api\",pod_template_hash=%q} %g %d\n", hash, sum, ts)
		}
	}

	b.WriteString("# TYPE phase_instances gauge\n")
	for i := range steps {
		fmt.Fprintf(&b, "phase_instances{service=\"api\",phase=\"draining\"} %d %d\n", rng.IntN(4), stamp(i))
	}
	b.WriteString("# EOF\n")
	return b.Bytes()
}

func mustFloat(s string) float64 {
	var f float64
	if _, err := fmt.Sscan(s, &f); err != nil {
		panic(err)
	}
	return f
}

// querier is the engine's view of both implementations.
type querier interface {
	Query(ctx context.Context, query string, ts time.Time) (model.Vector, error)
}

// TestServerAndReplayAgree backfills one scenario into a real Prometheus
// and loads it into replay.Store, and checks both give the same vectors.
//
// The evaluation times avoid two known differences between Prometheus 3,
// whose engine replay embeds, and Prometheus 2 (Debian's 2.42):
//
//   - They are half a second off the whole-second sample grid. Prometheus 3
//     treats range and lookback windows as left-open, Prometheus 2 as
//     closed, so a sample exactly at ts-5m counts for one and not the other.
//   - They are at least 10m (the longest extrapolated range queried) after
//     the data starts. When a counter starts inside the window with a first
//     value above zero, Prometheus 2 clamps the extrapolation towards the
//     start to the counter's zero point before checking it against 1.1
//     sample intervals, Prometheus 3 after, so increase() and rate() differ
//     (by 2-5% here, at 1m and 3m).
func TestServerAndReplayAgree(t *testing.T) {
	t.Parallel()
	data := scenario()
	srv := promtest.Start(t, promtest.Backfill(data))
	live, err := promapi.New(promapi.Config{URL: srv.URL()})
	if err != nil {
		t.Fatal(err)
	}
	store, err := replay.Load(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })

	queries := []string{
		`sum(increase(phase_requests_total{phase!="active"}[5m]))`,
		`sum by (pod_template_hash) (rate(phase_requests_total{phase!="active"}[5m])) / sum by (pod_template_hash) (rate(phase_requests_total[5m]))`,
		`sum(increase(phase_requests_total{pod_template_hash="canary"}[1m]))`,
		`increase(phase_requests_total{pod_template_hash="canary",phase="active"}[10m])`,
		`resets(phase_requests_total[30m])`,
		`phase_requests_total{pod_template_hash="old"}`,
		`sum(increase(phase_transitions_total{from="draining",to="active"}[30m]))`,
		`histogram_quantile(0.9, sum by (le, pod_template_hash) (rate(phase_propagation_seconds_bucket[5m])))`,
		`1 - sum by (pod_template_hash) (rate(phase_propagation_seconds_bucket{le="2.0"}[10m])) / sum by (pod_template_hash) (rate(phase_propagation_seconds_count[10m]))`,
		`sum by (pod_template_hash) (rate(phase_propagation_seconds_sum[5m])) / sum by (pod_template_hash) (rate(phase_propagation_seconds_count[5m]))`,
		`max_over_time(phase_instances[10m])`,
		`phase_instances`,
	}
	var times []time.Time
	for _, m := range []int{10, 25, 29, 31, 33, 36, 45, 59, 62, 66} {
		times = append(times, t0.Add(time.Duration(m)*time.Minute+7500*time.Millisecond))
	}
	nonEmpty := 0
	for _, q := range queries {
		for _, ts := range times {
			name := fmt.Sprintf("%s@%s", q, ts.Sub(t0))
			want, err := store.Query(t.Context(), q, ts)
			if err != nil {
				t.Errorf("%s: replay: %v", name, err)
				continue
			}
			got, err := live.Query(t.Context(), q, ts)
			if err != nil {
				t.Errorf("%s: server: %v", name, err)
				continue
			}
			if diff := cmp.Diff(sorted(want), sorted(got), promtest.ApproxVectors); diff != "" {
				t.Errorf("%s: server and replay disagree (-replay +server):\n%s", name, diff)
			}
			if len(want) > 0 {
				nonEmpty++
			}
		}
	}
	// Guard against agreeing on nothing.
	if min := len(queries) * len(times) * 3 / 4; nonEmpty < min {
		t.Errorf("%d of %d comparisons had data, want at least %d", nonEmpty, len(queries)*len(times), min)
	}
}

// sorted returns v ordered by labels.
func sorted(v model.Vector) model.Vector {
	sort.Slice(v, func(i, j int) bool { return v[i].Metric.Before(v[j].Metric) })
	return v
}

// TestScrape runs an exporter with a counter the test increments and
// checks that a Prometheus scraping it every second serves each value.
func TestScrape(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	requests := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "phase_requests_total",
		Help: "Requests served, by the phase of the serving instance.",
	}, []string{"phase"})
	reg.MustRegister(requests)
	exporter := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{EnableOpenMetrics: true}))
	t.Cleanup(exporter.Close)

	srv := promtest.Start(t, promtest.Scrape(exporter.URL, time.Second))
	c, err := promapi.New(promapi.Config{URL: srv.URL()})
	if err != nil {
		t.Fatal(err)
	}
	const q = `sum(phase_requests_total{job="scrape0",phase="draining"})`
	total := 0.0
	for _, n := range []float64{7, 10} {
		requests.WithLabelValues("draining").Add(n - total)
		total = n
		waitForValue(t, c, q, n)
	}
}

// waitForValue polls q at the current time until it returns one sample of
// value want, for at most 20s.
func waitForValue(t *testing.T, c querier, q string, want float64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	var last string
	for {
		v, err := c.Query(ctx, q, time.Now())
		switch {
		case err != nil:
			last = err.Error()
		case len(v) == 1 && float64(v[0].Value) == want:
			return
		default:
			last = v.String()
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s never returned %g; last: %s", q, want, last)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// TestServerGone checks that a query to a Prometheus that went away fails
// fast, naming the query, with a connection error.
func TestServerGone(t *testing.T) {
	t.Parallel()
	srv := promtest.Start(t)
	c, err := promapi.New(promapi.Config{URL: srv.URL()})
	if err != nil {
		t.Fatal(err)
	}
	const q = `sum(rate(phase_requests_total[5m]))`
	if _, err := c.Query(t.Context(), q, time.Now()); err != nil {
		t.Fatalf("Query before Stop: %v", err)
	}
	srv.Stop()

	ctx, cancel := context.WithTimeout(t.Context(), time.Second)
	defer cancel()
	start := time.Now()
	_, err = c.Query(ctx, q, time.Now())
	if err == nil {
		t.Fatal("Query after Stop succeeded")
	}
	for _, want := range []string{fmt.Sprintf("query %q", q), "connection refused"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Query error %q does not contain %q", err, want)
		}
	}
	if elapsed := time.Since(start); elapsed > 1500*time.Millisecond {
		t.Errorf("Query took %s, want at most the 1s deadline", elapsed)
	}
}
