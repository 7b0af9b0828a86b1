package rollouts

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/argoproj/argo-rollouts/pkg/apis/rollouts/v1alpha1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"

	"github.com/phaseguard/phaseguard/internal/argotest"
	"github.com/phaseguard/phaseguard/policies"
)

func TestPlanLook(t *testing.T) {
	t.Parallel()
	pol, err := policies.Preset("phase-default") // canary-10 10m, canary-50 15m, full 5m
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	count := func(n int) *intstr.IntOrString { c := intstr.FromInt(n); return &c }
	tests := []struct {
		name     string
		metric   v1alpha1.Metric
		stage    string
		done     int32 // measurements the metric has taken
		wantErr  string
		wantLast bool
		wantLook int
		wantSoak time.Duration
	}{
		{name: "count 20 × 30s is short of a 10m soak", metric: v1alpha1.Metric{Interval: "30s", Count: count(20)}, stage: "canary-10",
			wantErr: "count 20 × interval 30s covers 9m30s of stage canary-10's 10m soak"},
		{name: "the error says how many", metric: v1alpha1.Metric{Interval: "30s", Count: count(20)}, stage: "canary-10", wantErr: "at least 21"},
		{name: "21 looks cover 10m", metric: v1alpha1.Metric{Interval: "30s", Count: count(21)}, stage: "canary-10", wantLook: 1, wantSoak: 10 * time.Minute},
		{name: "21 looks do not cover canary-50", metric: v1alpha1.Metric{Interval: "30s", Count: count(21)}, stage: "canary-50", wantErr: "at least 31"},
		{name: "a count in a string, as {{args}} leave it", metric: v1alpha1.Metric{Interval: "1m", Count: &intstr.IntOrString{Type: intstr.String, StrVal: "16"}}, stage: "canary-50", wantLook: 1, wantSoak: 15 * time.Minute},
		{name: "the last look by count", metric: v1alpha1.Metric{Interval: "30s", Count: count(31)}, stage: "canary-50", done: 30, wantLast: true, wantLook: 31, wantSoak: 15 * time.Minute},
		{name: "no count: a background analysis never has a last look", metric: v1alpha1.Metric{Interval: "30s"}, stage: "canary-10", done: 500, wantLook: 501, wantSoak: 10 * time.Minute},
		{name: "no interval: Argo takes one measurement, the last", metric: v1alpha1.Metric{}, stage: "canary-10", wantLast: true, wantLook: 1, wantSoak: 10 * time.Minute},
		{name: "no stage: the longest soak, no count check", metric: v1alpha1.Metric{Interval: "30s", Count: count(3)}, wantLook: 1, wantSoak: 15 * time.Minute},
		{name: "consecutiveSuccessLimit would end the stage early", metric: v1alpha1.Metric{Interval: "30s", Count: count(31), ConsecutiveSuccessLimit: count(3)}, stage: "canary-10",
			wantErr: "consecutiveSuccessLimit 3: not allowed in look mode"},
		{name: "bad interval", metric: v1alpha1.Metric{Interval: "soon", Count: count(31)}, stage: "canary-10", wantErr: `interval "soon"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.metric.Name = "phase-slis"
			ar := &v1alpha1.AnalysisRun{Status: v1alpha1.AnalysisRunStatus{
				StartedAt:     &metav1.Time{Time: now.Add(-time.Minute)},
				MetricResults: []v1alpha1.MetricResult{{Name: "other", Count: 99}, {Name: "phase-slis", Count: tt.done}},
			}}
			lp, err := planLook(ar, tt.metric, pol, tt.stage, now)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if lp.last != tt.wantLast || lp.look != tt.wantLook || lp.soak != tt.wantSoak || !lp.start.Equal(now.Add(-time.Minute)) {
				t.Errorf("plan %+v, want last %v, look %d, soak %s, start at the run's start", lp, tt.wantLast, tt.wantLook, tt.wantSoak)
			}
		})
	}
}

// TestShippedTemplatesCoverEveryStage: every look-mode metric of the
// templates in examples/ lasts at least the soak of every stage of every
// built-in policy, so stage ordering never refuses the stage after one
// (count 20 × 30s, shipped before, covered 9m30s of canary-10's 10m).
func TestShippedTemplatesCoverEveryStage(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob("examples/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		var tpl struct {
			Kind string                        `json:"kind"`
			Spec v1alpha1.AnalysisTemplateSpec `json:"spec"`
		}
		if err := yaml.Unmarshal(data, &tpl); err != nil || !strings.HasSuffix(tpl.Kind, "AnalysisTemplate") {
			continue
		}
		for _, name := range policies.PresetNames() {
			pol, err := policies.Preset(name)
			if err != nil {
				t.Fatal(err)
			}
			for _, st := range pol.Spec.Stages {
				args := []v1alpha1.Argument{}
				for _, a := range tpl.Spec.Args {
					v := "x"
					if a.Name == "stage" {
						v = st.Name
					}
					args = append(args, v1alpha1.Argument{Name: a.Name, Value: &v})
				}
				for _, m := range tpl.Spec.Metrics {
					if _, ok := m.Provider.Plugin[Name]; !ok {
						continue
					}
					resolved := argotest.ResolveArgs(t, m, args)
					cfg, err := DecodeConfig(resolved.Provider.Plugin[Name])
					if err != nil {
						t.Fatalf("%s metric %s: %v", file, m.Name, err)
					}
					checked++
					switch cfg.Mode {
					case ModeLook:
						if _, err := planLook(nil, resolved, pol, cfg.Stage, time.Now()); err != nil {
							t.Errorf("%s metric %s, policy %s: %v", file, m.Name, name, err)
						}
					case ModeStage:
						// One measurement, resumed until the plugin's own
						// soak ends: it must be a single measurement.
						if c := resolved.EffectiveCount(); c == nil || c.IntValue() != 1 {
							t.Errorf("%s metric %s: stage mode needs count 1 (one measurement for the stage), got %v", file, m.Name, c)
						}
					}
				}
			}
		}
	}
	if checked == 0 {
		t.Fatal("no plugin metric found in examples/")
	}
}
