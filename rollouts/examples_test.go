package rollouts_test

import (
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/argoproj/argo-rollouts/pkg/apis/rollouts/v1alpha1"
	plugintypes "github.com/argoproj/argo-rollouts/utils/plugin/types"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/phaseguard/phaseguard/internal/argotest"
	"github.com/phaseguard/phaseguard/internal/redact"
	"github.com/phaseguard/phaseguard/promapi/promapitest"
	"github.com/phaseguard/phaseguard/rollouts"
)

// TestExamples decodes every example strictly into Argo's and
// Kubernetes' own types and checks that each piece is one the plugin
// accepts: the ConfigMap's args, the connections file (with its files
// where the Secret's mount puts them), the policies ConfigMap (laid out
// as its volume is, each policy loaded through the plugin from the
// policy directory the args name), the patch mounting both where the
// args point, and each template's plugin config with its arguments filled
// the way the Rollout fills them. The template taking its own credential
// from a Secret is run against a recording server, which must receive
// exactly that credential.
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
	var items []plugintypes.PluginItem
	if err := yaml.UnmarshalStrict([]byte(cm.Data["metricProviderPlugins"]), &items); err != nil {
		t.Fatalf("argo-rollouts-config metricProviderPlugins: %v", err)
	}
	if len(items) != 1 || items[0].Name != rollouts.Name {
		t.Fatalf("argo-rollouts-config names %+v, want %s", items, rollouts.Name)
	}
	if _, err := rollouts.ParseArgs(items[0].Args, func(string) string { return "" }); err != nil {
		t.Errorf("argo-rollouts-config args %q: %v", items[0].Args, err)
	}
	var connsPath, policyDir string
	for _, a := range items[0].Args {
		if v, ok := strings.CutPrefix(a, "--connections="); ok {
			connsPath = v
		}
		if v, ok := strings.CutPrefix(a, "--policy-dir="); ok {
			policyDir = v
		}
	}
	if connsPath == "" || policyDir == "" {
		t.Fatalf("argo-rollouts-config args %q: want --connections=FILE and --policy-dir=DIR", items[0].Args)
	}

	// The connections Secret, its keys written as its volume would.
	var sec corev1.Secret
	read("connections.yaml", &sec)
	dir := t.TempDir()
	for name, v := range sec.StringData {
		if name == "mimir-ca.crt" {
			v = testCA(t) // the example's is a placeholder
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(v), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	set := redact.New()
	conns, err := rollouts.ParseConnections([]byte(sec.StringData[filepath.Base(connsPath)]), dir, set)
	if err != nil {
		t.Fatalf("connections.yaml: %v", err)
	}
	if conns["mimir"] == nil || conns["thanos-payments"] == nil {
		t.Errorf("connections %v, want mimir and thanos-payments", conns)
	}
	// What the files hold is redacted from then on.
	for _, v := range []string{sec.StringData["mimir-token"], sec.StringData["thanos-password"]} {
		if !set.Has("x " + v + " x") {
			t.Errorf("the connections' credential %q is not in the redaction set", v)
		}
	}

	// The policies ConfigMap, laid out as its volume is: each key a
	// symlink through ..data into a generation directory.
	var pcm corev1.ConfigMap
	read("policies.yaml", &pcm)
	pdir := filepath.Join(t.TempDir(), "policies")
	gen := filepath.Join(pdir, "..2026_01_01_00_00_00.000000001")
	if err := os.MkdirAll(gen, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Base(gen), filepath.Join(pdir, "..data")); err != nil {
		t.Fatal(err)
	}
	for name, v := range pcm.Data {
		if err := os.WriteFile(filepath.Join(gen, name), []byte(v), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(filepath.Join("..data", name), filepath.Join(pdir, name)); err != nil {
			t.Fatal(err)
		}
	}
	if len(pcm.Data) == 0 {
		t.Error("policies.yaml holds no policy")
	}
	policyServer := promapitest.ServeEcho(t, promapitest.EchoWarning)
	withDir := rollouts.New(rollouts.WithPolicyDir(pdir))
	for name := range pcm.Data {
		cfg := `{"policy": "` + filepath.Join(pdir, name) + `", "prometheus": {"address": "` + policyServer.URL + `", "retries": -1},
			"service": "checkout", "namespace": "shop", "canaryHash": "7f8c9d6b4", "stageOrdering": false}`
		m := withDir.Run(&v1alpha1.AnalysisRun{}, pluginMetric(t, cfg))
		if m.Phase == v1alpha1.AnalysisPhaseError || m.Metadata["policy"] != strings.TrimSuffix(name, ".yaml") {
			t.Errorf("policies.yaml %s through --policy-dir: %s %q, policy %q", name, m.Phase, m.Message, m.Metadata["policy"])
		}
	}

	var patch appsv1.Deployment
	read("controller-patch.yaml", &patch)
	pod := patch.Spec.Template.Spec
	mounts := map[string]string{} // volume name to mount path
	if len(pod.Containers) == 1 {
		for _, vm := range pod.Containers[0].VolumeMounts {
			mounts[vm.Name] = vm.MountPath
		}
	}
	var mountedSecret, mountedPolicies bool
	for _, v := range pod.Volumes {
		switch {
		case v.Secret != nil && v.Secret.SecretName == sec.Name:
			mountedSecret = mounts[v.Name] == filepath.Dir(connsPath)
		case v.ConfigMap != nil && v.ConfigMap.Name == pcm.Name:
			mountedPolicies = mounts[v.Name] == policyDir
		}
	}
	if !mountedSecret || !mountedPolicies || len(pod.Volumes) != 2 {
		t.Errorf("controller-patch does not mount Secret %s at %s and ConfigMap %s at %s: %+v", sec.Name, filepath.Dir(connsPath), pcm.Name, policyDir, pod)
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

	v := func(s string) *string { return &s }
	args := []v1alpha1.Argument{{Name: "service", Value: v("checkout")}, {Name: "namespace", Value: v("shop")},
		{Name: "canary-hash", Value: v("7f8c9d6b4")}, {Name: "stable-hash", Value: v("6d4b9c7f5")}, {Name: "stage", Value: v("canary-50")}}
	for _, name := range []string{"clusteranalysistemplate-look.yaml", "clusteranalysistemplate-stage.yaml"} {
		var tpl v1alpha1.ClusterAnalysisTemplate
		read(name, &tpl)
		for _, m := range tpl.Spec.Metrics {
			resolved := argotest.ResolveArgs(t, m, args)
			cfg, err := rollouts.DecodeConfig(resolved.Provider.Plugin[rollouts.Name])
			if err != nil {
				t.Errorf("%s metric %s: %v", name, m.Name, err)
				continue
			}
			if c := cfg.Prometheus.Connection; c != "" && conns[c] == nil {
				t.Errorf("%s metric %s: connection %q is not in connections.yaml", name, m.Name, c)
			}
		}
	}

	// The template with its own credential, from a Secret: the controller
	// resolves the argument into the metric and passes the run with the
	// argument's value filled in.
	var own v1alpha1.AnalysisTemplate
	read("analysistemplate-secret-arg.yaml", &own)
	const token = "example-token-5f3a9c"
	server := promapitest.ServeEcho(t, promapitest.EchoWarning)
	runArgs := append([]v1alpha1.Argument(nil), args...)
	for _, a := range own.Spec.Args {
		if a.ValueFrom != nil && a.ValueFrom.SecretKeyRef != nil {
			a.Value = v(token)
			runArgs = append(runArgs, a)
		}
	}
	stored := own.Spec.Metrics[0]
	var pc map[string]any
	if err := json.Unmarshal(stored.Provider.Plugin[rollouts.Name], &pc); err != nil {
		t.Fatal(err)
	}
	pc["prometheus"].(map[string]any)["address"] = server.URL
	pc["stageOrdering"] = false
	raw, _ := json.Marshal(pc)
	stored.Provider.Plugin[rollouts.Name] = raw
	ar := &v1alpha1.AnalysisRun{Spec: v1alpha1.AnalysisRunSpec{Args: runArgs, Metrics: []v1alpha1.Metric{stored}}}
	ar.Namespace, ar.Name = own.Namespace, "checkout-own"
	m := rollouts.New().Run(ar, argotest.ResolveArgs(t, stored, runArgs))
	if m.Phase == v1alpha1.AnalysisPhaseError {
		t.Errorf("analysistemplate-secret-arg: %s %q", m.Phase, m.Message)
	}
	headers := server.Headers()
	if len(headers) == 0 {
		t.Fatal("analysistemplate-secret-arg: no query reached the server")
	}
	for _, h := range headers {
		if got := h.Get("Authorization"); got != "Bearer "+token {
			t.Errorf("analysistemplate-secret-arg: the server got Authorization %q, want the Secret's token", got)
		}
	}
	if strings.Contains(m.Message, token) {
		t.Errorf("message %q shows the token", m.Message)
	}
}

// testCA returns a PEM CA certificate (httptest's).
func testCA(t *testing.T) string {
	t.Helper()
	srv := httptest.NewTLSServer(http.NotFoundHandler())
	defer srv.Close()
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}))
}
