package analysis_test

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/phaseguard/phaseguard/analysis"
	"github.com/phaseguard/phaseguard/internal/promtest"
	"github.com/phaseguard/phaseguard/policies"
	"github.com/phaseguard/phaseguard/promapi"
)

// meshRequest is the request of ../shared/cases/mesh-without-convention.
func meshRequest(p *policies.Policy, at time.Time, canary, stable string) analysis.Request {
	return analysis.Request{Policy: p, Stage: "canary-10", At: at, Service: "payments", Namespace: "pay", CanaryHash: canary, StableHash: stable}
}

// meshEngines returns the embedded engine and one on a real Prometheus,
// both loaded with data.
func meshEngines(t *testing.T, data []byte) map[string]*analysis.Engine {
	t.Helper()
	srv := promtest.Start(t, promtest.Backfill(data))
	live, err := promapi.New(promapi.Config{URL: srv.URL()})
	if err != nil {
		t.Fatal(err)
	}
	return map[string]*analysis.Engine{"embedded": analysis.New(replayOf(t, data)), "prometheus": analysis.New(live)}
}

// TestMeshCountsEachRequestOnce is the case mesh-without-convention
// (gen_payments.py fault): from 00:20 2 % of the canary's requests get a
// 503 UF, recorded by the calling proxy only, while both proxies record
// every other request. At 00:25 the istio-drain-503 preset must read the
// true share, 20× its 0.1 % budget over 5m, the same as the case's own
// reporter-pinned SLI, where summing both reporters read 10.4×.
func TestMeshCountsEachRequestOnce(t *testing.T) {
	t.Parallel()
	p, err := policies.Load(readCase(t, "mesh-payments.yaml"), "payments")
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 2, 1, 0, 25, 0, 0, time.UTC)
	for name, eng := range meshEngines(t, readCase(t, "mesh-fault.om.gz")) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			v, err := eng.Evaluate(context.Background(), meshRequest(p, at, "5b7d9c8f6", "84c6f7d9b"))
			if err != nil {
				t.Fatal(err)
			}
			preset, own := sli(t, v, "istio-drain-503"), sli(t, v, "gateway-503")
			burn := float64(preset.Burn["5m"])
			t.Logf("istio-drain-503 burns %.1f× over 5m, %.2f× over 15m; gateway-503's share %.3f %% over 5m", burn, float64(preset.Burn["15m"]), 100*float64(own.Burn["5m"]*own.Budget))
			if burn < 17 || burn > 23 {
				t.Errorf("istio-drain-503 burns %.1f× over 5m, want about 20× (2 %% of a 0.1 %% budget)", burn)
			}
			for _, w := range []string{"15m", "5m", "1m"} {
				pv, ov := float64(preset.Burn[w]*preset.Budget), float64(own.Burn[w]*own.Budget)
				if pv < 0.95*ov || pv > 1.05*ov {
					t.Errorf("%s: istio-drain-503 reads a %.3f %% share of 503s, the reporter-pinned SLI %.3f %%", w, 100*pv, 100*ov)
				}
			}
			if preset.Decision != analysis.Fail || v.Decision != analysis.Fail {
				t.Errorf("istio-drain-503 %s, verdict %s (%s); want fail", preset.Decision, v.Decision, v.Reason)
			}
		})
	}
}

// edit returns the lines of data that match none of drop, with the
// replacements (old, new pairs) made.
func edit(data []byte, drop []*regexp.Regexp, replace ...string) []byte {
	var out bytes.Buffer
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 1<<20)
next:
	for sc.Scan() {
		line := sc.Text()
		for _, re := range drop {
			if re.MatchString(line) {
				continue next
			}
		}
		out.WriteString(strings.NewReplacer(replace...).Replace(line))
		out.WriteByte('\n')
	}
	return out.Bytes()
}

// TestNoDataNamesWhatIsMissing: an SLI without data holds with a reason
// that names what its queries miss (no series of the metric, a label the
// exporter does not export, a value no series has) and, for the presets'
// metrics, what to do about it, on a real Prometheus as in the embedded
// engine. The probes are counted in the verdict's queries, and a failed
// probe leaves the hold a hold.
func TestNoDataNamesWhatIsMissing(t *testing.T) {
	t.Parallel()
	istio, err := policies.Preset("istio")
	if err != nil {
		t.Fatal(err)
	}
	low := readCase(t, "mesh-lowbad.om.gz")
	hashLabel := regexp.MustCompile(`,label_rollouts_pod_template_hash="[0-9a-z]+"`)
	at := time.Date(2026, 2, 1, 0, 10, 0, 0, time.UTC)
	for _, tt := range []struct {
		name   string
		data   []byte
		canary string
		// want maps each SLI to a part of its reason; an SLI not named
		// must not hold for want of data.
		want map[string][]string
	}{
		{
			name:   "missing metric",
			data:   edit(low, []*regexp.Regexp{regexp.MustCompile(`^kube_pod_labels\{`)}),
			canary: "5b7d9c8f6",
			want: map[string][]string{
				"kube-readiness-flaps": {"no series named kube_pod_labels in the last ", ": is kube-state-metrics running and scraped?"},
			},
		},
		{
			name: "missing label",
			// kube-state-metrics without --metric-labels-allowlist; the
			// callers outside the mesh: only reporter="destination".
			data:   hashLabel.ReplaceAll(edit(low, []*regexp.Regexp{regexp.MustCompile(`reporter="source"`)}), nil),
			canary: "5b7d9c8f6",
			want: map[string][]string{
				"kube-readiness-flaps": {"kube_pod_labels has no label label_rollouts_pod_template_hash", "--metric-labels-allowlist=pods=[rollouts-pod-template-hash]"},
				"istio-drain-503":      {`no series of istio_requests_total{destination_service_name="payments",destination_version="5b7d9c8f6",destination_workload_namespace="pay"} has reporter="source"`, "no sidecar"},
			},
		},
		{
			name:   "missing value",
			data:   low,
			canary: "0badc0de1",
			want: map[string][]string{
				"kube-readiness-flaps": {`no series of kube_pod_labels{namespace="pay"} has label_rollouts_pod_template_hash="0badc0de1"`, "status.currentPodHash"},
				"istio-drain-503":      {`no series of istio_requests_total{destination_service_name="payments",destination_workload_namespace="pay"} has destination_version="0badc0de1"`, "version label"},
			},
		},
		{
			name:   "nothing missing",
			data:   low,
			canary: "5b7d9c8f6",
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			for name, eng := range meshEngines(t, tt.data) {
				v, err := eng.Evaluate(context.Background(), meshRequest(istio, at, tt.canary, ""))
				if err != nil {
					t.Fatal(err)
				}
				if len(tt.want) > 0 && v.Decision != analysis.Hold {
					t.Errorf("%s: %s (%s), want hold", name, v.Decision, v.Reason)
				}
				for _, s := range v.SLIs {
					want, ok := tt.want[s.Name]
					if !ok {
						if strings.Contains(s.Reason, "in any window") || len(s.Queries) != 1 {
							t.Errorf("%s %s: %q with %d queries; want no diagnosis", name, s.Name, s.Reason, len(s.Queries))
						}
						continue
					}
					if s.Decision != analysis.Hold {
						t.Errorf("%s %s: %s, want hold", name, s.Name, s.Decision)
					}
					for _, w := range want {
						if !strings.Contains(s.Reason, w) {
							t.Errorf("%s %s: reason %q\nwant it to contain %q", name, s.Name, s.Reason, w)
						}
					}
					if len(s.Queries) != 2 || !strings.Contains(s.Queries[1], "phaseguard_probe") {
						t.Errorf("%s %s: queries %q, want the SLI's and one probe query", name, s.Name, s.Queries)
					}
				}
				if want := len(istio.Spec.SLIs) + len(tt.want); v.Queries != want {
					t.Errorf("%s: %d queries counted, want %d (one per SLI and one probe per missing selector)", name, v.Queries, want)
				}
			}
		})
	}

	t.Run("probe fails", func(t *testing.T) {
		t.Parallel()
		srv := promtest.Start(t, promtest.Backfill(low))
		target, err := url.Parse(srv.URL())
		if err != nil {
			t.Fatal(err)
		}
		// A proxy that fails every probe query and passes the rest.
		proxy := httputil.NewSingleHostReverseProxy(target)
		front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			body, _ := io.ReadAll(r.Body)
			r.Body = io.NopCloser(bytes.NewReader(body))
			form, _ := url.ParseQuery(string(body))
			if strings.Contains(form.Get("query")+r.URL.Query().Get("query"), "phaseguard_probe") {
				http.Error(w, `{"status":"error","errorType":"execution","error":"query processing would load too many samples into memory"}`, http.StatusUnprocessableEntity)
				return
			}
			proxy.ServeHTTP(w, r)
		}))
		t.Cleanup(front.Close)
		c, err := promapi.New(promapi.Config{URL: front.URL, Retries: 1})
		if err != nil {
			t.Fatal(err)
		}
		sent := &counting{Querier: c}
		v, err := analysis.New(sent).Evaluate(context.Background(), meshRequest(istio, at, "0badc0de1", ""))
		if err != nil {
			t.Fatal(err)
		}
		if v.Decision != analysis.Hold || v.QueryErrors != 0 {
			t.Errorf("%s with %d query errors (%s); want hold, no SLI query error", v.Decision, v.QueryErrors, v.Reason)
		}
		for _, s := range v.SLIs {
			if s.Decision != analysis.Hold || !strings.Contains(s.Reason, "not diagnosed, a probe query failed") {
				t.Errorf("%s: %s %q; want hold, not diagnosed", s.Name, s.Decision, s.Reason)
			}
		}
		if v.Queries != int(sent.n.Load()) || v.Queries != 4 {
			t.Errorf("%d queries counted, %d sent; want 4 (2 SLIs, 2 probes)", v.Queries, sent.n.Load())
		}
	})
}

// TestProbesBounded: however many SLIs have no data, an evaluation sends
// at most four probe queries, and says so for the SLIs it did not probe.
func TestProbesBounded(t *testing.T) {
	t.Parallel()
	p := preset(t) // phase-default: 7 SLIs
	st, tr := loadScenario(t, "healthy")
	req := request(p, tr, tr.StageStart.Add(20*time.Minute))
	req.CanaryHash, req.StableHash = "0000000000", ""
	sent := &counting{Querier: st}
	v, err := analysis.New(sent).Evaluate(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if v.Decision != analysis.Hold {
		t.Fatalf("%s (%s), want hold", v.Decision, v.Reason)
	}
	if v.Queries != len(p.Spec.SLIs)+4 || int(sent.n.Load()) != v.Queries {
		t.Errorf("%d queries counted, %d sent; want %d SLI queries and 4 probes", v.Queries, sent.n.Load(), len(p.Spec.SLIs))
	}
	named, bounded := 0, 0
	for _, s := range v.SLIs {
		switch {
		case strings.Contains(s.Reason, `has pod_template_hash="0000000000"`):
			named++
		case strings.Contains(s.Reason, "not diagnosed (at most 4 probe queries per evaluation)"):
			bounded++
		default:
			t.Errorf("%s: %q", s.Name, s.Reason)
		}
	}
	if named != 4 || bounded != len(p.Spec.SLIs)-4 {
		t.Errorf("%d SLIs diagnosed, %d not; want 4 and %d", named, bounded, len(p.Spec.SLIs)-4)
	}
}
