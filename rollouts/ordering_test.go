package rollouts_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/argoproj/argo-rollouts/pkg/apis/rollouts/v1alpha1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"

	"github.com/phaseguard/phaseguard/internal/kubetest"
	"github.com/phaseguard/phaseguard/rollouts"
)

// closedAddress returns a loopback URL where nothing listens: a
// measurement that gets past the ordering check ends Inconclusive on its
// query errors, one that does not ends Failed without a query.
func closedAddress(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return "http://" + addr
}

// orderingFixture creates, in its own namespace, a Rollout at revision 3
// and the AnalysisRuns described by prev (each: stage, phase, started ago,
// revision, terminated), and returns the current canary-50 AnalysisRun as
// the controller would pass it.
type prevRun struct {
	stage      string
	viaArgs    bool // stage given as {{args.stage}}, as a shared template does
	phase      string
	ago        time.Duration
	revision   string
	terminated bool
	otherOwner bool
}

func orderingFixture(t *testing.T, cfg *rest.Config, ns string, prev []prevRun) *v1alpha1.AnalysisRun {
	t.Helper()
	ro := kubetest.Create(t, cfg, fmt.Sprintf(`
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata: {name: checkout, namespace: %s, annotations: {rollout.argoproj.io/revision: "3"}}
spec:
  selector: {matchLabels: {app: checkout}}
  template:
    metadata: {labels: {app: checkout}}
    spec: {containers: [{name: app, image: example/checkout:2}]}
`, ns))
	now := time.Now().UTC()
	run := func(name, stage string, viaArgs bool, phase string, started time.Time, revision string, terminated bool, ownerUID string) *unstructured.Unstructured {
		stageJSON, args := `"`+stage+`"`, ""
		if viaArgs {
			stageJSON = `"{{args.stage}}"`
			args = fmt.Sprintf(`  args: [{name: stage, value: %s}, {name: token, valueFrom: {secretKeyRef: {name: s, key: k}}}]`, stage)
		}
		return kubetest.Create(t, cfg, fmt.Sprintf(`
apiVersion: argoproj.io/v1alpha1
kind: AnalysisRun
metadata:
  name: %s
  namespace: %s
  labels: {rollouts-pod-template-hash: 7f8c9d6b4, rollout-type: Step}
  annotations: {rollout.argoproj.io/revision: "%s"}
  ownerReferences:
    - {apiVersion: argoproj.io/v1alpha1, kind: Rollout, name: checkout, uid: %s, controller: true, blockOwnerDeletion: true}
spec:
  terminate: %t
%s
  metrics:
    - name: phase
      provider:
        plugin:
          phaseguard/phaseguard: {"policy": "phase-default", "stage": %s, "canaryHash": "7f8c9d6b4"}
status:
  phase: %s
  startedAt: %s
`, name, ns, revision, ownerUID, terminated, args, stageJSON, phase, started.Format(time.RFC3339)))
	}
	for i, p := range prev {
		owner := string(ro.GetUID())
		if p.otherOwner {
			owner = "0b9c3e6e-0000-4000-8000-000000000000"
		}
		run(fmt.Sprintf("checkout-7f8c9d6b4-%s-%d", p.revision, i), p.stage, p.viaArgs, p.phase, now.Add(-p.ago), p.revision, p.terminated, owner)
	}
	cur := run("checkout-7f8c9d6b4-3-current", "canary-50", false, "Running", now, "3", false, string(ro.GetUID()))
	ar := &v1alpha1.AnalysisRun{}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(cur.Object, ar); err != nil {
		t.Fatal(err)
	}
	return ar
}

// failingLister is a cluster that refuses the list (no RBAC).
type failingLister struct{}

func (failingLister) ListAnalysisRuns(context.Context, string, string) ([]v1alpha1.AnalysisRun, error) {
	return nil, errors.New(`analysisruns.argoproj.io is forbidden: User "system:serviceaccount:argo-rollouts:argo-rollouts" cannot list resource "analysisruns"`)
}

func TestStageOrdering(t *testing.T) {
	t.Parallel()
	cfg := kubetest.Start(t, kubetest.Rollouts, kubetest.AnalysisRuns)
	lister, err := rollouts.NewKubernetesAnalysisRuns(cfg)
	if err != nil {
		t.Fatal(err)
	}
	const outOfOrder = "out-of-order: stage canary-50 needs canary-10 to have passed for revision 3"
	for i, tc := range []struct {
		name      string
		prev      []prevRun
		extra     string // more config fields
		wantPhase v1alpha1.AnalysisPhase
		want      string
		// sinceAgo, when set, is how long ago the canary started: the
		// earliest run of the same Rollout, revision and hash.
		sinceAgo time.Duration
	}{
		{name: "no previous run",
			wantPhase: v1alpha1.AnalysisPhaseFailed, want: outOfOrder + " (no AnalysisRun of canary-10 found for this revision)"},
		{name: "previous still running",
			prev:      []prevRun{{stage: "canary-10", phase: "Running", ago: 20 * time.Minute, revision: "3"}},
			wantPhase: v1alpha1.AnalysisPhaseFailed, want: outOfOrder + " (checkout-7f8c9d6b4-3-0 is Running)"},
		{name: "previous failed",
			prev:      []prevRun{{stage: "canary-10", phase: "Failed", ago: 20 * time.Minute, revision: "3"}},
			wantPhase: v1alpha1.AnalysisPhaseFailed, want: "is Failed"},
		{name: "previous passed but soak not over",
			prev:      []prevRun{{stage: "canary-10", phase: "Successful", ago: 4 * time.Minute, revision: "3"}},
			wantPhase: v1alpha1.AnalysisPhaseFailed, want: "passed, but canary-10 began only 4m0s before canary-50 (soak 10m)"},
		{name: "previous terminated",
			prev:      []prevRun{{stage: "canary-10", phase: "Successful", ago: 20 * time.Minute, revision: "3", terminated: true}},
			wantPhase: v1alpha1.AnalysisPhaseFailed, want: "was terminated before it finished"},
		{name: "previous passed for another revision",
			prev:      []prevRun{{stage: "canary-10", phase: "Successful", ago: 20 * time.Minute, revision: "2"}},
			wantPhase: v1alpha1.AnalysisPhaseFailed, want: "(no AnalysisRun of canary-10 found for this revision)"},
		{name: "previous passed for another Rollout",
			prev:      []prevRun{{stage: "canary-10", phase: "Successful", ago: 20 * time.Minute, revision: "3", otherOwner: true}},
			wantPhase: v1alpha1.AnalysisPhaseFailed, want: "(no AnalysisRun of canary-10 found for this revision)"},
		{name: "only a later stage passed",
			prev:      []prevRun{{stage: "full", phase: "Successful", ago: 20 * time.Minute, revision: "3"}},
			wantPhase: v1alpha1.AnalysisPhaseFailed, want: "(no AnalysisRun of canary-10 found for this revision)"},
		{name: "previous passed and soaked",
			prev:      []prevRun{{stage: "canary-10", phase: "Successful", ago: 11 * time.Minute, revision: "3"}},
			wantPhase: v1alpha1.AnalysisPhaseInconclusive, want: "query error"},
		{name: "previous passed and soaked, stage from args",
			prev: []prevRun{
				{stage: "canary-10", phase: "Failed", ago: 30 * time.Minute, revision: "3"},
				{stage: "canary-10", viaArgs: true, phase: "Successful", ago: 11 * time.Minute, revision: "3"},
				{stage: "canary-10", phase: "Successful", ago: 50 * time.Minute, revision: "2"},
				{stage: "canary-10", phase: "Successful", ago: 40 * time.Minute, revision: "3", otherOwner: true},
			},
			wantPhase: v1alpha1.AnalysisPhaseInconclusive, want: "query error", sinceAgo: 30 * time.Minute},
		{name: "ordering off",
			extra:     `, "stageOrdering": false`,
			wantPhase: v1alpha1.AnalysisPhaseInconclusive, want: "query error", sinceAgo: time.Nanosecond},
		{name: "dry run",
			extra:     `, "dryRun": true`,
			wantPhase: v1alpha1.AnalysisPhaseSuccessful, want: "dry run, would be Failed: " + outOfOrder},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ar := orderingFixture(t, cfg, fmt.Sprintf("ordering-%d", i), tc.prev)
			p := rollouts.New(rollouts.WithAnalysisRuns(lister))
			m := p.Run(ar, pluginMetric(t, `{"policy": "phase-default", "stage": "canary-50", "service": "checkout", "namespace": "shop",
				"canaryHash": "7f8c9d6b4", "prometheus": {"address": "`+closedAddress(t)+`", "retries": -1}`+tc.extra+`}`))
			if m.Phase != tc.wantPhase || !strings.Contains(m.Message, tc.want) {
				t.Errorf("measurement %s %q\nwant %s containing %q", m.Phase, m.Message, tc.wantPhase, tc.want)
			}
			if m.FinishedAt == nil {
				t.Error("measurement not finished")
			}
			if tc.sinceAgo > 0 {
				since, err := time.Parse(time.RFC3339, m.Metadata["since"])
				want := time.Now().Add(-tc.sinceAgo)
				if err != nil || since.Sub(want).Abs() > 10*time.Second {
					t.Errorf("metadata since %q, want the earliest run of this revision, %s", m.Metadata["since"], want.UTC().Format(time.RFC3339))
				}
			}
		})
	}

	t.Run("canary start without RBAC", func(t *testing.T) {
		t.Parallel()
		ar := orderingFixture(t, cfg, "ordering-rbac", nil)
		p := rollouts.New(rollouts.WithAnalysisRuns(failingLister{}))
		m := p.Run(ar, pluginMetric(t, `{"policy": "phase-default", "stage": "canary-10", "service": "checkout", "namespace": "shop",
			"canaryHash": "7f8c9d6b4", "prometheus": {"address": "`+closedAddress(t)+`", "retries": -1}}`))
		since, err := time.Parse(time.RFC3339, m.Metadata["since"])
		if m.Phase != v1alpha1.AnalysisPhaseInconclusive || err != nil || since.Sub(ar.Status.StartedAt.Time).Abs() > time.Second ||
			!strings.Contains(m.Metadata["sinceNote"], "needs RBAC get, list on analysisruns.argoproj.io") {
			t.Errorf("measurement %s %q, since %q (%q): want this run's start and why", m.Phase, m.Message, m.Metadata["since"], m.Metadata["sinceNote"])
		}
	})

	t.Run("not created by a Rollout", func(t *testing.T) {
		t.Parallel()
		p := rollouts.New(rollouts.WithAnalysisRuns(lister))
		ar := &v1alpha1.AnalysisRun{}
		ar.Namespace, ar.Name = "adhoc", "by-hand"
		m := p.Run(ar, pluginMetric(t, `{"policy": "phase-default", "stage": "canary-50", "canaryHash": "7f8c9d6b4", "service": "checkout", "prometheus": {"address": "http://127.0.0.1:1"}}`))
		if m.Phase != v1alpha1.AnalysisPhaseError || !strings.Contains(m.Message, "was not created by a Rollout step") {
			t.Errorf("measurement %s %q", m.Phase, m.Message)
		}
	})
	t.Run("first stage needs no check", func(t *testing.T) {
		t.Parallel()
		p := rollouts.New(rollouts.WithAnalysisRuns(lister))
		m := p.Run(&v1alpha1.AnalysisRun{}, pluginMetric(t, `{"policy": "phase-default", "stage": "canary-10", "canaryHash": "7f8c9d6b4", "service": "checkout", "prometheus": {"address": "`+closedAddress(t)+`", "retries": -1}}`))
		if m.Phase != v1alpha1.AnalysisPhaseInconclusive {
			t.Errorf("measurement %s %q", m.Phase, m.Message)
		}
	})
}
