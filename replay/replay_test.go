package replay

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/common/model"

	"github.com/phaseguard/phaseguard/internal/promtest"
)

// t0 is the first timestamp of testdata/phase.om; its samples are 60s
// apart, up to t0+10m.
var t0 = time.Unix(1767225600, 0).UTC()

// at returns t0 plus d.
func at(d time.Duration) time.Time { return t0.Add(d) }

// load loads testdata/phase.om and closes it when the test ends.
func load(t testing.TB) *Store {
	t.Helper()
	s, err := LoadFile("testdata/phase.om")
	if err != nil {
		t.Fatalf("LoadFile: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

// point returns a sample of m with value v at ts.
func point(m model.Metric, v float64, ts time.Time) *model.Sample {
	return &model.Sample{Metric: m, Value: model.SampleValue(v), Timestamp: model.TimeFromUnixNano(ts.UnixNano())}
}

func TestQuery(t *testing.T) {
	t.Parallel()
	s := load(t)
	tests := []struct {
		name  string
		query string
		ts    time.Time
		want  model.Vector
	}{
		{
			// Samples at 6..10m: +400 over 4m, extrapolated to the 5m
			// window (the first sample is within 1.1 intervals of the start).
			name:  "increase of a linear counter",
			query: `sum(increase(phase_requests_total{phase="active"}[5m]))`,
			ts:    at(10 * time.Minute),
			want:  model.Vector{point(model.Metric{}, 500, at(10*time.Minute))},
		},
		{
			// Samples at 1..5m (the range is left-open: the sample at 0m
			// is out): 10 20 30 5 15, a reset, so +35 over 4m, times 5/4.
			name:  "increase across a counter reset",
			query: `sum(increase(phase_requests_total{phase!="active"}[5m]))`,
			ts:    at(5 * time.Minute),
			want:  model.Vector{point(model.Metric{}, 43.75, at(5*time.Minute))},
		},
		{
			// Off the sample grid: samples at 1..5m as above, 30s from the
			// start (extrapolated) and 30s from the end (extrapolated).
			name:  "increase off the sample grid",
			query: `sum(increase(phase_requests_total{phase="draining"}[5m]))`,
			ts:    at(5*time.Minute + 30*time.Second),
			want:  model.Vector{point(model.Metric{}, 35*300.0/240, at(5*time.Minute+30*time.Second))},
		},
		{
			name:  "ratio by label",
			query: `sum by (phase) (increase(phase_requests_total[5m])) / ignoring(phase) group_left sum(increase(phase_requests_total[5m]))`,
			ts:    at(5 * time.Minute),
			want: model.Vector{
				point(model.Metric{"phase": "active"}, 500/543.75, at(5*time.Minute)),
				point(model.Metric{"phase": "draining"}, 43.75/543.75, at(5*time.Minute)),
			},
		},
		{
			// Per minute: 6 <= 0.5s, 2 <= 1s, 1 <= 2s, 1 slower. The 70th
			// percentile is 1/2 of the way through (0.5, 1].
			name:  "histogram quantile",
			query: `histogram_quantile(0.7, sum by (le) (rate(phase_propagation_seconds_bucket[5m])))`,
			ts:    at(10 * time.Minute),
			want:  model.Vector{point(model.Metric{}, 0.75, at(10*time.Minute))},
		},
		{
			name: "share slower than 2s",
			query: `(sum(rate(phase_propagation_seconds_bucket{le="+Inf"}[5m])) - sum(rate(phase_propagation_seconds_bucket{le="2.0"}[5m])))
				/ sum(rate(phase_propagation_seconds_count[5m]))`,
			ts:   at(10 * time.Minute),
			want: model.Vector{point(model.Metric{}, 0.1, at(10*time.Minute))},
		},
		{
			name:  "gauge max over time",
			query: `max_over_time(phase_instances[5m])`,
			ts:    at(10 * time.Minute),
			want:  model.Vector{point(model.Metric{"service": "api", "phase": "draining"}, 2, at(10*time.Minute))},
		},
		{
			name:  "instant selector within the 5m lookback",
			query: `phase_instances`,
			ts:    at(14 * time.Minute),
			want:  model.Vector{point(model.Metric{"__name__": "phase_instances", "service": "api", "phase": "draining"}, 1, at(14*time.Minute))},
		},
		{
			name:  "instant selector past the 5m lookback",
			query: `phase_instances`,
			ts:    at(16 * time.Minute),
			want:  model.Vector{},
		},
		{
			name:  "no such series",
			query: `sum(increase(phase_requests_total{phase="stopped"}[5m]))`,
			ts:    at(10 * time.Minute),
			want:  model.Vector{},
		},
		{
			name:  "zero over zero is NaN",
			query: `sum(increase(phase_schema_errors_total[5m])) / sum(increase(phase_schema_errors_total[5m]))`,
			ts:    at(10 * time.Minute),
			want:  model.Vector{point(model.Metric{}, math.NaN(), at(10*time.Minute))},
		},
		{
			name:  "before the data",
			query: `phase_instances`,
			ts:    at(-time.Minute),
			want:  model.Vector{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := s.Query(t.Context(), tt.query, tt.ts)
			if err != nil {
				t.Fatalf("Query: %v", err)
			}
			sortVector(got)
			if diff := cmp.Diff(tt.want, got, promtest.ApproxVectors); diff != "" {
				t.Errorf("Query(%s) mismatch (-want +got):\n%s", tt.query, diff)
			}
		})
	}
}

// sortVector orders v by labels, for comparisons.
func sortVector(v model.Vector) {
	sort.Slice(v, func(i, j int) bool { return v[i].Metric.Before(v[j].Metric) })
}

func TestQueryErrors(t *testing.T) {
	t.Parallel()
	s := load(t)
	canceled, cancel := context.WithCancel(t.Context())
	cancel()
	tests := []struct {
		name    string
		ctx     context.Context
		query   string
		wantErr string
		wantIs  error
	}{
		{name: "scalar", query: `1 + 1`, wantErr: `query "1 + 1": result type scalar, want vector`},
		{name: "matrix", query: `phase_instances[5m]`, wantErr: `query "phase_instances[5m]": result type matrix, want vector`},
		{name: "string", query: `"x"`, wantErr: `query "\"x\"": result type string, want vector`},
		{name: "parse error", query: `sum(`, wantErr: `query "sum(": 1:5: parse error: unclosed left parenthesis`},
		{name: "canceled", ctx: canceled, query: `phase_instances`, wantErr: `query "phase_instances": query was canceled`, wantIs: context.Canceled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx := tt.ctx
			if ctx == nil {
				ctx = t.Context()
			}
			got, err := s.Query(ctx, tt.query, at(10*time.Minute))
			if err == nil {
				t.Fatalf("Query = %v, want error %q", got, tt.wantErr)
			}
			if !strings.HasPrefix(err.Error(), tt.wantErr) {
				t.Errorf("Query error = %q, want prefix %q", err, tt.wantErr)
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("Query error = %v, want errors.Is %v", err, tt.wantIs)
			}
		})
	}
}

func TestRange(t *testing.T) {
	t.Parallel()
	minT, maxT := load(t).Range()
	if diff := cmp.Diff([]time.Time{at(0), at(10 * time.Minute)}, []time.Time{minT, maxT}); diff != "" {
		t.Errorf("Range mismatch (-want +got):\n%s", diff)
	}
}

func TestQueryConcurrent(t *testing.T) {
	t.Parallel()
	s := load(t)
	const q = `sum(increase(phase_requests_total{phase="active"}[5m]))`
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for j := range 20 {
				ts := at(time.Duration(5+(i+j)%6) * time.Minute)
				got, err := s.Query(t.Context(), q, ts)
				if err != nil {
					t.Errorf("Query: %v", err)
					return
				}
				if len(got) != 1 || math.Abs(float64(got[0].Value)-500) > 1e-9 {
					t.Errorf("Query at %s = %v, want 500", ts, got)
				}
			}
		})
	}
	wg.Wait()
}

func TestLoadErrors(t *testing.T) {
	t.Parallel()
	const (
		typ = "# TYPE x counter\n"
		ok1 = "x_total{a=\"1\"} 1 1767225600.000\n"
		ok2 = "x_total{a=\"1\"} 2 1767225660.000\n"
		eof = "# EOF\n"
	)
	tests := []struct {
		name    string
		in      string
		wantErr string
	}{
		{"missing EOF", typ + ok1 + ok2, "line 4: data does not end with # EOF"},
		{"missing timestamp", typ + ok1 + "x_total{a=\"1\"} 3\n" + eof, `line 3: series x_total{a="1"}: sample has no timestamp (replay data must be timestamped)`},
		{"bad value", typ + ok1 + "x_total{a=\"1\"} many 1767225660.000\n" + eof, `line 3: strconv.ParseFloat: parsing "many": invalid syntax`},
		{"bad label", typ + "x_total{a=1} 1 1767225600.000\n" + eof, "line 2: expected label value, got \"1\" (\"INVALID\") while parsing: \"x_total{a=1\""},
		{"unknown type", "# TYPE x countr\n" + ok1 + eof, `line 1: invalid metric type "countr"`},
		{"blank line", typ + ok1 + "\n" + ok2 + eof, `line 3: expected a valid start token, got "\n"`},
		{"data after EOF", typ + ok1 + eof + ok2, "line 3: unexpected data after # EOF"},
		{"out of order", typ + ok2 + ok1 + eof, `line 3: series x_total{a="1"}: timestamp 1767225600.000 is not after 1767225660.000 on line 2`},
		{"duplicate timestamp", typ + ok1 + ok1 + eof, `line 3: series x_total{a="1"}: timestamp 1767225600.000 is not after 1767225600.000 on line 2`},
		{"no samples", typ + eof, "no samples"},
		{"milliseconds", typ + ok1 + "x_total{a=\"1\"} 2 1767225660000\n" + eof,
			`line 3: series x_total{a="1"}: timestamp 1767225660000.000 looks like milliseconds (it would be in the year 57971); OpenMetrics timestamps are Unix seconds, such as 1767225660.000`},
		{"milliseconds with decimals", typ + "x_total{a=\"1\"} 1 1767225600000.000\n" + eof,
			`line 2: series x_total{a="1"}: timestamp 1767225600000.000 looks like milliseconds`},
		{"milliseconds of 1973", typ + "x_total{a=\"1\"} 1 100000000000\n" + eof,
			`line 2: series x_total{a="1"}: timestamp 100000000000.000 looks like milliseconds (it would be in the year 5138)`},
		{"nanoseconds", typ + "x_total{a=\"1\"} 1 1767225600000000000\n" + eof,
			`line 2: series x_total{a="1"}: timestamp too large for Unix seconds`},
		{
			"non-canonical le",
			"# TYPE h histogram\nh_bucket{le=\"1\"} 1 1767225600\nh_bucket{le=\"+Inf\"} 1 1767225600\n" + eof,
			`line 2: series h_bucket{le="1"}: label le is not written in canonical form "1.0"`,
		},
		{
			"non-canonical quantile",
			"# TYPE s summary\ns{quantile=\"0.50\"} 1 1767225600\n" + eof,
			`line 2: series s{quantile="0.50"}: label quantile is not written in canonical form "0.5"`,
		},
		{"empty", "", "line 1: data does not end with # EOF"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, err := Load(strings.NewReader(tt.in))
			if err == nil {
				s.Close()
				t.Fatalf("Load succeeded, want error %q", tt.wantErr)
			}
			if !strings.HasPrefix(err.Error(), tt.wantErr) {
				t.Errorf("Load error = %q, want prefix %q", err, tt.wantErr)
			}
		})
	}
}

func TestLoadFileErrorNamesFile(t *testing.T) {
	t.Parallel()
	path := t.TempDir() + "/bad.om"
	if err := os.WriteFile(path, []byte("# TYPE x gauge\nx 1\n# EOF\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := LoadFile(path)
	want := path + ": line 2: series x: sample has no timestamp"
	if err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("LoadFile error = %v, want prefix %q", err, want)
	}
	ms := t.TempDir() + "/ms.om"
	if err := os.WriteFile(ms, []byte("# TYPE x gauge\nx 1 1767225600\nx 1 1767225660000\n# EOF\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = LoadFile(ms)
	want = ms + ": line 3: series x: timestamp 1767225660000.000 looks like milliseconds"
	if err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("LoadFile error = %v, want prefix %q", err, want)
	}
	// A device or a directory is refused before it is read: /dev/zero
	// would fill memory.
	for path, want := range map[string]string{"/dev/zero": "/dev/zero: refused: not a regular file (a device)", t.TempDir(): "refused: not a regular file (a directory)"} {
		if _, err := LoadFile(path); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("LoadFile(%s) = %v, want %q", path, err, want)
		}
	}
	if _, err := LoadFile(path + ".missing"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("LoadFile(missing) error = %v, want os.ErrNotExist", err)
	}
}

func TestLoadFS(t *testing.T) {
	t.Parallel()
	fsys := fstest.MapFS{"s.om": {Data: []byte("# TYPE up gauge\nup{job=\"a\"} 1 1767225600.5\n# EOF\n")}}
	s, err := LoadFS(fsys, "s.om")
	if err != nil {
		t.Fatalf("LoadFS: %v", err)
	}
	defer s.Close()
	ts := time.UnixMilli(1767225600500).Add(time.Minute)
	got, err := s.Query(t.Context(), "up", ts)
	if err != nil {
		t.Fatalf("Query: %v", err)
	}
	want := model.Vector{point(model.Metric{"__name__": "up", "job": "a"}, 1, ts)}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Query mismatch (-want +got):\n%s", diff)
	}
	if _, err := LoadFS(fsys, "nope.om"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("LoadFS(missing) error = %v, want os.ErrNotExist", err)
	}
}

func TestCloseRemovesStorage(t *testing.T) {
	t.Parallel()
	s, err := LoadFile("testdata/phase.om")
	if err != nil {
		t.Fatalf("LoadFile: %v", err)
	}
	if _, err := os.Stat(s.dir); err != nil {
		t.Fatalf("storage dir: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := os.Stat(s.dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("storage dir after Close: %v, want it removed", err)
	}
}

// LongSpan checks that data spanning many head chunk ranges loads: samples
// are appended in global time order whatever the file order.
func TestLoadLongSpan(t *testing.T) {
	t.Parallel()
	var b strings.Builder
	b.WriteString("# TYPE c counter\n")
	for _, series := range []string{"a", "b"} {
		for i := range 49 { // 2 days, hourly.
			fmt.Fprintf(&b, "c_total{s=%q} %d %d\n", series, i, 1767225600+3600*i)
		}
	}
	b.WriteString("# EOF\n")
	s, err := Load(strings.NewReader(b.String()))
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	defer s.Close()
	got, err := s.Query(t.Context(), `sum(c_total)`, time.Unix(1767225600+3600*10, 0))
	if err != nil {
		t.Fatalf("Query: %v", err)
	}
	if len(got) != 1 || got[0].Value != 20 {
		t.Errorf("sum(c_total) at +10h = %v, want 20", got)
	}
}
