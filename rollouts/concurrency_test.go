package rollouts_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"runtime/pprof"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/argoproj/argo-rollouts/metricproviders/plugin/rpc"
	"github.com/argoproj/argo-rollouts/pkg/apis/rollouts/v1alpha1"
	"github.com/hashicorp/go-hclog"
	goplugin "github.com/hashicorp/go-plugin"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/phaseguard/phaseguard/rollouts"
)

// servePluginInProcess serves the plugin over go-plugin's real RPC
// transport inside the test process (go-plugin's reattach test mode, as
// argo's own rpc tests do), so the race detector and goroutine counts see
// both ends.
func servePluginInProcess(t testing.TB, opts ...rollouts.Option) rpc.MetricProviderPlugin {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	reattach := make(chan *goplugin.ReattachConfig, 1)
	closed := make(chan struct{})
	go rollouts.ServeConfig(hclog.NewNullLogger(), &goplugin.ServeTestConfig{Context: ctx, ReattachConfigCh: reattach, CloseCh: closed}, opts...)
	var rc *goplugin.ReattachConfig
	select {
	case rc = <-reattach:
	case <-time.After(10 * time.Second):
		cancel()
		t.Fatal("plugin did not serve within 10s")
	}
	client := goplugin.NewClient(&goplugin.ClientConfig{
		HandshakeConfig: rollouts.Handshake,
		Plugins:         map[string]goplugin.Plugin{rollouts.PluginKey: &rpc.RpcMetricProviderPlugin{}},
		Reattach:        rc,
		Logger:          hclog.NewNullLogger(),
	})
	t.Cleanup(func() {
		client.Kill()
		cancel()
		<-closed
	})
	return dispense(t, client)
}

// startPluginProcess starts the built binary as argo's client does
// (exec, handshake, Managed) and returns the plugin and its process id.
func startPluginProcess(t testing.TB) (rpc.MetricProviderPlugin, int) {
	t.Helper()
	cmd := exec.Command(pluginBinary(t))
	client := goplugin.NewClient(&goplugin.ClientConfig{
		HandshakeConfig: rollouts.Handshake,
		Plugins:         map[string]goplugin.Plugin{rollouts.PluginKey: &rpc.RpcMetricProviderPlugin{}},
		Cmd:             cmd,
		Managed:         true,
		Logger:          hclog.NewNullLogger(),
	})
	t.Cleanup(client.Kill)
	p := dispense(t, client)
	return p, client.ReattachConfig().Pid
}

func dispense(t testing.TB, client *goplugin.Client) rpc.MetricProviderPlugin {
	t.Helper()
	cp, err := client.Client()
	if err != nil {
		t.Fatalf("plugin client: %v", err)
	}
	raw, err := cp.Dispense(rollouts.PluginKey)
	if err != nil {
		t.Fatalf("dispense: %v", err)
	}
	p, ok := raw.(rpc.MetricProviderPlugin)
	if !ok {
		t.Fatalf("dispensed %T", raw)
	}
	if err := p.InitPlugin(); err.HasError() {
		t.Fatalf("InitPlugin: %v", err)
	}
	return p
}

// realisticRun is an AnalysisRun as the controller sends it on every call:
// spec with args and the plugin metric, and status holding the last 10
// measurements with full metadata (argo's default retention).
func realisticRun(metric v1alpha1.Metric) *v1alpha1.AnalysisRun {
	md := map[string]string{}
	for _, sli := range []string{"drain-failure", "flaps", "phase-mismatch", "duplicate-processing", "schema-errors", "slow-propagation", "reconcile-retries"} {
		for _, k := range []string{"verdict", "reason", "value", "budget", "samples", "burn", "baseline"} {
			md["sli."+sli+"."+k] = strings.Repeat("x", 40)
		}
	}
	now := metav1.Now()
	ms := make([]v1alpha1.Measurement, 10)
	for i := range ms {
		ms[i] = v1alpha1.Measurement{Phase: v1alpha1.AnalysisPhaseSuccessful, Message: strings.Repeat("m", 120), StartedAt: &now, FinishedAt: &now, Value: strings.Repeat("v", 150), Metadata: md}
	}
	hash, stage := "c00000001", "canary-10"
	return &v1alpha1.AnalysisRun{
		ObjectMeta: metav1.ObjectMeta{Name: "checkout-c00000001-3-2", Namespace: "shop", Labels: map[string]string{"rollouts-pod-template-hash": hash}},
		Spec: v1alpha1.AnalysisRunSpec{
			Metrics: []v1alpha1.Metric{metric},
			Args:    []v1alpha1.Argument{{Name: "canary-hash", Value: &hash}, {Name: "stage", Value: &stage}},
		},
		Status: v1alpha1.AnalysisRunStatus{Phase: v1alpha1.AnalysisPhaseRunning, StartedAt: &now,
			MetricResults: []v1alpha1.MetricResult{{Name: metric.Name, Phase: v1alpha1.AnalysisPhaseRunning, Measurements: ms}}},
	}
}

// TestRPCConcurrency runs 200 measurements at once through the real RPC
// path, mixing scenarios so that crossed answers would show, twice, and
// checks that the second round leaves no goroutines or heap behind.
func TestRPCConcurrency(t *testing.T) {
	stageEnd := time.Now().Add(-2 * time.Hour).Truncate(time.Minute)
	prom, sc := startScenarios(t, stageEnd, "healthy", "drain-misrouting", "thin-traffic")
	p := servePluginInProcess(t, rollouts.WithClock(func() time.Time { return stageEnd }))
	want := map[string]v1alpha1.AnalysisPhase{
		"healthy":          v1alpha1.AnalysisPhaseSuccessful,
		"drain-misrouting": v1alpha1.AnalysisPhaseFailed,
		"thin-traffic":     v1alpha1.AnalysisPhaseInconclusive,
	}
	names := []string{"healthy", "drain-misrouting", "thin-traffic"}
	const n = 200
	round := func() {
		var wg sync.WaitGroup
		errs := make(chan string, n)
		for i := range n {
			name := names[i%len(names)]
			metric := pluginMetric(t, sc[name].config(prom.URL(), `, "stage": "canary-10", "timeout": "2m"`))
			ar := realisticRun(metric)
			wg.Add(1)
			go func() {
				defer wg.Done()
				m := p.Run(ar, metric)
				if m.Phase != want[name] {
					errs <- fmt.Sprintf("%s: %s %q", name, m.Phase, m.Message)
				}
			}()
		}
		wg.Wait()
		close(errs)
		for e := range errs {
			t.Error(e)
		}
	}

	began := time.Now()
	round() // warm up: connections, policy and client caches
	t.Logf("first round of %d concurrent measurements: %s", n, time.Since(began))
	settle := func() (int, uint64) {
		var ms runtime.MemStats
		for range 3 {
			time.Sleep(200 * time.Millisecond)
			runtime.GC()
		}
		runtime.ReadMemStats(&ms)
		return runtime.NumGoroutine(), ms.HeapInuse
	}
	g0, h0 := settle()
	began = time.Now()
	round()
	t.Logf("second round: %s", time.Since(began))
	// Goroutines of finished calls may take a moment to exit.
	deadline := time.Now().Add(15 * time.Second)
	g1, h1 := settle()
	for g1 > g0+5 && time.Now().Before(deadline) {
		g1, h1 = settle()
	}
	t.Logf("goroutines %d -> %d, heap in use %.1f MB -> %.1f MB", g0, g1, float64(h0)/1e6, float64(h1)/1e6)
	if g1 > g0+5 {
		var sb strings.Builder
		pprof.Lookup("goroutine").WriteTo(&sb, 1)
		t.Errorf("goroutines grew from %d to %d after the second round:\n%s", g0, g1, sb.String())
	}
	if h1 > h0+h0/2+8<<20 {
		t.Errorf("heap in use grew from %.1f MB to %.1f MB after the second round", float64(h0)/1e6, float64(h1)/1e6)
	}
}

// BenchmarkRPCOverhead measures, per measurement, the time the controller
// waits on Run beyond the engine's own evaluation (metadata evaluationMs):
// RPC transport, gob encoding of the AnalysisRun, config decoding, caches.
// It reports the p50 and p99 of that overhead. Run it with
//
//	go test ./rollouts -run '^$' -bench RPCOverhead -benchtime 300x
func BenchmarkRPCOverhead(b *testing.B) {
	prom, sc := startScenarios(b, time.Now().Add(5*time.Minute), "healthy")
	p, _ := startPluginProcess(b)
	metric := pluginMetric(b, sc["healthy"].config(prom.URL(), `, "stage": "canary-10", "stageOrdering": false`))
	ar := realisticRun(metric)
	p.Run(ar, metric) // warm up
	// The floor: a call that does nothing (Type), for comparison.
	var noop []float64
	for range 300 {
		began := time.Now()
		p.Type()
		noop = append(noop, float64(time.Since(began).Microseconds())/1000)
	}
	sort.Float64s(noop)
	var overhead []float64
	b.ResetTimer()
	for b.Loop() {
		began := time.Now()
		m := p.Run(ar, metric)
		total := float64(time.Since(began).Microseconds()) / 1000
		if m.Phase != v1alpha1.AnalysisPhaseSuccessful {
			b.Fatalf("%s %q", m.Phase, m.Message)
		}
		eval, err := strconv.ParseFloat(m.Metadata["evaluationMs"], 64)
		if err != nil {
			b.Fatalf("evaluationMs %q", m.Metadata["evaluationMs"])
		}
		overhead = append(overhead, total-eval)
	}
	sort.Float64s(overhead)
	b.ReportMetric(overhead[len(overhead)/2], "overhead-p50-ms")
	b.ReportMetric(overhead[(len(overhead)*99)/100], "overhead-p99-ms")
	b.ReportMetric(noop[(len(noop)*99)/100], "noop-rpc-p99-ms")
}

// BenchmarkConcurrent200 keeps 200 measurements in flight in one plugin
// process and reports the process's peak resident memory (VmHWM).
//
//	go test ./rollouts -run '^$' -bench Concurrent200 -benchtime 3x
func BenchmarkConcurrent200(b *testing.B) {
	prom, sc := startScenarios(b, time.Now().Add(5*time.Minute), "healthy", "drain-misrouting", "thin-traffic")
	p, pid := startPluginProcess(b)
	names := []string{"healthy", "drain-misrouting", "thin-traffic"}
	idle, err := vmHWM(pid)
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		var wg sync.WaitGroup
		for i := range 200 {
			metric := pluginMetric(b, sc[names[i%3]].config(prom.URL(), `, "stage": "canary-10", "stageOrdering": false, "timeout": "2m"`))
			ar := realisticRun(metric)
			wg.Add(1)
			go func() {
				defer wg.Done()
				if m := p.Run(ar, metric); m.Phase == v1alpha1.AnalysisPhaseError {
					b.Errorf("%s %q", m.Phase, m.Message)
				}
			}()
		}
		wg.Wait()
	}
	b.StopTimer()
	hwm, err := vmHWM(pid)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(idle, "idle-rss-MB")
	b.ReportMetric(hwm, "peak-rss-MB")
}

// vmHWM reads a process's peak resident set size, in MB.
func vmHWM(pid int) (float64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
			return kb / 1024, err
		}
	}
	return 0, fmt.Errorf("no VmHWM in /proc/%d/status", pid)
}
