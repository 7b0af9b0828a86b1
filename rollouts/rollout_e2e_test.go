package rollouts_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/snappy"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/textparse"
	"github.com/prometheus/prometheus/prompb"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/yaml"

	"github.com/argoproj/argo-rollouts/pkg/apis/rollouts/v1alpha1"

	"github.com/phaseguard/phaseguard/internal/kubetest"
	"github.com/phaseguard/phaseguard/internal/promtest"
	"github.com/phaseguard/phaseguard/rollouts"
	"github.com/phaseguard/phaseguard/scenarios"
)

// e2ePolicy is the policy both example templates are given inline in
// TestRolloutEndToEnd: phase-default on a clock compressed for a test that
// must end in minutes. The stage soaks 30s (phase-default: 10m) looked at
// every 10s, and the window pairs are 1m/15s and 2m/30s (5m/1m, 15m/3m).
// The SLIs are phase-default's four counted per request; the other three
// count events that come at a fixed pace whatever the traffic (phase
// propagations every 5s per pod, flaps and reconcile retries a few an
// hour), and no canary a minute old has the evidence to rule out a fast
// burn of those: they would hold every stage of this clock, as they should.
// The healthy canary serves 500 requests/s, so that its 30s soak has the
// evidence (jobs, observations) that 50 requests/s gather over minutes.
const e2ePolicy = `apiVersion: phaseguard.dev/v1alpha1
kind: Policy
metadata:
  name: e2e-compressed
  description: phase-default's per-request SLIs on a clock compressed for the end-to-end test.
spec:
  alpha: 0.05
  interval: 10s
  minSamples: 100
  onQueryError: hold
  windows:
    - {long: 1m, short: 15s, factor: 10}
    - {long: 2m, short: 30s, factor: 2}
  baseline:
    maxRatio: 2
  stages:
    - {name: canary-10, soak: 30s}
  slis:
    - preset: drain-failure
    - preset: phase-mismatch
    - preset: duplicate-processing
    - preset: schema-errors
`

// e2eStage is the stage of e2ePolicy both analyses judge, e2eLookInterval
// its interval, and e2ePause the Rollout's timed pause step: longer than
// the stage's soak plus a look, so that a background analysis holding at
// the soak's end does so while the pause step still runs (the case of
// argoproj/argo-rollouts#3850).
const (
	e2eStage        = "canary-10"
	e2eLookInterval = "10s"
	e2ePause        = 60 * time.Second
	e2eReplicas     = 5
	e2eWeight       = 20
	e2eNamespace    = "shop"
)

// TestRolloutEndToEnd rolls real Rollouts forward and back with phaseguard
// deciding. It runs the real kube-apiserver (v1.34.5),
// kube-controller-manager (its ReplicaSet, ServiceAccount and garbage
// collector controllers), KWOK (v0.8.0, a fake node whose pods become
// Running and Ready), the real rollouts-controller (v1.10.0, every
// controller) and a real Prometheus receiving remote writes; installs the
// plugin as rollouts/README.md's Install section says (the ConfigMap of
// examples/argo-rollouts-config.yaml with the built binary's file://
// location and sha256, the connections file where its args point); and
// creates the ClusterAnalysisTemplates of examples/.
//
// Each of three Rollouts is deployed (revision 1, fully promoted at once),
// then its pod template changes: the controller creates the canary
// ReplicaSet, and the test writes a bundled scenario into Prometheus for
// exactly the stable and canary pod-template hashes the controller
// computed, from the canary ReplicaSet's creation on. The Rollout has a
// background analysis in look mode and the steps setWeight 20, pause 60s,
// analysis in stage mode:
//
//   - healthy: every look passes (or is pending before the soak ends), the
//     stage passes, the Rollout is fully promoted: Healthy, its stable hash
//     the canary's, 5 canary pods ready and the old ReplicaSet at 0;
//   - drain misrouting (20 % of the canary's requests hit draining
//     instances): the first look that sees it fails, the Rollout is
//     aborted, Degraded, phaseguard's reason in its message, the canary
//     scaled to zero and its pods gone, the stable version whole again;
//   - thin traffic (0.2 requests/s): looks are pending until the soak
//     ends, then Inconclusive: the Rollout pauses, and stays paused, not
//     promoted, after its pause step would have ended.
func TestRolloutEndToEnd(t *testing.T) {
	began := time.Now()
	bins := kubetest.Binaries(t, "..", "kube-apiserver", "kube-controller-manager", "rollouts-controller", "kwok")
	stages, err := kubetest.KWOKStages("../e2e/kwok")
	if err != nil {
		t.Fatal(err)
	}
	plugin := pluginBinary(t)
	prom := startReceivingPrometheus(t)
	kube := kubetest.StartKubeAPIServer(t, filepath.Join(bins, "kube-apiserver"))
	kubetest.StartKubeControllerManager(t, filepath.Join(bins, "kube-controller-manager"), kube)
	kwok := kubetest.StartKWOK(t, filepath.Join(bins, "kwok"), kube, stages)
	node := kubetest.CreateKWOKNode(t, kube, "kwok-0", kwok)

	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	cs := kubernetes.NewForConfigOrDie(kube)

	stage := readTemplate(t, "stage")
	look := readTemplate(t, "look")
	connection := stage.prometheus(t)["connection"]
	if connection == nil {
		t.Fatalf("%s: prometheus.connection not set; the test gives it the Prometheus through the connections file", templateFiles["stage"])
	}
	controllerNS, pluginArgs := installAsDocumented(t, ctx, cs, plugin, fmt.Sprint(connection), prom)
	t.Logf("plugin installed as README's Install says: ConfigMap %s/argo-rollouts-config, args %q", controllerNS, pluginArgs)

	// The stage template keeps everything but its policy. The look
	// template also gets the Prometheus address (its own is a cluster
	// DNS name), the policy's interval, and no count: it runs as the
	// Rollout's background analysis, which its comment says to run
	// without one, until the Rollout completes or is aborted.
	stage.config["policy"] = e2ePolicy
	look.config["policy"] = e2ePolicy
	look.prometheus(t)["address"] = prom
	look.metric(t).Interval = e2eLookInterval
	look.metric(t).Count = nil
	for _, tmpl := range []*exampleTemplate{stage, look} {
		kubetest.Create(t, kube, tmpl.yaml(t))
	}

	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: e2eNamespace}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// kube-controller-manager creates the namespace's default
	// ServiceAccount, which admission wants before any pod.
	if err := wait.PollUntilContextCancel(ctx, 100*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		_, err := cs.CoreV1().ServiceAccounts(e2eNamespace).Get(ctx, "default", metav1.GetOptions{})
		return err == nil, nil
	}); err != nil {
		t.Fatalf("no default ServiceAccount in %s: %v", e2eNamespace, err)
	}

	// The controller reads the ConfigMap at start (README step 3),
	// copies the plugin into ./plugin-bin of its working directory and
	// execs it with its own environment, where the plugin finds the
	// kubeconfig it reads AnalysisRuns with (the service account, in a
	// pod).
	kubeconfig := kubetest.WriteKubeconfig(t, kube)
	workdir := t.TempDir()
	cmd := exec.Command(filepath.Join(bins, "rollouts-controller"),
		"--kubeconfig", kubeconfig,
		"--leader-elect=false",
		"--metricsPort", strconv.Itoa(kubetest.FreePort(t)),
		"--healthzPort", strconv.Itoa(kubetest.FreePort(t)),
		"--loglevel", "info")
	cmd.Dir = workdir
	cmd.Env = append(os.Environ(), "POD_NAMESPACE="+controllerNS, "KUBECONFIG="+kubeconfig, rollouts.EnvLogFormat+"=json")
	controller := kubetest.StartProcess(t, "rollouts-controller", cmd)
	t.Logf("cluster up in %s", time.Since(began).Round(time.Second))

	env := &e2eEnv{kube: kube, cs: cs, controller: controller, prom: prom, node: node.Name,
		stageTemplate: stage.tmpl.Name, lookTemplate: look.tmpl.Name}
	// All three roll out at once, in one cluster (the controller and the
	// plugin serve them concurrently, as in production); then each is
	// checked. The drain misrouting run is over in seconds, the others
	// within their pause step and stage.
	runs := []struct {
		scenario string
		// canaryRate overrides the scenario's canary requests/s (0: keep).
		canaryRate float64
		check      func(t *testing.T, ctx context.Context, r *liveRollout)
	}{
		{"drain-misrouting", 0, checkAborted},
		{"thin-traffic", 0, checkHeld},
		{"healthy", 500, checkPromoted},
	}
	live := make([]*liveRollout, len(runs))
	for i, run := range runs {
		live[i] = env.rollOut(t, ctx, run.scenario, run.canaryRate)
	}
	for i, run := range runs {
		t.Run(run.scenario, func(t *testing.T) {
			run.check(t, ctx, live[i])
			live[i].logRuns(t, ctx)
		})
	}
	if _, err := os.Stat(filepath.Join(workdir, "plugin-bin", "phaseguard", "phaseguard")); err != nil {
		t.Errorf("the controller did not install the plugin where it runs it: %v", err)
	}
	t.Logf("TestRolloutEndToEnd: %s in all", time.Since(began).Round(time.Second))
}

// e2eEnv is the cluster a TestRolloutEndToEnd run rolls out in.
type e2eEnv struct {
	kube                        *rest.Config
	cs                          kubernetes.Interface
	controller                  *kubetest.Process
	prom                        string // Prometheus' base URL
	node                        string // the KWOK node pods run on
	stageTemplate, lookTemplate string // the ClusterAnalysisTemplates' names
}

// liveRollout is a Rollout in its canary, with the hashes the controller
// computed and when its canary ReplicaSet was created.
type liveRollout struct {
	env                    *e2eEnv
	name                   string
	stableHash, canaryHash string
	canaryStart            time.Time
}

// rolloutYAML is the Rollout of service name at image version version.
// Pods name the KWOK node: no scheduler runs (KWOK makes them Running and
// Ready; a scheduler would add only a binary and node heartbeats to the
// test). Both analyses get the args the examples' templates ask for, the
// hashes resolved by the controller.
func (e *e2eEnv) rolloutYAML(name string, version int) string {
	args := `[{name: service, value: ` + name + `}, {name: namespace, value: ` + e2eNamespace + `}, {name: stage, value: ` + e2eStage + `},
          {name: canary-hash, valueFrom: {podTemplateHashValue: Latest}}, {name: stable-hash, valueFrom: {podTemplateHashValue: Stable}}]`
	return fmt.Sprintf(`
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata: {name: %[1]s, namespace: %[2]s}
spec:
  replicas: %[3]d
  revisionHistoryLimit: 2
  selector: {matchLabels: {app: %[1]s}}
  template:
    metadata: {labels: {app: %[1]s}}
    spec:
      nodeName: %[4]s
      containers: [{name: app, image: "registry.example/shop/%[1]s:%[5]d"}]
  strategy:
    canary:
      analysis:
        templates: [{templateName: %[6]s, clusterScope: true}]
        args: %[8]s
      steps:
        - setWeight: %[9]d
        - pause: {duration: %[10]ds}
        - analysis:
            templates: [{templateName: %[7]s, clusterScope: true}]
            args: %[8]s
`, name, e2eNamespace, e2eReplicas, e.node, version, e.lookTemplate, e.stageTemplate, args, e2eWeight, int(e2ePause.Seconds()))
}

// rollOut deploys the Rollout of the scenario (revision 1, promoted at
// once as a first revision is), changes its pod template, and once the
// controller has created the canary ReplicaSet writes the scenario into
// Prometheus for the hashes the controller computed, from that
// ReplicaSet's creation on.
func (e *e2eEnv) rollOut(t *testing.T, ctx context.Context, scenario string, canaryRate float64) *liveRollout {
	t.Helper()
	r := &liveRollout{env: e, name: "checkout-" + scenario}
	kubetest.Create(t, e.kube, e.rolloutYAML(r.name, 1))
	ro := r.wait(t, ctx, "revision 1 Healthy", func(ro *v1alpha1.Rollout) (bool, error) {
		return ro.Status.Phase == v1alpha1.RolloutPhaseHealthy && ro.Status.StableRS != "", nil
	})
	r.stableHash = ro.Status.StableRS
	if n := r.readyPods(t, ctx, r.stableHash); n != e2eReplicas {
		t.Fatalf("revision 1 Healthy with %d ready pods of %s, want %d", n, r.stableHash, e2eReplicas)
	}

	// A new image: revision 2, the canary.
	patch := fmt.Sprintf(`{"spec":{"template":{"spec":{"containers":[{"name":"app","image":"registry.example/shop/%s:2"}]}}}}`, r.name)
	if _, err := kubetest.Dynamic(t, e.kube).Resource(kubetest.Rollouts).Namespace(e2eNamespace).Patch(ctx, r.name, types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	var rs *appsv1.ReplicaSet
	r.wait(t, ctx, "canary ReplicaSet created", func(ro *v1alpha1.Rollout) (bool, error) {
		hash := ro.Status.CurrentPodHash
		if hash == "" || hash == r.stableHash {
			return false, nil
		}
		list, err := e.cs.AppsV1().ReplicaSets(e2eNamespace).List(ctx, metav1.ListOptions{LabelSelector: v1alpha1.DefaultRolloutUniqueLabelKey + "=" + hash})
		if err != nil || len(list.Items) == 0 {
			return false, err
		}
		if len(list.Items) != 1 {
			return false, fmt.Errorf("%d ReplicaSets labelled %s=%s", len(list.Items), v1alpha1.DefaultRolloutUniqueLabelKey, hash)
		}
		rs = &list.Items[0]
		r.canaryHash = hash
		return true, nil
	})
	if owner := metav1.GetControllerOf(rs); owner == nil || owner.Kind != "Rollout" || owner.Name != r.name {
		t.Fatalf("canary ReplicaSet %s is controlled by %v, want Rollout %s", rs.Name, owner, r.name)
	}
	r.canaryStart = rs.CreationTimestamp.Time

	// The scenario, placed so that its canary takes traffic from the
	// canary ReplicaSet's creation on (its series are born 30s before,
	// at zero, as an exporter initialises labelled counters at start),
	// the stable version with 5 minutes of history before, and data
	// until well after the test ends: a query at any time of the test
	// sees the samples up to then. Each pod count is the Rollout's.
	b, ok := scenarios.Lookup(scenario)
	if !ok {
		t.Fatalf("no bundled scenario %q", scenario)
	}
	spec := b.Spec
	spec.Service, spec.Namespace = r.name, e2eNamespace
	spec.StableHash, spec.CanaryHash = r.stableHash, r.canaryHash
	spec.WarmUp, spec.Stage, spec.ScrapeInterval = 5*time.Minute, 10*time.Minute, 5*time.Second
	spec.Start = r.canaryStart.Add(-spec.WarmUp).Truncate(time.Second)
	canaryPods := (e2eReplicas*e2eWeight + 99) / 100
	spec.CanaryPods, spec.StablePods = canaryPods, e2eReplicas-canaryPods
	// The bundled scenarios' restarts, gaps and fault onset are placed
	// in their 30-minute stage: here the fault is there from the start.
	spec.Restarts, spec.Gaps = nil, nil
	if spec.Fault != nil {
		f := *spec.Fault
		f.Onset = 0
		spec.Fault = &f
	}
	if canaryRate > 0 {
		spec.CanaryRate, spec.StableRate = canaryRate, 0 // stable: 9 × the canary, as the scenario's
	}
	sc, err := scenarios.Generate(spec)
	if err != nil {
		t.Fatalf("generate %s: %v", scenario, err)
	}
	series, samples, err := remoteWrite(ctx, e.prom, sc.OpenMetrics)
	if err != nil {
		t.Fatalf("write %s into Prometheus: %v", scenario, err)
	}
	t.Logf("%s: stable %s, canary %s (ReplicaSet %s created %s); wrote %d series, %d samples (canary %.3g requests/s) %s after",
		r.name, r.stableHash, r.canaryHash, rs.Name, r.canaryStart.Format(time.RFC3339), series, samples, sc.Spec.CanaryRate, time.Since(r.canaryStart).Round(time.Millisecond))
	return r
}

// checkPromoted: the healthy canary is fully promoted.
func checkPromoted(t *testing.T, ctx context.Context, r *liveRollout) {
	ro := r.wait(t, ctx, "fully promoted", func(ro *v1alpha1.Rollout) (bool, error) {
		if err := notAborted(ro); err != nil {
			return false, err
		}
		if c := pauseCondition(ro, v1alpha1.PauseReasonInconclusiveAnalysis); c != nil {
			return false, fmt.Errorf("paused on an Inconclusive analysis: %s", ro.Status.Message)
		}
		return ro.Status.Phase == v1alpha1.RolloutPhaseHealthy && ro.Status.StableRS == r.canaryHash, nil
	})
	t.Logf("%s promoted %s after the canary's start: %s %q", r.name, time.Since(r.canaryStart).Round(time.Second), ro.Status.Phase, ro.Status.Message)
	runs := r.analysisRuns(t, ctx)
	step, background := runs["Step"], runs["Background"]
	if len(step) != 1 || len(background) != 1 {
		t.Fatalf("%d step and %d background AnalysisRuns, want 1 each", len(step), len(background))
	}
	if m := lastMeasurement(step[0]); step[0].Status.Phase != v1alpha1.AnalysisPhaseSuccessful || m == nil || !strings.Contains(m.Message, "stage "+e2eStage+" soaked") {
		t.Errorf("stage analysis %s: %s %q, want Successful, stage %s soaked", step[0].Name, step[0].Status.Phase, measurementMessage(m), e2eStage)
	}
	// Argo ends the background analysis when the Rollout completes; none
	// of its looks held the canary up, nor failed it.
	for _, ar := range append(step, background...) {
		for _, mr := range ar.Status.MetricResults {
			if mr.Failed+mr.Inconclusive+mr.Error > 0 {
				t.Errorf("%s: %d failed, %d inconclusive, %d error measurements: %+v", ar.Name, mr.Failed, mr.Inconclusive, mr.Error, mr.Measurements)
			}
		}
	}
	if n := r.readyPods(t, ctx, r.canaryHash); n != e2eReplicas {
		t.Errorf("%d ready pods of %s, want %d", n, r.canaryHash, e2eReplicas)
	}
	r.waitReplicas(t, ctx, r.stableHash, 0, "the old stable ReplicaSet scaled down")
}

// checkAborted: the misrouting canary is rolled back.
func checkAborted(t *testing.T, ctx context.Context, r *liveRollout) {
	ro := r.wait(t, ctx, "aborted", func(ro *v1alpha1.Rollout) (bool, error) {
		if ro.Status.StableRS == r.canaryHash {
			return false, errors.New("the faulty canary was promoted")
		}
		return ro.Status.Abort && ro.Status.Phase == v1alpha1.RolloutPhaseDegraded, nil
	})
	t.Logf("%s aborted %s after the canary's start: %s %q", r.name, time.Since(r.canaryStart).Round(time.Second), ro.Status.Phase, ro.Status.Message)
	// What `kubectl argo rollouts get rollout` shows the release manager:
	// the Rollout's message quotes the failed run's, which quotes
	// phaseguard's reason.
	if !strings.Contains(ro.Status.Message, "drain-failure: burning") {
		t.Errorf("Rollout message %q lacks phaseguard's reason (drain-failure: burning ...)", ro.Status.Message)
	}
	if ro.Status.StableRS != r.stableHash {
		t.Errorf("stable %s after the abort, want %s", ro.Status.StableRS, r.stableHash)
	}
	failed := 0
	for _, ars := range r.analysisRuns(t, ctx) {
		for _, ar := range ars {
			if ar.Status.Phase != v1alpha1.AnalysisPhaseFailed {
				continue
			}
			failed++
			if m := lastMeasurement(ar); m == nil || m.Phase != v1alpha1.AnalysisPhaseFailed || !strings.Contains(m.Message, "drain-failure: burning") {
				t.Errorf("failed run %s: last measurement %q, want Failed on drain-failure: burning", ar.Name, measurementMessage(m))
			}
		}
	}
	if failed == 0 {
		t.Error("no Failed AnalysisRun behind the abort")
	}
	r.waitReplicas(t, ctx, r.canaryHash, 0, "the canary scaled to zero")
	r.waitReplicas(t, ctx, r.stableHash, e2eReplicas, "the stable version whole again")
}

// checkHeld: the thin canary pauses the Rollout and is not promoted, not
// even after its pause step would have ended.
func checkHeld(t *testing.T, ctx context.Context, r *liveRollout) {
	held := func(ro *v1alpha1.Rollout) (bool, error) {
		if err := notAborted(ro); err != nil {
			return false, err
		}
		if ro.Status.StableRS == r.canaryHash {
			return false, errors.New("the held canary was promoted")
		}
		return ro.Status.Phase == v1alpha1.RolloutPhasePaused && pauseCondition(ro, v1alpha1.PauseReasonInconclusiveAnalysis) != nil, nil
	}
	ro := r.wait(t, ctx, "paused on an Inconclusive analysis", held)
	t.Logf("%s paused %s after the canary's start: %s %q, step %v", r.name, time.Since(r.canaryStart).Round(time.Second), ro.Status.Phase, ro.Status.Message, ptrValue(ro.Status.CurrentStepIndex))
	inconclusive := 0
	for _, ars := range r.analysisRuns(t, ctx) {
		for _, ar := range ars {
			if ar.Status.Phase != v1alpha1.AnalysisPhaseInconclusive {
				continue
			}
			inconclusive++
			if m := lastMeasurement(ar); m == nil || !strings.Contains(m.Message, "thin evidence") {
				t.Errorf("inconclusive run %s: last measurement %q, want thin evidence", ar.Name, measurementMessage(m))
			}
		}
	}
	if inconclusive == 0 {
		t.Error("no Inconclusive AnalysisRun behind the pause")
	}
	// What `kubectl argo rollouts get rollout` shows: the background
	// run's message, quoting phaseguard's reason.
	if bg := ro.Status.Canary.CurrentBackgroundAnalysisRunStatus; bg == nil || !strings.Contains(bg.Message, "thin evidence") {
		t.Errorf("Rollout's background analysis status %+v lacks phaseguard's reason (thin evidence)", bg)
	}
	step := ptrValue(ro.Status.CurrentStepIndex)
	canaryPods := (e2eReplicas*e2eWeight + 99) / 100

	// Argo may recreate an Inconclusive background analysis while a
	// pause step runs, and promote when the pause ends
	// (argoproj/argo-rollouts#3850). Until well after this one's pause
	// step would have ended, the Rollout must stay held: paused on the
	// Inconclusive run, the canary at the weight of step 1, no run
	// created to judge it anew. (Argo v1.10 does complete the timed
	// pause step while held, moving the step index past it, without
	// changing any weight: a human who resumes goes on to the stage
	// analysis.)
	until := r.canaryStart.Add(e2ePause + 20*time.Second)
	for time.Now().Before(until) {
		ro = r.get(t, ctx)
		if ok, err := held(ro); !ok || err != nil {
			t.Fatalf("no longer held at %s after the canary's start (%v): %s %q, stable %s, step %v",
				time.Since(r.canaryStart).Round(time.Second), err, ro.Status.Phase, ro.Status.Message, ro.Status.StableRS, ptrValue(ro.Status.CurrentStepIndex))
		}
		if n := r.readyPods(t, ctx, r.canaryHash); n != canaryPods {
			t.Fatalf("held, yet %d canary pods ready at step %d, want %d (the weight of step 1)", n, ptrValue(ro.Status.CurrentStepIndex), canaryPods)
		}
		if runs := r.analysisRuns(t, ctx); len(runs["Background"]) != 1 || len(runs["Step"]) != 0 {
			t.Fatalf("held, yet %d background and %d step AnalysisRuns at step %d, want the one Inconclusive background run", len(runs["Background"]), len(runs["Step"]), ptrValue(ro.Status.CurrentStepIndex))
		}
		time.Sleep(time.Second)
	}
	t.Logf("%s still held %s after the canary's start, past its %s pause step: %s %q, step %d -> %d, %d canary pods",
		r.name, time.Since(r.canaryStart).Round(time.Second), e2ePause, ro.Status.Phase, ro.Status.Message, step, ptrValue(ro.Status.CurrentStepIndex), r.readyPods(t, ctx, r.canaryHash))
}

// wait polls the Rollout until cond holds, failing the test when cond
// errs, the controller exits or ctx ends (with the Rollout's status).
func (r *liveRollout) wait(t *testing.T, ctx context.Context, what string, cond func(*v1alpha1.Rollout) (bool, error)) *v1alpha1.Rollout {
	t.Helper()
	var ro *v1alpha1.Rollout
	err := wait.PollUntilContextCancel(ctx, 250*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		select {
		case <-r.env.controller.Exited():
			return false, fmt.Errorf("rollouts-controller exited: %v", r.env.controller.Err())
		default:
		}
		ro = r.get(t, ctx)
		return cond(ro)
	})
	if err != nil {
		status := "no status"
		if ro != nil {
			b, _ := json.Marshal(ro.Status)
			status = string(b)
		}
		t.Fatalf("Rollout %s: %s: %v; status %s", r.name, what, err, status)
	}
	return ro
}

// get reads the Rollout.
func (r *liveRollout) get(t *testing.T, ctx context.Context) *v1alpha1.Rollout {
	t.Helper()
	u, err := kubetest.Dynamic(t, r.env.kube).Resource(kubetest.Rollouts).Namespace(e2eNamespace).Get(ctx, r.name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("get Rollout %s: %v", r.name, err)
	}
	ro := &v1alpha1.Rollout{}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, ro); err != nil {
		t.Fatal(err)
	}
	return ro
}

// readyPods counts the Running and Ready pods of the Rollout with the
// pod-template hash.
func (r *liveRollout) readyPods(t *testing.T, ctx context.Context, hash string) int {
	t.Helper()
	pods, err := r.env.cs.CoreV1().Pods(e2eNamespace).List(ctx, metav1.ListOptions{LabelSelector: "app=" + r.name + "," + v1alpha1.DefaultRolloutUniqueLabelKey + "=" + hash})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, p := range pods.Items {
		if p.Status.Phase != corev1.PodRunning || p.DeletionTimestamp != nil {
			continue
		}
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
				n++
			}
		}
	}
	return n
}

// waitReplicas waits until the ReplicaSet of the hash wants n replicas
// and has exactly n pods, all ready.
func (r *liveRollout) waitReplicas(t *testing.T, ctx context.Context, hash string, n int, what string) {
	t.Helper()
	var last string
	err := wait.PollUntilContextCancel(ctx, 250*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		list, err := r.env.cs.AppsV1().ReplicaSets(e2eNamespace).List(ctx, metav1.ListOptions{LabelSelector: v1alpha1.DefaultRolloutUniqueLabelKey + "=" + hash})
		if err != nil || len(list.Items) != 1 {
			return false, err
		}
		rs := list.Items[0]
		pods, err := r.env.cs.CoreV1().Pods(e2eNamespace).List(ctx, metav1.ListOptions{LabelSelector: v1alpha1.DefaultRolloutUniqueLabelKey + "=" + hash})
		if err != nil {
			return false, err
		}
		want := ptrValue(rs.Spec.Replicas)
		last = fmt.Sprintf("spec.replicas %d, %d pods, %d ready", want, len(pods.Items), rs.Status.ReadyReplicas)
		return int(want) == n && len(pods.Items) == n && int(rs.Status.ReadyReplicas) == n, nil
	})
	if err != nil {
		t.Errorf("%s: ReplicaSet %s never at %d replicas (%s): %v", what, hash, n, last, err)
	}
}

// analysisRuns returns the Rollout's AnalysisRuns by their rollout-type
// label (Step, Background).
func (r *liveRollout) analysisRuns(t *testing.T, ctx context.Context) map[string][]*v1alpha1.AnalysisRun {
	t.Helper()
	list, err := kubetest.Dynamic(t, r.env.kube).Resource(kubetest.AnalysisRuns).Namespace(e2eNamespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]*v1alpha1.AnalysisRun{}
	for _, u := range list.Items {
		ar := &v1alpha1.AnalysisRun{}
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, ar); err != nil {
			t.Fatal(err)
		}
		if owner := metav1.GetControllerOf(ar); owner == nil || owner.Kind != "Rollout" || owner.Name != r.name {
			continue
		}
		typ := ar.Labels[v1alpha1.RolloutTypeLabel]
		out[typ] = append(out[typ], ar)
	}
	for _, ars := range out {
		slices.SortFunc(ars, func(a, b *v1alpha1.AnalysisRun) int {
			return a.CreationTimestamp.Time.Compare(b.CreationTimestamp.Time)
		})
	}
	return out
}

// logRuns logs each AnalysisRun of the Rollout with its measurements, what
// `kubectl get analysisrun -o yaml` shows a release manager.
func (r *liveRollout) logRuns(t *testing.T, ctx context.Context) {
	t.Helper()
	for typ, ars := range r.analysisRuns(t, ctx) {
		for _, ar := range ars {
			var ms []string
			for _, mr := range ar.Status.MetricResults {
				for _, m := range mr.Measurements {
					at := ""
					if m.StartedAt != nil {
						at = m.StartedAt.Sub(r.canaryStart).Round(time.Second).String()
					}
					ms = append(ms, fmt.Sprintf("  +%s %s %q", at, m.Phase, m.Message))
				}
			}
			t.Logf("%s AnalysisRun %s: %s %q, %d measurements:\n%s", typ, ar.Name, ar.Status.Phase, ar.Status.Message, len(ms), strings.Join(ms, "\n"))
		}
	}
}

// notAborted errs when the Rollout was aborted, quoting why.
func notAborted(ro *v1alpha1.Rollout) error {
	if ro.Status.Abort {
		return fmt.Errorf("aborted: %s", ro.Status.Message)
	}
	return nil
}

// pauseCondition returns the Rollout's pause condition for reason, or nil.
func pauseCondition(ro *v1alpha1.Rollout, reason v1alpha1.PauseReason) *v1alpha1.PauseCondition {
	for i, c := range ro.Status.PauseConditions {
		if c.Reason == reason {
			return &ro.Status.PauseConditions[i]
		}
	}
	return nil
}

// lastMeasurement returns the run's last measurement, or nil.
func lastMeasurement(ar *v1alpha1.AnalysisRun) *v1alpha1.Measurement {
	for _, mr := range ar.Status.MetricResults {
		if n := len(mr.Measurements); n > 0 {
			return &mr.Measurements[n-1]
		}
	}
	return nil
}

func measurementMessage(m *v1alpha1.Measurement) string {
	if m == nil {
		return "(no measurement)"
	}
	return string(m.Phase) + ": " + m.Message
}

func ptrValue[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

// exampleTemplate is a ClusterAnalysisTemplate read from examples/, with
// its plugin config decoded for the test to change.
type exampleTemplate struct {
	file   string
	tmpl   v1alpha1.ClusterAnalysisTemplate
	config map[string]any
}

// readTemplate reads the example template of the short name (templateFiles).
func readTemplate(t *testing.T, name string) *exampleTemplate {
	t.Helper()
	file := filepath.Join("examples", templateFiles[name])
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	e := &exampleTemplate{file: file}
	if err := yaml.UnmarshalStrict(raw, &e.tmpl); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	if e.tmpl.Kind != "ClusterAnalysisTemplate" {
		t.Fatalf("%s: kind %q, want ClusterAnalysisTemplate", file, e.tmpl.Kind)
	}
	m := e.metric(t)
	if err := json.Unmarshal(m.Provider.Plugin[rollouts.Name], &e.config); err != nil || e.config == nil {
		t.Fatalf("%s: plugin config: %v", file, err)
	}
	return e
}

// metric is the template's one metric, which must use the plugin.
func (e *exampleTemplate) metric(t *testing.T) *v1alpha1.Metric {
	t.Helper()
	ms := e.tmpl.Spec.Metrics
	if len(ms) != 1 || ms[0].Provider.Plugin[rollouts.Name] == nil {
		t.Fatalf("%s: want one metric using %s, got %d metrics", e.file, rollouts.Name, len(ms))
	}
	return &e.tmpl.Spec.Metrics[0]
}

// prometheus is the plugin config's prometheus object.
func (e *exampleTemplate) prometheus(t *testing.T) map[string]any {
	t.Helper()
	p, ok := e.config["prometheus"].(map[string]any)
	if !ok {
		t.Fatalf("%s: no prometheus object in the plugin config", e.file)
	}
	return p
}

// yaml is the template, with its config as changed, as a YAML document.
func (e *exampleTemplate) yaml(t *testing.T) string {
	t.Helper()
	raw, err := json.Marshal(e.config)
	if err != nil {
		t.Fatal(err)
	}
	e.metric(t).Provider.Plugin[rollouts.Name] = raw
	obj, err := runtime.DefaultUnstructuredConverter.ToUnstructured(&e.tmpl)
	if err != nil {
		t.Fatal(err)
	}
	unstructured.RemoveNestedField(obj, "metadata", "creationTimestamp")
	out, err := yaml.Marshal(obj)
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

// installAsDocumented installs the plugin binary bin as rollouts/README.md's
// Install section tells users to: the argo-rollouts-config ConfigMap of
// examples/argo-rollouts-config.yaml, in the namespace that file names,
// with the phaseguard entry's location set to the binary (file://) and its
// sha256 to the binary's. The entry's args name files in the controller's
// pod (the connections file, the policy directory, mounted there by
// examples/controller-patch.yaml): here they are under a directory standing
// for the pod's root. The connections file defines the connection the stage
// template names, to prom; the policy directory holds the files of
// examples/policies.yaml, as its ConfigMap's volume would. It returns the
// controller's namespace and the args as installed.
func installAsDocumented(t *testing.T, ctx context.Context, cs kubernetes.Interface, bin, connection, prom string) (string, []string) {
	t.Helper()
	const file = "examples/argo-rollouts-config.yaml"
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var cm corev1.ConfigMap
	if err := yaml.UnmarshalStrict(raw, &cm); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	var entries []map[string]any
	if err := yaml.UnmarshalStrict([]byte(cm.Data["metricProviderPlugins"]), &entries); err != nil {
		t.Fatalf("%s: metricProviderPlugins: %v", file, err)
	}
	i := slices.IndexFunc(entries, func(e map[string]any) bool { return e["name"] == rollouts.Name })
	if i < 0 {
		t.Fatalf("%s: no metricProviderPlugins entry named %s", file, rollouts.Name)
	}
	entry := entries[i]
	// Only their presence is checked: an unquoted placeholder sha256 (64
	// zeros) would decode as a number.
	for _, key := range []string{"location", "sha256"} {
		if entry[key] == nil {
			t.Fatalf("%s: entry %s has no %s to set", file, rollouts.Name, key)
		}
	}
	data, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	entry["location"] = "file://" + bin
	entry["sha256"] = hex.EncodeToString(sum[:])

	podRoot := t.TempDir()
	var args []string
	connections, policyDir := "", ""
	rawArgs, _ := entry["args"].([]any)
	for _, a := range rawArgs {
		s, ok := a.(string)
		if !ok {
			t.Fatalf("%s: arg %v is not a string", file, a)
		}
		if flag, path, ok := strings.Cut(s, "="); ok && filepath.IsAbs(path) {
			path = filepath.Join(podRoot, path)
			s = flag + "=" + path
			switch flag {
			case "--connections":
				connections = path
			case "--policy-dir":
				policyDir = path
			}
		}
		args = append(args, s)
	}
	entry["args"] = args
	if connections == "" {
		t.Fatalf("%s: entry %s has no --connections=FILE argument; the stage template's connection %q needs one", file, rollouts.Name, connection)
	}
	if err := os.MkdirAll(filepath.Dir(connections), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Dir(connections), filepath.Base(connections), fmt.Sprintf("connections:\n  - {name: %q, url: %q}\n", connection, prom))
	if policyDir != "" {
		if err := os.MkdirAll(policyDir, 0o755); err != nil {
			t.Fatal(err)
		}
		praw, err := os.ReadFile("examples/policies.yaml")
		if err != nil {
			t.Fatal(err)
		}
		var policies corev1.ConfigMap
		if err := yaml.UnmarshalStrict(praw, &policies); err != nil {
			t.Fatalf("examples/policies.yaml: %v", err)
		}
		for name, content := range policies.Data {
			writeFile(t, policyDir, name, content)
		}
	}

	out, err := yaml.Marshal(entries)
	if err != nil {
		t.Fatal(err)
	}
	cm.Data["metricProviderPlugins"] = string(out)
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: cm.Namespace}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.CoreV1().ConfigMaps(cm.Namespace).Create(ctx, &cm, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	return cm.Namespace, args
}

// startReceivingPrometheus runs the real Prometheus (Debian's; a missing
// binary fails the test under CI=true) with its remote-write receiver on,
// empty, and returns its base URL. The test writes each scenario into it
// once the hashes are known (remoteWrite): a backfill would need the data
// before the server starts.
func startReceivingPrometheus(t *testing.T) string {
	t.Helper()
	bin := promtest.Binary(t, "prometheus")
	dir := t.TempDir()
	cfg := writeFile(t, dir, "prometheus.yml", "global: {scrape_interval: 15s}\n")
	addr := "127.0.0.1:" + strconv.Itoa(kubetest.FreePort(t))
	proc := kubetest.StartProcess(t, "prometheus", exec.Command(bin,
		"--config.file="+cfg,
		"--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr,
		"--web.enable-remote-write-receiver"))
	url := "http://" + addr
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := wait.PollUntilContextCancel(ctx, 100*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		select {
		case <-proc.Exited():
			return false, fmt.Errorf("prometheus exited: %v", proc.Err())
		default:
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url+"/-/ready", nil)
		if err != nil {
			return false, err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return false, nil
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, nil
	})
	if err != nil {
		t.Fatalf("prometheus on %s not ready: %v", addr, err)
	}
	return url
}

// remoteWrite sends the samples of om (OpenMetrics text with timestamps, a
// scenario's data) to the remote-write receiver of the Prometheus at url
// (protocol 1.0: a snappy-compressed protobuf WriteRequest), each series'
// samples in time order, at most 500 series a request. It returns how many
// series and samples it wrote. Prometheus takes samples of a new series up
// to an hour before its newest sample, and after it.
func remoteWrite(ctx context.Context, url string, om []byte) (int, int, error) {
	p := textparse.NewOpenMetricsParser(om, labels.NewSymbolTable())
	index := map[string]int{}
	var series []prompb.TimeSeries
	samples := 0
	for {
		e, err := p.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return 0, 0, fmt.Errorf("parse: %w", err)
		}
		if e != textparse.EntrySeries {
			continue
		}
		raw, ts, v := p.Series()
		if ts == nil {
			return 0, 0, fmt.Errorf("series %s: sample without a timestamp", raw)
		}
		var l labels.Labels
		p.Labels(&l)
		key := l.String()
		i, ok := index[key]
		if !ok {
			i = len(series)
			index[key] = i
			series = append(series, prompb.TimeSeries{Labels: prompb.FromLabels(l, nil)})
		}
		series[i].Samples = append(series[i].Samples, prompb.Sample{Value: v, Timestamp: *ts})
		samples++
	}
	for i := range series {
		slices.SortFunc(series[i].Samples, func(a, b prompb.Sample) int { return int(a.Timestamp - b.Timestamp) })
	}
	const batch = 500
	for from := 0; from < len(series); from += batch {
		req := &prompb.WriteRequest{Timeseries: series[from:min(from+batch, len(series))]}
		pb, err := req.Marshal()
		if err != nil {
			return 0, 0, err
		}
		hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, url+"/api/v1/write", bytes.NewReader(snappy.Encode(nil, pb)))
		if err != nil {
			return 0, 0, err
		}
		hreq.Header.Set("Content-Encoding", "snappy")
		hreq.Header.Set("Content-Type", "application/x-protobuf")
		hreq.Header.Set("X-Prometheus-Remote-Write-Version", "0.1.0")
		resp, err := http.DefaultClient.Do(hreq)
		if err != nil {
			return 0, 0, fmt.Errorf("remote write: %w", err)
		}
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
		if resp.StatusCode/100 != 2 {
			return 0, 0, fmt.Errorf("remote write: %s: %s", resp.Status, bytes.TrimSpace(body))
		}
	}
	return len(series), samples, nil
}
