package analysis_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/phaseguard/phaseguard/analysis"
	"github.com/phaseguard/phaseguard/internal/promtest"
	"github.com/phaseguard/phaseguard/policies"
	"github.com/phaseguard/phaseguard/promapi"
	"github.com/phaseguard/phaseguard/replay"
)

// caseEnd is where the shared cases' data ends: 2026-01-01T00:20:00Z.
var caseEnd = time.Unix(1767226800, 0)

func readCase(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/cases/" + name)
	if err != nil {
		t.Fatal(err)
	}
	if strings.HasSuffix(name, ".gz") {
		zr, err := gzip.NewReader(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		if b, err = io.ReadAll(zr); err != nil {
			t.Fatal(err)
		}
	}
	return b
}

func replayOf(t testing.TB, data []byte) *replay.Store {
	t.Helper()
	st, err := replay.Load(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func caseRequest(p *policies.Policy, at time.Time) analysis.Request {
	return analysis.Request{Policy: p, Stage: "canary-10", At: at, Service: "checkout", Namespace: "shop", CanaryHash: "7f8c9d6b4"}
}

// TestSharedCases gives each case of ../shared/cases (copied into
// testdata/cases, see its README) its right result through the embedded
// engine.
func TestSharedCases(t *testing.T) {
	t.Parallel()
	drain := loadPolicy(t, drainPolicy)
	t.Run("lazy-counter-series", func(t *testing.T) {
		t.Parallel()
		st := replayOf(t, readCase(t, "lazy-counter-series.om"))
		v, err := analysis.New(st).Evaluate(context.Background(), caseRequest(drain, caseEnd))
		if err != nil {
			t.Fatal(err)
		}
		bad := float64(v.SLIs[0].Windows[0].Bad)
		if v.Decision != analysis.Fail || bad < 360 || bad > 420 {
			t.Errorf("%s with %.0f bad in 15m (%s); want fail, 360-420", v.Decision, bad, v.Reason)
		}
		for at := caseEnd.Add(-10 * time.Minute); !at.After(caseEnd); at = at.Add(30 * time.Second) {
			if v, err := analysis.New(st).Evaluate(context.Background(), caseRequest(drain, at)); err != nil || v.Decision == analysis.Pass {
				t.Errorf("%s: %v %v; want no pass", at.Format(time.TimeOnly), v.Decision, err)
			}
		}
	})
	t.Run("missing-recent-windows", func(t *testing.T) {
		t.Parallel()
		st := replayOf(t, readCase(t, "missing-recent-windows.om"))
		v, err := analysis.New(st).Evaluate(context.Background(), caseRequest(drain, caseEnd))
		if err != nil {
			t.Fatal(err)
		}
		if v.Decision != analysis.Hold || !strings.Contains(v.Reason, "no data for the canary in 3m, 1m") {
			t.Errorf("%s %q; want hold naming 3m, 1m", v.Decision, v.Reason)
		}
		for at := caseEnd.Add(-5 * time.Minute); !at.After(caseEnd); at = at.Add(30 * time.Second) {
			if v, err := analysis.New(st).Evaluate(context.Background(), caseRequest(drain, at)); err != nil || v.Decision == analysis.Pass {
				t.Errorf("%s: %v %v; want no pass", at.Format(time.TimeOnly), v.Decision, err)
			}
		}
	})
	t.Run("le-spelling", func(t *testing.T) {
		t.Parallel()
		st := replayOf(t, readCase(t, "le-spelling.om"))
		for _, f := range []string{"le-bad-minus-bucket.yaml", "le-good-bucket.yaml"} {
			p, err := policies.Load(readCase(t, f), f)
			if err != nil {
				t.Fatal(err)
			}
			v, err := analysis.New(st).Evaluate(context.Background(), caseRequest(p, caseEnd))
			if err != nil {
				t.Fatal(err)
			}
			if v.Decision == analysis.Pass || !strings.Contains(v.Reason, `le="2"`) {
				t.Errorf("%s: %s %q; want no pass, naming le=\"2\"", f, v.Decision, v.Reason)
			}
		}
	})
	t.Run("mesh-without-convention", func(t *testing.T) {
		t.Parallel()
		st := replayOf(t, readCase(t, "mesh-lowbad.om.gz"))
		p, err := policies.Load(readCase(t, "mesh-payments.yaml"), "payments")
		if err != nil {
			t.Fatal(err)
		}
		v, err := analysis.New(st).Evaluate(context.Background(), analysis.Request{Policy: p, Stage: "canary-10", At: time.Date(2026, 2, 1, 0, 10, 0, 0, time.UTC),
			Service: "payments", Namespace: "pay", CanaryHash: "5b7d9c8f6", StableHash: "84c6f7d9b"})
		if err != nil {
			t.Fatal(err)
		}
		if v.Decision != analysis.Pass {
			t.Errorf("a canary at 0.07x its budget beside a perfect stable: %s %q; want pass", v.Decision, v.Reason)
		}
	})
}

// bornSeries writes a canary whose bad events all live in series created
// on first use: a long-lived pod serves 100 requests a scrape (15 s) from
// 20 minutes before end; every 2 minutes of the last 14 a short-lived pod
// has its phase="draining" child created with the count so far (3, first
// sample already above zero) and dies after 1 to 4 scrapes of it. It
// returns the data and the true bad and total events in the 15m before
// end.
func bornSeries(end int64) (data []byte, bad, total float64) {
	var b bytes.Buffer
	b.WriteString("# TYPE phase_requests counter\n")
	start := end - 20*60
	sel := `service="checkout",pod_template_hash="7f8c9d6b4"`
	for ts := start; ts <= end; ts += 15 {
		fmt.Fprintf(&b, "phase_requests_total{%s,pod=\"long\",phase=\"active\"} %d %d\n", sel, (ts-start)/15*100, ts)
	}
	for i, born := 0, end-14*60; born < end-60; i, born = i+1, born+120 {
		scrapes := 1 + i%4
		for k := range scrapes {
			fmt.Fprintf(&b, "phase_requests_total{%s,pod=\"short%d\",phase=\"draining\"} %d %d\n", sel, i, 3*(k+1), born+int64(15*k))
		}
		bad += float64(3 * scrapes)
	}
	b.WriteString("# EOF\n")
	return b.Bytes(), bad, 15*60/15*100 + bad
}

// TestBornSeriesCounted: events in series born inside a window count from
// zero, the same through the embedded engine and the real Prometheus
// (strimzi/strimzi-canary#215: plain increase() drops them).
func TestBornSeriesCounted(t *testing.T) {
	t.Parallel()
	end := caseEnd.Unix()
	data, bad, total := bornSeries(end)
	if bad == 0 {
		t.Fatal("the data has no bad events")
	}
	p := loadPolicy(t, drainPolicy)
	at := caseEnd.Add(-7 * time.Second) // between scrapes: Prometheus 2 and 3 select range edges differently
	embedded, err := analysis.New(replayOf(t, data)).Evaluate(context.Background(), caseRequest(p, at))
	if err != nil {
		t.Fatal(err)
	}
	srv := promtest.Start(t, promtest.Backfill(data))
	live, err := promapi.New(promapi.Config{URL: srv.URL()})
	if err != nil {
		t.Fatal(err)
	}
	real, err := analysis.New(live).Evaluate(context.Background(), caseRequest(p, at))
	if err != nil {
		t.Fatal(err)
	}
	for name, v := range map[string]*analysis.Verdict{"embedded": embedded, "prometheus": real} {
		w := v.SLIs[0].Windows[0]
		// The long-lived pod's increase() is extrapolated by a few
		// requests; born series are counted exactly.
		if math.Abs(float64(w.Bad)-bad) > 0.5 || math.Abs(float64(w.Total)-total)/total > 0.02 {
			t.Errorf("%s: 15m counts %v bad of %v, want %v of %v", name, w.Bad, w.Total, bad, total)
		}
	}
	if eb, rb := embedded.SLIs[0].Windows[0].Bad, real.SLIs[0].Windows[0].Bad; eb != rb {
		t.Errorf("bad in 15m: embedded %v, real Prometheus %v", eb, rb)
	}
}
