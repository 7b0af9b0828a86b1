package rollouts

import (
	"encoding/json"
	"testing"

	"github.com/argoproj/argo-rollouts/pkg/apis/rollouts/v1alpha1"

	"github.com/phaseguard/phaseguard/internal/redact"
)

// TestLearnSecretArgs: the secret arguments this plugin's metric refers
// to are learned; another metric's, or a plain argument, are not (the set
// is the process's: another provider's short secret would mark every
// later text).
func TestLearnSecretArgs(t *testing.T) {
	t.Parallel()
	str := func(s string) *string { return &s }
	ref := &v1alpha1.ValueFrom{SecretKeyRef: &v1alpha1.SecretKeyRef{Name: "s", Key: "k"}}
	ar := &v1alpha1.AnalysisRun{Spec: v1alpha1.AnalysisRunSpec{
		Args: []v1alpha1.Argument{
			{Name: "token", Value: str("ours-7c1d"), ValueFrom: ref},
			{Name: "flag", Value: str("1"), ValueFrom: ref},
			{Name: "plain", Value: str("plain-2b3a")},
		},
		Metrics: []v1alpha1.Metric{
			{Name: "phase-slis", Provider: v1alpha1.MetricProvider{Plugin: map[string]json.RawMessage{
				Name: json.RawMessage(`{"prometheus": {"authorization": {"credentials": "{{ args.token }}"}}, "service": "{{args.plain}}"}`)}}},
			{Name: "web", Provider: v1alpha1.MetricProvider{Web: &v1alpha1.WebMetric{URL: "http://x/{{args.flag}}"}}},
		},
	}}
	set := redact.New()
	learnSecretArgs(set, ar, "phase-slis")
	if !set.Has("ours-7c1d") {
		t.Error("the metric's secret argument was not learned")
	}
	if set.Has("1") || set.Has("plain-2b3a") {
		t.Error("another metric's secret argument, or a plain argument, was learned")
	}
	learnSecretArgs(set, nil, "phase-slis") // no run: nothing, no panic
}
