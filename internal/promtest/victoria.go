package promtest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/textparse"
)

// importChunk is the most bytes of Prometheus text sent in one import
// request, far under VictoriaMetrics' default -maxInsertRequestSize (32 MiB).
const importChunk = 4 << 20

// settleTime is how long an imported sample count may stay short after a
// flush before the load counts as failed.
const settleTime = 5 * time.Second

// StartVictoriaMetrics starts single-node VictoriaMetrics (Debian's
// victoria-metrics package, 1.79 on the machines this was written on) on a
// free loopback port, loads every Backfill through its import API
// (/api/v1/import/prometheus, then /internal/force_flush), waits until
// every loaded sample answers queries, and stops it when the test ends,
// logging its output if the test failed. It serves the Prometheus query
// API at URL().
//
// Retention is 100 years, so old scenario data stays; the rollup result
// cache is off (-search.disableCache), so an answer never predates a load.
// Scrape is not supported: the test ends naming it.
func StartVictoriaMetrics(t testing.TB, opts ...Option) *Server {
	t.Helper()
	bin := Binary(t, "victoria-metrics")
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	if len(o.scrapes) > 0 {
		t.Fatalf("promtest: StartVictoriaMetrics: Scrape(%s) is not supported; scrape with Start", o.scrapes[0].target)
	}
	var loads []importData
	for i, b := range o.backfills {
		data, name := b.data, fmt.Sprintf("backfill %d", i)
		if b.path != "" {
			var err error
			if data, err = os.ReadFile(b.path); err != nil {
				t.Fatalf("promtest: %v", err)
			}
			name = b.path
		}
		d, err := promText(data, importChunk)
		if err != nil {
			t.Fatalf("promtest: %s: %v", name, err)
		}
		loads = append(loads, d)
	}

	dataDir := filepath.Join(t.TempDir(), "data")
	s := start(t, daemon{
		name:    "victoria-metrics",
		bin:     bin,
		dataDir: dataDir,
		args: func(addr string) []string {
			return []string{
				"-storageDataPath=" + dataDir,
				"-httpListenAddr=" + addr,
				"-retentionPeriod=100y",
				"-search.disableCache",
			}
		},
		ready: victoriaReady,
	})
	if len(loads) == 0 {
		return s
	}

	ctx, cancel := context.WithTimeout(context.Background(), backfillTimeout)
	defer cancel()
	total := importData{first: math.MaxInt64, last: math.MinInt64}
	for _, d := range loads {
		for _, c := range d.chunks {
			if err := s.importText(ctx, c); err != nil {
				t.Fatalf("promtest: %v", err)
			}
		}
		total.samples += d.samples
		total.first = min(total.first, d.first)
		total.last = max(total.last, d.last)
	}
	if code, body, err := s.get(ctx, "/internal/force_flush", nil); err != nil || code != http.StatusOK {
		t.Fatalf("promtest: GET /internal/force_flush: status %d, error %v: %s", code, err, bytes.TrimSpace(body))
	}
	if err := s.waitForSamples(ctx, total); err != nil {
		t.Fatalf("promtest: imported data: %v", err)
	}
	return s
}

// victoriaReady asks /health, then checks that the server answering is the
// one started (another process may hold the port): its /flags page names
// its storage directory.
func victoriaReady(ctx context.Context, s *Server) error {
	if code, _, err := s.get(ctx, "/health", nil); err != nil || code != http.StatusOK {
		return errNotReady
	}
	code, body, err := s.get(ctx, "/flags", nil)
	if err != nil || code != http.StatusOK {
		return fmt.Errorf("GET /flags: status %d, error %v", code, err)
	}
	if want := "-storageDataPath=" + strconv.Quote(s.dataDir); !bytes.Contains(body, []byte(want)) {
		return fmt.Errorf("a server without %s answers on %s: %w", want, s.url, errPortTaken)
	}
	return nil
}

// importData is OpenMetrics data rewritten for VictoriaMetrics' import.
type importData struct {
	// chunks are Prometheus text exposition lines, "name{labels} value
	// timestamp_ms", at most importChunk bytes each.
	chunks [][]byte
	// samples is the number of samples; first and last the earliest and
	// latest timestamps, in milliseconds.
	samples     int
	first, last int64
}

// promText rewrites data, OpenMetrics text with timestamps (seconds)
// ending in "# EOF", as the Prometheus text format with millisecond
// timestamps that /api/v1/import/prometheus reads, in chunks of at most
// chunk bytes (or one line, when a line is longer). It reads data with the
// same parser as blockProbes, so it loads what promtool backfills.
func promText(data []byte, chunk int) (importData, error) {
	d := importData{first: math.MaxInt64, last: math.MinInt64}
	p := textparse.NewOpenMetricsParser(data, labels.NewSymbolTable())
	var cur bytes.Buffer
	var lset labels.Labels
	for {
		e, err := p.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return importData{}, err
		}
		if e != textparse.EntrySeries {
			continue
		}
		raw, ts, v := p.Series()
		if ts == nil {
			return importData{}, fmt.Errorf("series %s: sample has no timestamp", raw)
		}
		p.Labels(&lset)
		line := fmt.Appendf(nil, "%s %s %d\n", formatSeries(lset), strconv.FormatFloat(v, 'g', -1, 64), *ts)
		if cur.Len() > 0 && cur.Len()+len(line) > chunk {
			d.chunks = append(d.chunks, bytes.Clone(cur.Bytes()))
			cur.Reset()
		}
		cur.Write(line)
		d.samples++
		d.first, d.last = min(d.first, *ts), max(d.last, *ts)
	}
	if d.samples == 0 {
		return importData{}, errors.New("no samples")
	}
	d.chunks = append(d.chunks, cur.Bytes())
	return d, nil
}

// labelValueEscaper escapes a label value for the Prometheus text format.
var labelValueEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)

// formatSeries writes lset as `name{a="1",b="2"}`, or `name` when it has
// no other label.
func formatSeries(lset labels.Labels) string {
	var b strings.Builder
	b.WriteString(lset.Get(model.MetricNameLabel))
	if lset.Len() == 1 {
		return b.String()
	}
	b.WriteByte('{')
	sep := ""
	lset.Range(func(l labels.Label) {
		if l.Name == model.MetricNameLabel {
			return
		}
		fmt.Fprintf(&b, `%s%s="%s"`, sep, l.Name, labelValueEscaper.Replace(l.Value))
		sep = ","
	})
	b.WriteByte('}')
	return b.String()
}

// importText posts one chunk of Prometheus text to the import API, which
// answers 204.
func (s *Server) importText(ctx context.Context, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.url+"/api/v1/import/prometheus", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "text/plain")
	code, resp, err := s.do(req)
	if err != nil {
		return fmt.Errorf("POST /api/v1/import/prometheus: %w", err)
	}
	if code/100 != 2 {
		return fmt.Errorf("POST /api/v1/import/prometheus: status %d: %s", code, bytes.TrimSpace(resp))
	}
	return nil
}

// waitForSamples polls until the server holds as many samples as were
// imported, counting them in /api/v1/export (raw samples; a PromQL count
// is no good: VictoriaMetrics 1.79 does not see samples at the exact time
// of the earliest sample of a monthly partition, and a load may start a
// partition with its last sample). The import API
// skips lines it cannot parse with no more than a log line, so a count
// that stays short for settleTime is a failure.
func (s *Server) waitForSamples(ctx context.Context, want importData) error {
	q := url.Values{
		"match[]": {`{__name__!=""}`},
		"start":   {strconv.FormatInt(want.first/1000-1, 10)},
		"end":     {strconv.FormatInt(want.last/1000+1, 10)},
	}
	var got string
	var since time.Time // when got last changed
	for {
		prev := got
		n, err := s.exportedSamples(ctx, q)
		if err != nil {
			got = err.Error()
		} else {
			if n == want.samples {
				return nil
			}
			got = strconv.Itoa(n)
		}
		if got != prev {
			since = time.Now()
		} else if err == nil && time.Since(since) > settleTime {
			return fmt.Errorf("want %d samples, got %s for %s", want.samples, got, settleTime)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("want %d samples, last answer %s: %w", want.samples, got, ctx.Err())
		case <-s.exited:
			return fmt.Errorf("%s exited", s.name)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// exportedSamples counts the samples /api/v1/export returns for q.
func (s *Server) exportedSamples(ctx context.Context, q url.Values) (int, error) {
	code, body, err := s.get(ctx, "/api/v1/export", q)
	if err != nil {
		return 0, err
	}
	if code != http.StatusOK {
		return 0, fmt.Errorf("GET /api/v1/export: status %d: %s", code, bytes.TrimSpace(body))
	}
	n := 0
	dec := json.NewDecoder(bytes.NewReader(body))
	for {
		var line struct {
			Timestamps []int64 `json:"timestamps"`
		}
		err := dec.Decode(&line)
		if errors.Is(err, io.EOF) {
			return n, nil
		}
		if err != nil {
			return 0, fmt.Errorf("GET /api/v1/export: %w", err)
		}
		n += len(line.Timestamps)
	}
}
