package analysis_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/common/model"

	"github.com/phaseguard/phaseguard/analysis"
	"github.com/phaseguard/phaseguard/policies"
	"github.com/phaseguard/phaseguard/promapi"
	"github.com/phaseguard/phaseguard/replay"
	"github.com/phaseguard/phaseguard/scenarios"
)

// counting wraps a Querier and counts the queries sent through it.
type counting struct {
	analysis.Querier
	n atomic.Int64
}

func (c *counting) Query(ctx context.Context, q string, ts time.Time) (model.Vector, error) {
	c.n.Add(1)
	return c.Querier.Query(ctx, q, ts)
}

func loadScenario(t testing.TB, name string) (*replay.Store, scenarios.Truth) {
	t.Helper()
	b, ok := scenarios.Lookup(name)
	if !ok {
		t.Fatalf("no bundled scenario %q", name)
	}
	st, err := replay.Load(bytes.NewReader(b.OpenMetrics))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st, b.Truth
}

func preset(t testing.TB) *policies.Policy {
	t.Helper()
	p, err := policies.Preset("phase-default")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func request(p *policies.Policy, tr scenarios.Truth, at time.Time) analysis.Request {
	return analysis.Request{Policy: p, Stage: "canary-50", At: at, Service: tr.Service, Namespace: tr.Namespace, CanaryHash: tr.CanaryHash, StableHash: tr.StableHash}
}

// TestSince checks that a stage younger than a window is counted only
// since it started, for canary and stable alike, and that a look at its
// start holds.
func TestSince(t *testing.T) {
	t.Parallel()
	p := preset(t)
	st, tr := loadScenario(t, "healthy")
	req := request(p, tr, tr.StageStart.Add(4*time.Minute+500*time.Millisecond))
	req.Since = tr.StageStart
	v, err := analysis.New(st).Evaluate(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if !v.Since.Equal(tr.StageStart) {
		t.Errorf("verdict since %s, want %s", v.Since, tr.StageStart)
	}
	s := sli(t, v, "drain-failure")
	for _, q := range s.Queries {
		if strings.Contains(q, "[15m]") || strings.Contains(q, "[5m]") || !strings.Contains(q, "[4m1s]") || !strings.Contains(q, "[3m]") {
			t.Errorf("query does not cut 15m and 5m to 4m1s, or cuts 3m:\n%s", q)
		}
	}
	spans := func(ws []analysis.WindowResult) map[string]string {
		out := map[string]string{}
		for _, w := range ws {
			out[w.Window] = w.Span
		}
		return out
	}
	want := map[string]string{"15m": "4m1s", "5m": "4m1s", "3m": "", "1m": ""}
	if diff := cmp.Diff(want, spans(s.Windows)); diff != "" {
		t.Errorf("canary spans (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(want, spans(s.Baseline.Windows)); diff != "" {
		t.Errorf("stable spans (-want +got):\n%s", diff)
	}
	// A rate SLI's exposure is the span, not the window.
	if f := sli(t, v, "flaps"); float64(f.Windows[0].Total) != (4*time.Minute + time.Second).Hours() {
		t.Errorf("flaps exposure in 15m = %v hours, want %v", f.Windows[0].Total, (4*time.Minute + time.Second).Hours())
	}

	req.At = tr.StageStart
	v, err = analysis.New(st).Evaluate(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if v.Decision != analysis.Hold || !strings.Contains(v.Reason, "nothing to judge yet") {
		t.Errorf("look at the stage start: %s, %q; want hold, nothing to judge yet", v.Decision, v.Reason)
	}
}

func sli(t *testing.T, v *analysis.Verdict, name string) analysis.SLIResult {
	t.Helper()
	for _, s := range v.SLIs {
		if s.Name == name {
			return s
		}
	}
	t.Fatalf("verdict has no SLI %q", name)
	return analysis.SLIResult{}
}

// TestScenarios judges the bundled canaries at chosen moments: the
// decision, the SLI that decided, and its reason.
func TestScenarios(t *testing.T) {
	t.Parallel()
	p := preset(t)
	tests := []struct {
		scenario   string
		after      time.Duration // after the stage starts (or the fault, when there is one)
		noStable   bool
		since      bool // the request says the stage started at the scenario's stage start
		want       analysis.Decision
		wantSLI    string
		wantReason string
	}{
		{scenario: "healthy", after: 25 * time.Minute, want: analysis.Pass, wantReason: "all 7 SLIs pass"},
		{scenario: "healthy", after: 25 * time.Minute, noStable: true, want: analysis.Pass},
		{scenario: "drain-misrouting", after: 2 * time.Minute, want: analysis.Fail, wantSLI: "drain-failure", wantReason: "roll back"},
		{scenario: "drain-misrouting", after: 2 * time.Minute, noStable: true, want: analysis.Fail, wantSLI: "drain-failure"},
		{scenario: "drain-misrouting", after: -time.Minute, want: analysis.Pass},
		{scenario: "flapping", after: 7*time.Minute + 30*time.Second, want: analysis.Fail, wantSLI: "flaps"},
		{scenario: "flapping", after: -time.Minute, want: analysis.Pass},
		{scenario: "thin-traffic", after: 10 * time.Minute, want: analysis.Hold, wantReason: "thin evidence"},
		{scenario: "stable-also-bad", after: 5 * time.Minute, want: analysis.Hold, wantSLI: "drain-failure", wantReason: "not the canary's fault"},
		{scenario: "stable-also-bad", after: 5 * time.Minute, noStable: true, want: analysis.Fail, wantSLI: "drain-failure"},
		{scenario: "drain-misrouting", after: 2 * time.Minute, since: true, want: analysis.Fail, wantSLI: "drain-failure", wantReason: "roll back"},
		{scenario: "flapping", after: 7*time.Minute + 30*time.Second, since: true, want: analysis.Fail, wantSLI: "flaps"},
		{scenario: "stable-also-bad", after: 5 * time.Minute, since: true, want: analysis.Hold, wantSLI: "drain-failure", wantReason: "not the canary's fault"},
		{scenario: "healthy", after: 25 * time.Minute, since: true, want: analysis.Pass, wantReason: "all 7 SLIs pass"},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s/%s/nostable=%v", tt.scenario, tt.after, tt.noStable), func(t *testing.T) {
			t.Parallel()
			st, tr := loadScenario(t, tt.scenario)
			at := tr.StageStart.Add(tt.after)
			if tr.Fault != nil {
				at = tr.Fault.Onset.Add(tt.after)
			}
			req := request(p, tr, at)
			if tt.noStable {
				req.StableHash = ""
			}
			if tt.since {
				req.Since = tr.StageStart
			}
			c := &counting{Querier: st}
			v, err := analysis.New(c).Evaluate(context.Background(), req)
			if err != nil {
				t.Fatal(err)
			}
			if v.Decision != tt.want {
				t.Fatalf("verdict %s, want %s: %s", v.Decision, tt.want, v.Reason)
			}
			if !strings.Contains(v.Reason, tt.wantReason) {
				t.Errorf("reason %q does not say %q", v.Reason, tt.wantReason)
			}
			if tt.wantSLI != "" {
				if s := sli(t, v, tt.wantSLI); s.Decision != tt.want {
					t.Errorf("SLI %s: %s, want %s: %s", tt.wantSLI, s.Decision, tt.want, s.Reason)
				}
				if !strings.HasPrefix(v.Reason, tt.wantSLI+":") {
					t.Errorf("reason %q does not lead with %s", v.Reason, tt.wantSLI)
				}
			}
			// At most one query per SLI per target, all counted.
			wantQueries := len(p.Spec.SLIs) * 2
			if tt.noStable {
				wantQueries = len(p.Spec.SLIs)
			}
			if got := c.n.Load(); got != int64(wantQueries) || v.Queries != wantQueries {
				t.Errorf("sent %d queries, verdict says %d; want %d", got, v.Queries, wantQueries)
			}
		})
	}
}

// TestVerdictDetail checks what a failing verdict carries for a human:
// value, budget, burn and bounds per window, samples and the exact PromQL.
func TestVerdictDetail(t *testing.T) {
	t.Parallel()
	p := preset(t)
	st, tr := loadScenario(t, "drain-misrouting")
	v, err := analysis.New(st).Evaluate(context.Background(), request(p, tr, tr.Fault.Onset.Add(3*time.Minute)))
	if err != nil {
		t.Fatal(err)
	}
	s := sli(t, v, "drain-failure")
	if s.Budget != 0.001 {
		t.Errorf("budget %v, want 0.001", s.Budget)
	}
	var wins []string
	for _, w := range s.Windows {
		wins = append(wins, w.Window)
		if !(w.BurnLower <= w.Burn && w.Burn <= w.BurnUpper) {
			t.Errorf("window %s: bounds %v..%v do not hold burn %v", w.Window, w.BurnLower, w.BurnUpper, w.Burn)
		}
		if w.Total <= 0 || w.Bad < 0 {
			t.Errorf("window %s: counts bad=%v total=%v", w.Window, w.Bad, w.Total)
		}
	}
	if diff := cmp.Diff([]string{"15m", "5m", "3m", "1m"}, wins); diff != "" {
		t.Errorf("windows (-want +got):\n%s", diff)
	}
	if len(s.Tripped) == 0 || s.Samples < 1000 {
		t.Errorf("tripped %v, samples %v: want a tripped pair on thousands of requests", s.Tripped, s.Samples)
	}
	if len(s.Queries) != 2 || !strings.Contains(s.Queries[0], `pod_template_hash="`+tr.CanaryHash+`"`) || !strings.Contains(s.Queries[1], `pod_template_hash="`+tr.StableHash+`"`) {
		t.Errorf("queries do not select canary then stable:\n%s", strings.Join(s.Queries, "\n"))
	}
	if s.Baseline == nil || !s.Baseline.Worse {
		t.Errorf("baseline %+v: want the canary significantly worse than stable", s.Baseline)
	}
	if b := v.MaxBurn(); b < 10 {
		t.Errorf("max burn %v, want > 10", b)
	}
}

// TestNoDataIsNotZeroBurn: a hash that matches nothing holds every SLI.
func TestNoDataIsNotZeroBurn(t *testing.T) {
	t.Parallel()
	p := preset(t)
	st, tr := loadScenario(t, "healthy")
	req := request(p, tr, tr.StageStart.Add(20*time.Minute))
	req.CanaryHash, req.StableHash = "0000000000", ""
	v, err := analysis.New(st).Evaluate(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if v.Decision != analysis.Hold {
		t.Fatalf("verdict %s, want hold: %s", v.Decision, v.Reason)
	}
	for _, s := range v.SLIs {
		if s.Decision != analysis.Hold || !strings.Contains(s.Reason, "no data") {
			t.Errorf("%s: %s %q, want hold for no data", s.Name, s.Decision, s.Reason)
		}
	}
	// Before the canary existed there is no data either.
	req = request(p, tr, tr.Start.Add(time.Minute))
	if v, err = analysis.New(st).Evaluate(context.Background(), req); err != nil || v.Decision == analysis.Pass {
		t.Errorf("before the canary started: %v, %v; want hold", v.Decision, err)
	}
}

// nanData is a counter whose samples are NaN: a broken exporter.
const nanData = `# TYPE phase_requests counter
phase_requests_total{service="checkout",pod_template_hash="abc",phase="active"} NaN 1767225600
phase_requests_total{service="checkout",pod_template_hash="abc",phase="active"} NaN 1767225660
phase_requests_total{service="checkout",pod_template_hash="abc",phase="active"} NaN 1767225720
phase_requests_total{service="checkout",pod_template_hash="abc",phase="draining"} 1 1767225600
phase_requests_total{service="checkout",pod_template_hash="abc",phase="draining"} 1 1767225660
phase_requests_total{service="checkout",pod_template_hash="abc",phase="draining"} 1 1767225720
# EOF
`

func TestNaNNeverPasses(t *testing.T) {
	t.Parallel()
	st, err := replay.Load(strings.NewReader(nanData))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	p, err := policies.Load([]byte(`
apiVersion: phaseguard.dev/v1alpha1
kind: Policy
metadata: {name: nan}
spec:
  minSamples: 1
  slis: [{preset: drain-failure}]
`), "nan")
	if err != nil {
		t.Fatal(err)
	}
	v, err := analysis.New(st).Evaluate(context.Background(), analysis.Request{Policy: p, Service: "checkout", CanaryHash: "abc", At: time.Unix(1767225720, 0)})
	if err != nil {
		t.Fatal(err)
	}
	if v.Decision != analysis.Hold || !strings.Contains(v.Reason, "NaN") {
		t.Errorf("verdict %s %q, want hold naming NaN", v.Decision, v.Reason)
	}
}

// TestQueryErrors serves the Prometheus HTTP API with httptest, the way
// go-github tests itself, and checks that no failure mode passes.
func TestQueryErrors(t *testing.T) {
	t.Parallel()
	handlers := map[string]http.HandlerFunc{
		"5xx": func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "overloaded", http.StatusServiceUnavailable)
		},
		"garbage": func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprint(w, `{"status":"success","data":{"resultType":"vector","result":[{"metric":{}`)
		},
		"bad_data": func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprint(w, `{"status":"error","errorType":"bad_data","error":"parse error"}`)
		},
		"empty": func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprint(w, `{"status":"success","data":{"resultType":"vector","result":[]}}`)
		},
		"nan": func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprint(w, `{"status":"success","data":{"resultType":"vector","result":[`+
				`{"metric":{"phaseguard_part":"total","phaseguard_window":"15m"},"value":[1767225600,"NaN"]},`+
				`{"metric":{"phaseguard_part":"bad","phaseguard_window":"15m"},"value":[1767225600,"NaN"]}]}}`)
		},
		"slow": func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-r.Context().Done():
			case <-time.After(5 * time.Second):
			}
		},
	}
	for name, h := range handlers {
		for _, onErr := range []string{"hold", "fail"} {
			t.Run(name+"/"+onErr, func(t *testing.T) {
				t.Parallel()
				srv := httptest.NewServer(h)
				defer srv.Close()
				c, err := promapi.New(promapi.Config{URL: srv.URL, Retries: -1})
				if err != nil {
					t.Fatal(err)
				}
				p, err := policies.Load([]byte(`
apiVersion: phaseguard.dev/v1alpha1
kind: Policy
metadata: {name: errors}
spec:
  onQueryError: `+onErr+`
  slis: [{preset: drain-failure}, {preset: flaps}]
`), "errors")
				if err != nil {
					t.Fatal(err)
				}
				ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
				defer cancel()
				v, err := analysis.New(c).Evaluate(ctx, analysis.Request{Policy: p, Service: "checkout", CanaryHash: "abc", At: time.Unix(1767225600, 0)})
				if err != nil {
					t.Fatal(err)
				}
				if v.Decision == analysis.Pass {
					t.Fatalf("passed on %s: %s", name, v.Reason)
				}
				isQueryErr := name != "empty" && name != "nan"
				switch {
				case isQueryErr && onErr == "hold" && v.Decision != analysis.Hold,
					isQueryErr && onErr == "fail" && v.Decision != analysis.Fail,
					!isQueryErr && v.Decision != analysis.Hold:
					t.Errorf("verdict %s with onQueryError=%s: %s", v.Decision, onErr, v.Reason)
				}
				if isQueryErr && (v.QueryErrors != 2 || !strings.Contains(v.Reason, "query")) {
					t.Errorf("query errors %d, reason %q: want both SLIs' errors reported", v.QueryErrors, v.Reason)
				}
			})
		}
	}
}

// TestHostileInput: values that would break out of a PromQL string are
// refused before any query, naming the input.
func TestHostileInput(t *testing.T) {
	t.Parallel()
	p := preset(t)
	tests := []struct {
		name  string
		req   analysis.Request
		input string
	}{
		{"quote in hash", analysis.Request{Service: "checkout", CanaryHash: `abc"} or vector(1) #`}, "canary-hash"},
		{"newline in service", analysis.Request{Service: "checkout\n", CanaryHash: "abc"}, "service"},
		{"regex in stable", analysis.Request{Service: "checkout", CanaryHash: "abc", StableHash: ".*"}, "stable-hash"},
		{"missing canary", analysis.Request{Service: "checkout"}, "canary-hash"},
		{"same hashes", analysis.Request{Service: "checkout", CanaryHash: "abc", StableHash: "abc"}, "stable-hash"},
		{"unknown stage", analysis.Request{Service: "checkout", CanaryHash: "abc", Stage: "canary-99"}, "stage"},
		{"long service", analysis.Request{Service: strings.Repeat("a", 64), CanaryHash: "abc"}, "service"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := &counting{}
			tt.req.Policy = p
			v, err := analysis.New(c).Evaluate(context.Background(), tt.req)
			var ie *analysis.InputError
			if !errors.As(err, &ie) || ie.Input != tt.input {
				t.Fatalf("got %v, %v; want an InputError naming %s", v, err, tt.input)
			}
			if c.n.Load() != 0 {
				t.Errorf("sent %d queries for a bad request", c.n.Load())
			}
		})
	}
}

// TestBaselineOnlyWhereHashSelects: an SLI whose queries do not select
// by $hash (ingress-nginx's requests, per Service) reads the same series
// for "canary" and "stable". Compared, every canary fault was "stable
// burns too", a hold: a 5 % 503 share at 50× budget held whenever the
// template passed a stable hash. It is judged on its own; the SLIs that
// select by hash keep their baseline.
func TestBaselineOnlyWhereHashSelects(t *testing.T) {
	t.Parallel()
	var om strings.Builder
	const start = 1767225600
	for i := 0; i <= 120; i++ { // 30m every 15s, 100 requests/s, 5 % answered 503
		ts := start + 15*i
		fmt.Fprintf(&om, "nginx_ingress_controller_requests{exported_namespace=\"shop\",exported_service=\"checkout\",status=\"200\"} %d %d\n", 1425*i, ts)
		fmt.Fprintf(&om, "nginx_ingress_controller_requests{exported_namespace=\"shop\",exported_service=\"checkout\",status=\"503\"} %d %d\n", 75*i, ts)
	}
	om.WriteString("# EOF\n")
	st, err := replay.Load(strings.NewReader(om.String()))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	p, err := policies.Load([]byte(`
apiVersion: phaseguard.dev/v1alpha1
kind: Policy
metadata: {name: ingress}
spec:
  slis: [{preset: ingress-nginx-503}]
`), "ingress")
	if err != nil {
		t.Fatal(err)
	}
	for _, stable := range []string{"", "6d4b9c7f5"} {
		v, err := analysis.New(st).Evaluate(context.Background(), analysis.Request{Policy: p, Service: "checkout", Namespace: "shop",
			CanaryHash: "7f8c9d6b4", StableHash: stable, At: time.Unix(start+1800, 0)})
		if err != nil {
			t.Fatal(err)
		}
		s := sli(t, v, "ingress-nginx-503")
		if v.Decision != analysis.Fail || s.Baseline != nil || v.Queries != 1 {
			t.Errorf("stable hash %q: verdict %s %q, baseline %v, %d queries; want fail, no baseline, 1 query", stable, v.Decision, v.Reason, s.Baseline, v.Queries)
		}
	}
}
