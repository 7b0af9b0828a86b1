//go:build tools

// Package tools pins the real components the end-to-end test runs: the
// argo-rollouts controller (v1.10.0, built with argo's own replace block) and
// the kube-apiserver of the Kubernetes release that controller is built
// against (v1.34.5). It is its own module so that their Kubernetes libraries
// (v0.34) do not mix with phaseguard's (v0.37).
package tools

import (
	_ "github.com/argoproj/argo-rollouts/cmd/rollouts-controller"
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
)
