package policies

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
)

// bornLookback is how far before a window countFromZero looks for a
// series. A series seen in the hour before the window is an old one whose
// first sample in the window continues a count that began earlier; one
// not seen there was born inside the window (client libraries create a
// labelled counter child on its first event) and counts from zero. An
// hour rather than the window itself or the 5m staleness lookback, so
// that a scrape gap at the window's start does not make an old counter
// look new and count its whole life.
const bornLookback = time.Hour

// countFromZero rewrites, in place, every increase() and rate() of a
// plain range selector in e so that series born inside the window count
// their events from zero:
//
//	increase(m[w])  ->  (max_over_time(m[w]) unless present_over_time(m[1h] offset w))
//	                    or increase(m[w])
//	rate(m[w])      ->  the same divided by w in seconds
//
// The left side is the series born in the window, counted to their
// highest value; `or` adds the increase() of every other series (it keeps
// a right-hand series only when no left-hand one has its labels, metric
// name aside, on Prometheus and VictoriaMetrics alike). An old series with
// a single sample in the window has no increase() and counts nothing, as
// with a plain increase().
//
// increase() needs two samples of a series and counts from its first one,
// so events in a series created on first use (a phase="draining" child on
// a pod that dies minutes later) vanish; strimzi/strimzi-canary#215 and
// VictoriaMetrics/VictoriaMetrics#1962 describe the loss. A born series'
// events are its highest value: a counter starts at zero. That is exact
// unless the same series also resets inside the window, where it counts
// up to the highest value only; and it is the same on every backend, so
// Prometheus and VictoriaMetrics agree on born series (they differ only in
// how increase() extrapolates old ones). Selectors with @ are left alone.
// The range may be any window, including the $window sentinel.
func countFromZero(e parser.Expr) (parser.Expr, error) {
	var err error
	walk := func(p *parser.Expr) {
		if err == nil && *p != nil {
			*p, err = countFromZero(*p)
		}
	}
	switch n := e.(type) {
	case *parser.Call:
		for i := range n.Args {
			walk(&n.Args[i])
		}
		if err != nil || len(n.Args) != 1 || (n.Func.Name != "increase" && n.Func.Name != "rate") {
			return e, err
		}
		ms, ok := n.Args[0].(*parser.MatrixSelector)
		if !ok {
			return e, nil
		}
		vs, ok := ms.VectorSelector.(*parser.VectorSelector)
		if !ok || vs.Timestamp != nil || vs.StartOrEnd != 0 || vs.Anchored || vs.Smoothed || ms.RangeExpr != nil || vs.OriginalOffsetExpr != nil {
			return e, nil
		}
		plain := *vs
		plain.OriginalOffset = 0
		before := fmt.Sprintf("present_over_time(%s[%s] offset %s)", plain.String(), model.Duration(bornLookback), model.Duration(ms.Range+vs.OriginalOffset))
		text := fmt.Sprintf("((max_over_time(%[1]s) unless %[2]s) or increase(%[1]s))", ms.String(), before)
		if n.Func.Name == "rate" {
			text = fmt.Sprintf("(%s / %g)", text, ms.Range.Seconds())
		}
		out, perr := promqlParser.ParseExpr(text)
		if perr != nil {
			return e, fmt.Errorf("count series born in the window from zero: %w", perr)
		}
		return out, nil
	case *parser.AggregateExpr:
		walk(&n.Expr)
		walk(&n.Param)
	case *parser.BinaryExpr:
		walk(&n.LHS)
		walk(&n.RHS)
	case *parser.ParenExpr:
		walk(&n.Expr)
	case *parser.UnaryExpr:
		walk(&n.Expr)
	case *parser.SubqueryExpr:
		walk(&n.Expr)
	case *parser.StepInvariantExpr:
		walk(&n.Expr)
	}
	return e, err
}

// Presence checks. A part's value counts only when the canary
// demonstrably exports what the part reads: every metric family the part
// selects has a series for the target in the window (so a fallback such as
// `or vector(0)` cannot stand in for a renamed metric), and an absent bad
// (or good, or events) series reads as zero only then. A family is the selector reduced to its metric name, its
// target matchers ($service, $namespace, $hash) and its le and quantile
// matchers: other label values (phase="draining", response_code="503")
// may be created on first use, so their absence proves nothing, but a
// histogram's buckets and a summary's quantiles always exist, so an le or
// quantile that matches nothing is a spelling that does not match
// (le="2" against Prometheus 3's le="2.0").

// presenceLabels are the labels a family keeps besides the metric name
// and the target matchers.
var presenceLabels = []string{"le", "quantile"}

// family reduces a selector to the metric family the target exports:
// its metric name, target, le and quantile matchers as written, and, for
// every other matcher that needs its label (one the empty value does not
// satisfy, such as code=~"5.."), that the label exists: a family whose
// label was renamed (code to status_code) is not exported, while one
// whose other children exist (code="200") is.
func family(vs *parser.VectorSelector) string {
	fam := &parser.VectorSelector{Name: vs.Name}
	for _, m := range vs.LabelMatchers {
		switch {
		case m.Name == model.MetricNameLabel || slices.Contains(targetPlaceholders, m.Value) || slices.Contains(presenceLabels, m.Name):
			fam.LabelMatchers = append(fam.LabelMatchers, m)
		case !m.Matches(""):
			fam.LabelMatchers = append(fam.LabelMatchers, labels.MustNewMatcher(labels.MatchRegexp, m.Name, ".+"))
		}
	}
	return fam.String()
}

// families returns the distinct families e reads, in order of appearance.
func families(e parser.Expr) []string {
	var out []string
	parser.Inspect(e, func(node parser.Node, _ []parser.Node) error {
		if vs, ok := node.(*parser.VectorSelector); ok {
			if f := family(vs); !slices.Contains(out, f) {
				out = append(out, f)
			}
		}
		return nil
	})
	return out
}

// absenceSafe reports whether an empty result of e can mean "no events"
// once every family it reads is present. An operation between two vectors
// other than or/unless (a - b, a * on() group_left b, a and b) is empty
// when one side is, or when their labels do not match: its absence cannot
// be told from zero.
func absenceSafe(e parser.Expr) bool {
	safe := true
	parser.Inspect(e, func(node parser.Node, _ []parser.Node) error {
		b, ok := node.(*parser.BinaryExpr)
		if !ok || b.Op == parser.LOR || b.Op == parser.LUNLESS {
			return nil
		}
		if b.LHS.Type() == parser.ValueTypeVector && b.RHS.Type() == parser.ValueTypeVector {
			safe = false
		}
		return nil
	})
	return safe
}

// presenceExpr is the query of one family's presence in $window: one
// series while the target has a series of it with two samples there (what
// an increase() needs to measure anything), none otherwise. A window
// shorter than two scrapes therefore has no data rather than zero events.
func presenceExpr(fam string) string {
	return fmt.Sprintf("count(count_over_time(%s[%s]) > 1)", fam, PlaceholderWindow)
}

// familyPart names the presence check of the SLI's i-th family:
// "presence/0", "presence/1", ...
func familyPart(i int) Part { return Part(fmt.Sprintf("%s/%d", PartPresence, i)) }

// Absence says how to read a part that is absent from a window's result.
type Absence struct {
	// Needs are the presence parts that must all be in the window's result
	// for the part's value, or its absence as zero, to count: one per
	// family the part reads.
	Needs []Part
	// Safe is false when the part's query can be empty although every
	// family it reads exists (an operation between two vectors).
	Safe bool
}

// Absence returns how an absent part reads (see the presence checks
// above). For a part the SLI does not have it is the zero Absence.
func (s *SLI) Absence(p Part) Absence { return s.compiled.absence[p] }

// Family returns, for a presence part, the selector of the family it
// checks, filled in for target t: what a reason names when it is missing.
func (s *SLI) Family(p Part, t Target) string {
	return render(s.compiled.families[p], t)
}

// IsFamily reports whether p is a family presence check derived by
// compile, not a part the SLI's author wrote.
func IsFamily(p Part) bool { return strings.HasPrefix(string(p), string(PartPresence)+"/") }

// callsPerSecond reports whether e calls rate() or irate(), which give
// events per second where a rate SLI's events part must count them.
func callsPerSecond(e parser.Expr) bool { return perSecondCall(e) != "" }

// perSecondCall returns the name of the first rate() or irate() call in
// e, or "".
func perSecondCall(e parser.Expr) string {
	found := ""
	parser.Inspect(e, func(node parser.Node, _ []parser.Node) error {
		if c, ok := node.(*parser.Call); ok && found == "" && (c.Func.Name == "rate" || c.Func.Name == "irate") {
			found = c.Func.Name
		}
		return nil
	})
	return found
}
