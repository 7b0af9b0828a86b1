package kubetest_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"

	"github.com/phaseguard/phaseguard/internal/kubetest"
)

// TestPodsRunOnKWOK runs the real kube-apiserver, kube-controller-manager
// and KWOK, and checks what a Rollout's ReplicaSets rely on: a namespace
// gets its default ServiceAccount, a ReplicaSet's pods are created on the
// fake node and become Running and Ready (with an IP), the ReplicaSet
// counts them ready, and scaled to zero its pods are gone.
func TestPodsRunOnKWOK(t *testing.T) {
	t.Parallel()
	bins := kubetest.Binaries(t, "../..", "kube-apiserver", "kube-controller-manager", "kwok")
	stages, err := kubetest.KWOKStages("../../e2e/kwok")
	if err != nil {
		t.Fatal(err)
	}
	cfg := kubetest.StartKubeAPIServer(t, filepath.Join(bins, "kube-apiserver"), kubetest.Rollouts)
	kubetest.StartKubeControllerManager(t, filepath.Join(bins, "kube-controller-manager"), cfg)
	kwok := kubetest.StartKWOK(t, filepath.Join(bins, "kwok"), cfg, stages)
	node := kubetest.CreateKWOKNode(t, cfg, "kwok-0", kwok)

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cs := kubernetes.NewForConfigOrDie(cfg)
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	poll := func(what string, done func(ctx context.Context) (bool, error)) {
		t.Helper()
		if err := wait.PollUntilContextCancel(ctx, 100*time.Millisecond, true, done); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	poll("default ServiceAccount of shop", func(ctx context.Context) (bool, error) {
		_, err := cs.CoreV1().ServiceAccounts("shop").Get(ctx, "default", metav1.GetOptions{})
		return err == nil, nil
	})

	labels := map[string]string{"app": "checkout"}
	two := int32(2)
	rs := &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{Name: "checkout", Namespace: "shop"},
		Spec: appsv1.ReplicaSetSpec{
			Replicas: &two,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					NodeName:   node.Name,
					Containers: []corev1.Container{{Name: "app", Image: "example/checkout:1"}},
				},
			},
		},
	}
	if _, err := cs.AppsV1().ReplicaSets("shop").Create(ctx, rs, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	poll("2 ready replicas", func(ctx context.Context) (bool, error) {
		got, err := cs.AppsV1().ReplicaSets("shop").Get(ctx, "checkout", metav1.GetOptions{})
		return err == nil && got.Status.ReadyReplicas == 2 && got.Status.AvailableReplicas == 2, err
	})
	t.Logf("2 pods ready in %s", time.Since(began).Round(time.Millisecond))
	pods, err := cs.CoreV1().Pods("shop").List(ctx, metav1.ListOptions{LabelSelector: "app=checkout"})
	if err != nil {
		t.Fatal(err)
	}
	if len(pods.Items) != 2 {
		t.Fatalf("%d pods, want 2", len(pods.Items))
	}
	for _, p := range pods.Items {
		ready := false
		for _, c := range p.Status.Conditions {
			ready = ready || (c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue)
		}
		if p.Spec.NodeName != node.Name || p.Status.Phase != corev1.PodRunning || !ready || p.Status.PodIP == "" || p.Spec.ServiceAccountName != "default" {
			t.Errorf("pod %s: node %q phase %s ready %v IP %q service account %q; want on %s, Running, Ready, with an IP, default",
				p.Name, p.Spec.NodeName, p.Status.Phase, ready, p.Status.PodIP, p.Spec.ServiceAccountName, node.Name)
		}
	}

	if _, err := cs.AppsV1().ReplicaSets("shop").Patch(ctx, "checkout", types.MergePatchType, []byte(`{"spec":{"replicas":0}}`), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	poll("pods deleted after scaling to 0", func(ctx context.Context) (bool, error) {
		pods, err := cs.CoreV1().Pods("shop").List(ctx, metav1.ListOptions{LabelSelector: "app=checkout"})
		if err != nil {
			return false, err
		}
		return len(pods.Items) == 0, nil
	})
	poll("ReplicaSet counting 0 replicas", func(ctx context.Context) (bool, error) {
		got, err := cs.AppsV1().ReplicaSets("shop").Get(ctx, "checkout", metav1.GetOptions{})
		return err == nil && got.Status.Replicas == 0, err
	})
}
