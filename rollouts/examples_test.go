package rollouts_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/argoproj/argo-rollouts/pkg/apis/rollouts/v1alpha1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/phaseguard/phaseguard/rollouts"
)

// TestExamples decodes every example strictly into Argo's own types and
// checks that each template's plugin config, with its arguments filled the
// way the Rollout fills them, is a config the plugin accepts.
func TestExamples(t *testing.T) {
	t.Parallel()
	read := func(name string, into any) {
		t.Helper()
		data, err := os.ReadFile(filepath.Join("examples", name))
		if err != nil {
			t.Fatal(err)
		}
		if err := yaml.UnmarshalStrict(data, into); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	var cm corev1.ConfigMap
	read("argo-rollouts-config.yaml", &cm)
	if !strings.Contains(cm.Data["metricProviderPlugins"], "name: "+rollouts.Name) {
		t.Errorf("argo-rollouts-config does not name %s", rollouts.Name)
	}

	var ro v1alpha1.Rollout
	read("rollout.yaml", &ro)
	var stages []string
	for _, step := range ro.Spec.Strategy.Canary.Steps {
		if step.Analysis == nil {
			continue
		}
		for _, a := range step.Analysis.Args {
			if a.Name == "stage" {
				stages = append(stages, a.Value)
			}
		}
	}
	if strings.Join(stages, ",") != "canary-10,canary-50,full" {
		t.Errorf("rollout stages %v, want the phase-default stages", stages)
	}

	for _, name := range []string{"clusteranalysistemplate-look.yaml", "clusteranalysistemplate-stage.yaml"} {
		var tpl v1alpha1.ClusterAnalysisTemplate
		read(name, &tpl)
		for _, m := range tpl.Spec.Metrics {
			v := func(s string) *string { return &s }
			args := []v1alpha1.Argument{{Name: "service", Value: v("checkout")}, {Name: "namespace", Value: v("shop")},
				{Name: "canary-hash", Value: v("7f8c9d6b4")}, {Name: "stable-hash", Value: v("6d4b9c7f5")}, {Name: "stage", Value: v("canary-50")}}
			resolved := resolveArgs(t, m, args)
			if _, err := rollouts.DecodeConfig(resolved.Provider.Plugin[rollouts.Name]); err != nil {
				t.Errorf("%s metric %s: %v", name, m.Name, err)
			}
		}
	}
}
