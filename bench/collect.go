package bench

import (
	"context"
	"fmt"
	"io"
	"sync"
	"time"
)

// DefaultBaselines are the configurations compared with phaseguard, as the
// tools' documentation writes them (window, failureLimit, threshold), all
// checking at the policy's interval.
var DefaultBaselines = []Baseline{
	Argo{Win: time.Minute, FailureLimit: 0},
	Argo{Win: 5 * time.Minute, FailureLimit: 0},
	Argo{Win: 5 * time.Minute, FailureLimit: 3},
	Flagger{Win: time.Minute, Threshold: 1},
	Flagger{Win: time.Minute, Threshold: 5},
	Flagger{Win: 5 * time.Minute, Threshold: 2},
}

// Outcomes are one case's rollbacks under every detector.
type Outcomes struct {
	// Baseline[b][t] is the look at which baseline b rolls back at
	// threshold t of the sweep, or -1.
	Baseline [][]int
}

// Collect observes every case with workers goroutines, scores each run
// under every baseline and threshold of sweep, and returns the runs in the
// order of cases. Progress, when not nil, gets a line every 50 cases.
func Collect(ctx context.Context, j Judge, cases []Case, baselines []Baseline, sweep []float64, workers int, progress io.Writer) ([]*Run, error) {
	budgets := make([]float64, len(j.Policy.Spec.SLIs))
	for i := range j.Policy.Spec.SLIs {
		budgets[i] = j.Policy.Spec.SLIs[i].Budget()
	}
	runs := make([]*Run, len(cases))
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	next := make(chan int)
	var (
		mu    sync.Mutex
		first error
		done  int
		began = time.Now()
	)
	var wg sync.WaitGroup
	for range max(workers, 1) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				run, err := Observe(ctx, j, cases[i])
				if err == nil {
					err = score(run, budgets, baselines, sweep)
				}
				mu.Lock()
				if err != nil && first == nil {
					first = err
					cancel()
				}
				runs[i] = run
				done++
				if progress != nil && (done%50 == 0 || done == len(cases)) {
					fmt.Fprintf(progress, "observed %d/%d cases in %s\n", done, len(cases), time.Since(began).Round(time.Second))
				}
				mu.Unlock()
			}
		}()
	}
feed:
	for i := range cases {
		select {
		case next <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	if first != nil {
		return nil, first
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return runs, nil
}

// score fills run.Outcomes.
func score(run *Run, budgets []float64, baselines []Baseline, sweep []float64) error {
	probe := map[time.Duration]*Probe{}
	for i := range run.Probes {
		p := &run.Probes[i]
		Classify(p, budgets, sweep)
		probe[p.Window] = p
	}
	run.Outcomes.Baseline = make([][]int, len(baselines))
	for b, bl := range baselines {
		p, ok := probe[bl.Window()]
		if !ok {
			return fmt.Errorf("baseline %s: no probe of window %s (add it to the judge's windows)", bl.Name(), bl.Window())
		}
		run.Outcomes.Baseline[b] = make([]int, len(sweep))
		for t := range sweep {
			run.Outcomes.Baseline[b][t] = bl.Rollback(p, budgets, sweep, t)
		}
	}
	return nil
}
