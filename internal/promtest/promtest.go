// Package promtest runs a real Prometheus server for tests: the binary
// installed on the machine (Debian's prometheus package), optionally
// backfilled with OpenMetrics data through
// `promtool tsdb create-blocks-from openmetrics` and scraping live test
// exporters.
//
//	srv := promtest.Start(t, promtest.BackfillFile("testdata/scenario.om"))
//	c, _ := promapi.New(promapi.Config{URL: srv.URL()})
//
// Start skips the test when prometheus or promtool is missing, unless the
// environment has CI=true, where it fails it.
package promtest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/textparse"
)

const (
	// startTimeout bounds the wait for /-/ready.
	startTimeout = 30 * time.Second
	// backfillTimeout bounds one promtool run and the wait for its blocks
	// to be queryable.
	backfillTimeout = 2 * time.Minute
	// stopTimeout is how long Stop waits after SIGTERM before SIGKILL.
	stopTimeout = 10 * time.Second
	// blockRange is promtool's default block duration: blocks start at
	// multiples of it since the epoch.
	blockRange = 2 * time.Hour
	// startAttempts is how many free ports Start tries: another process
	// may take the port between choosing it and Prometheus binding it.
	startAttempts = 3
)

// Option configures Start.
type Option func(*options)

type options struct {
	backfills []backfill
	scrapes   []scrape
}

type backfill struct {
	path string // file to read, or
	data []byte // its content
}

type scrape struct {
	target   string
	interval time.Duration
}

// Backfill loads data, OpenMetrics text with timestamps ending in "# EOF",
// into the server's storage before it starts. If the server also scrapes,
// the data must end before the time the test runs: Prometheus does not
// append scraped samples older than its newest block.
func Backfill(data []byte) Option {
	return func(o *options) { o.backfills = append(o.backfills, backfill{data: data}) }
}

// BackfillFile is Backfill with the content of the file at path.
func BackfillFile(path string) Option {
	return func(o *options) { o.backfills = append(o.backfills, backfill{path: path}) }
}

// Scrape adds a scrape job for target every interval (scrape timeout equal
// to the interval). target is a URL such as an httptest.Server's
// ("http://127.0.0.1:4711", path /metrics unless given) or a host:port.
func Scrape(target string, interval time.Duration) Option {
	return func(o *options) { o.scrapes = append(o.scrapes, scrape{target: target, interval: interval}) }
}

// Server is a running Prometheus.
type Server struct {
	url     string
	dataDir string
	cmd     *exec.Cmd
	log     *syncBuffer
	exited  chan struct{} // closed when the process has exited
	stop    sync.Once
}

// Start starts Prometheus with opts, waits until it is ready and every
// backfilled block answers queries, and stops it when the test ends,
// logging its output if the test failed.
func Start(t testing.TB, opts ...Option) *Server {
	t.Helper()
	prom := Binary(t, "prometheus")
	promtool := Binary(t, "promtool")
	var o options
	for _, opt := range opts {
		opt(&o)
	}

	dir := t.TempDir()
	dataDir := filepath.Join(dir, "data")
	var probes []int64 // a timestamp inside each backfilled block, ms
	for i, b := range o.backfills {
		path := b.path
		if path == "" {
			path = filepath.Join(dir, fmt.Sprintf("backfill-%d.om", i))
			if err := os.WriteFile(path, b.data, 0o644); err != nil {
				t.Fatalf("promtest: %v", err)
			}
		}
		ts, err := runBackfill(t, promtool, path, dataDir)
		if err != nil {
			t.Fatalf("promtest: %v", err)
		}
		probes = append(probes, ts...)
	}
	cfgPath := filepath.Join(dir, "prometheus.yml")
	cfg, err := configYAML(o.scrapes)
	if err != nil {
		t.Fatalf("promtest: %v", err)
	}
	if err := os.WriteFile(cfgPath, cfg, 0o644); err != nil {
		t.Fatalf("promtest: %v", err)
	}

	var s *Server
	for attempt := 1; ; attempt++ {
		s, err = launch(prom, cfgPath, dataDir)
		if err == nil {
			break
		}
		if !errors.Is(err, errPortTaken) || attempt == startAttempts {
			t.Fatalf("promtest: %v", err)
		}
	}
	t.Cleanup(func() {
		s.Stop()
		if t.Failed() {
			t.Logf("prometheus output:\n%s", s.log.String())
		}
	})

	ctx, cancel := context.WithTimeout(context.Background(), backfillTimeout)
	defer cancel()
	for _, ts := range probes {
		if err := s.waitForData(ctx, ts); err != nil {
			t.Fatalf("promtest: backfilled data: %v", err)
		}
	}
	return s
}

// URL returns the server's base URL, such as "http://127.0.0.1:41234".
func (s *Server) URL() string { return s.url }

// Stop stops the server (SIGTERM, then SIGKILL after 10s) and waits for it
// to exit, so a test can see Prometheus go away. It is safe to call more
// than once; Start registers it as a cleanup.
func (s *Server) Stop() {
	s.stop.Do(func() {
		select {
		case <-s.exited:
			return
		default:
		}
		_ = s.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-s.exited:
		case <-time.After(stopTimeout):
			_ = s.cmd.Process.Kill()
			<-s.exited
		}
	})
}

// Binary returns the path of the named executable of Debian's prometheus
// package (prometheus, promtool) on PATH or in /usr/bin, or ends the test:
// a failure when CI=true, a skip otherwise.
func Binary(t testing.TB, name string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	p := filepath.Join("/usr/bin", name)
	if _, err := os.Stat(p); err == nil {
		return p
	}
	msg := fmt.Sprintf("promtest: %s not found on PATH or in /usr/bin; install it with: apt-get install -y prometheus", name)
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	} else {
		t.Skip(msg)
	}
	return ""
}

// runBackfill creates blocks from the OpenMetrics file at path in dataDir
// and returns the timestamp of the first sample in each block.
func runBackfill(t testing.TB, promtool, path, dataDir string) ([]int64, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	probes, err := blockProbes(data)
	if err != nil {
		return nil, fmt.Errorf("backfill %s: %w", path, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), backfillTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, promtool, "tsdb", "create-blocks-from", "openmetrics", path, dataDir)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("%s: %w\n%s", strings.Join(cmd.Args, " "), err, out)
	}
	t.Logf("promtest: backfilled %s:\n%s", path, out)
	return probes, nil
}

// blockProbes returns, for every block promtool will create from data, the
// timestamp of its first sample in milliseconds.
func blockProbes(data []byte) ([]int64, error) {
	p := textparse.NewOpenMetricsParser(data, labels.NewSymbolTable())
	first := map[int64]int64{} // block index -> first sample
	var order []int64
	for {
		e, err := p.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		if e != textparse.EntrySeries {
			continue
		}
		raw, ts, _ := p.Series()
		if ts == nil {
			return nil, fmt.Errorf("series %s: sample has no timestamp", raw)
		}
		blk := *ts / blockRange.Milliseconds()
		if cur, ok := first[blk]; !ok {
			first[blk] = *ts
			order = append(order, blk)
		} else if *ts < cur {
			first[blk] = *ts
		}
	}
	if len(order) == 0 {
		return nil, errors.New("no samples")
	}
	probes := make([]int64, 0, len(order))
	for _, blk := range order {
		probes = append(probes, first[blk])
	}
	return probes, nil
}

// configYAML returns a prometheus.yml with a job per scrape. It is JSON,
// which is YAML, to need no YAML library.
func configYAML(scrapes []scrape) ([]byte, error) {
	type staticConfig struct {
		Targets []string `json:"targets"`
	}
	type job struct {
		JobName        string         `json:"job_name"`
		ScrapeInterval string         `json:"scrape_interval"`
		ScrapeTimeout  string         `json:"scrape_timeout"`
		Scheme         string         `json:"scheme"`
		MetricsPath    string         `json:"metrics_path"`
		StaticConfigs  []staticConfig `json:"static_configs"`
	}
	jobs := []job{}
	for i, sc := range scrapes {
		if sc.interval <= 0 || sc.interval%time.Millisecond != 0 {
			return nil, fmt.Errorf("scrape %s: interval %s must be a positive number of milliseconds", sc.target, sc.interval)
		}
		j := job{
			JobName:        fmt.Sprintf("scrape%d", i),
			ScrapeInterval: fmt.Sprintf("%dms", sc.interval.Milliseconds()),
			ScrapeTimeout:  fmt.Sprintf("%dms", sc.interval.Milliseconds()),
			Scheme:         "http",
			MetricsPath:    "/metrics",
		}
		host := sc.target
		if strings.Contains(sc.target, "://") {
			u, err := url.Parse(sc.target)
			if err != nil {
				return nil, fmt.Errorf("scrape %s: %w", sc.target, err)
			}
			j.Scheme, host = u.Scheme, u.Host
			if u.Path != "" && u.Path != "/" {
				j.MetricsPath = u.Path
			}
		}
		j.StaticConfigs = []staticConfig{{Targets: []string{host}}}
		jobs = append(jobs, j)
	}
	return json.MarshalIndent(map[string]any{
		"global":         map[string]string{"scrape_interval": "15s", "evaluation_interval": "15s"},
		"scrape_configs": jobs,
	}, "", "  ")
}

// errPortTaken reports that Prometheus could not bind its port.
var errPortTaken = errors.New("port taken")

// launch starts Prometheus on a free port and waits until it is ready.
func launch(prom, cfgPath, dataDir string) (*Server, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	s := &Server{
		url:     "http://" + addr,
		dataDir: dataDir,
		log:     &syncBuffer{},
		exited:  make(chan struct{}),
	}
	s.cmd = exec.Command(prom,
		"--config.file="+cfgPath,
		"--storage.tsdb.path="+dataDir,
		// The default 15d retention would delete backfilled blocks.
		"--storage.tsdb.retention.time=100y",
		"--web.listen-address="+addr,
	)
	s.cmd.Stdout, s.cmd.Stderr = s.log, s.log
	s.cmd.SysProcAttr = sysProcAttr()
	if err := s.cmd.Start(); err != nil {
		return nil, err
	}
	go func() {
		_ = s.cmd.Wait()
		close(s.exited)
	}()

	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	if err := s.waitReady(ctx); err != nil {
		s.Stop()
		if strings.Contains(s.log.String(), "address already in use") {
			return nil, fmt.Errorf("%s: %w", addr, errPortTaken)
		}
		return nil, fmt.Errorf("prometheus on %s: %w\n%s", addr, err, s.log.String())
	}
	return s, nil
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// waitReady polls /-/ready until it answers 200, then checks that the
// server answering is this one (another process may hold the port).
func (s *Server) waitReady(ctx context.Context) error {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-s.exited:
			return errors.New("exited before ready")
		case <-ctx.Done():
			return fmt.Errorf("not ready: %w", ctx.Err())
		case <-tick.C:
		}
		if code, _, err := s.get(ctx, "/-/ready", nil); err != nil || code != http.StatusOK {
			continue
		}
		var flags struct {
			Data map[string]string `json:"data"`
		}
		if err := s.getJSON(ctx, "/api/v1/status/flags", nil, &flags); err != nil {
			return err
		}
		if got := flags.Data["storage.tsdb.path"]; got != s.dataDir {
			return fmt.Errorf("a server with storage %q answers on %s: %w", got, s.url, errPortTaken)
		}
		return nil
	}
}

// waitForData polls until a query at ts (milliseconds) returns series, so
// a test does not race the loading of backfilled blocks.
func (s *Server) waitForData(ctx context.Context, ts int64) error {
	q := url.Values{
		"query": {`count({__name__=~".+"})`},
		"time":  {strconv.FormatFloat(float64(ts)/1000, 'f', 3, 64)},
	}
	for {
		var resp struct {
			Data struct {
				Result []json.RawMessage `json:"result"`
			} `json:"data"`
		}
		err := s.getJSON(ctx, "/api/v1/query", q, &resp)
		if err == nil && len(resp.Data.Result) > 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("no series at %s: %w (last error: %v)", time.UnixMilli(ts).UTC().Format(time.RFC3339Nano), ctx.Err(), err)
		case <-s.exited:
			return errors.New("prometheus exited")
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// get fetches path with query q.
func (s *Server) get(ctx context.Context, path string, q url.Values) (int, []byte, error) {
	u := s.url + path
	if q != nil {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return 0, nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, body, err
}

// getJSON fetches path with query q and decodes a 200 response into v.
func (s *Server) getJSON(ctx context.Context, path string, q url.Values, v any) error {
	code, body, err := s.get(ctx, path, q)
	if err != nil {
		return err
	}
	if code != http.StatusOK {
		return fmt.Errorf("GET %s: status %d: %s", path, code, bytes.TrimSpace(body))
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("GET %s: %w", path, err)
	}
	return nil
}

// syncBuffer is a bytes.Buffer safe for the process's concurrent writes.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
