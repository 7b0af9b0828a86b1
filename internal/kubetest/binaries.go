package kubetest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// BinEnv names a directory holding the binaries built from the e2e
// modules (what scripts/test.sh exports after building them there). Without
// it, [Binaries] builds them into a temporary directory.
const BinEnv = "PHASEGUARD_E2E_BIN"

// e2eBinary is where one binary of the end-to-end tests is built from: a
// package of a module under e2e/ of the repository.
type e2eBinary struct {
	module string // directory under the repository root
	pkg    string
}

// e2eBinaries are the binaries [Binaries] knows, by file name. Each module
// holds Kubernetes libraries of its own version: e2e/tools those of
// k8s.io/kubernetes v1.34.5 (what Argo Rollouts v1.10 is built against),
// e2e/kwok KWOK v0.8.0's (v0.36).
var e2eBinaries = map[string]e2eBinary{
	"kube-apiserver":          {"e2e/tools", "k8s.io/kubernetes/cmd/kube-apiserver"},
	"kube-controller-manager": {"e2e/tools", "k8s.io/kubernetes/cmd/kube-controller-manager"},
	"rollouts-controller":     {"e2e/tools", "github.com/argoproj/argo-rollouts/cmd/rollouts-controller"},
	"kwok":                    {"e2e/kwok", "sigs.k8s.io/kwok/cmd/kwok"},
}

// Binaries returns the directory holding the named binaries of the
// end-to-end tests (kube-apiserver, kube-controller-manager,
// rollouts-controller, kwok): $PHASEGUARD_E2E_BIN when set, else a
// temporary directory it builds them into from the modules under root/e2e
// (root is the repository root, relative to the test's directory), with
// the command scripts/test.sh runs. A cold build compiles Kubernetes and
// takes minutes; Go's build cache makes later ones take seconds.
//
// A binary that is missing or does not build fails the test: it never
// skips, so under CI=true a missing piece cannot pass as a skipped test.
func Binaries(t testing.TB, root string, names ...string) string {
	t.Helper()
	for _, name := range names {
		if _, ok := e2eBinaries[name]; !ok {
			t.Fatalf("kubetest: no e2e binary %q (known: kube-apiserver, kube-controller-manager, rollouts-controller, kwok)", name)
		}
	}
	dir := os.Getenv(BinEnv)
	if dir == "" {
		dir = t.TempDir()
		began := time.Now()
		t.Logf("kubetest: building %s from %s/e2e (minutes on a cold build cache; set %s to reuse a build, see scripts/test.sh)", strings.Join(names, ", "), root, BinEnv)
		if err := build(filepath.Join(root), dir, names); err != nil {
			t.Fatalf("kubetest: %v", err)
		}
		t.Logf("kubetest: built in %s", time.Since(began).Round(time.Second))
	}
	for _, name := range names {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			t.Fatalf("kubetest: %s: %v (build it as scripts/test.sh does, or unset %s to have the test build it)", name, err, BinEnv)
		}
	}
	return dir
}

// build builds the named binaries into dir, one go build per module.
func build(root, dir string, names []string) error {
	byModule := map[string][]string{}
	for _, name := range names {
		b := e2eBinaries[name]
		if !slices.Contains(byModule[b.module], b.pkg) {
			byModule[b.module] = append(byModule[b.module], b.pkg)
		}
	}
	modules := make([]string, 0, len(byModule))
	for m := range byModule {
		modules = append(modules, m)
	}
	slices.Sort(modules)
	for _, m := range modules {
		args := append([]string{"build", "-C", filepath.Join(root, m), "-trimpath", "-o", dir + string(filepath.Separator)}, byModule[m]...)
		cmd := exec.Command("go", args...)
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), err, out)
		}
	}
	return nil
}
