package kubetest

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// KWOKModule is the module KWOK's binary and stages come from.
const KWOKModule = "sigs.k8s.io/kwok"

// KWOKNodeAnnotation marks the nodes [StartKWOK] manages (the annotation
// KWOK's own documentation puts on its fake nodes).
const KWOKNodeAnnotation = "kwok.x-k8s.io/node"

// kwokStages are the Stage files of KWOK's kustomize/stage directory that
// [KWOKStages] returns: a node becomes Ready at once, a pod Running and
// Ready at once, a pod whose containers all ended Succeeded, and a pod
// being deleted is deleted (there is no kubelet to confirm it). These are
// the "fast" stages kwokctl configures by default; cmd/kwok itself loads
// none and refuses to start without some.
var kwokStages = []string{
	"kustomize/stage/node/fast/node-initialize.yaml",
	"kustomize/stage/pod/fast/pod-ready.yaml",
	"kustomize/stage/pod/fast/pod-complete.yaml",
	"kustomize/stage/pod/fast/pod-delete.yaml",
}

// KWOKStages returns the paths of KWOK's fast node and pod stages in the
// module cache's copy of KWOK, at the version the module in moduleDir
// (e2e/kwok) requires, as `go list -m` resolves it there.
func KWOKStages(moduleDir string) ([]string, error) {
	var stderr bytes.Buffer
	cmd := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", KWOKModule)
	cmd.Dir = moduleDir
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("locate module %s from %s: %w: %s", KWOKModule, moduleDir, err, strings.TrimSpace(stderr.String()))
	}
	dir := strings.TrimSpace(string(out))
	if dir == "" {
		return nil, fmt.Errorf("locate module %s from %s: not downloaded (run go mod download in %s)", KWOKModule, moduleDir, moduleDir)
	}
	paths := make([]string, 0, len(kwokStages))
	for _, s := range kwokStages {
		p := filepath.Join(dir, filepath.FromSlash(s))
		if _, err := os.Stat(p); err != nil {
			return nil, fmt.Errorf("KWOK stage: %w", err)
		}
		paths = append(paths, p)
	}
	return paths, nil
}

// StartKWOK runs the KWOK controller binary bin against the API server cfg
// reaches, playing the given Stage files (KWOKStages) for the nodes
// annotated kwok.x-k8s.io/node=fake ([CreateKWOKNode]) and the pods bound
// to them: it stands in for their kubelets. It stops when t ends. KWOK has
// no readiness endpoint here (it serves none): CreateKWOKNode waits until
// it has made a node Ready.
func StartKWOK(t testing.TB, bin string, cfg *rest.Config, stages []string) *Process {
	t.Helper()
	if len(stages) == 0 {
		t.Fatal("kubetest: StartKWOK: no stages (KWOK plays none by itself)")
	}
	args := []string{
		"--kubeconfig=" + WriteKubeconfig(t, cfg),
		"--manage-nodes-with-annotation-selector=" + KWOKNodeAnnotation + "=fake",
	}
	for _, s := range stages {
		args = append(args, "--config="+s)
	}
	cmd := exec.Command(bin, args...)
	// KWOK also reads ~/.kwok/kwok.yaml when it exists: not this user's.
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir())
	return StartProcess(t, "kwok", cmd)
}

// CreateKWOKNode creates a Node that KWOK (StartKWOK, kwok) manages and
// waits until KWOK has made it Ready. Pods run on it by naming it in
// spec.nodeName: no scheduler runs. The node carries KWOK's NoSchedule
// taint, so a scheduler, if one ran, would place only pods tolerating it.
func CreateKWOKNode(t testing.TB, cfg *rest.Config, name string, kwok *Process) *corev1.Node {
	t.Helper()
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatalf("kubetest: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	node := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{
			Name:        name,
			Annotations: map[string]string{KWOKNodeAnnotation: "fake"},
			Labels:      map[string]string{"type": "kwok", corev1.LabelHostname: name},
		},
		Spec: corev1.NodeSpec{Taints: []corev1.Taint{{Key: KWOKNodeAnnotation, Value: "fake", Effect: corev1.TaintEffectNoSchedule}}},
	}
	if _, err := cs.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil {
		t.Fatalf("kubetest: create node %s: %v", name, err)
	}
	began := time.Now()
	err = wait.PollUntilContextCancel(ctx, 100*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		select {
		case <-kwok.Exited():
			return false, fmt.Errorf("kwok exited: %v", kwok.Err())
		default:
		}
		n, err := cs.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		node = n
		for _, c := range n.Status.Conditions {
			if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue {
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		t.Fatalf("kubetest: node %s not Ready (is KWOK managing it?): %v", name, err)
	}
	t.Logf("kubetest: KWOK node %s Ready in %s", name, time.Since(began).Round(time.Millisecond))
	return node
}
