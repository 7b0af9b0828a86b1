package analysis_test

import (
	"context"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/phaseguard/phaseguard/analysis"
	"github.com/phaseguard/phaseguard/internal/promtest"
	"github.com/phaseguard/phaseguard/policies"
	"github.com/phaseguard/phaseguard/promapi"
)

// livePolicy judges drain failures over windows of seconds, so that a live
// scrape at 1 s fills them in a test.
const livePolicy = `
apiVersion: phaseguard.dev/v1alpha1
kind: Policy
metadata: {name: live}
spec:
  interval: 2s
  minSamples: 50
  windows: [{long: 12s, short: 6s, factor: 10}]
  stages: [{name: canary, soak: 30s}]
  slis: [{preset: drain-failure}]
`

// TestLiveScrape runs the engine against a real Prometheus scraping a live
// exporter every second: a canary serving from active instances passes,
// and once it starts serving from draining ones it fails.
func TestLiveScrape(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	reqs := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "phase_requests_total", Help: "Requests by phase of the serving instance."},
		[]string{"service", "pod_template_hash", "phase"})
	reg.MustRegister(reqs)
	exporter := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	defer exporter.Close()
	active := reqs.WithLabelValues("checkout", "abc123", "active")
	draining := reqs.WithLabelValues("checkout", "abc123", "draining")
	draining.Add(0)

	// Traffic: 200 requests/s, all from active instances until misrouting
	// starts, then half from draining ones.
	var mu sync.Mutex
	misrouting := false
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				mu.Lock()
				bad := misrouting
				mu.Unlock()
				if bad {
					active.Add(5)
					draining.Add(5)
				} else {
					active.Add(10)
				}
			}
		}
	}()

	srv := promtest.Start(t, promtest.Scrape(exporter.URL, time.Second))
	live, err := promapi.New(promapi.Config{URL: srv.URL()})
	if err != nil {
		t.Fatal(err)
	}
	p, err := policies.Load([]byte(livePolicy), "live")
	if err != nil {
		t.Fatal(err)
	}
	eng := analysis.New(live)
	req := analysis.Request{Policy: p, Stage: "canary", Service: "checkout", CanaryHash: "abc123"}
	await := func(want analysis.Decision, within time.Duration) *analysis.Verdict {
		t.Helper()
		deadline := time.Now().Add(within)
		var v *analysis.Verdict
		for time.Now().Before(deadline) {
			if v, err = eng.Evaluate(ctx, req); err != nil {
				t.Fatal(err)
			}
			if v.Decision == want {
				return v
			}
			time.Sleep(time.Second)
		}
		t.Fatalf("no %s within %s; last verdict %s: %s", want, within, v.Decision, v.Reason)
		return nil
	}
	v := await(analysis.Pass, 40*time.Second)
	t.Logf("healthy: %s", v.Reason)
	mu.Lock()
	misrouting = true
	mu.Unlock()
	v = await(analysis.Fail, 30*time.Second)
	t.Logf("misrouting: %s", v.Reason)
}
