package rollouts_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	goplugin "github.com/hashicorp/go-plugin"

	"github.com/phaseguard/phaseguard/internal/promtest"
	"github.com/phaseguard/phaseguard/scenarios"
)

// PluginPkgEnv names the package built as the plugin binary, relative to
// the module root; by default ./cmd/phaseguard, the binary users install,
// whose main serves the plugin when the controller starts it.
const PluginPkgEnv = "PHASEGUARD_PLUGIN_PKG"

const defaultPluginPkg = "./cmd/phaseguard"

var (
	buildOnce sync.Once
	buildDir  string
	binPath   string
	buildErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	// Kill the plugin processes argo's loader started (Managed: true).
	goplugin.CleanupClients()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// pluginBinary builds the plugin binary once per test process, with the
// race detector when the tests have it.
func pluginBinary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "phaseguard-plugin-")
		if buildErr != nil {
			return
		}
		binPath = filepath.Join(buildDir, "phaseguard")
		pkg := os.Getenv(PluginPkgEnv)
		if pkg == "" {
			pkg = defaultPluginPkg
		}
		args := []string{"build", "-o", binPath}
		if raceEnabled {
			args = append(args, "-race")
		}
		cmd := exec.Command("go", append(args, pkg)...)
		cmd.Dir = ".." // the module root: PHASEGUARD_PLUGIN_PKG may be relative to it
		out, err := cmd.CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go %v in %s: %w\n%s", append(args, pkg), cmd.Dir, err, out)
		}
	})
	if buildErr != nil {
		t.Fatalf("build plugin: %v", buildErr)
	}
	return binPath
}

// scenario is a demo scenario placed in time, under its own service name
// and hashes so that several share one Prometheus.
type scenario struct {
	scenarios.Truth
}

// config returns the plugin config JSON judging the scenario's canary,
// with extra fields appended.
func (s scenario) config(prom, extra string) string {
	return fmt.Sprintf(`{"policy": "phase-default", "prometheus": {"address": %q, "retries": -1},
		"service": %q, "namespace": %q, "canaryHash": %q, "stableHash": %q%s}`,
		prom, s.Service, s.Namespace, s.CanaryHash, s.StableHash, extra)
}

// startScenarios generates the named demo scenarios with their stage
// ending at stageEnd, each under service NAME, and backfills them into
// one real Prometheus.
func startScenarios(t testing.TB, stageEnd time.Time, names ...string) (*promtest.Server, map[string]scenario) {
	t.Helper()
	out := map[string]scenario{}
	var opts []promtest.Option
	for i, name := range names {
		b, ok := scenarios.Lookup(name)
		if !ok {
			t.Fatalf("no demo scenario %q", name)
		}
		spec := b.Spec
		spec.Service = name
		spec.CanaryHash = fmt.Sprintf("c%08x", i+1)
		spec.StableHash = fmt.Sprintf("s%08x", i+1)
		spec.Start = stageEnd.Add(-spec.WarmUp - spec.Stage).Truncate(time.Second)
		sc, err := scenarios.Generate(spec)
		if err != nil {
			t.Fatalf("generate %s: %v", name, err)
		}
		out[name] = scenario{sc.Truth}
		opts = append(opts, promtest.Backfill(sc.OpenMetrics))
	}
	return promtest.Start(t, opts...), out
}
