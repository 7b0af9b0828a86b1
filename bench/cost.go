package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/common/model"

	"github.com/phaseguard/phaseguard/analysis"
	"github.com/phaseguard/phaseguard/promapi"
	"github.com/phaseguard/phaseguard/replay"
	"github.com/phaseguard/phaseguard/scenarios"
)

// Timing is the cost of evaluating every look of some cases, one
// evaluation at a time, against one querier.
type Timing struct {
	Evaluations int
	// P50 and P99 are the nearest-rank percentiles of one evaluation's
	// wall time.
	P50, P99 time.Duration
	// CPU is the processor time spent: this process, plus the server's
	// when there is one.
	CPU time.Duration
	// PerCoreSecond is Evaluations / CPU seconds: evaluations per second
	// on one fully used core.
	PerCoreSecond float64
	// Queries and Allocs are per evaluation; Allocs counts heap
	// allocations of this process (for Prometheus: the engine, the HTTP
	// client and JSON decoding; for the embedded engine, PromQL too).
	Queries float64
	Allocs  float64
}

// Cost is the cost part of the benchmark.
type Cost struct {
	Server string // the Prometheus version
	Cases  int
	// Prometheus is against a real local Prometheus serving the cases'
	// backfilled data; Replay against the embedded PromQL engine;
	// EngineOnly against canned query results (the engine's own cost).
	Prometheus, Replay, EngineOnly Timing
	// Agree counts the looks at which Prometheus and the embedded engine
	// gave the same decision, of Compared.
	Agree, Compared int
}

// MeasureCost backfills cases into a real Prometheus (the prometheus and
// promtool binaries, found on PATH or in /usr/bin) on 127.0.0.1, times
// every look of every case against it, and the same looks against the
// embedded engine and against canned results.
func MeasureCost(ctx context.Context, j Judge, cases []Case) (*Cost, error) {
	prom, err := lookBinary("prometheus")
	if err != nil {
		return nil, err
	}
	promtool, err := lookBinary("promtool")
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "phaseguard-bench-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	data := filepath.Join(dir, "data")
	var truths []scenarios.Truth
	var oms [][]byte
	for i, c := range cases {
		sc, err := scenarios.Generate(c.Spec)
		if err != nil {
			return nil, err
		}
		path := filepath.Join(dir, fmt.Sprintf("case-%d.om", i))
		if err := os.WriteFile(path, sc.OpenMetrics, 0o644); err != nil {
			return nil, err
		}
		if out, err := exec.CommandContext(ctx, promtool, "tsdb", "create-blocks-from", "openmetrics", path, data).CombinedOutput(); err != nil {
			return nil, fmt.Errorf("backfill %s: %w\n%s", c.Spec.Name, err, out)
		}
		truths = append(truths, sc.Truth)
		oms = append(oms, sc.OpenMetrics)
	}
	srv, err := startPrometheus(ctx, prom, dir, data)
	if err != nil {
		return nil, err
	}
	defer srv.stop()
	cost := &Cost{Server: srv.version, Cases: len(cases)}

	client, err := promapi.New(promapi.Config{URL: srv.url})
	if err != nil {
		return nil, err
	}
	if err := srv.waitForData(ctx, client, truths); err != nil {
		return nil, err
	}
	promDecisions, t, err := timeLooks(ctx, j, truths, func(int) (analysis.Querier, func(), error) { return client, func() {}, nil }, srv.cpu)
	if err != nil {
		return nil, err
	}
	cost.Prometheus = t

	rec := &recorder{got: map[string]model.Vector{}}
	replayDecisions, t, err := timeLooks(ctx, j, truths, func(i int) (analysis.Querier, func(), error) {
		st, err := replay.Load(bytes.NewReader(oms[i]))
		if err != nil {
			return nil, nil, err
		}
		rec.q = st
		return rec, func() { st.Close() }, nil
	}, nil)
	if err != nil {
		return nil, err
	}
	cost.Replay = t
	for i := range promDecisions {
		cost.Compared++
		if promDecisions[i] == replayDecisions[i] {
			cost.Agree++
		}
	}
	canned := canned(rec.got)
	if _, cost.EngineOnly, err = timeLooks(ctx, j, truths, func(int) (analysis.Querier, func(), error) { return canned, func() {}, nil }, nil); err != nil {
		return nil, err
	}
	return cost, nil
}

// timeLooks evaluates every look of every case, one at a time, with the
// querier open returns for the case, and returns the decisions and timing.
// serverCPU, when not nil, reads the server's processor time.
func timeLooks(ctx context.Context, j Judge, truths []scenarios.Truth, open func(int) (analysis.Querier, func(), error), serverCPU func() (time.Duration, error)) ([]analysis.Decision, Timing, error) {
	n, every := j.Looks()
	var (
		decisions []analysis.Decision
		walls     []time.Duration
		cpu       time.Duration
		queries   int
		allocs    uint64
	)
	for i, tr := range truths {
		q, done, err := open(i)
		if err != nil {
			return nil, Timing{}, err
		}
		eng := analysis.New(q)
		req := Request(j, tr)
		// One look untimed: the first query of a case loads its data.
		req.At = LookTime(tr.StageStart, 0, every)
		if _, err := eng.Evaluate(ctx, req); err != nil {
			done()
			return nil, Timing{}, err
		}
		var ms0, ms1 runtime.MemStats
		runtime.ReadMemStats(&ms0)
		cpu0, err := processCPU(serverCPU)
		if err != nil {
			done()
			return nil, Timing{}, err
		}
		for k := range n {
			req.At = LookTime(tr.StageStart, k, every)
			start := time.Now()
			v, err := eng.Evaluate(ctx, req)
			walls = append(walls, time.Since(start))
			if err != nil {
				done()
				return nil, Timing{}, err
			}
			if v.QueryErrors > 0 {
				done()
				return nil, Timing{}, fmt.Errorf("case %s at %s: %d query errors: %s", tr.Name, req.At.Format(time.RFC3339), v.QueryErrors, v.Reason)
			}
			decisions = append(decisions, v.Decision)
			queries += v.Queries
		}
		cpu1, err := processCPU(serverCPU)
		runtime.ReadMemStats(&ms1)
		done()
		if err != nil {
			return nil, Timing{}, err
		}
		cpu += cpu1 - cpu0
		allocs += ms1.Mallocs - ms0.Mallocs
	}
	slices.Sort(walls)
	t := Timing{
		Evaluations: len(walls),
		P50:         Percentile(walls, 0.5),
		P99:         Percentile(walls, 0.99),
		CPU:         cpu,
		Queries:     float64(queries) / float64(len(walls)),
		Allocs:      float64(allocs) / float64(len(walls)),
	}
	if cpu > 0 {
		t.PerCoreSecond = float64(len(walls)) / cpu.Seconds()
	}
	return decisions, t, nil
}

// processCPU returns this process's user and system time, plus the
// server's when server is not nil.
func processCPU(server func() (time.Duration, error)) (time.Duration, error) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, err
	}
	d := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	if server != nil {
		s, err := server()
		if err != nil {
			return 0, err
		}
		d += s
	}
	return d, nil
}

// recorder passes queries to q and keeps every result, keyed by query and
// time, for canned.
type recorder struct {
	q   analysis.Querier
	mu  sync.Mutex
	got map[string]model.Vector
}

func (r *recorder) Query(ctx context.Context, query string, ts time.Time) (model.Vector, error) {
	v, err := r.q.Query(ctx, query, ts)
	if err == nil {
		r.mu.Lock()
		r.got[cannedKey(query, ts)] = v
		r.mu.Unlock()
	}
	return v, err
}

// canned answers the queries a recorder saw, and no others.
type canned map[string]model.Vector

func (c canned) Query(_ context.Context, query string, ts time.Time) (model.Vector, error) {
	v, ok := c[cannedKey(query, ts)]
	if !ok {
		return nil, fmt.Errorf("query %q at %s: not recorded", query, ts.Format(time.RFC3339))
	}
	return v, nil
}

func cannedKey(query string, ts time.Time) string {
	return strconv.FormatInt(ts.UnixMilli(), 10) + " " + query
}

func lookBinary(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	p := filepath.Join("/usr/bin", name)
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("%s not found on PATH or in /usr/bin (apt-get install -y prometheus)", name)
	}
	return p, nil
}

// server is a Prometheus started by startPrometheus.
type server struct {
	cmd     *exec.Cmd
	url     string
	version string
	log     *bytes.Buffer
	exited  chan struct{}
}

// startPrometheus starts Prometheus on a free loopback port over the TSDB
// in data, with no scrape jobs, and waits until it is ready.
func startPrometheus(ctx context.Context, prom, dir, data string) (*server, error) {
	out, err := exec.CommandContext(ctx, prom, "--version").CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("%s --version: %w", prom, err)
	}
	version := "Prometheus"
	if f := strings.Fields(string(out)); len(f) >= 3 {
		version += " " + f[2]
	}
	cfg := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfg, []byte("scrape_configs: []\n"), 0o644); err != nil {
		return nil, err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := l.Addr().String()
	l.Close()
	s := &server{url: "http://" + addr, version: version, log: &bytes.Buffer{}, exited: make(chan struct{})}
	s.cmd = exec.Command(prom,
		"--config.file="+cfg,
		"--storage.tsdb.path="+data,
		"--storage.tsdb.retention.time=100y", // the default 15d would delete the backfilled blocks
		"--web.listen-address="+addr,
		"--log.level=warn",
	)
	s.cmd.Stdout, s.cmd.Stderr = s.log, s.log
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := s.cmd.Start(); err != nil {
		return nil, err
	}
	go func() {
		_ = s.cmd.Wait()
		close(s.exited)
	}()
	deadline := time.Now().Add(time.Minute)
	for {
		resp, err := http.Get(s.url + "/-/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s, nil
			}
		}
		select {
		case <-s.exited:
			return nil, fmt.Errorf("prometheus exited before ready:\n%s", s.log)
		case <-ctx.Done():
			s.stop()
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.stop()
			return nil, fmt.Errorf("prometheus on %s not ready after 1m:\n%s", addr, s.log)
		}
	}
}

// waitForData waits until every case's canary has data at its stage end.
func (s *server) waitForData(ctx context.Context, q analysis.Querier, truths []scenarios.Truth) error {
	deadline := time.Now().Add(time.Minute)
	for _, tr := range truths {
		query := fmt.Sprintf(`count(phase_requests_total{namespace=%q})`, tr.Namespace)
		for {
			v, err := q.Query(ctx, query, tr.StageEnd)
			if err == nil && len(v) > 0 {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("prometheus has no data for %s after 1m (last error: %v)", tr.Name, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	return nil
}

// cpu returns the server's user and system time, from /proc.
func (s *server) cpu() (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", s.cmd.Process.Pid))
	if err != nil {
		return 0, fmt.Errorf("server cpu: %w", err)
	}
	// Fields after the parenthesised command name; utime and stime are
	// fields 14 and 15 of proc(5), in clock ticks (USER_HZ, 100 on Linux).
	_, rest, ok := strings.Cut(string(b), ") ")
	f := strings.Fields(rest)
	if !ok || len(f) < 13 {
		return 0, errors.New("server cpu: unexpected /proc stat format")
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("server cpu: %w", err)
	}
	return time.Duration(ut+st) * 10 * time.Millisecond, nil
}

func (s *server) stop() {
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(10 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.exited
	}
}
