package bench

import (
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/argoproj/argo-rollouts/pkg/apis/rollouts/v1alpha1"
	"github.com/argoproj/argo-rollouts/utils/defaults"
	"github.com/argoproj/argo-rollouts/utils/evaluate"
	"github.com/sirupsen/logrus"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// A Baseline decides from the results of its instant queries when it rolls
// a canary back.
type Baseline interface {
	// Name is a short label: tool, query window and limits.
	Name() string
	// Window is the range of its queries; the probe of that window feeds it.
	Window() time.Duration
	// Rollback returns the look (from 0) at which the canary is rolled back,
	// or -1, when every SLI's threshold is sweep[t] times its budget. The
	// look may be one past the last of the probe: a tool that decides to
	// roll back at the tick after a check does so even when the stage's
	// data ends.
	Rollback(p *Probe, budgets, sweep []float64, t int) int
}

// Sweep is the thresholds every baseline is run at, in increasing order:
// burn multiples of each SLI's budget (1 is a threshold at the budget).
var Sweep = []float64{1, 1.5, 2, 3, 5, 7, 10, 15, 20, 30, 50, 100, 200, 500, 1000}

// Argo is Argo Rollouts' Prometheus metric provider (v1.10.0) as an
// AnalysisTemplate configures it: one metric per SLI, each an instant query
// every interval with successCondition "result[0] <= T". It follows
// metricproviders/prometheus.processResponse (a vector's values become the
// []float64 result, so an empty result has no result[0]),
// utils/evaluate.EvaluateResult (run here, not re-implemented: an expression
// error is an Error measurement, a NaN fails the condition) and
// analysis.assessMetricFailureInconclusiveOrError: the metric fails when
// its Failed measurements, counted over the whole run, exceed failureLimit,
// and errors when more than consecutiveErrorLimit measurements in a row are
// Errors. Either ends the AnalysisRun, and a Failed or Error AnalysisRun
// aborts the Rollout (rollout/analysis.go).
type Argo struct {
	Win          time.Duration
	FailureLimit int
	// ConsecutiveErrorLimit zero means Argo's default, 4.
	ConsecutiveErrorLimit int
}

// Name implements Baseline.
func (a Argo) Name() string {
	return fmt.Sprintf("Argo [%s] failureLimit %d", shortDur(a.Win), a.FailureLimit)
}

// Window implements Baseline.
func (a Argo) Window() time.Duration { return a.Win }

// argoLog is the logger EvaluateResult takes; it logs nothing we read.
var argoLog = func() logrus.Entry {
	l := logrus.New()
	l.SetOutput(io.Discard)
	return *logrus.NewEntry(l)
}()

// Rollback implements Baseline. It reads the measurement phases from
// p.Argo, which Classify filled with argo-rollouts' own evaluation.
func (a Argo) Rollback(p *Probe, budgets, sweep []float64, t int) int {
	errLimit := a.ConsecutiveErrorLimit
	if errLimit == 0 {
		errLimit = int(defaults.DefaultConsecutiveErrorLimit)
	}
	type counts struct{ failed, consecutiveErrors int }
	st := make([]counts, len(budgets))
	for i, row := range p.Argo {
		for k, first := range row {
			switch {
			case first < 0: // Error
				st[k].consecutiveErrors++
			case int(first) > t: // Failed: the condition holds only from a higher threshold on
				st[k].failed++
				st[k].consecutiveErrors = 0
			default: // Successful (Inconclusive needs a failureCondition)
				st[k].consecutiveErrors = 0
			}
			if st[k].failed > a.FailureLimit || st[k].consecutiveErrors > errLimit {
				return i
			}
		}
	}
	return -1
}

// Classify fills p.Argo: for each look and SLI, the index of the first
// threshold of sweep at which Argo's measurement of the result is
// Successful (len(sweep) when none is, as for NaN), or -1 when it is an
// Error (no result[0]). Each phase is computed by argo-rollouts'
// utils/evaluate.EvaluateResult on the condition "result[0] <= T"; as
// that condition only ever turns from false to true when T grows, a binary
// search over sweep finds the boundary with a few evaluations per result.
func Classify(p *Probe, budgets, sweep []float64) {
	p.Argo = make([][]int8, len(p.Results))
	for i, row := range p.Results {
		p.Argo[i] = make([]int8, len(row))
		for k, r := range row {
			p.Argo[i][k] = argoFirstSuccess(r, budgets[k], sweep)
		}
	}
}

func argoFirstSuccess(r Result, budget float64, sweep []float64) int8 {
	phase := func(t int) v1alpha1.AnalysisPhase { return argoPhase(r, argoMetric(budget*sweep[t], 0)) }
	if phase(len(sweep)-1) == v1alpha1.AnalysisPhaseError {
		return -1
	}
	lo, hi := 0, len(sweep) // the answer is in [lo, hi]
	for lo < hi {
		mid := (lo + hi) / 2
		if phase(mid) == v1alpha1.AnalysisPhaseSuccessful {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	return int8(lo)
}

// argoMetric is one SLI's metric as an AnalysisTemplate writes it.
func argoMetric(threshold float64, failureLimit int) v1alpha1.Metric {
	fl := intstr.FromInt32(int32(failureLimit))
	return v1alpha1.Metric{
		Name:             "sli",
		SuccessCondition: "result[0] <= " + strconv.FormatFloat(threshold, 'g', -1, 64),
		FailureLimit:     &fl,
	}
}

// Flagger is Flagger's canary analysis loop, re-implemented from
// fluxcd/flagger pkg/controller/scheduler.go (advanceCanary, at commit
// 2944581a: the failedChecks >= GetAnalysisThreshold() rollback check
// before the analysis, and SetStatusFailedChecks(FailedChecks+1) when
// runAnalysis fails), pkg/controller/scheduler_metrics.go
// (runMetricChecks: "val > *tr.Max" fails) and
// pkg/metrics/providers/prometheus.go (RunQuery, at commit 7b7cdcf7:
// "value == nil || math.IsNaN(*value)" is ErrNoValuesFound): every interval, first roll back if failedChecks
// >= threshold; otherwise run every metric check, where a query with no
// value or a NaN value (ErrNoValuesFound) or a value above thresholdRange.max
// fails the check; one failed check (however many metrics failed) adds one
// to failedChecks, which is never reset within the analysis.
type Flagger struct {
	Win time.Duration
	// Threshold is analysis.threshold: failed checks before rollback.
	Threshold int
}

// Name implements Baseline.
func (f Flagger) Name() string {
	return fmt.Sprintf("Flagger [%s] threshold %d", shortDur(f.Win), f.Threshold)
}

// Window implements Baseline.
func (f Flagger) Window() time.Duration { return f.Win }

// Rollback implements Baseline.
func (f Flagger) Rollback(p *Probe, budgets, sweep []float64, t int) int {
	burn := sweep[t]
	failedChecks := 0
	for i := 0; i <= len(p.Results); i++ {
		if failedChecks >= f.Threshold {
			return i
		}
		if i == len(p.Results) {
			break
		}
		for k, r := range p.Results[i] {
			if r.Empty || math.IsNaN(r.Value) || r.Value > burn*budgets[k] {
				failedChecks++
				break
			}
		}
	}
	return -1
}

func shortDur(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}

// argoPhase is the measurement phase Argo's Prometheus provider gives one
// query result: the vector's values as []float64, evaluated against m.
func argoPhase(r Result, m v1alpha1.Metric) v1alpha1.AnalysisPhase {
	result := []float64{}
	if !r.Empty {
		result = append(result, r.Value)
	}
	phase, err := evaluate.EvaluateResult(result, m, argoLog)
	if err != nil {
		return v1alpha1.AnalysisPhaseError
	}
	return phase
}
