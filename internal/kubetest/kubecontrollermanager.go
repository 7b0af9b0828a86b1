package kubetest

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/rest"
)

// DefaultControllers are the kube-controller-manager controllers
// [StartKubeControllerManager] runs unless told otherwise: what a
// Rollout's pods need without a kubelet.
//
//   - replicaset-controller creates and deletes the pods of the
//     ReplicaSets Argo Rollouts scales;
//   - serviceaccount-controller creates each namespace's "default"
//     ServiceAccount, without which the API server's ServiceAccount
//     admission plugin (on by default) refuses every pod;
//   - garbage-collector-controller deletes the pods of a ReplicaSet Argo
//     deletes (revisionHistoryLimit), through their owner references.
//
// No node-lifecycle-controller: it would taint KWOK's nodes when they send
// no heartbeats; nor a scheduler's helpers: pods name their node.
var DefaultControllers = []string{"replicaset-controller", "serviceaccount-controller", "garbage-collector-controller"}

// StartKubeControllerManager runs the real kube-controller-manager binary
// bin against the API server cfg reaches (a [StartKubeAPIServer] server),
// with the controllers given (DefaultControllers when none), no leader
// election, and its secure port on a free loopback port. It returns once
// the manager answers /healthz, and stops it when t ends; a manager that
// cannot start fails the test.
func StartKubeControllerManager(t testing.TB, bin string, cfg *rest.Config, controllers ...string) *Process {
	t.Helper()
	if len(controllers) == 0 {
		controllers = DefaultControllers
	}
	began := time.Now()
	port := FreePort(t)
	args := []string{
		"--kubeconfig=" + WriteKubeconfig(t, cfg),
		"--controllers=" + strings.Join(controllers, ","),
		"--leader-elect=false",
		"--bind-address=127.0.0.1",
		"--secure-port=" + strconv.Itoa(port),
		"--cert-dir=" + t.TempDir(),
		// The health endpoints are served without authentication (they
		// are always allowed); nothing else is asked of this server.
		"--authentication-skip-lookup=true",
		"--profiling=false",
		"--v=1",
	}
	proc := StartProcess(t, "kube-controller-manager", exec.Command(bin, args...))
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	if err := waitHealthy(ctx, "https://127.0.0.1:"+strconv.Itoa(port)+"/healthz", "", proc); err != nil {
		t.Fatalf("kubetest: kube-controller-manager: %v", err)
	}
	t.Logf("kubetest: kube-controller-manager (%s) up in %s", strings.Join(controllers, ", "), time.Since(began).Round(time.Millisecond))
	return proc
}

// waitHealthy polls url (a self-signed loopback server), with the
// Authorization header authz when not empty, until it answers 200, the
// process exits or ctx ends.
func waitHealthy(ctx context.Context, url, authz string, proc *Process) error {
	client := &http.Client{
		Timeout:   2 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}, // self-signed, loopback
	}
	defer client.CloseIdleConnections()
	var last string
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		if authz != "" {
			req.Header.Set("Authorization", authz)
		}
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = resp.Status
		} else {
			last = err.Error()
		}
		select {
		case <-proc.Exited():
			return fmt.Errorf("exited before it was healthy: %v", proc.Err())
		case <-ctx.Done():
			return fmt.Errorf("%s not healthy after %s (last: %s)", url, startTimeout, last)
		case <-time.After(200 * time.Millisecond):
		}
	}
}
