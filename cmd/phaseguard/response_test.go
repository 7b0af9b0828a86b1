package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/phaseguard/phaseguard/internal/promtest"
	"github.com/phaseguard/phaseguard/promapi/promapitest"
	"github.com/phaseguard/phaseguard/scenarios"
)

// thanosWarning is what a Thanos Querier with partial_response_strategy=warn
// says when a store API timed out.
const thanosWarning = `partial response: fetch series for store Addr: store-gw-1:10901 LabelSets: {cluster="eu-1"}: context deadline exceeded`

// TestEvaluateIncompleteAnswers runs evaluate against a real Prometheus
// holding the healthy scenario, through a proxy that marks its answers the
// way Thanos, VictoriaMetrics and caching proxies do. Unaltered, the
// canary passes; marked incomplete or answered for another time, it holds
// (exit 2), quoting what was wrong; and every query asked for complete data.
func TestEvaluateIncompleteAnswers(t *testing.T) {
	t.Parallel()
	b, ok := scenarios.Lookup("healthy")
	if !ok {
		t.Fatal("no bundled scenario healthy")
	}
	prom := promtest.Start(t, promtest.Backfill(b.OpenMetrics))
	tr := b.Truth
	tests := []struct {
		name   string
		edit   promapitest.Edit
		code   int
		reason []string // substrings of the verdict's reason
	}{
		{name: "unaltered", code: exitPass},
		{name: "infos only", edit: promapitest.Inform("PromQL info: metric might not be a counter"), code: exitPass},
		{name: "victoriametrics isPartial", edit: promapitest.MarkPartial, code: exitHold,
			reason: []string{"query error", "incomplete answer: partial response", `"isPartial": true`}},
		{name: "thanos warnings", edit: promapitest.Warn(thanosWarning), code: exitHold,
			reason: []string{"query error", "incomplete answer: server warnings: ", "partial response: fetch series for store Addr: store-gw-1:10901"}},
		{name: "answer for another time", edit: promapitest.ShiftTime(-5 * time.Minute), code: exitHold,
			reason: []string{"query error", "answer for another evaluation time", "requested " + tr.StageStart.Add(25*time.Minute).UTC().Format(time.RFC3339)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			proxy := promapitest.Proxy(t, prom.URL(), tt.edit)
			code, out, errOut := runCLI(t, "evaluate", "--prometheus", proxy.URL, "--output", "json",
				"--service", tr.Service, "--namespace", tr.Namespace, "--canary-hash", tr.CanaryHash, "--stable-hash", tr.StableHash,
				"--stage", "canary-50", "--since", tr.StageStart.Format(time.RFC3339),
				"--at", tr.StageStart.Add(25*time.Minute).Format(time.RFC3339))
			var v struct {
				Verdict string `json:"verdict"`
				Reason  string `json:"reason"`
			}
			if err := json.Unmarshal([]byte(out), &v); err != nil {
				t.Fatalf("exit %d, stdout not a JSON verdict (%v):\n%s\nstderr:\n%s", code, err, out, errOut)
			}
			if code != tt.code {
				t.Errorf("exit %d, want %d; verdict %s: %s", code, tt.code, v.Verdict, v.Reason)
			}
			for _, want := range tt.reason {
				if !strings.Contains(v.Reason, want) {
					t.Errorf("reason %q does not contain %q", v.Reason, want)
				}
			}
			params := proxy.Params()
			if len(params) == 0 {
				t.Fatal("no query reached the server")
			}
			for i, p := range params {
				if p.Get("partial_response") != "false" || p.Get("deny_partial_response") != "1" {
					t.Errorf("query %d of %d asked partial_response=%q deny_partial_response=%q, want false and 1", i+1, len(params), p["partial_response"], p["deny_partial_response"])
				}
			}
		})
	}
}
