package policies

import (
	"fmt"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
)

// This file holds the checks of an SLI's queries that look at each part on
// its own, apart from compile (query.go), which builds the batched query:
// that every part selects the target, and lint's checks of le and quantile
// matchers and of ratio SLIs that give rates where counts are needed.

// Query is one query of an SLI as written: its field, as a policy's
// spec.slis entry names it ("ratio.bad", "rate.events"), and its PromQL
// with $window and the target's placeholders unfilled.
type Query struct {
	Field string
	Expr  string
}

// Queries returns the queries s gives, in field order; a preset's are
// filled in once the policy has loaded. Blank fields are left out.
func (s *SLI) Queries() []Query {
	var out []Query
	add := func(field, expr string) {
		if strings.TrimSpace(expr) != "" {
			out = append(out, Query{field, expr})
		}
	}
	if r := s.Ratio; r != nil {
		add("ratio.bad", r.Bad)
		add("ratio.good", r.Good)
		add("ratio.total", r.Total)
	}
	if r := s.Rate; r != nil {
		add("rate.events", r.Events)
		add("rate.presence", r.Presence)
	}
	return out
}

// partParser parses parts for these checks, with Prometheus's defaults.
var partParser = parser.NewParser(parser.Options{})

// parsePart parses a part with a stand-in for $window. It reports false
// when the part does not parse or is too long to (tooLong); compile
// reports why.
func parsePart(expr string) (parser.Expr, bool) {
	if tooLong(expr) {
		return nil, false
	}
	e, err := partParser.ParseExpr(strings.ReplaceAll(expr, PlaceholderWindow, model.Duration(time.Minute).String()))
	return e, err == nil
}

// checkPartTargets reports every part of s that selects nothing through
// an equality matcher on $hash or $service. A part is counted on its own
// target: `bad: vector(0)`, or a bad query on a metric of every version,
// would give a failing canary the numbers of something else. Parts that do
// not parse, or whose placeholders compile refused, are left to that
// problem.
func checkPartTargets(path string, s *SLI, compiled []error) []error {
	var errs []error
	for _, part := range s.Queries() {
		fp := join(path, part.Field)
		e, ok := parsePart(part.Expr)
		if !ok || slices.ContainsFunc(compiled, func(err error) bool {
			fe, ok := err.(*FieldError)
			return ok && fe.Path == fp && strings.Contains(fe.Msg, "placeholder")
		}) {
			continue
		}
		if !selectsTarget(e) {
			errs = append(errs, &FieldError{Path: fp, Msg: fmt.Sprintf(
				`query %s does not select the target: none of its selectors has a matcher ="$hash" or ="$service", so it gives the same numbers for canary and stable`, quoteCut(part.Expr))})
		}
	}
	return errs
}

// selectsTarget reports whether some selector of e has an equality matcher
// whose value is $hash or $service.
func selectsTarget(e parser.Expr) bool {
	found := false
	parser.Inspect(e, func(node parser.Node, _ []parser.Node) error {
		if vs, ok := node.(*parser.VectorSelector); ok {
			for _, m := range vs.LabelMatchers {
				if m.Type == labels.MatchEqual && (m.Value == PlaceholderHash || m.Value == PlaceholderService) {
					found = true
				}
			}
		}
		return nil
	})
	return found
}

// lint reports what a policy that loads may still get wrong, each as a
// *FieldError at the line of its SLI part: an exact le or quantile matcher
// that only one spelling of its number satisfies (see spellings), and a
// ratio SLI's part that calls rate() or irate() (see perSecondProblem).
func (p *Policy) lint(lines map[string]int) []error {
	var errs []error
	for i := range p.Spec.SLIs[:min(len(p.Spec.SLIs), maxSLIs)] { // validate reports the rest
		s := &p.Spec.SLIs[i]
		path := fmt.Sprintf("spec.slis[%d]", i)
		for _, part := range s.Queries() {
			e, ok := parsePart(part.Expr)
			if !ok {
				continue
			}
			fp := join(path, part.Field)
			if fn := perSecondCall(e); s.Rate == nil && fn != "" {
				errs = append(errs, &FieldError{Path: fp, Line: lineOf(lines, fp), Msg: perSecondProblem(s.Name, part.Expr, fn)})
			}
			seen := map[string]bool{}
			parser.Inspect(e, func(node parser.Node, _ []parser.Node) error {
				vs, ok := node.(*parser.VectorSelector)
				if !ok {
					return nil
				}
				for _, m := range vs.LabelMatchers {
					if msg := spellingProblem(m); msg != "" && !seen[m.String()] {
						seen[m.String()] = true
						errs = append(errs, &FieldError{Path: fp, Line: lineOf(lines, fp), Msg: msg})
					}
				}
				return nil
			})
		}
	}
	return errs
}

// perSecondProblem says why a ratio SLI's part that calls rate() or
// irate() is wrong. The engine's tests bound counts of events (bad of
// total, README "Statistics"); a per-second rate keeps the bad share but
// divides the events by the window's seconds, so 1,500 requests in 5m
// read as 5: such an SLI has a 300th of its evidence in a 5m window, too
// little for minSamples and the pass test at any ordinary traffic, and
// holds as "thin evidence" where the same canary counted with increase()
// passes. It loads, since the share it reads is right (a rate SLI's
// events part that does the same is refused outright by compile); for a
// ratio SLI lint is where it is caught.
func perSecondProblem(sli, expr, fn string) string {
	return fmt.Sprintf("SLI %q: query %s counts with %s(), events per second, where the engine's tests need the events in the window: 1,500 requests in 5m read as 5, so the SLI holds as thin evidence where counted events would pass; use increase()",
		sli, quoteCut(expr), fn)
}

// numberLiteral returns the value of e when it is a number, in
// parentheses or not: 300, (300).
func numberLiteral(e parser.Expr) (float64, bool) {
	for {
		p, ok := e.(*parser.ParenExpr)
		if !ok {
			break
		}
		e = p.Expr
	}
	l, ok := e.(*parser.NumberLiteral)
	if !ok {
		return 0, false
	}
	return l.Val, true
}

// scaledBy returns the first multiplication or division of a vector by a
// number other than 1 in e ("/" and 300 for sum(increase(x[$window]))/300),
// or "" when there is none.
func scaledBy(e parser.Expr) (op string, n float64) {
	number := func(e parser.Expr) (float64, bool) {
		l, ok := numberLiteral(e)
		if !ok || l == 1 {
			return 0, false
		}
		return l, true
	}
	parser.Inspect(e, func(node parser.Node, _ []parser.Node) error {
		b, ok := node.(*parser.BinaryExpr)
		if !ok || op != "" || (b.Op != parser.MUL && b.Op != parser.DIV) {
			return nil
		}
		if v, ok := number(b.RHS); ok && b.LHS.Type() == parser.ValueTypeVector {
			op, n = b.Op.String(), v
		} else if v, ok := number(b.LHS); ok && b.Op == parser.MUL && b.RHS.Type() == parser.ValueTypeVector {
			op, n = b.Op.String(), v
		}
		return nil
	})
	return op, n
}

// countFunctions are the functions a part may call: increase() and
// resets() count events, label_replace() and label_join() only relabel,
// vector() is a fallback (`or vector(0)`: the presence checks judge it),
// and rate() and irate() are judged by their own rules (compile refuses
// them in a rate SLI's events, lint flags them in a ratio's parts).
var countFunctions = []string{"increase", "resets", "changes", "label_replace", "label_join", "vector", "rate", "irate"}

// countAggregations are the aggregations a part may use: sum and count
// add up, max, min and group pick an info metric's series for a join.
var countAggregations = []parser.ItemType{parser.SUM, parser.COUNT, parser.MAX, parser.MIN, parser.GROUP}

// notACount says what makes e something other than a count of events in
// the window, or "" when nothing does: a value read at another time
// (offset, @), a subquery, a function or aggregation that changes values
// (clamp_max, round, avg, topk, *_over_time), arithmetic or a threshold
// against a constant (* (1/60), / scalar(vector(60)), / time(), % 1,
// > 1000), a bool comparison, a negation. Arithmetic between two vectors
// that both read series (h_count - h_bucket, a join with an info metric)
// and set operators (or, and, unless) are counts. scaledBy, checked
// first, gives a multiplication by a number its own message.
func notACount(e parser.Expr) string {
	constant := func(e parser.Expr) bool {
		found := false
		parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
			if _, ok := n.(*parser.VectorSelector); ok {
				found = true
			}
			return nil
		})
		return !found
	}
	literal := func(e parser.Expr, v float64) bool {
		l, ok := numberLiteral(e)
		return ok && l == v
	}
	what := ""
	parser.Inspect(e, func(node parser.Node, _ []parser.Node) error {
		if what != "" {
			return nil
		}
		switch n := node.(type) {
		case *parser.VectorSelector:
			if n.OriginalOffset != 0 || n.OriginalOffsetExpr != nil || n.Timestamp != nil || n.StartOrEnd != 0 {
				what = "reads " + n.Name + " at another time (offset or @): not the window's events"
			}
		case *parser.SubqueryExpr:
			what = "uses a subquery"
		case *parser.Call:
			if !slices.Contains(countFunctions, n.Func.Name) {
				what = "applies " + n.Func.Name + "(), which changes the count"
			}
		case *parser.AggregateExpr:
			if !slices.Contains(countAggregations, n.Op) {
				what = "aggregates with " + n.Op.String() + ", which is no count"
			}
		case *parser.UnaryExpr:
			if n.Op == parser.SUB {
				what = "negates the count"
			}
		case *parser.BinaryExpr:
			switch {
			case n.Op.IsSetOperator():
			case n.ReturnBool:
				what = "compares with bool: 0 or 1 for a count"
			case n.Op.IsComparisonOperator():
				if (constant(n.RHS) && !literal(n.RHS, 0)) || (constant(n.LHS) && !literal(n.LHS, 0)) {
					what = "drops counts by a threshold (" + n.Op.String() + " a constant): the events under it vanish"
				}
			case n.Op == parser.POW || n.Op == parser.MOD || n.Op == parser.ATAN2:
				what = "applies " + n.Op.String() + " to the count"
			case constant(n.RHS) || constant(n.LHS):
				if (n.Op == parser.MUL || n.Op == parser.DIV) && (literal(n.RHS, 1) || literal(n.LHS, 1) && n.Op == parser.MUL) {
					return nil
				}
				what = "does arithmetic (" + n.Op.String() + ") with a constant: the count is scaled or shifted"
			}
		}
		return nil
	})
	return what
}

// scaleProblem says why a part that multiplies or divides its count by a
// number is refused (compile), although the policy would run: the engine's tests bound counts of events (README
// "Statistics"), so a ratio SLI divided by 300 claims a 300th of its
// evidence (and holds on thin evidence) and one multiplied claims evidence
// it does not have; a rate SLI's burn is its events over its allowance, so
// dividing them hides a fault that burns less than the divisor times the
// limit. A count in other units (a counter of milliseconds, bytes) is no
// count of events: count the events themselves.
func scaleProblem(sli, expr, op string, n float64, rate bool) string {
	f := n
	verb := "multiplies"
	if op == "/" {
		f, verb = 1/n, "divides"
	}
	effect := fmt.Sprintf("the SLI weighs its evidence %s× (a factor below 1 holds on thin evidence, one above 1 claims evidence it does not have)", strconv.FormatFloat(f, 'g', 3, 64))
	if rate {
		effect = fmt.Sprintf("the SLI reads %s× its burn (a factor below 1 hides a fault, one above 1 fails a healthy canary)", strconv.FormatFloat(f, 'g', 3, 64))
	}
	return fmt.Sprintf("SLI %q: query %s %s its count of events by %s, where the engine's tests need the events in the window as counted: %s; count with increase() alone",
		sli, quoteCut(expr), verb, strconv.FormatFloat(n, 'g', -1, 64), effect)
}

// spellings returns the ways servers may store the number f of an le or
// quantile label written v, v first, without repeats:
//
//   - Go's shortest form ("2", "0.5", "1e+06"): client_golang's text
//     format, which Prometheus 2 stores as scraped;
//   - OpenMetrics' canonical form ("2.0", "0.5", "1e+06"): what an
//     OpenMetrics exposition writes and what Prometheus 3 rewrites every
//     le and quantile value to (labels.FormatOpenMetricsFloat);
//   - for whole numbers below 1e7, the decimal "1000000.0" that
//     client_python and client_java write and Prometheus 2 keeps.
func spellings(v string, f float64) []string {
	out := []string{v}
	add := func(s string) {
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	add(strconv.FormatFloat(f, 'g', -1, 64))
	add(labels.FormatOpenMetricsFloat(f))
	if f == math.Trunc(f) && math.Abs(f) < 1e7 {
		add(strconv.FormatFloat(f, 'f', -1, 64) + ".0")
	}
	return out
}

// spellingProblem returns why an le or quantile matcher holds for only
// some spellings of its numbers, with a matcher that holds for all, or ""
// when it holds for every spelling (or is not about numbers).
func spellingProblem(m *labels.Matcher) string {
	if m.Name != model.BucketLabel && m.Name != model.QuantileLabel {
		return ""
	}
	// values are the matcher's literal values, and want every spelling of
	// each, for the suggested regular expression.
	var values, want []string
	switch m.Type {
	case labels.MatchEqual, labels.MatchNotEqual:
		values = []string{m.Value}
	default:
		values = m.SetMatches() // nil for a pattern that is not a list of values
	}
	var missed []string
	for _, v := range values {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			want = append(want, v)
			continue
		}
		for _, s := range spellings(v, f) {
			if !slices.Contains(want, s) {
				want = append(want, s)
			}
			// The regular expression itself must hold for s, whether the
			// matcher keeps (=~) or drops (!~) what it matches.
			holds := s == v
			if m.Type == labels.MatchRegexp || m.Type == labels.MatchNotRegexp {
				holds = m.Matches(s) == (m.Type == labels.MatchRegexp)
			}
			if !holds {
				missed = append(missed, strconv.Quote(s))
			}
		}
	}
	if len(missed) == 0 {
		return ""
	}
	re := make([]string, len(want))
	for i, s := range want {
		re[i] = regexp.QuoteMeta(s)
	}
	typ := labels.MatchRegexp
	if m.Type == labels.MatchNotEqual || m.Type == labels.MatchNotRegexp {
		typ = labels.MatchNotRegexp
	}
	fix := fmt.Sprintf("%s%s%s", m.Name, typ, strconv.Quote(strings.Join(re, "|")))
	verb, effect, holds := "match", "selects no series, read as no events", "matches"
	if typ == labels.MatchNotRegexp {
		verb, effect, holds = "exclude", "keeps the series it means to drop", "excludes"
	}
	number := "number"
	if len(missed) > 1 {
		number = "numbers"
	}
	return fmt.Sprintf("%s does not %s %s, the same %s spelled otherwise (Prometheus 2 stores each exporter's spelling, Prometheus 3 and OpenMetrics write %s): where it is so spelled, the query %s; use %s, which %s every spelling",
		m, verb, strings.Join(missed, ", "), number, canonical(values), effect, fix, holds)
}

// canonical returns the OpenMetrics spellings of the numeric values, for
// the message.
func canonical(values []string) string {
	var out []string
	for _, v := range values {
		if f, err := strconv.ParseFloat(v, 64); err == nil {
			out = append(out, strconv.Quote(labels.FormatOpenMetricsFloat(f)))
		}
	}
	return strings.Join(out, ", ")
}
