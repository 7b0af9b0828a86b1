package analysis

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/common/model"

	"github.com/phaseguard/phaseguard/policies"
)

// ErrNoData marks a window with no data. No data is not zero burn: it
// holds, it never passes.
var ErrNoData = errors.New("no data")

// ErrCannotTell marks a window whose part is absent although every
// metric family it reads exists, from a query whose absence does not mean
// zero (an operation between two vectors, one side empty). It holds.
var ErrCannotTell = errors.New("absent, and the absence cannot be told from zero")

// absentError is a window without data for a part, naming the families
// the target has no series of there.
type absentError struct {
	part     policies.Part
	families []string
}

func (e *absentError) Error() string {
	if len(e.families) == 0 {
		return fmt.Sprintf("no %s series", e.part)
	}
	// The presence checks count series with two samples in the window
	// (what increase() needs), not series that exist.
	return "no series of " + strings.Join(e.families, ", ") + " with two samples in the window"
}

func (e *absentError) Unwrap() error { return ErrNoData }

type sliInput struct {
	sli    *policies.SLI
	policy *policies.Policy
	lookTests
	span time.Duration // time since the stage started, when shorter than a window; else 0
	// lazy: the canary's missing part is a child its exporter creates on
	// first use, not a respelled label value (respell.go): read as zero.
	lazy       bool
	stableHash string
	canary     policies.Target
	stable     policies.Target

	canaryQuery, stableQuery string
	canaryVec, stableVec     model.Vector
	canaryErr, stableErr     error
}

// window holds one target's counts in one window.
type window struct {
	d          time.Duration
	bad, total float64 // ratio: events; rate: events and hours
	// err is ErrNoData (wrapped in *absentError), ErrCannotTell, or a data
	// error (NaN, negative).
	err error
	// zeroed are the parts absent from the window that read as zero (the
	// target exports their families).
	zeroed []policies.Part
}

// usable reports whether the window can be judged: it has data, and a
// ratio window has events (a window without requests has no burn).
func (w window) usable() bool { return w.err == nil && w.total > 0 }

func (w window) value() float64 {
	if !w.usable() {
		return math.NaN()
	}
	return w.bad / w.total
}

// bounds returns the window's value and the lower and upper ends of its
// confidence sequence at level a (lowerBurn, upperBurn), in the value's
// units (bad share, or events per hour).
func (w window) bounds(kind string, budget, a float64) (v, lo, hi float64) {
	if !w.usable() {
		return math.NaN(), math.NaN(), math.NaN()
	}
	return w.bad / w.total, lowerBurn(kind, w.bad, w.total, budget, a) * budget, upperBurn(kind, w.bad, w.total, budget, a) * budget
}

// overBudget is the fail test: the window's counts reject "burn ≤ 1" at
// level a (the fail mixture's e-value reaches 1/a).
func (w window) overBudget(kind string, budget, a float64) bool {
	return w.usable() && logE(kind, w.bad, w.total, budget, 1, over) >= math.Log(1/a)
}

// rulesOut is the pass test: the window's counts reject "burn ≥ factor"
// at level a. A ratio SLI whose budget times factor reaches 1 cannot burn
// that fast: ruled out by any event.
func (w window) rulesOut(kind string, budget, factor, a float64) bool {
	return w.usable() && logE(kind, w.bad, w.total, budget, factor, under) >= math.Log(1/a)
}

// extract reads a batched query result for target t into per-window
// counts. Windows longer than span (when not 0) counted only span: a
// rate's exposure is span, not the window.
//
// A part absent from a window reads as zero only when the SLI's presence
// checks show that t exports every metric family the part reads there
// (policies.SLI.Absence); otherwise the window has no data (a family
// missing: a renamed or dropped metric, a label spelled another way, the
// newest minutes not scraped) or cannot be told (an operation between two
// vectors with an empty side). A ratio whose total is zero had no events:
// the window has data but no burn.
func extract(sli *policies.SLI, t policies.Target, windows []time.Duration, span time.Duration, vec model.Vector) ([]window, error) {
	type key struct{ part, win string }
	got := map[key]float64{}
	for _, s := range vec {
		k := key{string(s.Metric[policies.PartLabel]), string(s.Metric[policies.WindowLabel])}
		if _, dup := got[k]; dup {
			return nil, fmt.Errorf("query returned more than one series for %s in %s: aggregate it to one series (e.g. sum(...))", k.part, k.win)
		}
		got[k] = float64(s.Value)
	}
	out := make([]window, len(windows))
	for i, d := range windows {
		w := window{d: d}
		name := model.Duration(d).String()
		get := func(p policies.Part) (float64, bool) { v, ok := got[key{string(p), name}]; return v, ok }
		invalid := func(p policies.Part, v float64) error {
			if math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
				return fmt.Errorf("%s in %s is %g: not a count", p, name, v)
			}
			return nil
		}
		// readPart returns a part's value, or zero when it is absent and
		// the absence means zero. Either counts only while t exports every
		// family the part reads: a value from a fallback (`or vector(0)`)
		// for a renamed metric is no data.
		readPart := func(p policies.Part) (float64, error) {
			a := sli.Absence(p)
			var missing []string
			for _, f := range a.Needs {
				if _, ok := get(f); !ok {
					missing = append(missing, sli.Family(f, t))
				}
			}
			v, ok := get(p)
			switch {
			case len(missing) > 0:
				return 0, &absentError{part: p, families: missing}
			case ok && v < 0 && v > -1e-9:
				// Floating-point noise of the server's arithmetic
				// (-2.2e-16 after a reset), not a negative count.
				return 0, nil
			case ok:
				return v, invalid(p, v)
			case !a.Safe:
				return 0, fmt.Errorf("%s: %w", p, ErrCannotTell)
			}
			return 0, nil
		}
		read := func(p policies.Part) (float64, error) {
			v, err := readPart(p)
			if _, ok := get(p); !ok && err == nil {
				w.zeroed = append(w.zeroed, p)
			}
			return v, err
		}
		if sli.Kind() == policies.KindRate {
			w.total = d.Hours()
			if span > 0 && span < d {
				w.total = span.Hours()
			}
			if _, ok := get(policies.PartPresence); !ok && slices.Contains(sli.Parts(), policies.PartPresence) {
				w.err = &absentError{part: policies.PartPresence}
			} else {
				w.bad, w.err = read(policies.PartEvents)
			}
			out[i] = w
			continue
		}
		w.total, w.err = read(policies.PartTotal)
		if _, ok := get(policies.PartTotal); !ok && w.err == nil || errors.Is(w.err, ErrCannotTell) {
			// Without a total there is nothing to count against: no
			// series measured it (fewer than two samples of any).
			w.err = &absentError{part: policies.PartTotal}
		}
		switch {
		case w.err != nil:
		case w.total == 0:
			// Exported, but no events: data without a burn.
		case sli.Ratio.Good != "":
			var good float64
			if good, w.err = read(policies.PartGood); w.err == nil {
				w.bad = math.Max(w.total-good, 0)
			}
		default:
			// increase() extrapolates each series on its own, so bad may
			// exceed total by a little; by more, the queries do not count
			// the same events.
			w.bad, w.err = read(policies.PartBad)
			if w.err == nil && w.bad > w.total*1.1+1 {
				w.err = fmt.Errorf("bad (%g) exceeds total (%g) in %s: the bad query does not count a subset of the total's events", w.bad, w.total, name)
			}
			w.bad = math.Min(w.bad, w.total)
		}
		out[i] = w
	}
	return out, nil
}

// noData is an SLI that holds because the canary has no data in any
// window: what was absent in the longest window, for the engine to
// diagnose (diagnose.go) before it words the reason.
type noData struct {
	absent  *absentError
	window  time.Duration // the longest window
	dropped string        // what stable's data says, appended to the reason
}

// reason words the hold, with diag saying what is missing.
func (n *noData) reason(diag string) string {
	return fmt.Sprintf("no data for the canary in any window (%s): %s%s", n.absent, diag, n.dropped)
}

// judge decides one SLI. The noData is set when it holds for want of any
// canary data, with a reason that says only that it was not diagnosed;
// the part is set when it holds because the canary lacks a part stable
// has, which respell.go tells from a child created on first use.
//
// The order of the rules is the contract of DESIGN.md ("Evidence",
// "Baseline", "What a response means"): a fail needs only significance,
// on whatever windows have data; a pass needs every window pair
// evaluated, the baseline when one was asked for, minSamples events and a
// bound that rules out a fast burn; everything in between holds.
func judge(in sliInput) (SLIResult, *noData, policies.Part) {
	sli, p := in.sli, in.policy
	windows := p.Windows()
	kind := sli.Kind()
	budget := sli.Budget()
	r := SLIResult{
		Name:      sli.Name,
		Kind:      kind,
		Budget:    Num(budget),
		Value:     Num(math.NaN()),
		Samples:   Num(math.NaN()),
		Burn:      map[string]Num{},
		BurnLower: map[string]Num{},
		BurnUpper: map[string]Num{},
		Windows:   []WindowResult{},
		Queries:   []string{in.canaryQuery},
	}
	if in.stableQuery != "" {
		r.Queries = append(r.Queries, in.stableQuery)
	}
	// Every window is in the result whatever happens, with null values
	// where there are none: a consumer parses one shape.
	for _, d := range windows {
		name := model.Duration(d).String()
		nan := Num(math.NaN())
		r.Windows = append(r.Windows, WindowResult{Window: name, Span: spanOf(d, in.span), Bad: nan, Total: nan, Value: nan, Burn: nan, BurnLower: nan, BurnUpper: nan})
		r.Burn[name], r.BurnLower[name], r.BurnUpper[name] = nan, nan, nan
	}
	onErr := Hold
	if p.Spec.OnQueryError == "fail" {
		onErr = Fail
	}
	if in.canaryErr != nil {
		r.Decision, r.Error = onErr, in.canaryErr.Error()
		r.Reason = "canary query failed: " + shortErr(in.canaryErr, in.canaryQuery)
		return r, nil, ""
	}
	ranges := slices.Clone(windows)
	for _, d := range in.extra {
		if !slices.Contains(ranges, d) {
			ranges = append(ranges, d)
		}
	}
	all, err := extract(sli, in.canary, ranges, in.span, in.canaryVec)
	if err != nil {
		r.Decision, r.Error = onErr, err.Error()
		r.Reason = "canary " + err.Error()
		return r, nil, ""
	}
	cw := all[:len(windows)]
	byWin := map[time.Duration]window{}
	for _, w := range all {
		byWin[w.d] = w
	}
	for i, w := range cw {
		r.Windows[i] = windowResult(w, kind, budget, in.a, in.span)
		name := r.Windows[i].Window
		r.Burn[name], r.BurnLower[name], r.BurnUpper[name] = r.Windows[i].Burn, r.Windows[i].BurnLower, r.Windows[i].BurnUpper
	}
	longest := cw[0]
	r.Value = Num(longest.value())
	if longest.err == nil {
		r.Samples = Num(longest.total)
		if kind == policies.KindRate {
			r.Samples = Num(longest.bad)
		}
	}
	// The evidence since the canary's start: its own range when the
	// canary is older than the longest window, else the longest window
	// (cut to the canary's age).
	life := longest
	if lw, ok := byWin[in.life]; ok && in.life > longest.d {
		life = lw
		wr := windowResult(lw, kind, budget, in.a, 0)
		r.Life = &wr
	}

	// Stable side, when compared.
	var sw map[time.Duration]window
	if in.stableHash != "" && in.stableQuery != "" {
		r.Baseline = &BaselineResult{Hash: in.stableHash, Value: Num(math.NaN()), Samples: Num(math.NaN()), PValue: Num(math.NaN()), Burn: map[string]Num{}, Windows: []WindowResult{}}
		if in.stableErr == nil {
			ws, err := extract(sli, in.stable, ranges, in.span, in.stableVec)
			if err != nil {
				in.stableErr = err
			} else {
				sw = map[time.Duration]window{}
				for i, w := range ws {
					sw[w.d] = w
					if i >= len(windows) {
						continue
					}
					wr := windowResult(w, kind, budget, in.a, in.span)
					r.Baseline.Windows = append(r.Baseline.Windows, wr)
					r.Baseline.Burn[wr.Window] = wr.Burn
				}
				r.Baseline.Value = Num(ws[0].value())
				if ws[0].err == nil {
					r.Baseline.Samples = Num(ws[0].total)
				}
			}
		}
	}

	// Data errors (NaN, Inf, negative counts) in any range never pass.
	for _, w := range all {
		if w.err != nil && !errors.Is(w.err, ErrNoData) && !errors.Is(w.err, ErrCannotTell) {
			r.Decision = Hold
			r.Reason = fmt.Sprintf("canary data unusable: %v", w.err)
			return r, nil, ""
		}
	}

	// Multi-window, multi-burn-rate: a pair trips when the canary burns
	// above its factor over its long window and its short one (the SRE
	// Workbook's rule: the long window says the burn is large, the short
	// one that it is still going on), and the long window's evidence is
	// significantly over budget.
	//
	// The evidence is anytime-valid (sequential.go): the long window's
	// test restarts every half window, and each look tests the restarts
	// of the last long window, each at its share of the pair's level; the
	// burn over the restart's range must clear the factor too. The canary
	// since its start is one more test, against the slowest pair's factor
	// and short window. Under "burn ≤ 1" every test rejects with at most
	// its level over the canary's whole life, however often it is looked
	// at, so the false rollbacks stay under alpha (TestFalseRollbackBound).
	//
	// The test is against the budget, not against the factor, because that
	// is what a false rollback is: failing a canary that spends no more
	// than its budget (burn ≤ 1). The factor is the severity a pair asks
	// for, on the point burns.
	//
	// A fail needs only this significance: the tests are valid at any
	// sample size, so minSamples never stops one (it gates a pass), and a
	// pair whose ranges have data trips even when another pair's have
	// none.
	var trips []trip
	for i, pair := range p.Spec.Windows {
		s := byWin[time.Duration(pair.Short)]
		if !s.usable() || s.value()/budget <= pair.Factor {
			continue
		}
		if i >= len(in.starts) {
			break
		}
		for _, st := range in.starts[i] {
			if w := byWin[st.age]; w.overBudget(kind, budget, st.a) && w.value()/budget > pair.Factor {
				trips = append(trips, trip{pair: pair, name: pair.String(), over: w, short: s, a: st.a})
				break
			}
		}
	}
	slowest := slowestPair(p)
	if s := byWin[time.Duration(slowest.Short)]; in.life > 0 && len(trips) == 0 && s.usable() && s.value()/budget > slowest.Factor &&
		life.overBudget(kind, budget, in.a) && life.value()/budget > slowest.Factor {
		trips = append(trips, trip{pair: slowest, name: "since the start", over: life, short: s, a: in.a})
	}
	for _, t := range trips {
		r.Tripped = append(r.Tripped, t.name)
	}

	// Canary versus stable over the longest pair's restarts.
	worse := false
	stableMissing := ""
	var worseOver window
	if r.Baseline != nil && sw != nil {
		sl := sw[longest.d]
		switch {
		case sl.err != nil:
			stableMissing = sl.err.Error()
		case !sl.usable():
			stableMissing = "no events"
		}
		// The canary's share of the bad events of both, given how many
		// there were, is Binomial with share π = ratio·nc / (ratio·nc +
		// ns) when the canary burns no more than ratio times stable
		// (Lehmann & Romano, Testing Statistical Hypotheses, 4.5); tested
		// as a sequence over those events, like the windows.
		pv := 1.0
		var starts []start
		if lp := longestPair(p); lp < len(in.starts) {
			starts = in.starts[lp]
		}
		for _, st := range starts {
			c, s := byWin[st.age], sw[st.age]
			if !c.usable() || !s.usable() || c.bad <= 0 {
				continue
			}
			pi := p.Spec.Baseline.MaxRatio * c.total / (p.Spec.Baseline.MaxRatio*c.total + s.total)
			e := logE(policies.KindRatio, c.bad, c.bad+math.Max(s.bad, 0), pi, 1, over)
			// 1/e is an anytime-valid p-value (Ville); its share of the
			// level is the restart's.
			if q := math.Exp(-e) * in.a / st.a; q < pv {
				pv = q
			}
			if e >= math.Log(1/st.a) && c.value()/budget >= p.Spec.Baseline.MinBurn {
				worse, worseOver = true, c
				break
			}
		}
		r.Baseline.PValue = Num(math.Min(pv, 1))
		r.Baseline.Worse = worse
		if len(trips) > 0 && !worse {
			// Stable burns too when it shows, for every pair the canary
			// tripped, what the canary had to: over the same range,
			// significantly over budget at the same level and burning at
			// least the pair's factor over maxRatio (the canary may burn
			// up to maxRatio times stable without being worse), and over
			// the short window too. Asking stable for minSamples events
			// instead would miss a shared fault whenever a short window is
			// thin, and fail the canary for it.
			also := true
			for _, t := range trips {
				l, s := sw[t.over.d], sw[time.Duration(t.pair.Short)]
				floor := t.pair.Factor / p.Spec.Baseline.MaxRatio
				if !l.overBudget(kind, budget, t.a) || !s.usable() || l.value()/budget < floor || s.value()/budget < floor {
					also = false
				}
			}
			r.Baseline.AlsoBad = also
		}
	}

	// Windows the canary cannot be judged in: no data, or an absence that
	// cannot be told from zero.
	var blind []string
	var blindWhy []string
	for _, w := range cw {
		if w.err != nil {
			blind = append(blind, model.Duration(w.d).String())
			if why := w.err.Error(); !slices.Contains(blindWhy, why) {
				blindWhy = append(blindWhy, why)
			}
		}
	}

	// An absent part reads as zero for the canary, but stable has its
	// series: the canary build may spell a label value another way
	// (duplicate="yes" for "true"). DESIGN.md: an absent bad series is
	// zero only when the canary demonstrably exports it.
	respelled := ""
	if sw != nil && longest.err == nil && !in.lazy {
		if sl := sw[longest.d]; sl.err == nil {
			for _, p := range longest.zeroed {
				if p != policies.PartTotal && !slices.Contains(sl.zeroed, p) {
					respelled = string(p)
					break
				}
			}
		}
	}

	dropped := ""
	if stableHas(cw, sw) {
		dropped = fmt.Sprintf("; stable %s has data there, so the canary build may have renamed or dropped a metric", in.stableHash)
	}

	fastest := fastestFactor(p)
	var nd *noData
	var respelledPart policies.Part // the hold is for it: respell.go may lift it
	switch {
	case len(trips) > 0 && r.Baseline != nil && r.Baseline.AlsoBad:
		t := trips[0]
		r.Decision = Hold
		r.Reason = fmt.Sprintf("canary burns %s over %s but stable burns %s too: not the canary's fault, look at what they share",
			fmtBurn(Num(t.over.value()/budget)), in.last(t.over.d), fmtBurn(Num(sw[t.over.d].value()/budget)))
	case len(trips) > 0:
		t := trips[0]
		r.Decision = Fail
		// A restart's range may have another window's length (the 5m/1m
		// pair's test restarted 3m ago reads "3m", like the 3m window):
		// name the pair's long window it is the end of.
		over := in.last(t.over.d)
		if t.over.d != in.life && t.over.d != time.Duration(t.pair.Long) {
			over = fmt.Sprintf("the last %s of the %s window", model.Duration(t.over.d), t.pair.Long)
		}
		r.Reason = fmt.Sprintf("burning %s budget over %s (at least %s with %s confidence) and %s over %s (limit %g× on the %s/%s pair): roll back",
			fmtBurn(Num(t.over.value()/budget)), over, fmtBurn(Num(lowerBurn(kind, t.over.bad, t.over.total, budget, t.a))), confidence(t.a),
			fmtBurn(Num(t.short.value()/budget)), in.over(t.short.d), t.pair.Factor, t.pair.Long, t.pair.Short)
	case worse:
		r.Decision = Fail
		r.Reason = fmt.Sprintf("canary %s is significantly worse than stable %s over %s (more than %g× stable, p=%.2g) and burns %s of its budget: roll back",
			fmtValue(kind, worseOver.value()), fmtValue(kind, sw[worseOver.d].value()), in.last(worseOver.d), p.Spec.Baseline.MaxRatio, float64(r.Baseline.PValue), fmtBurn(Num(worseOver.value()/budget)))
	case in.stableErr != nil:
		r.Decision, r.Error = onErr, in.stableErr.Error()
		r.Reason = "stable query failed: " + shortErr(in.stableErr, in.stableQuery)
	case len(blind) == len(cw) && longest.err != nil && errors.Is(longest.err, ErrNoData):
		r.Decision = Hold
		nd = &noData{window: longest.d, dropped: dropped}
		if !errors.As(longest.err, &nd.absent) {
			nd.absent = &absentError{part: policies.PartTotal}
		}
		r.Reason = nd.reason("not diagnosed")
	case len(blind) > 0:
		// A window without data is not a window within budget.
		r.Decision = Hold
		r.Reason = fmt.Sprintf("no data for the canary in %s (%s): a pass needs every window pair evaluated",
			strings.Join(blind, ", "), strings.Join(blindWhy, "; "))
		r.Reason += dropped
	case respelled != "":
		respelledPart = policies.Part(respelled)
		r.Decision = Hold
		r.Reason = fmt.Sprintf("the canary has no %s series in %s while stable %s has: its build may spell a label value another way (or creates the series on first use; initialise labelled counters at zero)",
			respelled, in.over(longest.d), in.stableHash)
	case stableMissing != "":
		r.Decision = Hold
		r.Reason = fmt.Sprintf("baseline asked for, but stable %s has no data in %s (%s): it is never silently dropped; check the stable hash, or turn the baseline off",
			in.stableHash, in.over(longest.d), stableMissing)
	case kind == policies.KindRatio && life.total < p.Spec.MinSamples:
		r.Decision = Hold
		r.Reason = fmt.Sprintf("thin evidence: %s of %s events needed %s", FormatCount(life.total), FormatCount(p.Spec.MinSamples), in.since(life.d))
		r.Reason += in.timeToDecide(life, kind, budget, fastest)
	case longest.overBudget(kind, budget, p.Spec.Alpha):
		// Over budget at the policy's alpha in the longest window, but not
		// at a test's level: a pass would wave through a fault that may
		// have just begun.
		name := model.Duration(longest.d).String()
		r.Decision = Hold
		r.Reason = fmt.Sprintf("burn %s over %s from %s: over budget at %s confidence, not yet at the %s a rollback needs: watching",
			fmtBurn(r.Burn[name]), in.over(longest.d), fmtEvents(longest, kind), confidence(p.Spec.Alpha), confidence(in.a))
	case !life.rulesOut(kind, budget, fastest, p.Spec.Alpha):
		// Passing needs evidence, not just the absence of a trip: the
		// canary's counts since its start must rule out, at the policy's
		// alpha, a burn as fast as the fastest pair's factor.
		r.Decision = Hold
		hi := upperBurn(kind, life.bad, life.total, budget, p.Spec.Alpha)
		r.Reason = fmt.Sprintf("thin evidence: %s %s cannot yet rule out a %g× burn (burn %s, at most %s)",
			fmtEvents(life, kind), in.since(life.d), fastest, fmtBurn(Num(life.value()/budget)), fmtBurn(Num(hi)))
		r.Reason += in.timeToDecide(life, kind, budget, fastest)
	default:
		hi := upperBurn(kind, life.bad, life.total, budget, p.Spec.Alpha)
		r.Decision = Pass
		r.Reason = fmt.Sprintf("burn %s %s (at most %s), no window pair over its limit", fmtBurn(Num(life.value()/budget)), in.since(life.d), fmtBurn(Num(hi)))
	}
	return r, nd, respelledPart
}

// trip is a window pair the canary tripped: the range whose evidence was
// over budget at level a, and the short window.
type trip struct {
	pair        policies.WindowPair
	name        string
	over, short window
	a           float64
}

// slowestPair is the pair with the smallest factor (the longest window
// among equals): the one the canary's whole life is held to.
func slowestPair(p *policies.Policy) policies.WindowPair {
	best := p.Spec.Windows[0]
	for _, w := range p.Spec.Windows[1:] {
		if w.Factor < best.Factor || w.Factor == best.Factor && w.Long > best.Long {
			best = w
		}
	}
	return best
}

// longestPair is the index of the pair with the longest long window.
func longestPair(p *policies.Policy) int {
	best := 0
	for i, w := range p.Spec.Windows {
		if w.Long > p.Spec.Windows[best].Long {
			best = i
		}
	}
	return best
}

// last names a range of d in a reason: a window's name ("5m"), or "the
// last 3m40s" for a restart or the canary's life.
func (in *sliInput) last(d time.Duration) string {
	if slices.Contains(in.policy.Windows(), d) {
		return in.over(d)
	}
	if d == in.life {
		return "the canary's " + model.Duration(d).String()
	}
	return "the last " + model.Duration(d).String()
}

// since says what the evidence counted: "since the canary's start (40m)"
// or "in 15m".
func (in *sliInput) since(d time.Duration) string {
	if in.life > 0 && (d == in.life || in.span > 0) {
		return fmt.Sprintf("since the canary's start (%s)", model.Duration(in.life))
	}
	return "in " + in.over(d)
}

// timeToDecide words how long the evidence w, the canary's life or its
// longest window, needs at the canary's pace (decide.go).
func (in *sliInput) timeToDecide(w window, kind string, budget, factor float64) string {
	exposure, cap := in.exposure(w.d), w.d
	if in.life > 0 {
		exposure, cap = in.life, 0 // the life grows: no window caps it
	}
	return timeToDecide(w, exposure, cap, kind, in.policy.Spec.Alpha, budget, factor, in.policy.Spec.MinSamples)
}

// stableHas reports whether stable has data in some window where the
// canary lacks a metric family.
func stableHas(canary []window, stable map[time.Duration]window) bool {
	for _, w := range canary {
		var ae *absentError
		if errors.As(w.err, &ae) && len(ae.families) > 0 && stable != nil && stable[w.d].err == nil {
			return true
		}
	}
	return false
}

// windowResult is one window of one target as the verdict shows it.
func windowResult(w window, kind string, budget, a float64, span time.Duration) WindowResult {
	v, lo, hi := w.bounds(kind, budget, a)
	wr := WindowResult{Window: model.Duration(w.d).String(), Span: spanOf(w.d, span), Bad: Num(w.bad), Total: Num(w.total), Value: Num(v),
		Burn: Num(v / budget), BurnLower: Num(lo / budget), BurnUpper: Num(hi / budget)}
	if w.err != nil {
		wr.Bad, wr.Total = Num(math.NaN()), Num(math.NaN())
	}
	return wr
}

// over names window d in a reason: "15m", or, while the canary is younger
// than the window (Request.Since), "15m (only 40s since the start)", the
// time the window counted.
func (in *sliInput) over(d time.Duration) string {
	if in.span > 0 && in.span < d {
		return fmt.Sprintf("%s (only %s since the start)", model.Duration(d), model.Duration(in.span))
	}
	return model.Duration(d).String()
}

// spanOf is the time window d counted when the stage, span old, is
// younger than d; empty otherwise.
func spanOf(d, span time.Duration) string {
	if span > 0 && span < d {
		return model.Duration(span).String()
	}
	return ""
}

// fmtEvents says what a window counted: "3 bad of 1200 events", "1
// event" or "13 events".
func fmtEvents(w window, kind string) string {
	if kind == policies.KindRate {
		return FormatCount(w.bad) + plural(w.bad, " event", " events")
	}
	return fmt.Sprintf("%s bad of %s%s", FormatCount(w.bad), FormatCount(w.total), plural(w.total, " event", " events"))
}

// FormatCount formats an event count for a reason or a table: increase()
// extrapolates to a window's edges, so counts have fractions; they are
// rounded, one between 0 and ½ is "<1", and from a billion on three
// significant digits ("1.84e+19": a counter near 2^64 has no meaningful
// last digits). NaN and ±Inf are "-".
func FormatCount(n float64) string {
	switch {
	case math.IsNaN(n) || math.IsInf(n, 0):
		return "-"
	case n > 0 && n < 0.5:
		return "<1"
	case math.Abs(n) >= 1e9:
		return fmt.Sprintf("%.3g", n)
	}
	return fmt.Sprintf("%.0f", n)
}

// plural is one when n formats as 1 or <1, else many.
func plural(n float64, one, many string) string {
	if c := FormatCount(n); c == "1" || c == "<1" {
		return one
	}
	return many
}

// shortErr keeps a reason to one readable line: the query, hundreds of
// characters long, is in SLIResult.Queries and the full error in Error.
func shortErr(err error, query string) string {
	msg := strings.ReplaceAll(err.Error(), strconv.Quote(query), "(see queries)")
	return strings.ReplaceAll(msg, "\n", " ")
}

// confidence shows the level 1 - a as a percentage with as many decimals
// as it takes to stay below 100 %: the per-test level of a stage with many
// looks is tiny (a = 8e-5 shows as 99.992 %), and "100 % confidence" would
// claim a certainty no bound has.
func confidence(a float64) string { return FormatConfidence(1 - a) }

// FormatConfidence shows a confidence level c (Verdict.Confidence, 1 minus
// the per-test level) as a percentage that never rounds up to 100 %.
func FormatConfidence(c float64) string {
	a := 1 - c
	c *= 100
	if a >= 0.01 {
		return fmt.Sprintf("%.3g%%", c)
	}
	decimals := min(int(math.Ceil(-math.Log10(a)-1e-9))-2, 9) // a = 1e-4 (from 1 - 0.9999): 2
	if math.Round(c*math.Pow10(decimals)) >= 100*math.Pow10(decimals) {
		return fmt.Sprintf("more than %.*f%%", decimals, 100-math.Pow10(-decimals))
	}
	return fmt.Sprintf("%.*f%%", decimals, c)
}

func fmtValue(kind string, v any) string {
	var f float64
	switch x := v.(type) {
	case float64:
		f = x
	case Num:
		f = float64(x)
	}
	if kind == policies.KindRate {
		return fmt.Sprintf("%.3g/h", f)
	}
	return fmt.Sprintf("%.3g%%", f*100)
}

// fastestFactor is the largest factor of the policy's window pairs: the
// burn a pass must rule out.
func fastestFactor(p *policies.Policy) float64 {
	fastest := 0.0
	for _, pair := range p.Spec.Windows {
		fastest = math.Max(fastest, pair.Factor)
	}
	return fastest
}

// exposure is the time a window of length d counted: the time since the
// start when that is shorter.
func (in *sliInput) exposure(d time.Duration) time.Duration {
	if in.span > 0 && in.span < d {
		return in.span
	}
	return d
}
