package rollouts_test

import (
	"encoding/json"
	"testing"

	"github.com/argoproj/argo-rollouts/pkg/apis/rollouts/v1alpha1"

	"github.com/phaseguard/phaseguard/rollouts"
)

// pluginMetric is an AnalysisRun metric whose provider is this plugin,
// with cfg (JSON) as its configuration, args already substituted.
func pluginMetric(t testing.TB, cfg string) v1alpha1.Metric {
	t.Helper()
	return v1alpha1.Metric{
		Name:     "phase-slis",
		Provider: v1alpha1.MetricProvider{Plugin: map[string]json.RawMessage{rollouts.Name: json.RawMessage(cfg)}},
	}
}
