// Package argotest installs and drives a metric provider plugin the way
// the Argo Rollouts controller does, for tests: argo's own ConfigMap
// reader and plugin installer, and argo's resolution of {{args.*}}.
package argotest

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/argoproj/argo-rollouts/pkg/apis/rollouts/v1alpha1"
	argoconfig "github.com/argoproj/argo-rollouts/utils/config"
	"github.com/argoproj/argo-rollouts/utils/defaults"
	argoplugin "github.com/argoproj/argo-rollouts/utils/plugin"
	templateutil "github.com/argoproj/argo-rollouts/utils/template"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8sfake "k8s.io/client-go/kubernetes/fake"
)

// Install installs the plugin binary bin under name exactly as the
// controller does at start-up: an argo-rollouts-config ConfigMap entry
// with a file:// location, its sha256 and args, read by argo's
// utils/config; argo's utils/plugin copies the binary into
// ./plugin-bin/NAME, from where argo's RPC client starts it with args.
// The working directory must be a temporary one (t.Chdir).
func Install(t testing.TB, name, bin string, args ...string) {
	t.Helper()
	data, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	quoted, err := json.Marshal(args)
	if err != nil {
		t.Fatal(err)
	}
	cm := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: defaults.DefaultRolloutsConfigMapName, Namespace: defaults.Namespace()},
		Data: map[string]string{"metricProviderPlugins": fmt.Sprintf("- name: %s\n  location: file://%s\n  sha256: %x\n  args: %s\n",
			name, bin, sha256.Sum256(data), quoted)},
	}
	kube := k8sfake.NewClientset(cm)
	if _, err := argoconfig.InitializeConfig(kube, defaults.DefaultRolloutsConfigMapName); err != nil {
		t.Fatalf("InitializeConfig: %v", err)
	}
	t.Cleanup(argoconfig.UnInitializeConfig)
	if err := argoplugin.DownloadPlugins(argoplugin.FileDownloaderImpl{}, kube); err != nil {
		t.Fatalf("DownloadPlugins: %v", err)
	}
	if _, err := os.Stat(filepath.Join(defaults.DefaultRolloutPluginFolder, filepath.FromSlash(name))); err != nil {
		t.Fatalf("plugin not installed where the controller runs it: %v", err)
	}
}

// ResolveArgs substitutes args into metric as the controller does before
// calling a provider; the stored AnalysisRun keeps {{args.*}}.
func ResolveArgs(t testing.TB, metric v1alpha1.Metric, args []v1alpha1.Argument) v1alpha1.Metric {
	t.Helper()
	raw, err := json.Marshal(metric)
	if err != nil {
		t.Fatal(err)
	}
	resolved, err := templateutil.ResolveQuotedArgs(string(raw), args)
	if err != nil {
		t.Fatalf("resolve args: %v", err)
	}
	var out v1alpha1.Metric
	if err := json.Unmarshal([]byte(resolved), &out); err != nil {
		t.Fatalf("resolved metric: %v", err)
	}
	return out
}

// Log is a log sink safe for concurrent writes (go-plugin's goroutines,
// hclog).
type Log struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *Log) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// String returns everything written so far.
func (l *Log) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
