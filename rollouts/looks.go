package rollouts

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/argoproj/argo-rollouts/pkg/apis/rollouts/v1alpha1"
	"github.com/prometheus/common/model"

	"github.com/phaseguard/phaseguard/policies"
)

// lookPlan places a look-mode measurement in its stage: the stage began
// when its AnalysisRun started, soaks the policy stage's soak, and ends
// at the metric's last measurement (Argo's count) if that comes first.
type lookPlan struct {
	stage string
	start time.Time
	soak  time.Duration
	// last: this is the metric's last measurement by count.
	last bool
	// look is this measurement's number (1-based) and looks the metric's
	// count (0: none, a background analysis that runs until stopped).
	look, looks int
	// interval is the metric's (0: a single look).
	interval time.Duration
}

// planLook checks a look-mode metric against its policy stage and places
// this measurement in it. The stage is cfg.Stage, or the policy's longest
// when none is given. It refuses, naming the field:
//   - a count whose last look comes before the stage's soak ends, when a
//     stage is named and the metric has an interval (without one, Argo
//     takes a single measurement, which is the stage's last): Argo takes the first measurement at once, so count
//     looks cover (count-1) × interval, and stage ordering refuses the
//     next stage unless this one ran its whole soak (count 20 × 30s covers
//     9m30s of a 10m soak);
//   - consecutiveSuccessLimit: a look before the soak ends is Successful
//     while its hold is pending (see analysis.HoldPending), so that many
//     in a row would end the metric before the stage was decided.
func planLook(ar *v1alpha1.AnalysisRun, metric v1alpha1.Metric, pol *policies.Policy, stage string, now time.Time) (lookPlan, error) {
	lp := lookPlan{stage: stage, start: now}
	if ar != nil {
		lp.start = runStart(ar, now)
	}
	st, i := pol.Stage(stage)
	if i < 0 {
		st = longestStage(pol)
	}
	lp.stage, lp.soak = st.Name, time.Duration(st.Soak)
	if l := metric.ConsecutiveSuccessLimit; l != nil && l.IntValue() > 0 {
		return lp, fmt.Errorf("consecutiveSuccessLimit %s: not allowed in look mode, where a look before the stage's soak ends is Successful while its evidence is still thin; the stage's end decides: use count (the soak / interval + 1), or mode: stage", l.String())
	}
	var done int32
	if ar != nil {
		for _, r := range ar.Status.MetricResults {
			if r.Name == metric.Name {
				done = r.Count
			}
		}
	}
	lp.look = int(done) + 1
	if metric.Interval != "" {
		d, err := metric.Interval.Duration()
		if err != nil {
			return lp, fmt.Errorf("interval %q: %v", metric.Interval, err)
		}
		lp.interval = d
	}
	count := metric.EffectiveCount()
	if count == nil {
		return lp, nil
	}
	lp.looks = count.IntValue()
	lp.last = lp.look >= lp.looks
	if stage == "" || metric.Interval == "" {
		// No stage named, or a single look (Argo takes one measurement
		// of a metric without an interval): that look is the last.
		return lp, nil
	}
	interval := lp.interval
	if covered := time.Duration(max(lp.looks-1, 0)) * interval; covered < lp.soak {
		need := int((lp.soak+interval-1)/interval) + 1
		return lp, fmt.Errorf("count %d × interval %s covers %s of stage %s's %s soak (Argo takes the first look at once, so the last comes (count-1) × interval later), and stage ordering would refuse the next stage: set count to at least %d, or use mode: stage",
			lp.looks, metric.Interval, model.Duration(covered), st.Name, st.Soak, need)
	}
	return lp, nil
}

// longestStage is the policy's stage with the longest soak (the engine's
// looks for a request naming no stage), the first of equals.
func longestStage(pol *policies.Policy) policies.Stage {
	var best policies.Stage
	for _, s := range pol.Spec.Stages {
		if s.Soak > best.Soak {
			best = s
		}
	}
	return best
}

// starts caches the canary's start per Rollout revision and pod template
// hash: the earliest AnalysisRun of a revision never changes once found,
// so each is listed once, not at every look.
type starts struct {
	mu sync.Mutex
	m  map[string]time.Time
}

// maxStarts bounds the cache; past it, it starts over.
const maxStarts = 4096

func (s *starts) get(key string) (time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.m[key]
	return t, ok
}

func (s *starts) put(key string, t time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil || len(s.m) >= maxStarts {
		s.m = map[string]time.Time{}
	}
	s.m[key] = t
}

// canaryStart is when the canary began serving, the engine's Since: the
// start of the earliest AnalysisRun the same Rollout created for the same
// revision and pod template hash, this one included. A background
// analysis starts with the canary's first step, a step analysis after its
// setWeight; either way the canary is serving by then, and a later
// stage's analysis keeps the evidence of the earlier ones (windows reach
// back to the canary's start, not the stage's). The AnalysisRuns are read
// with the controller's credentials, as stage ordering reads them.
//
// It returns the zero time for an AnalysisRun not created by a Rollout
// (no owner, revision or hash: the canary's start is unknown, and windows
// stay whole), and this run's own start, with the reason, when the list
// fails (a later start only drops evidence: more holds, never a pass the
// data does not support).
func (p *Plugin) canaryStart(ctx context.Context, cl *call, now time.Time) (time.Time, string) {
	ar := cl.ar
	if ar == nil {
		return time.Time{}, ""
	}
	owner := rolloutOwner(ar)
	revision := ar.Annotations[AnnotationRevision]
	hash := ar.Labels[LabelPodTemplateHash]
	own := runStart(ar, now)
	if owner == nil || revision == "" || hash == "" {
		return time.Time{}, ""
	}
	key := ar.Namespace + "\x00" + string(owner.UID) + "\x00" + revision + "\x00" + hash
	if t, ok := p.starts.get(key); ok {
		if own.Before(t) {
			t = own
		}
		return t, ""
	}
	lister, err := p.analysisRuns()
	if err != nil {
		return own, "this AnalysisRun's start: " + oneLine(err)
	}
	runs, err := lister.ListAnalysisRuns(ctx, ar.Namespace, LabelPodTemplateHash+"="+hash)
	if err != nil {
		return own, fmt.Sprintf("this AnalysisRun's start: could not list AnalysisRuns in namespace %s (needs RBAC get, list on analysisruns.argoproj.io): %s", ar.Namespace, oneLine(err))
	}
	start := own
	for i := range runs {
		r := &runs[i]
		if o := rolloutOwner(r); o == nil || o.UID != owner.UID || r.Annotations[AnnotationRevision] != revision {
			continue
		}
		if t := runStart(r, own); t.Before(start) {
			start = t
		}
	}
	p.starts.put(key, start)
	return start, ""
}
