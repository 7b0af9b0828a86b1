package rollouts_test

import (
	"strings"
	"testing"
	"time"

	"github.com/argoproj/argo-rollouts/pkg/apis/rollouts/v1alpha1"

	"github.com/phaseguard/phaseguard/promapi/promapitest"
	"github.com/phaseguard/phaseguard/rollouts"
)

// TestIncompleteAnswersAreInconclusive drives the plugin against a real
// Prometheus holding the healthy scenario, through a proxy that marks its
// answers incomplete or answers for another time, and against a server
// answering 100 MB. Unaltered, the canary is Successful; otherwise the
// measurement is Inconclusive (Argo pauses the Rollout), its message
// quoting what was wrong, and the call returns by the plugin's timeout.
func TestIncompleteAnswersAreInconclusive(t *testing.T) {
	t.Parallel()
	stageEnd := time.Now().Add(-time.Hour).Truncate(time.Minute)
	prom, sc := startScenarios(t, stageEnd, "healthy")
	const timeout = 3 * time.Second
	proxy := func(edit promapitest.Edit) func(*testing.T) string {
		return func(t *testing.T) string { return promapitest.Proxy(t, prom.URL(), edit).URL }
	}
	oversized := func(after time.Duration) func(*testing.T) string {
		return func(t *testing.T) string {
			return promapitest.ServeOversized(t, &promapitest.Oversized{Size: 100e6, After: after})
		}
	}
	tests := []struct {
		name    string
		server  func(*testing.T) string
		want    v1alpha1.AnalysisPhase
		message []string
	}{
		{name: "unaltered", server: proxy(nil), want: v1alpha1.AnalysisPhaseSuccessful, message: []string{"all 7 SLIs pass: no window pair trips"}},
		{name: "infos only", server: proxy(promapitest.Inform("PromQL info: metric might not be a counter")), want: v1alpha1.AnalysisPhaseSuccessful},
		{name: "victoriametrics isPartial", server: proxy(promapitest.MarkPartial), want: v1alpha1.AnalysisPhaseInconclusive,
			message: []string{"query error", "incomplete answer: partial response", `"isPartial": true`}},
		{name: "thanos warnings", server: proxy(promapitest.Warn("partial response: fetch series for store Addr: store-gw-1:10901: context deadline exceeded")),
			want: v1alpha1.AnalysisPhaseInconclusive, message: []string{"incomplete answer: server warnings: ", "store-gw-1:10901"}},
		{name: "answer for another time", server: proxy(promapitest.ShiftTime(time.Minute)), want: v1alpha1.AnalysisPhaseInconclusive,
			message: []string{"answer for another evaluation time", "requested " + stageEnd.UTC().Format(time.RFC3339)}},
		{name: "100 MB", server: oversized(0), want: v1alpha1.AnalysisPhaseInconclusive, message: []string{"response too large"}},
		{name: "100 MB a second before the deadline", server: oversized(timeout - time.Second), want: v1alpha1.AnalysisPhaseInconclusive,
			message: []string{"query error"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := rollouts.New(rollouts.WithClock(func() time.Time { return stageEnd }))
			metric := pluginMetric(t, sc["healthy"].config(tt.server(t), `, "timeout": "`+timeout.String()+`"`))
			start := time.Now()
			m := p.Run(&v1alpha1.AnalysisRun{}, metric)
			elapsed := time.Since(start)
			t.Logf("%s in %s: %q", m.Phase, elapsed.Round(time.Millisecond), m.Message)
			if m.Phase != tt.want {
				t.Errorf("measurement %s, want %s: %q", m.Phase, tt.want, m.Message)
			}
			for _, want := range tt.message {
				if !strings.Contains(m.Message, want) {
					t.Errorf("message %q does not contain %q", m.Message, want)
				}
			}
			if tt.want == v1alpha1.AnalysisPhaseInconclusive && m.Metadata["verdict"] != "hold" {
				t.Errorf("metadata verdict %q, want hold", m.Metadata["verdict"])
			}
			// Late answers are cut at the deadline, not read to their
			// end. 3 s of slack, as the Action's test: beside the full -race
			// suite on two cores a Run took up to 4.1 s with the right
			// phase; reading 100 MB to its end would take far longer.
			if elapsed > timeout+3*time.Second {
				t.Errorf("Run took %s, want at most the %s timeout + 3s", elapsed, timeout)
			}
		})
	}
}
