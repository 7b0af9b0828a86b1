// Package replay evaluates PromQL over recorded data, in process, with the
// same engine Prometheus runs (github.com/prometheus/prometheus/promql).
//
// Recorded data is OpenMetrics text with a timestamp on every sample and a
// final "# EOF" line (https://prometheus.io/docs/specs/om/open_metrics_spec/),
// the input `promtool tsdb create-blocks-from openmetrics` backfills into a
// real Prometheus, so one scenario file can be replayed here and served by a
// server:
//
//	# TYPE phase_requests counter
//	phase_requests_total{service="api",phase="active"} 12 1767225600.000
//	phase_requests_total{service="api",phase="active"} 19 1767225610.000
//	# EOF
//
// Samples are loaded into a TSDB head in a temporary directory; Close
// removes it.
//
// The engine is Prometheus 3's, with its defaults (5m lookback, 50M samples
// per query, 1m subquery step). Its results can differ from a Prometheus 2
// server's in two places: range and lookback windows are left-open (a
// sample exactly at ts-5m is outside), and the extrapolation of rate() and
// increase() for a counter that starts inside the window with a non-zero
// value can be smaller (Prometheus 3 applies the 1.1 sample interval
// threshold before clamping at the counter's zero point, Prometheus 2
// after). internal/promtest's TestServerAndReplayAgree checks
// that the two agree everywhere else.
package replay

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/textparse"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/chunks"

	"github.com/phaseguard/phaseguard/internal/regularfile"
)

const (
	// LookbackDelta is how far back an instant selector looks for a
	// sample: Prometheus' default (--query.lookback-delta).
	LookbackDelta = 5 * time.Minute
	// maxSamples is Prometheus' default --query.max-samples.
	maxSamples = 50_000_000
	// engineTimeout is Prometheus' default --query.timeout; the caller's
	// context is what normally bounds a query.
	engineTimeout = 2 * time.Minute
	// subqueryStep is the step of a subquery written without one
	// ("[30m:]"): Prometheus' default evaluation_interval.
	subqueryStep = time.Minute
	// appendBatch is the number of samples committed at a time.
	appendBatch = 10_000
)

// Store holds recorded samples and answers PromQL instant queries over them.
// It is safe for concurrent use.
type Store struct {
	db         *tsdb.DB
	dir        string
	engine     *promql.Engine
	minT, maxT int64 // milliseconds since the epoch

	closeOnce sync.Once
	closeErr  error
}

// Load reads OpenMetrics text with timestamps from r into a new Store. The
// caller must Close the Store.
//
// Load is stricter than promtool, so that a file it accepts gives the same
// data in replay and in a server it was backfilled into:
//
//   - every sample has a timestamp, in seconds: one that looks like
//     milliseconds (see maxTimestamp) is refused;
//   - the timestamps of a series strictly increase (promtool silently drops
//     a sample that does not);
//   - "le" and "quantile" values are in canonical float form ("1.0", not
//     "1"), see checkCanonical;
//   - "# EOF" is the last line (only a final newline may follow).
//
// An error names the line it was found on and, when there is one, the
// series.
func Load(r io.Reader) (*Store, error) {
	b, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("read: %w", err)
	}
	recs, err := parse(b)
	if err != nil {
		return nil, err
	}
	return newStore(recs)
}

// MaxFileSize is the largest replay file LoadFile reads: 64 MiB, hours
// of a service at a 15 s scrape interval. Loading takes about five times
// the file's size in memory.
const MaxFileSize = 64 << 20

// LoadFile is Load on the named file; errors name the file. Anything but
// a regular file (/dev/zero, a FIFO, a directory) and a file over
// MaxFileSize are refused before they are read.
func LoadFile(path string) (*Store, error) {
	b, err := regularfile.Read(path, MaxFileSize)
	if err == nil {
		var s *Store
		if s, err = Load(bytes.NewReader(b)); err == nil {
			return s, nil
		}
	}
	return nil, fmt.Errorf("%s: %w", path, err)
}

// LoadFS is Load on the named file of fsys, such as an embed.FS; errors
// name the file.
func LoadFS(fsys fs.FS, name string) (*Store, error) {
	b, err := fs.ReadFile(fsys, name)
	if err != nil {
		return nil, err
	}
	s, err := Load(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return s, nil
}

// sample is one recorded value at T milliseconds since the epoch.
type sample struct {
	T int64
	V float64
}

// record is one series and its samples in file order.
type record struct {
	lset    labels.Labels
	name    string // as written in the file, for errors
	samples []sample
	lines   []int // line of each sample
	ref     storage.SeriesRef
}

// parse reads every sample of b, checking the rules listed on Load.
func parse(b []byte) (map[string]*record, error) {
	p := textparse.NewOpenMetricsParser(b, labels.NewSymbolTable())
	recs := map[string]*record{}
	// The OpenMetrics parser returns one entry per line, so counting the
	// entries numbers the lines.
	for line := 1; ; line++ {
		e, err := p.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", line, err)
		}
		if e != textparse.EntrySeries {
			continue
		}
		raw, ts, v := p.Series()
		if ts == nil {
			return nil, fmt.Errorf("line %d: series %s: sample has no timestamp (replay data must be timestamped)", line, raw)
		}
		if err := checkSeconds(*ts); err != nil {
			return nil, fmt.Errorf("line %d: series %s: %w", line, raw, err)
		}
		var lset labels.Labels
		p.Labels(&lset)
		if err := checkCanonical(raw, lset); err != nil {
			return nil, fmt.Errorf("line %d: series %s: %w", line, raw, err)
		}
		key := lset.String()
		rec, ok := recs[key]
		if !ok {
			rec = &record{lset: lset, name: string(raw)}
			recs[key] = rec
		}
		if n := len(rec.samples); n > 0 && *ts <= rec.samples[n-1].T {
			return nil, fmt.Errorf("line %d: series %s: timestamp %s is not after %s on line %d (samples of a series must be in time order)",
				line, raw, formatMillis(*ts), formatMillis(rec.samples[n-1].T), rec.lines[n-1])
		}
		rec.samples = append(rec.samples, sample{T: *ts, V: v})
		rec.lines = append(rec.lines, line)
	}
	if len(recs) == 0 {
		return nil, errors.New("no samples")
	}
	return recs, nil
}

// checkCanonical rejects an "le" or "quantile" label value the parser had
// to rewrite into OpenMetrics' canonical float form ("1" into "1.0"):
// Prometheus 3 does that rewrite, Prometheus 2 (and its promtool) keeps the
// value as written, so a selector such as {le="1.0"} would match in replay
// and not on a server the same file was backfilled into, or the reverse.
func checkCanonical(raw []byte, lset labels.Labels) error {
	for _, name := range []string{"le", "quantile"} {
		v := lset.Get(name)
		if v == "" {
			continue
		}
		if !bytes.Contains(raw, []byte(name+`="`+v+`"`)) {
			return fmt.Errorf("label %s is not written in canonical form %q (Prometheus 2 and 3 would disagree on its value)", name, v)
		}
	}
	return nil
}

// maxTimestamp is the largest timestamp accepted, in milliseconds: 1e11
// seconds, in the year 5138. A Unix time in milliseconds is above 1e11
// from March 1973 on, so a file written in milliseconds (as Prometheus'
// remote write and VictoriaMetrics' import take them) is refused rather
// than replayed 50,000 years from now.
const maxTimestamp = 1e11 * 1000

// checkSeconds refuses a timestamp (ts milliseconds, as the parser gives
// it from the file's seconds) that looks like milliseconds or finer.
func checkSeconds(ts int64) error {
	switch {
	case ts == math.MinInt64:
		// The parser's seconds-to-milliseconds conversion overflowed.
		return errors.New("timestamp too large for Unix seconds (written in microseconds or nanoseconds?); OpenMetrics timestamps are Unix seconds")
	case ts >= maxTimestamp:
		return fmt.Errorf("timestamp %s looks like milliseconds (it would be in the year %d); OpenMetrics timestamps are Unix seconds, such as %s",
			formatMillis(ts), time.UnixMilli(ts).UTC().Year(), formatMillis(ts/1000))
	}
	return nil
}

// formatMillis formats t milliseconds since the epoch in OpenMetrics'
// seconds with three decimals.
func formatMillis(t int64) string {
	return fmt.Sprintf("%.3f", float64(t)/1000)
}

// newStore appends recs to a fresh TSDB and starts an engine over it.
func newStore(recs map[string]*record) (_ *Store, err error) {
	dir, err := os.MkdirTemp("", "phaseguard-replay-")
	if err != nil {
		return nil, fmt.Errorf("storage: %w", err)
	}
	opts := tsdb.DefaultOptions()
	opts.RetentionDuration = 0 // Recorded data is old by design.
	opts.WALSegmentSize = -1   // Nothing to recover: no WAL.
	// Replay data holds tens of series: small head structures load faster.
	opts.StripeSize = 1 << 10
	opts.HeadChunksWriteBufferSize = chunks.MinWriteBufferSize
	db, err := tsdb.Open(dir, nil, nil, opts, nil)
	if err != nil {
		return nil, errors.Join(fmt.Errorf("storage: %w", err), os.RemoveAll(dir))
	}
	s := &Store{db: db, dir: dir, minT: math.MaxInt64, maxT: math.MinInt64}
	defer func() {
		if err != nil {
			err = errors.Join(err, s.Close())
		}
	}()
	// Keep every sample in the head: compaction would only write blocks
	// nobody reads to the temporary directory.
	db.DisableCompactions()
	if err := s.append(recs); err != nil {
		return nil, err
	}
	s.engine = promql.NewEngine(promql.EngineOpts{
		MaxSamples:               maxSamples,
		Timeout:                  engineTimeout,
		LookbackDelta:            LookbackDelta,
		NoStepSubqueryIntervalFn: func(int64) int64 { return subqueryStep.Milliseconds() },
		EnableAtModifier:         true,
		EnableNegativeOffset:     true,
		Parser:                   newCachingParser(),
	})
	return s, nil
}

// append writes every sample in global time order, so that each append is
// within the head's appendable window however long the data spans.
func (s *Store) append(recs map[string]*record) error {
	type pos struct {
		rec *record
		i   int
	}
	var all []pos
	for _, r := range recs {
		for i := range r.samples {
			all = append(all, pos{r, i})
		}
		s.minT = min(s.minT, r.samples[0].T)
		s.maxT = max(s.maxT, r.samples[len(r.samples)-1].T)
	}
	slices.SortStableFunc(all, func(a, b pos) int { return cmp.Compare(a.rec.samples[a.i].T, b.rec.samples[b.i].T) })

	ctx := context.Background()
	app := s.db.Appender(ctx)
	for n, p := range all {
		smp := p.rec.samples[p.i]
		ref, err := app.Append(p.rec.ref, p.rec.lset, smp.T, smp.V)
		if err != nil {
			return errors.Join(fmt.Errorf("line %d: series %s: %w", p.rec.lines[p.i], p.rec.name, err), app.Rollback())
		}
		p.rec.ref = ref
		if (n+1)%appendBatch == 0 {
			if err := app.Commit(); err != nil {
				return fmt.Errorf("storage: %w", err)
			}
			app = s.db.Appender(ctx)
		}
	}
	if err := app.Commit(); err != nil {
		return fmt.Errorf("storage: %w", err)
	}
	return nil
}

// Range returns the timestamps of the first and the last sample.
func (s *Store) Range() (minT, maxT time.Time) {
	return time.UnixMilli(s.minT).UTC(), time.UnixMilli(s.maxT).UTC()
}

// Query evaluates query as a PromQL instant query at ts, with Prometheus'
// default 5 minute lookback, and returns the resulting vector, which may be
// empty and whose samples may be NaN. A result of another type (scalar,
// matrix, string) is an error naming the type. ctx bounds the evaluation;
// when it ends first, the error wraps ctx.Err().
// Annotations from the engine (warnings, infos) are dropped: the store is
// local and complete, while the warnings promapi.Client refuses mark a
// server's partial answer, which a local store cannot give.
func (s *Store) Query(ctx context.Context, query string, ts time.Time) (model.Vector, error) {
	q, err := s.engine.NewInstantQuery(ctx, s.db, nil, query, ts)
	if err != nil {
		return nil, fmt.Errorf("query %q: %w", query, err)
	}
	defer q.Close()
	res := q.Exec(ctx)
	if err := res.Err; err != nil {
		// The engine reports a done context as its own ErrQueryCanceled or
		// ErrQueryTimeout; keep the context's error too, so errors.Is
		// works as it does for promapi.Client.
		if cerr := ctx.Err(); cerr != nil && !errors.Is(err, cerr) {
			return nil, fmt.Errorf("query %q: %w (%w)", query, err, cerr)
		}
		return nil, fmt.Errorf("query %q: %w", query, err)
	}
	vec, ok := res.Value.(promql.Vector)
	if !ok {
		return nil, fmt.Errorf("query %q: result type %s, want vector", query, res.Value.Type())
	}
	out := make(model.Vector, 0, len(vec))
	for _, smp := range vec {
		if smp.H != nil {
			return nil, fmt.Errorf("query %q: series %s: native histogram results are not supported", query, smp.Metric)
		}
		m := make(model.Metric, smp.Metric.Len())
		smp.Metric.Range(func(l labels.Label) {
			m[model.LabelName(l.Name)] = model.LabelValue(l.Value)
		})
		out = append(out, &model.Sample{Metric: m, Value: model.SampleValue(smp.F), Timestamp: model.Time(smp.T)})
	}
	return out, nil
}

// Close releases the storage and removes its temporary directory. It is
// safe to call more than once; queries must not run concurrently with it.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		var errs []error
		if s.engine != nil {
			errs = append(errs, s.engine.Close())
		}
		errs = append(errs, s.db.Close(), os.RemoveAll(s.dir))
		s.closeErr = errors.Join(errs...)
	})
	return s.closeErr
}
