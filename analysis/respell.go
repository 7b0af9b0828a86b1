package analysis

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"

	"github.com/phaseguard/phaseguard/policies"
)

// Lazy or respelled. A part the canary lacks while stable has it (a bad
// series) is either a counter child the canary's exporter creates on its
// first event, which a healthy canary may simply not have had yet, or a
// label value the canary build spells another way (duplicate="yes" for
// "true"), which hides its bad events. The two differ in the values the
// canary has of the labels the part's selectors match on: a respelling
// adds a value stable never has; a lazy child adds none. The engine asks,
// for each such label, which values canary and stable had in the longest
// window (count by the label, over last_over_time), and treats the
// absence as zero only when every canary value is one stable has too.
// A probe that fails, is cut by the deadline, or finds no canary series
// leaves the hold.

// maxRespellLabels bounds the labels probed per evaluation (two queries
// each: canary and stable). A healthy canary whose exporter creates its
// bad children on first use lacks a part in several SLIs at once (the
// benchmark's held healthy canaries: duplicate-processing and
// phase-mismatch together), so the bound leaves room for a few SLIs; a
// check that does not fit keeps its hold.
const maxRespellLabels = 8

// respellCheck is one SLI whose part the canary lacks and stable has.
type respellCheck struct {
	sli  int
	in   sliInput
	part policies.Part
}

// respellProbe is one label of one check: the values each version had.
type respellProbe struct {
	check          int
	label          string
	canary, stable string // queries
	canaryVals     []string
	stableVals     []string
	err            error
}

// checkRespelled probes the checks' labels and re-judges, with the
// absence read as zero, each check whose canary values are all stable's.
// It returns the queries it sent.
func (e *Engine) checkRespelled(ctx context.Context, at time.Time, p *policies.Policy, checks []respellCheck, v *Verdict) int {
	var probes []*respellProbe
	for i, c := range checks {
		// All of a check's labels or none: one probed on some of them
		// could read a respelling of another as a lazy child, and pass.
		prs := respellProbes(c.in.sli, c.part, slices.Max(p.Windows()), c.in.canary, c.in.stable)
		if len(probes)+len(prs) > maxRespellLabels {
			continue
		}
		for _, pr := range prs {
			pr.check = i
			probes = append(probes, pr)
		}
	}
	var queries []string
	for _, pr := range probes {
		queries = append(queries, pr.canary, pr.stable)
	}
	answers := e.queryAll(ctx, queries, at)
	for i, pr := range probes {
		c, s := answers[2*i], answers[2*i+1]
		if pr.err = c.err; pr.err == nil {
			pr.err = s.err
		}
		pr.canaryVals, pr.stableVals = valuesOf(c.vec, pr.label), valuesOf(s.vec, pr.label)
	}
	for i, c := range checks {
		r := &v.SLIs[c.sli]
		lazy, probed := true, false
		for _, pr := range probes {
			if pr.check != i {
				continue
			}
			r.Queries = append(r.Queries, pr.canary, pr.stable)
			probed = true
			if pr.err != nil || len(pr.canaryVals) == 0 {
				lazy = false
				continue
			}
			for _, val := range pr.canaryVals {
				if !slices.Contains(pr.stableVals, val) {
					lazy = false
					r.Reason += fmt.Sprintf(" (the canary has %s=%q, which stable never has)", pr.label, val)
					break
				}
			}
		}
		if !probed || !lazy {
			continue
		}
		in := c.in
		in.lazy = true
		res, _, _ := judge(in)
		res.Queries = r.Queries
		*r = res
	}
	return len(queries)
}

// respellProbes plans the probes of part of sli: for each label its
// authored selectors match on beyond the target's, count by that label
// over the longest window, for canary and stable.
func respellProbes(sli *policies.SLI, part policies.Part, window time.Duration, canary, stable policies.Target) []*respellProbe {
	q := sli.AuthoredQuery(part, window, canary)
	expr, err := promqlParser.ParseExpr(q)
	if q == "" || err != nil {
		return nil
	}
	var out []*respellProbe
	parser.Inspect(expr, func(node parser.Node, _ []parser.Node) error {
		vs, ok := node.(*parser.VectorSelector)
		if !ok {
			return nil
		}
		var base []*labels.Matcher // the name and the target's matchers
		var values []*labels.Matcher
		for _, m := range vs.LabelMatchers {
			switch {
			case m.Name == model.MetricNameLabel:
				base = append(base, m)
			case m.Type == labels.MatchEqual && (m.Value == canary.Hash || m.Value == canary.Service || m.Value == canary.Namespace):
				base = append(base, m)
			default:
				values = append(values, m)
			}
		}
		sel := func(t policies.Target) string {
			ms := make([]*labels.Matcher, len(base))
			for i, m := range base {
				ms[i] = m
				if m.Name != model.MetricNameLabel && m.Value == canary.Hash {
					ms[i] = labels.MustNewMatcher(labels.MatchEqual, m.Name, t.Hash)
				}
			}
			return (&parser.VectorSelector{LabelMatchers: ms}).String()
		}
		for _, m := range values {
			if slices.ContainsFunc(out, func(p *respellProbe) bool { return p.label == m.Name }) {
				continue
			}
			probe := func(t policies.Target) string {
				return fmt.Sprintf("count by (%s) (last_over_time(%s[%s]))", m.Name, sel(t), model.Duration(window))
			}
			out = append(out, &respellProbe{label: m.Name, canary: probe(canary), stable: probe(stable)})
		}
		return nil
	})
	return out
}

// valuesOf lists the values of label in vec's series, sorted.
func valuesOf(vec model.Vector, label string) []string {
	var out []string
	for _, s := range vec {
		if v := string(s.Metric[model.LabelName(label)]); !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	slices.SortFunc(out, strings.Compare)
	return out
}
