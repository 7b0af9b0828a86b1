package kubetest

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/rest"
)

// StartKubeAPIServer runs the real kube-apiserver binary bin on loopback,
// storing in an embedded etcd (k8s.io/apiserver's etcd3 test server), with
// Argo Rollouts' CRDs installed (all five, or the resources given), and
// returns a client configuration with cluster-admin credentials. Unlike
// [Start] it serves the whole Kubernetes API (namespaces, ConfigMaps,
// Pods, Jobs, events, leases...), which a real controller needs. Alone it
// runs no pods: add [StartKubeControllerManager] for ReplicaSets' pods and
// [StartKWOK] with a [CreateKWOKNode] node to make them Running and Ready.
//
// Authentication is one static bearer token in group system:masters;
// authorization allows everything. The server's certificate is self-signed
// for this run, so the configuration skips TLS verification (loopback only).
// Everything stops when t ends. A server that cannot start fails the test.
func StartKubeAPIServer(t testing.TB, bin string, resources ...schema.GroupVersionResource) *rest.Config {
	t.Helper()
	crds := crdsFor(t, resources)
	began := time.Now()
	etcdURL := startEtcd(t)

	dir := t.TempDir()
	token := randomHex(t, 16)
	tokens := filepath.Join(dir, "tokens.csv")
	// token,user,uid,"group1,group2": system:masters is cluster-admin.
	writeFile(t, tokens, []byte(token+`,admin,admin,"system:masters"`+"\n"))
	saKey := filepath.Join(dir, "sa.key")
	writeFile(t, saKey, rsaKeyPEM(t))
	port := FreePort(t)
	args := []string{
		"--etcd-servers=" + etcdURL,
		"--etcd-prefix=/kubetest-" + randomHex(t, 4),
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		"--secure-port=" + strconv.Itoa(port),
		"--cert-dir=" + filepath.Join(dir, "certs"),
		"--token-auth-file=" + tokens,
		"--authorization-mode=AlwaysAllow",
		"--service-account-issuer=https://kubernetes.default.svc",
		"--service-account-key-file=" + saKey,
		"--service-account-signing-key-file=" + saKey,
		"--service-cluster-ip-range=10.96.0.0/24",
		"--profiling=false",
		"--v=0",
	}
	proc := StartProcess(t, "kube-apiserver", exec.Command(bin, args...))

	cfg := &rest.Config{
		Host:            "https://127.0.0.1:" + strconv.Itoa(port),
		BearerToken:     token,
		TLSClientConfig: rest.TLSClientConfig{Insecure: true},
		QPS:             500,
		Burst:           1000,
	}
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	if err := waitReadyz(ctx, cfg, proc); err != nil {
		t.Fatalf("kubetest: kube-apiserver: %v", err)
	}
	apiUp := time.Now()
	if err := install(ctx, cfg, crds); err != nil {
		t.Fatalf("kubetest: %v", err)
	}
	t.Logf("kubetest: kube-apiserver up in %s, %d CRDs established in %s", apiUp.Sub(began).Round(time.Millisecond), len(crds), time.Since(apiUp).Round(time.Millisecond))
	return cfg
}

// waitReadyz polls /readyz until the server reports ready, the process
// exits or ctx ends.
func waitReadyz(ctx context.Context, cfg *rest.Config, proc *Process) error {
	return waitHealthy(ctx, cfg.Host+"/readyz", "Bearer "+cfg.BearerToken, proc)
}

// FreePort returns a TCP port free on 127.0.0.1 now, for a server the
// test starts (the port is not held: another process could take it first).
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("kubetest: free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func randomHex(t testing.TB, n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// rsaKeyPEM returns a fresh service account signing key (the server reads
// the public half from the same file).
func rsaKeyPEM(t testing.TB) []byte {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})
}

func writeFile(t testing.TB, path string, data []byte) {
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}
