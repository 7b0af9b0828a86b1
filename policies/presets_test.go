package policies

import (
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
)

// meshMetrics are the metrics a service mesh's proxies report for every
// request (or connection) each of them sees, so that a call between two
// meshed pods is counted twice, once per end, and the label that tells
// the ends apart. A query that sums one of them without pinning that label
// to one value counts meshed requests twice and a request only one end
// saw (a 503 the calling Envoy made up because the upstream was gone: UF,
// UH) once, reading about half the true share of such errors.
var meshMetrics = []struct {
	name  *regexp.Regexp
	label string
}{
	// Istio's standard metrics: reporter="source" (the client's proxy),
	// "destination" (the server's), "waypoint" (ambient).
	{regexp.MustCompile(`^istio_(requests_total|request_messages_total|response_messages_total|` +
		`(request_duration_milliseconds|request_bytes|response_bytes)(_bucket|_sum|_count)?|` +
		`tcp_(sent_bytes|received_bytes|connections_opened|connections_closed)_total)$`), "reporter"},
	// Linkerd's proxy metrics: direction="outbound" (client) or "inbound".
	{regexp.MustCompile(`^(request_total|response_total|response_latency_ms(_bucket|_sum|_count)?|` +
		`tcp_(open|close)_total|tcp_(read|write)_bytes_total)$`), "direction"},
}

// unpinnedMeshSelectors returns the selectors of expr that read a mesh
// metric without an equality matcher on the label that tells its
// reporters apart.
func unpinnedMeshSelectors(expr parser.Expr) []string {
	var out []string
	parser.Inspect(expr, func(node parser.Node, _ []parser.Node) error {
		vs, ok := node.(*parser.VectorSelector)
		if !ok {
			return nil
		}
		name := vs.Name
		for _, m := range vs.LabelMatchers {
			if m.Name == model.MetricNameLabel && m.Type == labels.MatchEqual {
				name = m.Value
			}
		}
		for _, mm := range meshMetrics {
			if !mm.name.MatchString(name) {
				continue
			}
			pinned := false
			for _, m := range vs.LabelMatchers {
				pinned = pinned || m.Name == mm.label && m.Type == labels.MatchEqual && m.Value != ""
			}
			if !pinned {
				out = append(out, vs.String()+" (no "+mm.label+"=\"...\")")
			}
		}
		return nil
	})
	return out
}

// meshProblems parses query (with a window in place of $window) and
// returns its unpinned mesh selectors.
func meshProblems(t *testing.T, query string) []string {
	t.Helper()
	expr, err := promqlParser.ParseExpr(strings.ReplaceAll(query, PlaceholderWindow, "5m"))
	if err != nil {
		t.Fatalf("parse %q: %v", query, err)
	}
	return unpinnedMeshSelectors(expr)
}

// sliQueries returns every query an SLI gives, by field.
func sliQueries(s *SLI) map[string]string {
	out := map[string]string{}
	if s.Ratio != nil {
		out["ratio.bad"], out["ratio.good"], out["ratio.total"] = s.Ratio.Bad, s.Ratio.Good, s.Ratio.Total
	}
	if s.Rate != nil {
		out["rate.events"], out["rate.presence"] = s.Rate.Events, s.Rate.Presence
	}
	for k, v := range out {
		if v == "" {
			delete(out, k)
		}
	}
	return out
}

// TestMeshMetricsCountedOnce: every built-in SLI and every example policy
// that reads a metric both ends of a mesh report pins the reporter, so
// each request is counted once (../shared/cases/mesh-without-convention:
// istio-drain-503 summed both reporters and read a 20× burn as 10.7×).
func TestMeshMetricsCountedOnce(t *testing.T) {
	t.Parallel()
	t.Run("checker", func(t *testing.T) {
		t.Parallel()
		for _, tt := range []struct {
			query string
			flags int
		}{
			{`sum(increase(istio_requests_total{destination_version="$hash",response_code="503"}[$window]))`, 1},
			{`sum(increase(istio_requests_total{reporter="source",destination_version="$hash"}[$window]))`, 0},
			{`sum(increase(istio_requests_total{reporter=~"source|destination"}[$window]))`, 1},
			{`sum(increase({__name__="istio_requests_total",reporter!="destination"}[$window]))`, 1},
			{`sum(increase(istio_request_duration_milliseconds_bucket{le="100"}[$window])) / sum(increase(istio_request_duration_milliseconds_count{reporter="source"}[$window]))`, 1},
			{`sum(increase(response_total{deployment="web",classification="failure"}[$window]))`, 1},
			{`sum(increase(response_total{direction="inbound",classification="failure"}[$window]))`, 0},
			{`sum(increase(nginx_ingress_controller_requests{status="503"}[$window]))`, 0},
		} {
			if got := meshProblems(t, tt.query); len(got) != tt.flags {
				t.Errorf("%s: flagged %q, want %d selector(s)", tt.query, got, tt.flags)
			}
		}
	})
	t.Run("presets", func(t *testing.T) {
		t.Parallel()
		mesh := 0
		for _, name := range SLIPresetNames() {
			s := sliPresets[name]
			for field, q := range sliQueries(&s) {
				if strings.Contains(q, "istio_") {
					mesh++
				}
				for _, p := range meshProblems(t, q) {
					t.Errorf("preset %s %s: %s counts each meshed request twice", name, field, p)
				}
			}
		}
		if mesh == 0 {
			t.Error("no preset reads an Istio metric: the check checked nothing")
		}
	})
	t.Run("policies", func(t *testing.T) {
		t.Parallel()
		var ps []*Policy
		for _, name := range PresetNames() {
			p, err := Preset(name)
			if err != nil {
				t.Fatal(err)
			}
			ps = append(ps, p)
		}
		examples, _ := filepath.Glob("examples/*.yaml")
		for _, f := range examples {
			p, err := LoadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			ps = append(ps, p)
		}
		for _, p := range ps {
			for i := range p.Spec.SLIs {
				for field, q := range sliQueries(&p.Spec.SLIs[i]) {
					for _, prob := range meshProblems(t, q) {
						t.Errorf("%s slis[%d] (%s) %s: %s counts each meshed request twice", p.Source(), i, p.Spec.SLIs[i].Name, field, prob)
					}
				}
			}
		}
	})
}

// TestHints: the hints the no-data reasons give for the presets' metrics
// name the flag or label they are about.
func TestHints(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		metric, label string
		what          Missing
		want          string
	}{
		{"kube_pod_labels", "label_rollouts_pod_template_hash", MissingLabel, "--metric-labels-allowlist=pods=[rollouts-pod-template-hash]"},
		{"kube_pod_labels", "", MissingMetric, "kube-state-metrics"},
		{"istio_requests_total", "destination_version", MissingValue, "version label"},
		{"istio_requests_total", "reporter", MissingValue, "sidecar"},
		{"kube_pod_labels", "label_rollouts_pod_template_hash", MissingMetric, ""},
		{"some_metric", "", MissingMetric, ""},
	} {
		got := Hint(tt.metric, tt.label, tt.what)
		if tt.want == "" && got != "" || !strings.Contains(got, tt.want) {
			t.Errorf("Hint(%s, %s, %d) = %q, want it to contain %q", tt.metric, tt.label, tt.what, got, tt.want)
		}
	}
}
