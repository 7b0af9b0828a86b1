package replay

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/prometheus/promql/parser"
)

func TestCachingParser(t *testing.T) {
	t.Parallel()
	queries := []string{
		`sum(increase(phase_requests_total{phase!="active"}[5m]))`,
		`label_replace(sum(rate(x[1m])), "a", "b", "", "") or vector(1)`,
		`histogram_quantile(0.9, sum by (le) (rate(phase_propagation_seconds_bucket[5m])))`,
		`max_over_time(x[10m:1m] @ 1767225600 offset 1m) > bool 2`,
		`-sum(x) * on (pod) group_left () y`,
	}
	p := newCachingParser()
	fresh := parser.NewParser(parser.Options{})
	for _, q := range queries {
		want, err := fresh.ParseExpr(q)
		if err != nil {
			t.Fatal(err)
		}
		for range 3 {
			got, err := p.ParseExpr(q)
			if err != nil {
				t.Fatal(err)
			}
			if got.String() != want.String() {
				t.Errorf("cached %s, fresh %s", got, want)
			}
			if _, ok := cloneExpr(got); !ok {
				t.Errorf("%s: a node type cloneExpr does not know", q)
			}
		}
	}
	if len(p.exprs) != len(queries) {
		t.Errorf("cached %d trees, want %d", len(p.exprs), len(queries))
	}
	if _, err := p.ParseExpr("sum(("); err == nil {
		t.Error("a bad query parsed")
	}
}

// TestCachedQueriesAgree runs the same queries many times, concurrently,
// through the cache: results must not change when the engine rewrites the
// tree it was given (run with -race).
func TestCachedQueriesAgree(t *testing.T) {
	t.Parallel()
	s, err := LoadFile("testdata/phase.om")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	_, end := s.Range()
	q := `sum(increase(phase_requests_total[5m])) or label_replace(vector(1), "x", "y", "", "")`
	first, err := s.Query(context.Background(), q, end)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 20 {
				got, err := s.Query(context.Background(), q, end.Add(-time.Second))
				if err != nil {
					t.Error(err)
					return
				}
				if len(got) != len(first) {
					t.Errorf("got %d series, first run %d", len(got), len(first))
					return
				}
			}
		})
	}
	wg.Wait()
}
