package action

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/phaseguard/phaseguard/internal/redirect"
)

// RolloutsResource is Argo Rollouts' Rollout resource.
var RolloutsResource = schema.GroupVersionResource{Group: "argoproj.io", Version: "v1alpha1", Resource: "rollouts"}

// abortPatch is the patch `kubectl argo rollouts abort` sends
// (argo-rollouts pkg/kubectl-argo-rollouts/cmd/abort).
const abortPatch = `{"status":{"abort":true}}`

// KubeClientFunc returns the Kubernetes client used to abort a Rollout.
// kubeconfig is the kubeconfig input (nil when not given); the default
// uses it, else $KUBECONFIG, else the in-cluster configuration.
type KubeClientFunc func(kubeconfig []byte) (dynamic.Interface, error)

// abortRollout aborts the Argo Rollout name in ns exactly as `kubectl argo
// rollouts abort` does: a JSON merge patch setting status.abort on the
// status subresource, and on the main resource only when the status
// subresource is not served (a real API server silently drops status
// changes sent to the main resource of a CRD with a status subresource).
func abortRollout(ctx context.Context, dyn dynamic.Interface, ns, name string) error {
	ri := dyn.Resource(RolloutsResource).Namespace(ns)
	_, err := ri.Patch(ctx, name, types.MergePatchType, []byte(abortPatch), metav1.PatchOptions{FieldManager: "phaseguard"}, "status")
	if err != nil && apierrors.IsNotFound(err) {
		_, err = ri.Patch(ctx, name, types.MergePatchType, []byte(abortPatch), metav1.PatchOptions{FieldManager: "phaseguard"})
	}
	if err != nil {
		return fmt.Errorf("abort rollout %s/%s: %w", ns, name, err)
	}
	return nil
}

// kubeConfig is the client configuration from the kubeconfig input, else
// the files in $KUBECONFIG (paths inside the action's container: the
// workspace is mounted, the runner's temp directory is not), else the
// in-cluster service account (a self-hosted runner in the cluster).
func kubeConfig(kubeconfig []byte, kubeconfigEnv, workspace string, inCluster bool) (*rest.Config, error) {
	var (
		cfg *rest.Config
		err error
	)
	switch {
	case kubeconfig != nil:
		cfg, err = clientcmd.RESTConfigFromKubeConfig(kubeconfig)
		if err != nil {
			return nil, fmt.Errorf("input %s: %w", inKubeconfig, err)
		}
	case kubeconfigEnv != "":
		var paths []string
		for _, p := range filepath.SplitList(kubeconfigEnv) {
			if !filepath.IsAbs(p) {
				// Relative to the workspace, and kept inside it.
				root, name, err := resolveInWorkspace(workspace, p)
				if err != nil {
					return nil, fmt.Errorf("$KUBECONFIG %s: %w", quote(p), err)
				}
				p = filepath.Join(root, name)
			}
			paths = append(paths, p)
		}
		rules := &clientcmd.ClientConfigLoadingRules{Precedence: paths}
		cfg, err = clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{}).ClientConfig()
		if err != nil {
			return nil, fmt.Errorf("$KUBECONFIG: %w", err)
		}
	case inCluster:
		cfg, err = rest.InClusterConfig()
		if err != nil {
			return nil, fmt.Errorf("in-cluster config: %w", err)
		}
	default:
		return nil, errors.New("no Kubernetes credentials: give the kubeconfig input (from a secret), set KUBECONFIG to a file in the workspace, or run on a runner inside the cluster")
	}
	cfg = rest.CopyConfig(cfg)
	cfg.UserAgent = "phaseguard-action"
	if cfg.Timeout == 0 {
		cfg.Timeout = 30 * time.Second
	}
	return cfg, nil
}

// kubeSecrets returns the credentials of every user in a kubeconfig, for
// masking and redaction: tokens, passwords, client keys (as PEM and as the
// Base64 the file holds), exec plugin environment values and auth
// provider settings.
func kubeSecrets(kubeconfig []byte) []string {
	c, err := clientcmd.Load(kubeconfig)
	if err != nil {
		return nil
	}
	var out []string
	add := func(s string) {
		if s != "" {
			out = append(out, s)
		}
	}
	for _, a := range c.AuthInfos {
		add(a.Token)
		add(a.Password)
		if len(a.ClientKeyData) > 0 {
			add(string(a.ClientKeyData))
			add(base64.StdEncoding.EncodeToString(a.ClientKeyData))
		}
		if a.Exec != nil {
			for _, e := range a.Exec.Env {
				add(e.Value)
			}
		}
		if a.AuthProvider != nil {
			for _, v := range a.AuthProvider.Config {
				add(v)
			}
		}
	}
	return out
}

// kubeDynamic returns a dynamic client for cfg that follows redirects only
// within the API server's origin: client-go adds the credentials in its
// transport, so net/http would send them to any host a redirect names.
func kubeDynamic(cfg *rest.Config) (dynamic.Interface, error) {
	hc, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return nil, err
	}
	return dynamic.NewForConfigAndClient(cfg, redirect.Client(hc))
}
