package kubetest_test

import (
	"context"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/phaseguard/phaseguard/internal/kubetest"
)

const rollout = `
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata:
  name: checkout
  namespace: shop
  annotations:
    rollout.argoproj.io/revision: "3"
spec:
  replicas: 2
  selector:
    matchLabels: {app: checkout}
  template:
    metadata:
      labels: {app: checkout}
    spec:
      containers:
        - name: app
          image: example/checkout:2
  strategy:
    canary:
      steps:
        - setWeight: 10
`

const analysisRun = `
apiVersion: argoproj.io/v1alpha1
kind: AnalysisRun
metadata:
  name: checkout-7d9f-3-canary-10
  namespace: shop
  labels:
    rollouts-pod-template-hash: 7d9f
  annotations:
    rollout.argoproj.io/revision: "3"
spec:
  metrics:
    - name: phase
      provider:
        plugin:
          phaseguard/phaseguard: {"stage": "canary-10"}
status:
  phase: Successful
  startedAt: "2026-01-02T10:00:00Z"
`

func TestStart(t *testing.T) {
	t.Parallel()
	cfg := kubetest.Start(t, kubetest.Rollouts, kubetest.AnalysisRuns)
	dyn := kubetest.Dynamic(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	// An AnalysisRun keeps its status on create (no status subresource),
	// and its plugin config round-trips as arbitrary JSON.
	kubetest.Create(t, cfg, analysisRun)
	list, err := dyn.Resource(kubetest.AnalysisRuns).Namespace("shop").List(ctx, metav1.ListOptions{LabelSelector: "rollouts-pod-template-hash=7d9f"})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Items) != 1 {
		t.Fatalf("listed %d AnalysisRuns, want 1", len(list.Items))
	}
	ar := list.Items[0]
	if phase, _, _ := unstructured.NestedString(ar.Object, "status", "phase"); phase != "Successful" {
		t.Errorf("status.phase = %q, want Successful", phase)
	}
	metrics, _, _ := unstructured.NestedSlice(ar.Object, "spec", "metrics")
	if len(metrics) != 1 {
		t.Fatalf("spec.metrics has %d entries, want 1", len(metrics))
	}
	stage, _, _ := unstructured.NestedString(metrics[0].(map[string]any), "provider", "plugin", "phaseguard/phaseguard", "stage")
	if stage != "canary-10" {
		t.Errorf("plugin config stage = %q, want canary-10", stage)
	}

	// A kubeconfig for another process reaches the same server.
	kc, err := clientcmd.BuildConfigFromFlags("", kubetest.WriteKubeconfig(t, cfg))
	if err != nil {
		t.Fatal(err)
	}
	l, err := kubetest.Dynamic(t, kc).Resource(kubetest.AnalysisRuns).Namespace("shop").List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatalf("list through the kubeconfig: %v", err)
	}
	if len(l.Items) != 1 {
		t.Errorf("list through the kubeconfig: %d items, want 1", len(l.Items))
	}

	// A Rollout has a status subresource: status is written through it,
	// and a merge patch on it (how an abort is requested) is served.
	kubetest.Create(t, cfg, rollout)
	kubetest.SetStatus(t, cfg, "shop", "checkout", `{"currentPodHash": "7d9f", "stableRS": "5c4b"}`)
	got, err := dyn.Resource(kubetest.Rollouts).Namespace("shop").Patch(ctx, "checkout", types.MergePatchType, []byte(`{"status":{"abort":true}}`), metav1.PatchOptions{}, "status")
	if err != nil {
		t.Fatalf("merge patch status: %v", err)
	}
	if abort, _, _ := unstructured.NestedBool(got.Object, "status", "abort"); !abort {
		t.Error("status.abort not set by the merge patch")
	}
	if hash, _, _ := unstructured.NestedString(got.Object, "status", "currentPodHash"); hash != "7d9f" {
		t.Errorf("status.currentPodHash = %q, want 7d9f (kept by the merge patch)", hash)
	}
}

func TestDecodeRejects(t *testing.T) {
	t.Parallel()
	for name, doc := range map[string]string{
		"core kind":     "apiVersion: v1\nkind: Pod\nmetadata: {name: x}\n",
		"two documents": "apiVersion: argoproj.io/v1alpha1\nkind: Rollout\nmetadata: {name: a}\n---\napiVersion: argoproj.io/v1alpha1\nkind: Rollout\nmetadata: {name: b}\n",
		"wrong version": "apiVersion: argoproj.io/v1\nkind: Rollout\nmetadata: {name: a}\n",
		"not yaml":      "{",
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if _, _, err := kubetest.Decode(doc); err == nil {
				t.Error("Decode accepted it")
			}
		})
	}
}
