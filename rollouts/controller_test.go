package rollouts_test

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/yaml"

	"github.com/argoproj/argo-rollouts/pkg/apis/rollouts/v1alpha1"

	"github.com/phaseguard/phaseguard/internal/kubetest"
	"github.com/phaseguard/phaseguard/policies"
	"github.com/phaseguard/phaseguard/rollouts"
)

// E2EBinEnv names the directory holding the binaries built from the e2e
// modules (kubetest.BinEnv): what scripts/test.sh exports.
const E2EBinEnv = kubetest.BinEnv

// TestController runs the real Argo Rollouts controller (v1.10.0, its
// analysis controller) against a real kube-apiserver, loading the built
// phaseguard binary from the argo-rollouts-config ConfigMap exactly as in
// a cluster, and checks that AnalysisRuns made from the ClusterAnalysisTemplates
// in examples/ reach Successful, Failed and Inconclusive against a real
// Prometheus holding scenario data, in both measurement modes.
//
// The controller runs with --controllers=analysis: there is no kubelet
// or kube-controller-manager here to run a Rollout's pods, so the
// AnalysisRuns are created directly, with the args a Rollout step passes.
func TestController(t *testing.T) {
	bins := kubetest.Binaries(t, "..", "kube-apiserver", "rollouts-controller")
	bin := pluginBinary(t)
	prom, sc := startScenarios(t, time.Now().Add(5*time.Minute), "healthy", "drain-misrouting", "thin-traffic")
	kube := kubetest.StartKubeAPIServer(t, filepath.Join(bins, "kube-apiserver"))
	kubeconfig := kubetest.WriteKubeconfig(t, kube)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	// The controller's namespace holds its ConfigMap naming the plugin;
	// the AnalysisRuns live in the service's namespace.
	cs := kubernetes.NewForConfigOrDie(kube)
	const controllerNS, ns = "argo-rollouts", "shop"
	for _, name := range []string{controllerNS, ns} {
		if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	data, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	// The stage template's connection "mimir" is the operator's: defined
	// in the connections file the ConfigMap entry's args name, reaching
	// Prometheus through a gate that wants its token. The secret-arg
	// template's credential comes from a Secret of the run's namespace,
	// which the controller resolves; another gate wants that one.
	connToken, argToken := randomSecret(t, "connection"), randomSecret(t, "secret-arg")
	connGate, argGate := newAuthGate(t, prom.URL(), "Bearer "+connToken), newAuthGate(t, prom.URL(), "Bearer "+argToken)
	connDir := t.TempDir()
	writeFile(t, connDir, "mimir-token", connToken)
	conns := writeFile(t, connDir, "connections.yaml", "connections:\n  - {name: mimir, url: "+connGate.URL+", authorization: {credentials_file: mimir-token}}\n")
	if _, err := cs.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "prometheus-reader", Namespace: ns},
		Data: map[string][]byte{"token": []byte(argToken)}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	cm := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "argo-rollouts-config", Namespace: controllerNS},
		Data: map[string]string{"metricProviderPlugins": fmt.Sprintf("- name: %s\n  location: file://%s\n  sha256: %x\n  args: [%q]\n",
			rollouts.Name, bin, sha256.Sum256(data), "--connections="+conns)},
	}
	if _, err := cs.CoreV1().ConfigMaps(controllerNS).Create(ctx, cm, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	// The controller downloads the plugin into ./plugin-bin of its working
	// directory and execs it with its own environment: the plugin reads
	// the kubeconfig the controller was given, as it would read the
	// service account in a pod.
	workdir := t.TempDir()
	controller := exec.Command(filepath.Join(bins, "rollouts-controller"),
		"--kubeconfig", kubeconfig,
		"--controllers", "analysis",
		"--leader-elect=false",
		"--metricsPort", strconv.Itoa(kubetest.FreePort(t)),
		"--healthzPort", strconv.Itoa(kubetest.FreePort(t)),
		"--loglevel", "info")
	controller.Dir = workdir
	controller.Env = append(os.Environ(), "POD_NAMESPACE="+controllerNS, "KUBECONFIG="+kubeconfig, rollouts.EnvLogFormat+"=json")
	proc := kubetest.StartProcess(t, "rollouts-controller", controller)

	// The runs use phase-default with canary-10 soaking 40s, looked at
	// every 10s, so that the stage ends within the test.
	policy := shortStagePolicy(t)
	closed := "http://127.0.0.1:" + strconv.Itoa(kubetest.FreePort(t)) // nothing listens
	// A Rollout at revision 3 owns the out-of-order run: its stage,
	// canary-50, comes after canary-10, which never ran for revision 3.
	// The plugin finds that out through the API with the credentials the
	// controller gave it.
	rollout := kubetest.Create(t, kube, `
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata: {name: checkout, namespace: shop, annotations: {rollout.argoproj.io/revision: "3"}}
spec:
  selector: {matchLabels: {app: checkout}}
  template:
    metadata: {labels: {app: checkout}}
    spec: {containers: [{name: app, image: example/checkout:2}]}
`)
	cases := []struct {
		name, template, scenario, prometheus, policy string
		want                                         v1alpha1.AnalysisPhase
		message                                      string
		owner                                        *unstructured.Unstructured
	}{
		{"look-healthy", "look", "healthy", prom.URL(), policy, v1alpha1.AnalysisPhaseSuccessful, "all 7 SLIs pass", nil},
		{"look-drain", "look", "drain-misrouting", prom.URL(), policy, v1alpha1.AnalysisPhaseFailed, "drain-failure: burning", nil},
		{"look-thin", "look", "thin-traffic", prom.URL(), policy, v1alpha1.AnalysisPhaseInconclusive, "stage canary-10 soaked 40s without the evidence to pass: ", nil},
		{"look-no-prometheus", "look", "healthy", closed, policy, v1alpha1.AnalysisPhaseInconclusive, "connection refused", nil},
		{"look-secret-arg", "secret-arg", "healthy", argGate.URL, policy, v1alpha1.AnalysisPhaseSuccessful, "all 7 SLIs pass", nil},
		{"stage-healthy", "stage", "healthy", prom.URL(), policy, v1alpha1.AnalysisPhaseSuccessful, "stage canary-10 soaked 40s over", nil},
		{"stage-drain", "stage", "drain-misrouting", prom.URL(), policy, v1alpha1.AnalysisPhaseFailed, "stage canary-10 failed at look 1", nil},
		{"stage-thin", "stage", "thin-traffic", prom.URL(), policy, v1alpha1.AnalysisPhaseInconclusive, "thin evidence", nil},
		{"look-out-of-order", "look", "healthy", prom.URL(), "", v1alpha1.AnalysisPhaseFailed,
			"out-of-order: stage canary-50 needs canary-10 to have passed for revision 3 (no AnalysisRun of canary-10 found for this revision)", rollout},
	}
	began := time.Now()
	for _, tc := range cases {
		run := analysisRun(t, tc.name, ns, tc.template, sc[tc.scenario], tc.prometheus, tc.policy, tc.owner)
		kubetest.Create(t, kube, run)
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ar := waitFinished(t, ctx, kube, ns, tc.name, proc)
			if len(ar.Status.MetricResults) != 1 || len(ar.Status.MetricResults[0].Measurements) == 0 {
				t.Fatalf("status: %+v", ar.Status)
			}
			m := ar.Status.MetricResults[0].Measurements[len(ar.Status.MetricResults[0].Measurements)-1]
			t.Logf("%s after %s: %s; measurement %s %q value %s", tc.name, time.Since(began).Round(time.Second), ar.Status.Phase, m.Phase, m.Message, m.Value)
			if ar.Status.Phase != tc.want || m.Phase != tc.want || !strings.Contains(m.Message, tc.message) {
				t.Errorf("AnalysisRun %s, measurement %s %q; want %s containing %q", ar.Status.Phase, m.Phase, m.Message, tc.want, tc.message)
			}
			// The run's message quotes the measurement's on a Failed or
			// Inconclusive run; a Rollout aborted or paused by the run
			// shows it as its own message (`kubectl argo rollouts get
			// rollout`).
			if tc.want != v1alpha1.AnalysisPhaseSuccessful && !strings.Contains(ar.Status.Message, m.Message) {
				t.Errorf("run message %q does not quote the measurement's %q", ar.Status.Message, m.Message)
			}
			// What `kubectl get analysisrun -o yaml` shows a release
			// manager: the verdict and each SLI's figures.
			if m.Metadata["verdict"] == "" || (tc.owner == nil && m.Metadata["sli.drain-failure.reason"] == "") {
				t.Errorf("metadata lacks the verdict or per-SLI reasons: %v", m.Metadata)
			}
			if tc.owner == nil && (tc.want != v1alpha1.AnalysisPhaseInconclusive || tc.prometheus == prom.URL()) {
				var v map[string]any
				if err := json.Unmarshal([]byte(m.Value), &v); err != nil || len(v) == 0 {
					t.Errorf("value %q: not a JSON object of burns (%v)", m.Value, err)
				}
			}
			// A 40s soak looked at every 10s: 5 looks (at 0, 10, ... 40s),
			// one more if a resume comes late. More would spend the
			// stage's false-alarm budget on looks it did not plan.
			if looks, _ := strconv.Atoi(m.Metadata["stage.looks"]); tc.template == "stage" && tc.want != v1alpha1.AnalysisPhaseFailed && (looks < 4 || looks > 6) {
				t.Errorf("stage ended after %q looks, want 4 to 6 over its 40s soak", m.Metadata["stage.looks"])
			}
		})
	}
	// A Rollout promoted or aborted mid-stage terminates its AnalysisRun:
	// the controller calls Terminate on the running stage measurement,
	// which ends Inconclusive (as argo's own job provider ends one) with
	// the looks it took in its metadata.
	t.Run("stage-terminated", func(t *testing.T) {
		kubetest.Create(t, kube, analysisRun(t, "stage-terminated", ns, "stage", sc["healthy"], prom.URL(), policy, nil))
		dyn := kubetest.Dynamic(t, kube)
		err := wait.PollUntilContextCancel(ctx, 200*time.Millisecond, true, func(ctx context.Context) (bool, error) {
			ar := getRun(t, ctx, kube, ns, "stage-terminated")
			return len(ar.Status.MetricResults) == 1 && len(ar.Status.MetricResults[0].Measurements) == 1 &&
				ar.Status.MetricResults[0].Measurements[0].Phase == v1alpha1.AnalysisPhaseRunning, nil
		})
		if err != nil {
			t.Fatalf("stage never running: %v", err)
		}
		if _, err := dyn.Resource(kubetest.AnalysisRuns).Namespace(ns).Patch(ctx, "stage-terminated", types.MergePatchType, []byte(`{"spec":{"terminate":true}}`), metav1.PatchOptions{}); err != nil {
			t.Fatal(err)
		}
		ar := waitFinished(t, ctx, kube, ns, "stage-terminated", proc)
		m := ar.Status.MetricResults[0].Measurements[0]
		t.Logf("terminated: run %s %q; measurement %s %q, metadata terminated=%q looks=%q", ar.Status.Phase, ar.Status.Message, m.Phase, m.Message, m.Metadata["terminated"], m.Metadata["stage.looks"])
		if m.Phase != v1alpha1.AnalysisPhaseInconclusive || m.FinishedAt == nil || m.Metadata["terminated"] == "" || m.Metadata["stage.looks"] == "" {
			t.Errorf("measurement %s finished %v metadata %v; want Inconclusive, finished, saying it was terminated", m.Phase, m.FinishedAt, m.Metadata)
		}
	})

	if _, err := os.Stat(filepath.Join(workdir, "plugin-bin", "phaseguard", "phaseguard")); err != nil {
		t.Errorf("the controller did not install the plugin where it runs it: %v", err)
	}
	connGate.check(t, "connection mimir")
	argGate.check(t, "secret argument")
}

// templateFiles maps a template's short name to its file in examples/.
var templateFiles = map[string]string{
	"look":       "clusteranalysistemplate-look.yaml",
	"stage":      "clusteranalysistemplate-stage.yaml",
	"secret-arg": "analysistemplate-secret-arg.yaml",
}

// analysisRun returns an AnalysisRun whose metric is the one of the
// example template (templateFiles), pointed at prometheus unless it
// names a connection (and, if policy is set, judged by that inline
// policy), with the args a Rollout's canary step passes for the scenario
// and the template's own args from Secrets. The controller resolves the
// args, as it does for a run a Rollout created. With an owner, the run
// is one that Rollout's canary-50 step made for its revision, judged with
// the template's stage ordering; without, a run of stage canary-10 with
// stage ordering off (there is no revision to order by).
func analysisRun(t *testing.T, name, ns, template string, s scenario, prometheus, policy string, owner *unstructured.Unstructured) string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("examples", templateFiles[template]))
	if err != nil {
		t.Fatal(err)
	}
	var tmpl v1alpha1.ClusterAnalysisTemplate
	if err := yaml.UnmarshalStrict(raw, &tmpl); err != nil {
		t.Fatalf("%s: %v", template, err)
	}
	metrics := tmpl.Spec.Metrics
	if len(metrics) != 1 || metrics[0].Provider.Plugin == nil {
		t.Fatalf("%s: want one plugin metric, got %+v", template, metrics)
	}
	var cfg map[string]any
	if err := json.Unmarshal(metrics[0].Provider.Plugin[rollouts.Name], &cfg); err != nil {
		t.Fatalf("%s: plugin config: %v", template, err)
	}
	prom, _ := cfg["prometheus"].(map[string]any)
	if prom == nil {
		t.Fatalf("%s: no prometheus in the plugin config", template)
	}
	if prom["connection"] == nil {
		prom["address"] = prometheus
	}
	prom["retries"] = -1
	stage := "canary-50"
	if owner == nil {
		stage = "canary-10"
		cfg["stageOrdering"] = false
	}
	if policy != "" {
		cfg["policy"] = policy
	}
	if metrics[0].Provider.Plugin[rollouts.Name], err = json.Marshal(cfg); err != nil {
		t.Fatal(err)
	}
	if template != "stage" {
		// The look templates look 31 times, 30s apart (the longest
		// built-in soak, 15m): with the 40s soak, 5 looks 10s apart
		// cover it ((5-1) × 10s), as the plugin demands. A failing run
		// ends at its first failing look, a passing one after its 5
		// looks, a held one at the look at the soak's end.
		metrics[0].Count = &intstr.IntOrString{Type: intstr.Int, IntVal: 5}
		metrics[0].Interval = "10s"
	}
	values := map[string]string{"service": s.Service, "namespace": s.Namespace, "canary-hash": s.CanaryHash, "stable-hash": s.StableHash, "stage": stage}
	var args []v1alpha1.Argument
	for _, a := range tmpl.Spec.Args {
		if a.ValueFrom != nil && a.ValueFrom.SecretKeyRef != nil {
			args = append(args, a)
			continue
		}
		v, ok := values[a.Name]
		if !ok {
			t.Fatalf("%s: arg %q: no value for it", template, a.Name)
		}
		args = append(args, v1alpha1.Argument{Name: a.Name, Value: &v})
	}
	run := v1alpha1.AnalysisRun{
		TypeMeta:   metav1.TypeMeta{APIVersion: "argoproj.io/v1alpha1", Kind: "AnalysisRun"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec:       v1alpha1.AnalysisRunSpec{Args: args, Metrics: metrics},
	}
	if owner != nil {
		// What the Rollout controller puts on a step's AnalysisRun.
		run.Labels = map[string]string{rollouts.LabelPodTemplateHash: s.CanaryHash, "rollout-type": "Step"}
		run.Annotations = map[string]string{rollouts.AnnotationRevision: owner.GetAnnotations()[rollouts.AnnotationRevision]}
		run.OwnerReferences = []metav1.OwnerReference{*metav1.NewControllerRef(owner, v1alpha1.SchemeGroupVersion.WithKind("Rollout"))}
	}
	obj, err := runtime.DefaultUnstructuredConverter.ToUnstructured(&run)
	if err != nil {
		t.Fatal(err)
	}
	unstructured.RemoveNestedField(obj, "status")
	unstructured.RemoveNestedField(obj, "metadata", "creationTimestamp")
	out, err := yaml.Marshal(obj)
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

// shortStagePolicy is phase-default with canary-10 soaking 40s, looked at
// every 10s, as inline YAML.
func shortStagePolicy(t *testing.T) string {
	t.Helper()
	raw, err := policies.PresetYAML("phase-default")
	if err != nil {
		t.Fatal(err)
	}
	s := string(raw)
	for _, r := range [][2]string{{"interval: 30s", "interval: 10s"}, {"{name: canary-10, soak: 10m}", "{name: canary-10, soak: 40s}"}, {"name: phase-default", "name: phase-default-short-soak"}} {
		if strings.Count(s, r[0]) != 1 {
			t.Fatalf("phase-default preset: %q not found once; update shortStagePolicy", r[0])
		}
		s = strings.Replace(s, r[0], r[1], 1)
	}
	return s
}

// waitFinished waits until the controller has finished the AnalysisRun,
// failing early if the controller exits.
func waitFinished(t *testing.T, ctx context.Context, cfg *rest.Config, ns, name string, controller *kubetest.Process) *v1alpha1.AnalysisRun {
	t.Helper()
	var ar *v1alpha1.AnalysisRun
	err := wait.PollUntilContextCancel(ctx, 500*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		select {
		case <-controller.Exited():
			return false, fmt.Errorf("rollouts-controller exited: %v", controller.Err())
		default:
		}
		ar = getRun(t, ctx, cfg, ns, name)
		return ar.Status.Phase.Completed(), nil
	})
	if err != nil {
		t.Fatalf("AnalysisRun %s/%s did not finish (%v): %v", ns, name, ar, err)
	}
	return ar
}

// getRun reads an AnalysisRun through the API, failing the test on error.
func getRun(t *testing.T, ctx context.Context, cfg *rest.Config, ns, name string) *v1alpha1.AnalysisRun {
	t.Helper()
	u, err := kubetest.Dynamic(t, cfg).Resource(kubetest.AnalysisRuns).Namespace(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("get AnalysisRun %s/%s: %v", ns, name, err)
	}
	ar := &v1alpha1.AnalysisRun{}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, ar); err != nil {
		t.Fatal(err)
	}
	return ar
}
