//go:build tools

// Package tools pins KWOK (sigs.k8s.io/kwok v0.8.0), whose cmd/kwok fakes
// the kubelets of the nodes the Rollout end-to-end test runs pods on. It is
// its own module because KWOK needs the Kubernetes v0.36 libraries, which
// neither phaseguard's (v0.37) nor e2e/tools' (v0.34, Argo Rollouts v1.10's)
// can share; the stages the test gives it (kustomize/stage/.../fast) are
// read from this module's copy of KWOK.
package tools

import (
	_ "sigs.k8s.io/kwok/cmd/kwok"
)
