package policies

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
)

// Placeholders a query may use. $window is replaced by each window of the
// policy before parsing; the others may only be whole label matcher values
// of = or != matchers, and are filled per target after validation, so that
// no outside value is ever pasted into PromQL unchecked.
const (
	PlaceholderWindow    = "$window"
	PlaceholderService   = "$service"
	PlaceholderNamespace = "$namespace"
	PlaceholderHash      = "$hash"
)

var targetPlaceholders = []string{PlaceholderService, PlaceholderNamespace, PlaceholderHash}

// promqlParser parses with Prometheus's default options.
var promqlParser = parser.NewParser(parser.Options{})

// Part names one series of an SLI's batched query.
type Part string

// Parts of a batched query.
const (
	PartBad      Part = "bad"
	PartGood     Part = "good"
	PartTotal    Part = "total"
	PartEvents   Part = "events"
	PartPresence Part = "presence"
)

// PartLabel and WindowLabel tag each series of a batched query.
const (
	PartLabel   = "phaseguard_part"
	WindowLabel = "phaseguard_window"
)

// compiledSLI holds an SLI's queries printed from their parsed form, one
// per (part, window), with target placeholders still in place.
type compiledSLI struct {
	srcs    []partSource // the parts' expressions, $window in place
	parts   []Part
	windows []time.Duration
	printed map[Part][]string // part -> per window
	// anyWindow is each part printed with the window sentinelWindow, for
	// QueryWithin to put any range in without parsing again; a part is
	// missing when that substitution would not give what parsing gives.
	anyWindow map[Part]string
	uses      map[string]bool // target placeholders used
	batchTpl  string          // the whole batched query, placeholders in place
	// absence says how each of the author's parts reads when absent;
	// families holds the selector each family part checks.
	absence  map[Part]Absence
	families map[Part]string
}

// Target selects the series of one version of a service. Its values are
// validated by the caller (analysis.Target.Validate) before they reach
// Render; Render quotes them as PromQL strings regardless.
type Target struct {
	Service   string
	Namespace string
	Hash      string
}

// Uses reports whether any query of the SLI uses the placeholder.
func (s *SLI) Uses(placeholder string) bool { return s.compiled != nil && s.compiled.uses[placeholder] }

// Parts returns the parts of the SLI's batched query.
func (s *SLI) Parts() []Part { return s.compiled.parts }

// Query returns the batched PromQL query of the SLI for one target: every
// part in every window of the policy, each series tagged with PartLabel and
// WindowLabel, joined with `or`. One query per SLI per target per
// evaluation.
func (s *SLI) Query(t Target) string {
	return render(s.compiled.batchTpl, t)
}

// PartQuery returns one part's query in one window for a target as it is
// sent (series born in the window counted from zero), for display.
func (s *SLI) PartQuery(p Part, w time.Duration, t Target) string {
	i := slices.Index(s.compiled.windows, w)
	q := s.compiled.printed[p]
	if i < 0 || q == nil {
		return ""
	}
	return render(q[i], t)
}

// AuthoredQuery returns one part's query in window w for a target as its
// author wrote it, without the rewrite that counts series born in the
// window from zero (countFromZero): the query an Argo Rollouts or Flagger
// user sends for the same SLI. Empty for a part or window the SLI does
// not have.
func (s *SLI) AuthoredQuery(p Part, w time.Duration, t Target) string {
	i := slices.IndexFunc(s.compiled.srcs, func(q partSource) bool { return q.part == p })
	if i < 0 || !slices.Contains(s.compiled.windows, w) {
		return ""
	}
	expr, err := promqlParser.ParseExpr(strings.ReplaceAll(s.compiled.srcs[i].expr, PlaceholderWindow, model.Duration(w).String()))
	if err != nil {
		return "" // parsed at compile time with every window
	}
	if expr.Type() == parser.ValueTypeScalar {
		expr = &parser.Call{Func: parser.Functions["vector"], Args: parser.Expressions{expr}}
	}
	return render(expr.String(), t)
}

// QueryWithin returns Query(t) with every window longer than span cut to
// span, rounded up to a whole second: each series keeps its window's
// label, so the result reads as Query's, but counts only the last span.
// Evaluating a stage younger than a window uses it, so that canary and
// stable are counted over the same time, the stage's own. A span at least
// as long as every window gives Query(t) itself.
func (s *SLI) QueryWithin(t Target, span time.Duration) (string, error) {
	return s.QueryRanges(t, max(span, time.Second), nil)
}

// QueryRanges returns QueryWithin(t, span) with every part also counted
// over each range in extra, each tagged with WindowLabel set to the range
// as a duration (model.Duration's form, whole seconds): the counts since
// the canary's start, or since a restart of a window pair's test. A range
// equal to one of the policy's windows is that window's series, not sent
// twice; extra ranges are rounded down to whole seconds, and one under a
// second is dropped. A span of 0 or less cuts no window.
func (s *SLI) QueryRanges(t Target, span time.Duration, extra []time.Duration) (string, error) {
	c := s.compiled
	switch {
	case span <= 0:
		span = time.Duration(math.MaxInt64) // no window cut
	case span%time.Second != 0:
		span = span.Truncate(time.Second) + time.Second
	}
	var more []time.Duration
	for _, d := range extra {
		d = d.Truncate(time.Second)
		if d >= time.Second && !slices.Contains(c.windows, d) && !slices.Contains(more, d) {
			more = append(more, d)
		}
	}
	cut := slices.ContainsFunc(c.windows, func(w time.Duration) bool { return w > span })
	if !cut && len(more) == 0 {
		return s.Query(t), nil
	}
	var batch []string
	for _, q := range c.srcs {
		// over prints the part counted over d.
		over := func(d time.Duration) (string, error) {
			if tpl, ok := c.anyWindow[q.part]; ok {
				return withWindow(tpl, d), nil
			}
			// Every part parsed at compile time with each window; another
			// range cannot make it fail to parse.
			expr, err := promqlParser.ParseExpr(strings.ReplaceAll(q.expr, PlaceholderWindow, model.Duration(d).String()))
			if err == nil {
				expr, err = finish(expr)
			}
			if err != nil {
				return "", fmt.Errorf("sli %s: %s query over %s: %w", s.Name, q.part, model.Duration(d), err)
			}
			return expr.String(), nil
		}
		for i, w := range c.windows {
			printed := c.printed[q.part][i]
			if w > span {
				var err error
				if printed, err = over(span); err != nil {
					return "", err
				}
			}
			batch = append(batch, batchPart(printed, q.part, w))
		}
		for _, d := range more {
			printed, err := over(d)
			if err != nil {
				return "", err
			}
			batch = append(batch, batchPart(printed, q.part, d))
		}
	}
	return render(strings.Join(batch, " or "), t), nil
}

// sentinelWindow stands for $window in a part printed once for any range:
// a duration no query writes, printed as "16w2d7h29m3s".
const sentinelWindow = 9876543 * time.Second

// printWithSentinel parses expr with sentinelWindow for $window and
// prints it as compile does.
func printWithSentinel(expr string) (string, bool) {
	e, err := promqlParser.ParseExpr(strings.ReplaceAll(expr, PlaceholderWindow, model.Duration(sentinelWindow).String()))
	if err == nil {
		e, err = finish(e)
	}
	if err != nil {
		return "", false
	}
	return e.String(), true
}

// finish turns a part's parsed expression into what is sent: a scalar
// wrapped in vector(), every counter increase counting series born in the
// window from zero (countFromZero).
func finish(e parser.Expr) (parser.Expr, error) {
	if e.Type() == parser.ValueTypeScalar {
		e = &parser.Call{Func: parser.Functions["vector"], Args: parser.Expressions{e}}
	}
	return countFromZero(e)
}

// withWindow puts window w where printWithSentinel put the sentinel.
func withWindow(tpl string, w time.Duration) string {
	return strings.ReplaceAll(tpl, model.Duration(sentinelWindow).String(), model.Duration(w).String())
}

// partSource is one part's query as written.
type partSource struct {
	part Part
	expr string
}

// batchPart tags one part's query in one window for the batched query.
func batchPart(printed string, part Part, w time.Duration) string {
	return fmt.Sprintf(`label_replace(label_replace(%s, %q, %q, "", ""), %q, %q, "", "")`,
		printed, PartLabel, string(part), WindowLabel, model.Duration(w).String())
}

func render(tpl string, t Target) string {
	return strings.NewReplacer(
		strconv.Quote(PlaceholderService), strconv.Quote(t.Service),
		strconv.Quote(PlaceholderNamespace), strconv.Quote(t.Namespace),
		strconv.Quote(PlaceholderHash), strconv.Quote(t.Hash),
	).Replace(tpl)
}

// compile parses every query of s for every window and builds the batched
// query. Errors carry the field path of the query.
func (s *SLI) compile(path string, windows []time.Duration) []error {
	c := &compiledSLI{windows: windows, printed: map[Part][]string{}, anyWindow: map[Part]string{}, uses: map[string]bool{},
		absence: map[Part]Absence{}, families: map[Part]string{}}
	var errs []error
	type src struct {
		part  Part
		field string
		expr  string
	}
	var srcs []src
	switch {
	case s.Rate != nil:
		srcs = append(srcs, src{PartEvents, "rate.events", s.Rate.Events})
		if s.Rate.Presence != "" {
			srcs = append(srcs, src{PartPresence, "rate.presence", s.Rate.Presence})
		}
	case s.Ratio != nil:
		if s.Ratio.Bad != "" {
			srcs = append(srcs, src{PartBad, "ratio.bad", s.Ratio.Bad})
		}
		if s.Ratio.Good != "" {
			srcs = append(srcs, src{PartGood, "ratio.good", s.Ratio.Good})
		}
		srcs = append(srcs, src{PartTotal, "ratio.total", s.Ratio.Total})
	}
	authored := len(srcs)
	var batch []string
	for k := 0; k < len(srcs); k++ {
		q := srcs[k]
		if strings.TrimSpace(q.expr) == "" {
			continue // reported by validation
		}
		fp := join(path, q.field)
		if tooLong(q.expr) {
			errs = append(errs, &FieldError{Path: fp, Msg: fmt.Sprintf("query %s: more than %d PromQL tokens: a part of an SLI is one short expression", quoteCut(q.expr), maxQueryTokens)})
			continue
		}
		c.parts = append(c.parts, q.part)
		c.srcs = append(c.srcs, partSource{q.part, q.expr})
		for i, w := range windows {
			text := strings.ReplaceAll(q.expr, PlaceholderWindow, model.Duration(w).String())
			expr, err := promqlParser.ParseExpr(text)
			if err != nil {
				errs = append(errs, &FieldError{Path: fp, Msg: fmt.Sprintf("bad PromQL %s: %v", quoteCut(q.expr), err)})
				break
			}
			if err := checkPlaceholders(expr, c.uses); err != nil {
				errs = append(errs, &FieldError{Path: fp, Msg: fmt.Sprintf("query %s: %v", quoteCut(q.expr), err)})
				break
			}
			if t := expr.Type(); t != parser.ValueTypeVector && t != parser.ValueTypeScalar {
				errs = append(errs, &FieldError{Path: fp, Msg: fmt.Sprintf("query %s returns a %s; it must return an instant vector", quoteCut(q.expr), t)})
				break
			}
			if i == 0 && q.part == PartEvents && callsPerSecond(expr) {
				errs = append(errs, &FieldError{Path: fp, Msg: fmt.Sprintf("SLI %q: query %s uses rate() or irate(): events are a count in the window, use increase()", s.Name, quoteCut(q.expr))})
				break
			}
			if i == 0 && k < authored && q.part != PartPresence {
				if op, n := scaledBy(expr); op != "" {
					errs = append(errs, &FieldError{Path: fp, Msg: scaleProblem(s.Name, q.expr, op, n, s.Rate != nil)})
					break
				}
				if what := notACount(expr); what != "" {
					errs = append(errs, &FieldError{Path: fp, Msg: fmt.Sprintf("SLI %q: query %s %s, where the engine's tests need the events in the window as counted (sums of increase() or resets(), joined, added, or filtered with and, or, unless): the SLI would weigh evidence, or read a burn, it does not have", s.Name, quoteCut(q.expr), what)})
					break
				}
			}
			if i == 0 && k < authored {
				// How the part reads when absent, from the query as
				// written; each family it reads gets a presence part.
				a := Absence{Safe: absenceSafe(expr)}
				fams := families(expr)
				if n := len(c.families) + countNew(fams, c.families); n > maxFamilies {
					errs = append(errs, &FieldError{Path: fp, Msg: fmt.Sprintf("query %s: the SLI's queries read %d metric families, at most %d: each family is checked for presence in every window",
						quoteCut(q.expr), n, maxFamilies)})
					break
				}
				for _, f := range fams {
					j := slices.IndexFunc(srcs[authored:], func(x src) bool { return x.expr == presenceExpr(f) })
					if j < 0 {
						j = len(srcs) - authored
						srcs = append(srcs, src{familyPart(j), fmt.Sprintf("%s (family %s)", q.field, f), presenceExpr(f)})
						c.families[familyPart(j)] = f
					}
					a.Needs = append(a.Needs, familyPart(j))
				}
				c.absence[q.part] = a
			}
			if expr, err = finish(expr); err != nil {
				errs = append(errs, &FieldError{Path: fp, Msg: fmt.Sprintf("query %s: %v", quoteCut(q.expr), err)})
				break
			}
			printed := expr.String()
			c.printed[q.part] = append(c.printed[q.part], printed)
			batch = append(batch, batchPart(printed, q.part, w))
		}
		if tpl, ok := printWithSentinel(q.expr); ok && len(c.printed[q.part]) == len(windows) {
			same := true
			for i, w := range windows {
				same = same && withWindow(tpl, w) == c.printed[q.part][i]
			}
			if same {
				c.anyWindow[q.part] = tpl
			}
		}
	}
	if len(errs) > 0 {
		return errs
	}
	for _, q := range srcs[:authored] {
		if strings.TrimSpace(q.expr) != "" && !strings.Contains(q.expr, PlaceholderWindow) {
			errs = append(errs, &FieldError{Path: join(path, q.field), Msg: fmt.Sprintf("query %s does not use $window: it would count the same range in every window", quoteCut(q.expr))})
		}
	}
	// That every part selects the target is checkPartTargets' to say.
	c.batchTpl = strings.Join(batch, " or ")
	// The batched query is built from parsed parts; parse it once to be sure.
	if _, err := promqlParser.ParseExpr(c.batchTpl); err != nil && len(batch) > 0 {
		errs = append(errs, &FieldError{Path: path, Msg: fmt.Sprintf("batched query does not parse: %v", err)})
	}
	s.compiled = c
	return errs
}

// maxQueryTokens bounds the PromQL tokens of one query as written (the
// presets' have at most 48). The Prometheus parser and printer take time
// and memory that grow with the square of an expression's depth (64 KB of
// `- - - ... x` or `a + a + ... + a` parse in 15 to 20 s), and compile
// parses and prints each part once per window: a query is measured, in
// linear time, before it is parsed.
const maxQueryTokens = 256

// tooLong reports whether expr, with a window in place of $window, has
// more than maxQueryTokens tokens.
func tooLong(expr string) bool {
	l := parser.Lex(strings.ReplaceAll(expr, PlaceholderWindow, "1m"))
	var it parser.Item
	for n := 0; n <= maxQueryTokens; n++ {
		if l.NextItem(&it); it.Typ == parser.EOF || it.Typ == parser.ERROR {
			return false
		}
	}
	return true
}

// maxQuoted bounds how much of a query, string or label a problem quotes,
// in bytes: enough to recognise it (the problem's line says where it is).
const maxQuoted = 200

// quoteCut quotes s, cut to maxQuoted bytes at a rune boundary.
func quoteCut(s string) string {
	return strconv.Quote(cutText(s, maxQuoted))
}

// countNew counts the families of fams (distinct) that known, the
// families of an SLI's presence parts, does not have yet.
func countNew(fams []string, known map[Part]string) int {
	n := len(fams)
	for _, f := range fams {
		for _, k := range known {
			if k == f {
				n--
				break
			}
		}
	}
	return n
}

// checkPlaceholders allows $service, $namespace and $hash only as whole
// values of = and != label matchers, and nowhere else: not in strings, nor
// in label names, which Prometheus 3 lets a query quote (`sum by
// ("$service")`, `{"$hash"="x"}`) and render would fill in as it fills in
// a value.
func checkPlaceholders(expr parser.Expr, uses map[string]bool) error {
	var err error
	names := func(ls []string) {
		for _, l := range ls {
			for _, ph := range targetPlaceholders {
				if err == nil && strings.Contains(l, ph) {
					err = fmt.Errorf("label name %s: %s is allowed only as a label matcher value", quoteCut(l), ph)
				}
			}
		}
	}
	parser.Inspect(expr, func(node parser.Node, _ []parser.Node) error {
		if err != nil {
			return err
		}
		switch n := node.(type) {
		case *parser.AggregateExpr:
			names(n.Grouping)
		case *parser.BinaryExpr:
			if vm := n.VectorMatching; vm != nil {
				names(vm.MatchingLabels)
				names(vm.Include)
			}
		case *parser.VectorSelector:
			for _, m := range n.LabelMatchers {
				if names([]string{m.Name}); err != nil {
					return err
				}
				if !strings.Contains(m.Value, "$") {
					continue
				}
				if !slices.Contains(targetPlaceholders, m.Value) {
					err = fmt.Errorf("label %s: unknown placeholder %s (use %s)", cutText(m.Name, maxQuoted), quoteCut(m.Value), strings.Join(targetPlaceholders, ", "))
					return err
				}
				if m.Type != labels.MatchEqual && m.Type != labels.MatchNotEqual {
					err = fmt.Errorf("label %s: placeholder %s only works with = or !=", cutText(m.Name, maxQuoted), m.Value)
					return err
				}
				uses[m.Value] = true
			}
		case *parser.StringLiteral:
			for _, ph := range targetPlaceholders {
				if strings.Contains(n.Val, ph) {
					err = fmt.Errorf("string %s: %s is allowed only as a label matcher value", quoteCut(n.Val), ph)
					return err
				}
			}
		}
		return nil
	})
	return err
}
