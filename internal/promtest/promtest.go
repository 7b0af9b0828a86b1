// Package promtest runs real Prometheus-compatible servers for tests: the
// binaries installed on the machine, Debian's prometheus package (Start) and
// victoria-metrics package (StartVictoriaMetrics), loaded with the same
// OpenMetrics data. Prometheus is backfilled through
// `promtool tsdb create-blocks-from openmetrics` and can scrape live test
// exporters; VictoriaMetrics is loaded through its import API.
//
//	srv := promtest.Start(t, promtest.BackfillFile("testdata/scenario.om"))
//	c, _ := promapi.New(promapi.Config{URL: srv.URL()})
//
// A missing binary skips the test, unless the environment has CI=true,
// where it fails it (Binary).
package promtest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/textparse"
)

const (
	// backfillTimeout bounds one load of data (a promtool run, an import)
	// and the wait for it to be queryable.
	backfillTimeout = 2 * time.Minute
	// blockRange is promtool's default block duration: blocks start at
	// multiples of it since the epoch.
	blockRange = 2 * time.Hour
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

	s := start(t, daemon{
		name:    "prometheus",
		bin:     prom,
		dataDir: dataDir,
		args: func(addr string) []string {
			return []string{
				"--config.file=" + cfgPath,
				"--storage.tsdb.path=" + dataDir,
				// The default 15d retention would delete backfilled blocks.
				"--storage.tsdb.retention.time=100y",
				"--web.listen-address=" + addr,
			}
		},
		ready: prometheusReady,
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

// debianPackage names the Debian package that installs each binary the
// harness runs.
var debianPackage = map[string]string{
	"prometheus":       "prometheus",
	"promtool":         "prometheus",
	"victoria-metrics": "victoria-metrics",
}

// Binary returns the path of the named executable of a Debian package the
// harness runs (prometheus and promtool from prometheus, victoria-metrics)
// on PATH or in /usr/bin, or ends the test: a failure when CI=true, a skip
// otherwise. This is the project's one rule for a missing real component.
func Binary(t testing.TB, name string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	p := filepath.Join("/usr/bin", name)
	if _, err := os.Stat(p); err == nil {
		return p
	}
	msg := missingBinary(name)
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	} else {
		t.Skip(msg)
	}
	return ""
}

// missingBinary says that name is missing and how to install it.
func missingBinary(name string) string {
	pkg, ok := debianPackage[name]
	if !ok {
		pkg = name
	}
	return fmt.Sprintf("promtest: %s not found on PATH or in /usr/bin; install it with: apt-get install -y %s", name, pkg)
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

// prometheusReady asks /-/ready, then checks that the server answering is
// the one started (another process may hold the port).
func prometheusReady(ctx context.Context, s *Server) error {
	if code, _, err := s.get(ctx, "/-/ready", nil); err != nil || code != http.StatusOK {
		return errNotReady
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
