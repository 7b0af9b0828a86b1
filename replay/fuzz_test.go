package replay

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// FuzzLoad feeds OpenMetrics text through Load and queries what loads.
// Run it with
//
//	go test -run='^$' -fuzz='^FuzzLoad$' -fuzztime=1000000x -parallel 1 ./replay/
//
// or with every other target through scripts/fuzz.sh. Load never panics
// and returns a store or an error, never both or neither; a store's range
// is ordered, it answers instant queries over every series at both ends
// of its range and a minute past it without panicking (a vector, or an
// error naming the query), and Close removes its storage.
func FuzzLoad(f *testing.F) {
	for _, s := range seedData(f) {
		f.Add(s)
	}
	queries := []string{
		`count({__name__=~".+"})`,
		`sum by (__name__) (increase({__name__=~".+"}[5m]))`,
		`max_over_time({__name__=~".+"}[1h]) unless present_over_time({__name__=~".+"}[1h] offset 5m)`,
		`histogram_quantile(0.9, sum by (le) (rate({__name__=~".+_bucket"}[5m])))`,
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		// The fuzzer's inputs stay far below MaxFileSize; larger ones only
		// slow it down.
		if len(data) > 64<<10 {
			t.Skip()
		}
		s, err := Load(bytes.NewReader(data))
		if (s == nil) == (err == nil) {
			t.Fatalf("Load returned store %v and error %v: want exactly one", s != nil, err)
		}
		if err != nil {
			if msg := err.Error(); len(msg) > 2*len(data)+4096 {
				t.Errorf("error of %d bytes for %d bytes of data", len(msg), len(data))
			}
			return
		}
		dir := s.dir
		defer func() {
			if err := s.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
			if _, err := os.Stat(dir); !os.IsNotExist(err) {
				t.Errorf("storage %s left behind: %v", dir, err)
			}
		}()
		minT, maxT := s.Range()
		if minT.After(maxT) {
			t.Fatalf("range %s after %s", minT, maxT)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		for _, at := range []time.Time{minT, maxT, maxT.Add(time.Minute)} {
			for _, q := range queries {
				v, err := s.Query(ctx, q, at)
				if err != nil {
					if !strings.Contains(err.Error(), strconv.Quote(q)) {
						t.Errorf("query %s at %s: error does not name the query: %v", q, at, err)
					}
					continue
				}
				for _, smp := range v {
					if smp == nil || smp.Metric == nil {
						t.Fatalf("query %s at %s: a nil sample or metric in %v", q, at, v)
					}
				}
			}
		}
	})
}

// seedData returns replay data of the repository, each scenario cut to
// its first lines, and the rules Load enforces, broken.
func seedData(f *testing.F) [][]byte {
	f.Helper()
	files, err := filepath.Glob("testdata/*.om")
	if err != nil {
		f.Fatal(err)
	}
	scenarios, err := filepath.Glob("../scenarios/data/*.om")
	if err != nil {
		f.Fatal(err)
	}
	if len(files) == 0 || len(scenarios) == 0 {
		f.Fatalf("found %d replay files and %d scenarios", len(files), len(scenarios))
	}
	var out [][]byte
	for _, name := range append(files, scenarios...) {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		if len(b) > 2<<10 {
			// The first lines of a scenario: its metadata and the first
			// samples of its first series.
			b = b[:bytes.LastIndexByte(b[:2<<10], '\n')+1]
			b = append(b, "# EOF\n"...)
		}
		out = append(out, b)
	}
	const (
		typ = "# TYPE x counter\n"
		eof = "# EOF\n"
	)
	for _, s := range []string{
		typ + "x_total{a=\"1\"} 1 1767225600.000\nx_total{a=\"1\"} 2 1767225660.000\n" + eof,
		typ + "x_total{a=\"1\"} 2 1767225660.000\nx_total{a=\"1\"} 1 1767225600.000\n" + eof,
		typ + "x_total{a=\"1\"} 1 1767225600000\n" + eof,
		typ + "x_total{a=\"1\"} 1 1767225600000000000\n" + eof,
		typ + "x_total{a=\"1\"} 1 -1767225600.5\nx_total{a=\"1\"} NaN 0\nx_total{a=\"1\"} +Inf 99999999999\n" + eof,
		"# TYPE h histogram\nh_bucket{le=\"1.0\"} 1 1767225600\nh_bucket{le=\"+Inf\"} 2 1767225600\nh_count 2 1767225600\nh_sum 3 1767225600\n" + eof,
		"# TYPE h histogram\nh_bucket{le=\"1\"} 1 1767225600\n" + eof,
		"# TYPE s summary\ns{quantile=\"0.5\"} 1 1767225600 # {trace_id=\"x\"} 1 1767225600\n" + eof,
		"# TYPE g gauge\n# UNIT g seconds\ng{a=\"\\\"\\n\\\\\",\"b.c\"=\"\xff\"} 1 1767225600\n{\"utf8.name\"} 1 1767225600\n" + eof,
		"# TYPE g gauge\ng 1 1767225600\n" + eof + "g 2 1767225660\n",
		"",
	} {
		out = append(out, []byte(s))
	}
	return out
}
