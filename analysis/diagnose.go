package analysis

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"

	"github.com/phaseguard/phaseguard/policies"
)

// Diagnosis of an SLI without data. When the canary has no data in any
// window of an SLI, the hold's reason says which part of what the SLI
// reads is missing, from a few probes of each selector the window lacked
// (the metric families the presence checks found absent, or else the
// selectors of the absent part as written):
//
//   - no series of the metric name at all: the exporter is not scraped;
//   - series, but none with one of the selector's labels: the exporter does
//     not export it (kube-state-metrics without its allowlist, a label
//     renamed);
//   - the labels exist, but adding the selector's matchers one by one
//     (namespace, service and hash first) leaves no series: that value is
//     the one nothing has (a wrong hash, a version label that is not the
//     hash, requests reported by the other end of a mesh only).
//
// policies.Hint adds advice for the metrics the presets read.
//
// The probes are instant queries of count(last_over_time(selector[W]))
// over the longest window W: a series counts when it had a sample anywhere
// in the window, not only within the server's lookback (the last 5
// minutes on Prometheus), so an exporter that stopped reads "no series
// named X in the last 15m", not as a metric that never existed under that
// name. One query per selector tagged like the batched SLI query,
// at most maxProbeQueries per evaluation and maxProbeMatchers matchers per
// selector. They only ever reword a hold: a probe that fails or is cut by
// the deadline leaves the reason saying the cause was not diagnosed.
const (
	maxProbeQueries  = 4
	maxProbeMatchers = 8
	// probeLabel tags each probe's series in a probe query.
	probeLabel = "phaseguard_probe"
)

// promqlParser parses with Prometheus's default options, as policies does.
var promqlParser = parser.NewParser(parser.Options{})

// diagnosis is one SLI to diagnose: its index in the verdict.
type diagnosis struct {
	sli int
	nd  *noData
}

// probeSet is the probes of one selector.
type probeSet struct {
	sli    int
	window time.Duration // probed over this window; 0: at the look only
	metric string
	name   *labels.Matcher   // the __name__ matcher
	others []*labels.Matcher // the other matchers, in probing order
	// probes[i] says what is missing when probe i has no series.
	probes []probe
	query  string
	found  map[int]bool
	err    error
}

type probe struct {
	what    policies.Missing
	matcher *labels.Matcher // the label's (MissingLabel) or the value's matcher
	prefix  int             // MissingValue: how many of others come before it
}

// diagnose probes the selectors of each SLI without data and rewords its
// reason. It returns the queries it sent.
func (e *Engine) diagnose(ctx context.Context, at time.Time, p *policies.Policy, t policies.Target, todo []diagnosis, v *Verdict) int {
	var sets []*probeSet
	skipped := map[int]bool{}
	for _, d := range todo {
		for _, ms := range selectorsToProbe(&p.Spec.SLIs[d.sli], t, d.nd) {
			ps := newProbeSet(d.sli, ms, t, d.nd.window)
			if ps == nil {
				continue
			}
			if len(sets) == maxProbeQueries {
				skipped[d.sli] = true
				continue
			}
			sets = append(sets, ps)
		}
	}
	// Probes run as the SLI queries do: at most e.parallelism at a time,
	// dropped at ctx's deadline.
	queries := make([]string, len(sets))
	for i, ps := range sets {
		queries[i] = ps.query
	}
	for i, a := range e.queryAll(ctx, queries, at) {
		sets[i].err = a.err
		if a.err == nil {
			sets[i].found = map[int]bool{}
			for _, s := range a.vec {
				if k, err := strconv.Atoi(string(s.Metric[probeLabel])); err == nil {
					sets[i].found[k] = true
				}
			}
		}
	}

	for _, d := range todo {
		r := &v.SLIs[d.sli]
		var found, failed []string
		for _, ps := range sets {
			if ps.sli != d.sli {
				continue
			}
			r.Queries = append(r.Queries, ps.query)
			if ps.err != nil {
				failed = append(failed, shortErr(ps.err, ps.query))
				continue
			}
			if msg := ps.explain(); msg != "" {
				found = append(found, msg)
			}
		}
		var diag string
		switch {
		case len(found) > 0:
			diag = strings.Join(found, "; ")
		case len(failed) > 0:
			diag = "not diagnosed, a probe query failed: " + failed[0]
		case skipped[d.sli]:
			diag = fmt.Sprintf("not diagnosed (at most %d probe queries per evaluation)", maxProbeQueries)
		default:
			diag = "not diagnosed"
		}
		r.Reason = d.nd.reason(diag)
	}
	return len(sets)
}

// selectorsToProbe returns the label matchers of each selector to probe
// for an SLI without data: the families the longest window lacked, or,
// when every family was there, the selectors of the part that was absent,
// as its query is written.
func selectorsToProbe(sli *policies.SLI, t policies.Target, nd *noData) [][]*labels.Matcher {
	var out [][]*labels.Matcher
	var seen []string
	add := func(ms []*labels.Matcher) {
		key := (&parser.VectorSelector{LabelMatchers: ms}).String()
		if !slices.Contains(seen, key) {
			seen = append(seen, key)
			out = append(out, ms)
		}
	}
	for _, f := range nd.absent.families {
		if ms, err := promqlParser.ParseMetricSelector(f); err == nil {
			add(ms)
		}
	}
	if len(out) > 0 {
		return out
	}
	q := sli.AuthoredQuery(nd.absent.part, nd.window, t)
	expr, err := promqlParser.ParseExpr(q)
	if q == "" || err != nil {
		return nil
	}
	parser.Inspect(expr, func(node parser.Node, _ []parser.Node) error {
		if vs, ok := node.(*parser.VectorSelector); ok {
			add(slices.Clone(vs.LabelMatchers))
		}
		return nil
	})
	return out
}

// newProbeSet plans the probes of one selector, or returns nil for a
// selector without a metric name (probing it would read every series).
func newProbeSet(sli int, ms []*labels.Matcher, t policies.Target, window time.Duration) *probeSet {
	ps := &probeSet{sli: sli, window: window}
	for _, m := range ms {
		switch {
		case m.Name != model.MetricNameLabel:
			ps.others = append(ps.others, m)
		case m.Type == labels.MatchEqual && ps.name == nil:
			ps.name, ps.metric = m, m.Value
		default:
			return nil
		}
	}
	if ps.name == nil {
		return nil
	}
	// The target's matchers first: a namespace, then a service that has
	// series, and only then whether its hash does.
	rank := func(m *labels.Matcher) int {
		if m.Type != labels.MatchEqual {
			return 3
		}
		switch m.Value {
		case t.Namespace:
			return 0
		case t.Service:
			return 1
		case t.Hash:
			return 2
		}
		return 3
	}
	slices.SortStableFunc(ps.others, func(a, b *labels.Matcher) int { return rank(a) - rank(b) })
	if len(ps.others) > maxProbeMatchers {
		ps.others = ps.others[:maxProbeMatchers]
	}

	sel := func(ms ...*labels.Matcher) string {
		s := (&parser.VectorSelector{Name: ps.metric, LabelMatchers: append([]*labels.Matcher{ps.name}, ms...)}).String()
		if window <= 0 {
			return s
		}
		return fmt.Sprintf("last_over_time(%s[%s])", s, model.Duration(window))
	}
	var exprs []string
	addProbe := func(pr probe, s string) {
		exprs = append(exprs, fmt.Sprintf("label_replace(count(%s), %q, %q, \"\", \"\")", s, probeLabel, strconv.Itoa(len(ps.probes))))
		ps.probes = append(ps.probes, pr)
	}
	addProbe(probe{what: policies.MissingMetric}, sel())
	for _, m := range ps.others {
		if !m.Matches("") {
			addProbe(probe{what: policies.MissingLabel, matcher: m}, sel(labels.MustNewMatcher(labels.MatchRegexp, m.Name, ".+")))
		}
	}
	for i, m := range ps.others {
		addProbe(probe{what: policies.MissingValue, matcher: m, prefix: i}, sel(ps.others[:i+1]...))
	}
	ps.query = strings.Join(exprs, " or ")
	return ps
}

// explain says what the first probe without series shows is missing, or,
// when every probe found series, that the selector has series too young
// or too sparse for a window.
func (ps *probeSet) explain() string {
	hint := func(msg, label string, what policies.Missing) string {
		if h := policies.Hint(ps.metric, label, what); h != "" {
			return msg + ": " + h
		}
		return msg
	}
	in := ""
	if ps.window > 0 {
		in = " in the last " + model.Duration(ps.window).String()
	}
	// The probes are in order: name, labels, values one by one.
	for i, pr := range ps.probes {
		if ps.found[i] {
			continue
		}
		switch pr.what {
		case policies.MissingMetric:
			return hint(fmt.Sprintf("no series named %s%s", ps.metric, in), "", pr.what)
		case policies.MissingLabel:
			return hint(fmt.Sprintf("%s has no label %s%s", ps.metric, pr.matcher.Name, in), pr.matcher.Name, pr.what)
		case policies.MissingValue:
			of := ps.metric
			if pr.prefix > 0 {
				of = (&parser.VectorSelector{Name: ps.metric, LabelMatchers: append([]*labels.Matcher{ps.name}, ps.others[:pr.prefix]...)}).String()
			}
			return hint(fmt.Sprintf("no series of %s has %s%s", of, pr.matcher, in), pr.matcher.Name, pr.what)
		}
	}
	full := (&parser.VectorSelector{Name: ps.metric, LabelMatchers: append([]*labels.Matcher{ps.name}, ps.others...)}).String()
	if in == "" {
		in = " now"
	}
	return fmt.Sprintf("%s has series%s, but none had two samples in a window (what increase() needs): only just scraped, or scraped less often than the windows", full, in)
}
