package rollouts_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/argoproj/argo-rollouts/pkg/apis/rollouts/v1alpha1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/phaseguard/phaseguard/internal/kubetest"
	"github.com/phaseguard/phaseguard/rollouts"
)

// oldestLoader is the program of module ../e2e/argo-oldest: Argo Rollouts
// v1.7.2's plugin loader and RPC client, the oldest release phaseguard
// supports (v1.10's are this module's own, TestContract).
const oldestLoader = "argo-oldest-loader"

// oldestLoaderBinary returns $PHASEGUARD_E2E_BIN/argo-oldest-loader (built
// by scripts/test.sh), or builds it when that is not set: minutes on a cold
// build cache (Argo Rollouts v1.7.2 and Kubernetes v0.29), seconds after.
func oldestLoaderBinary(t *testing.T) string {
	t.Helper()
	if dir := os.Getenv(E2EBinEnv); dir != "" {
		p := filepath.Join(dir, oldestLoader)
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("%s: %v (build e2e/argo-oldest, see scripts/test.sh)", oldestLoader, err)
		}
		return p
	}
	p := filepath.Join(t.TempDir(), oldestLoader)
	t.Logf("building %s from e2e/argo-oldest (minutes on a cold build cache; set %s to reuse a build)", oldestLoader, E2EBinEnv)
	cmd := exec.Command("go", "build", "-C", "../e2e/argo-oldest", "-trimpath", "-o", p, ".")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%v: %v\n%s", cmd.Args, err, out)
	}
	return p
}

// loaderCall is one call the loader makes through argo's RPC client.
type loaderCall struct {
	Call        string          `json:"call"`
	AnalysisRun json.RawMessage `json:"analysisRun"`
	Metric      string          `json:"metric"`
}

// loaderResult is what the loader prints for a call.
type loaderResult struct {
	Call        string                `json:"call"`
	Type        string                `json:"type"`
	Metadata    map[string]string     `json:"metadata"`
	Measurement *v1alpha1.Measurement `json:"measurement"`
	Error       string                `json:"error"`
}

// runLoader installs the plugins of the ConfigMap cm with v1.7.2's loader,
// in a fresh working directory, and makes calls. It returns the results,
// the loader's stderr and its exit code.
func runLoader(t *testing.T, loader string, env []string, cm any, calls []loaderCall) ([]loaderResult, string, int) {
	t.Helper()
	work := t.TempDir()
	data, err := yaml.Marshal(cm)
	if err != nil {
		t.Fatal(err)
	}
	cmFile := filepath.Join(work, "argo-rollouts-config.yaml")
	if err := os.WriteFile(cmFile, data, 0o600); err != nil {
		t.Fatal(err)
	}
	var in bytes.Buffer
	enc := json.NewEncoder(&in)
	for _, c := range calls {
		if err := enc.Encode(c); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, loader, "-configmap", cmFile)
	cmd.Dir = work
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdin = &in
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	code := 0
	if err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			t.Fatalf("%s: %v", loader, err)
		}
		code = ee.ExitCode()
	}
	var results []loaderResult
	sc := bufio.NewScanner(&stdout)
	sc.Buffer(nil, 16<<20)
	for sc.Scan() {
		var r loaderResult
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("%s printed %q: %v", loader, sc.Text(), err)
		}
		results = append(results, r)
	}
	return results, stderr.String(), code
}

// TestOldestArgo runs the plugin contract through the plugin loader of
// Argo Rollouts v1.7.2, the oldest release phaseguard supports (v1.7.0
// fixed the sha256 check, argoproj/argo-rollouts#3519/#3520), in a
// separate process built from ../e2e/argo-oldest. The ConfigMap is
// examples/argo-rollouts-config.yaml with its location and sha256 filled
// in as the README says and its args pointing at a connections file and a
// policy directory; v1.7.2's InitializeConfig reads it, its DownloadPlugins
// installs the binary, its RPC client calls it on AnalysisRuns against a
// real Prometheus holding the bundled scenarios. Each install way works:
// the https release asset checked against its sha256, and the file://
// location the init container fills with install-plugin. A wrong sha256 on
// the asset is refused before the plugin ever starts; on a file://
// location v1.7.2 does not check it (as the README warns).
func TestOldestArgo(t *testing.T) {
	t.Parallel()
	loader := oldestLoaderBinary(t)
	bin := pluginBinary(t)
	sum, data := fileSHA256(t, bin)
	asset := serveAsset(t, data)
	copyPath, _ := installWithCommand(t, bin, []string{"/phaseguard", "install-plugin", "/plugins"}, "/plugins", t.TempDir())
	prom, sc := startScenarios(t, time.Now().Add(5*time.Minute), "healthy", "drain-misrouting")
	kube := kubetest.Start(t, kubetest.Rollouts, kubetest.AnalysisRuns)
	env := []string{"KUBECONFIG=" + kubetest.WriteKubeconfig(t, kube), rollouts.EnvLogFormat + "=json"}

	// The operator's files where the example's args point, under a
	// directory standing for the controller pod's root: a connection
	// "prom" to the real Prometheus, and a policy directory.
	podRoot := t.TempDir()
	args, policyFile := podArgs(t, podRoot, prom.URL())

	run := func(name, scenario, extra, policy string) json.RawMessage {
		cfg := strings.Replace(sc[scenario].config(prom.URL(), extra), `"address": "`+prom.URL()+`"`, `"connection": "prom"`, 1)
		cfg = strings.Replace(cfg, `"policy": "phase-default"`, `"policy": "`+policy+`"`, 1)
		ar := v1alpha1.AnalysisRun{
			ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: name},
			Spec:       v1alpha1.AnalysisRunSpec{Metrics: []v1alpha1.Metric{pluginMetric(t, cfg)}},
		}
		raw, err := json.Marshal(ar)
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}
	// The healthy look names the policy file in the --policy-dir.
	healthy := run("healthy-look", "healthy", `, "stage": "canary-10"`, policyFile)
	drain := run("drain-look", "drain-misrouting", `, "stage": "canary-10"`, "phase-default")
	stage := run("healthy-stage", "healthy", `, "mode": "stage", "stage": "canary-10"`, "phase-default")
	contract := []loaderCall{
		{"type", healthy, "phase-slis"},
		{"metadata", drain, "phase-slis"},
		{"run", healthy, "phase-slis"},
		{"run", drain, "phase-slis"},
		{"run", stage, "phase-slis"},
		{"resume", stage, "phase-slis"},
		{"terminate", stage, "phase-slis"},
		{"gc", healthy, "phase-slis"},
	}
	checkContract := func(t *testing.T, got []loaderResult) {
		t.Helper()
		if len(got) != len(contract) {
			t.Fatalf("%d results for %d calls: %+v", len(got), len(contract), got)
		}
		m := func(i int) v1alpha1.Measurement {
			if got[i].Measurement == nil {
				t.Fatalf("call %d (%s): no measurement: %+v", i, got[i].Call, got[i])
			}
			return *got[i].Measurement
		}
		if got[0].Type != rollouts.Name {
			t.Errorf("Type = %q, want %s", got[0].Type, rollouts.Name)
		}
		if md := got[1].Metadata; md["plugin"] != rollouts.Name || md["policy"] != "phase-default" || md["connection"] != "prom" || md["mode"] != "look" || md["stage"] != "canary-10" {
			t.Errorf("GetMetadata = %v", md)
		}
		if h := m(2); h.Phase != v1alpha1.AnalysisPhaseSuccessful || h.FinishedAt == nil || h.Metadata["verdict"] == "" || h.Metadata["policy"] != "phase-default" {
			t.Errorf("healthy Run (policy file in the --policy-dir): %s %q finished %v policy %q", h.Phase, h.Message, h.FinishedAt, h.Metadata["policy"])
		}
		if d := m(3); d.Phase != v1alpha1.AnalysisPhaseFailed || !strings.Contains(d.Message, "drain-failure") {
			t.Errorf("drain-misrouting Run: %s %q, want Failed naming drain-failure", d.Phase, d.Message)
		}
		if s := m(4); s.Phase != v1alpha1.AnalysisPhaseRunning || s.ResumeAt == nil || s.FinishedAt != nil {
			t.Errorf("stage Run: %s resume %v finished %v %q", s.Phase, s.ResumeAt, s.FinishedAt, s.Message)
		}
		if r := m(5); r.Phase != v1alpha1.AnalysisPhaseRunning || r.Metadata["stage.looks"] != "2" {
			t.Errorf("stage Resume: %s looks %q %q", r.Phase, r.Metadata["stage.looks"], r.Message)
		}
		if tm := m(6); tm.Phase != v1alpha1.AnalysisPhaseInconclusive || tm.FinishedAt == nil || tm.ResumeAt != nil {
			t.Errorf("stage Terminate: %s finished %v resume %v", tm.Phase, tm.FinishedAt, tm.ResumeAt)
		}
		if got[7].Error != "" {
			t.Errorf("GarbageCollect: %s", got[7].Error)
		}
	}

	wrong := strings.Repeat("0", 64)
	tests := []struct {
		name, location, sha256 string
		calls                  []loaderCall
		wantRefusal            string // in stderr, exit 2; "" for the contract
	}{
		{name: "https release asset", location: asset, sha256: sum, calls: contract},
		{name: "file location filled by install-plugin", location: "file://" + copyPath, sha256: sum, calls: contract},
		{name: "https release asset, wrong sha256", location: asset, sha256: wrong, calls: contract[:1],
			wantRefusal: fmt.Sprintf("sha256 hash of downloaded plugin (%s) does not match expected hash", asset)},
		{name: "file location, wrong sha256: not checked", location: "file://" + copyPath, sha256: wrong, calls: contract[:1]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cm := exampleConfigMap(t, func(e *pluginEntry) { e.Location, e.Sha256, e.Args = tt.location, tt.sha256, args })
			got, stderr, code := runLoader(t, loader, env, cm, tt.calls)
			if tt.wantRefusal != "" {
				if code != 2 || !strings.Contains(stderr, tt.wantRefusal) || len(got) != 0 {
					t.Errorf("exit %d, %d results, stderr:\n%s\nwant exit 2 with %q", code, len(got), stderr, tt.wantRefusal)
				}
				if strings.Contains(stderr, "starting plugin") {
					t.Errorf("the plugin started from an asset whose sha256 did not match:\n%s", stderr)
				}
				return
			}
			if code != 0 {
				t.Fatalf("exit %d, stderr:\n%s", code, stderr)
			}
			if len(tt.calls) == 1 {
				if len(got) != 1 || got[0].Type != rollouts.Name {
					t.Errorf("Type: %+v", got)
				}
				return
			}
			checkContract(t, got)
			if t.Failed() {
				t.Logf("loader stderr:\n%s", stderr)
			}
		})
	}
}

// podArgs writes, under podRoot, the files the example ConfigMap's args
// name (a connections file with a connection "prom" to prom; a policy
// directory holding phase-default as checkout.yaml) and returns the args
// with their paths under podRoot, and the policy file's path.
func podArgs(t *testing.T, podRoot, prom string) ([]string, string) {
	t.Helper()
	var args []string
	exampleConfigMap(t, func(e *pluginEntry) { args = e.Args })
	var out []string
	policyFile := ""
	for _, a := range args {
		flag, p, ok := strings.Cut(a, "=")
		if !ok || !filepath.IsAbs(p) {
			t.Fatalf("examples/argo-rollouts-config.yaml arg %q: want --flag=/absolute/path", a)
		}
		p = filepath.Join(podRoot, p)
		switch flag {
		case "--connections":
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			writeFile(t, filepath.Dir(p), filepath.Base(p), fmt.Sprintf("connections:\n  - {name: prom, url: %q}\n", prom))
		case "--policy-dir":
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
			preset, err := os.ReadFile(filepath.Join("..", "policies", "presets", "phase-default.yaml"))
			if err != nil {
				t.Fatal(err)
			}
			policyFile = writeFile(t, p, "checkout.yaml", string(preset))
		default:
			t.Fatalf("examples/argo-rollouts-config.yaml arg %q: unknown flag", a)
		}
		out = append(out, flag+"="+p)
	}
	if policyFile == "" {
		t.Fatal("examples/argo-rollouts-config.yaml: no --policy-dir arg")
	}
	return out, policyFile
}
