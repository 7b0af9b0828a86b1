package policies

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/promql/parser"
)

// Fuzz targets of the policy loader and of query rendering. Run one with
//
//	go test -run='^$' -fuzz='^FuzzLoad$' -fuzztime=1000000x -parallel 1 ./policies/
//
// or every target of the repository with scripts/fuzz.sh. Without -fuzz,
// the seeds below and testdata/fuzz/<target>/ run as ordinary tests.

// maxFuzzInput bounds the inputs the targets try: a policy of this size
// already has every construct of a 1 MiB one, and larger inputs only
// slow the fuzzer down. The hostile corpus entries stay below it.
const maxFuzzInput = 64 << 10

// maxPolicyErrorText bounds the text of a policy error, whatever the
// input: (*Error).Error shows maxShownProblems, each cut.
const maxPolicyErrorText = maxShownProblems*(maxProblemText+8) + 256

// placeholderTarget renders a query as its template: each placeholder
// quoted in place of itself.
var placeholderTarget = Target{Service: PlaceholderService, Namespace: PlaceholderNamespace, Hash: PlaceholderHash}

// fuzzTarget is a valid target, as the engine's validation lets through.
var fuzzTarget = Target{Service: "checkout", Namespace: "shop", Hash: "6d5f7c9b8"}

// seedPolicies returns the policies of the repository: testdata, examples
// and presets.
func seedPolicies(f *testing.F) [][]byte {
	f.Helper()
	var out [][]byte
	for _, glob := range []string{"testdata/*.yml", "examples/*.yaml", "presets/*.yaml"} {
		files, err := filepath.Glob(glob)
		if err != nil {
			f.Fatal(err)
		}
		for _, name := range files {
			b, err := os.ReadFile(name)
			if err != nil {
				f.Fatal(err)
			}
			out = append(out, b)
		}
	}
	if len(out) < 10 {
		f.Fatalf("found only %d seed policies", len(out))
	}
	return out
}

// FuzzLoad feeds YAML through Load: decoding, presets, defaults and
// validation with every query compiled. Load never panics and returns a
// policy or an error, never both or neither; an error's text is valid
// UTF-8 and at most maxPolicyErrorText bytes whatever the input; every
// query of a policy that loads renders, for a valid target, into PromQL
// that parses.
func FuzzLoad(f *testing.F) {
	for _, b := range seedPolicies(f) {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > maxFuzzInput {
			t.Skip()
		}
		p, err := Load(data, "fuzz.yaml")
		if (p == nil) == (err == nil) {
			t.Fatalf("Load returned policy %v and error %v: want exactly one", p != nil, err)
		}
		if err != nil {
			checkErrorText(t, err)
			return
		}
		for _, w := range p.Warnings() {
			if !utf8.ValidString(w.Error()) {
				t.Errorf("warning is not valid UTF-8: %q", w)
			}
		}
		checkRenders(t, p, fuzzTarget)
	})
}

// checkErrorText checks that err's text is valid UTF-8 and bounded.
func checkErrorText(t *testing.T, err error) {
	t.Helper()
	msg := err.Error()
	if !utf8.ValidString(msg) {
		t.Errorf("error is not valid UTF-8: %q", msg)
	}
	if len(msg) > maxPolicyErrorText {
		t.Errorf("error is %d bytes, over %d: %.300q...", len(msg), maxPolicyErrorText, msg)
	}
	var pe *Error
	if !errors.As(err, &pe) || len(pe.Errs) == 0 {
		t.Errorf("error %T is not a *Error with problems: %v", err, err)
	}
}

// checkRenders renders every query of p for target tg, as the engine
// sends them, and parses each.
func checkRenders(t *testing.T, p *Policy, tg Target) {
	t.Helper()
	parse := func(what, q string) parser.Expr {
		t.Helper()
		if q == "" {
			t.Fatalf("%s: empty query", what)
		}
		e, err := parser.NewParser(parser.Options{}).ParseExpr(q)
		if err != nil {
			t.Fatalf("%s: rendered query does not parse: %v\n%s", what, err, q)
		}
		return e
	}
	windows := p.Windows()
	if len(windows) == 0 {
		t.Fatal("a loaded policy has no windows")
	}
	for i := range p.Spec.SLIs {
		s := &p.Spec.SLIs[i]
		name := fmt.Sprintf("sli %s", s.Name)
		parse(name+" Query", s.Query(tg))
		for _, span := range []time.Duration{time.Millisecond, 90 * time.Second, windows[0]} {
			q, err := s.QueryWithin(tg, span)
			if err != nil {
				t.Fatalf("%s QueryWithin %s: %v", name, span, err)
			}
			parse(fmt.Sprintf("%s QueryWithin %s", name, span), q)
		}
		for _, part := range s.Parts() {
			for _, w := range windows {
				parse(fmt.Sprintf("%s %s PartQuery %s", name, part, w), s.PartQuery(part, w, tg))
				if !IsFamily(part) {
					parse(fmt.Sprintf("%s %s AuthoredQuery %s", name, part, w), s.AuthoredQuery(part, w, tg))
				}
			}
			if IsFamily(part) {
				if e := parse(fmt.Sprintf("%s %s Family", name, part), s.Family(part, tg)); e.Type() != parser.ValueTypeVector {
					t.Fatalf("%s %s Family is a %s", name, part, e.Type())
				}
			}
			for _, need := range s.Absence(part).Needs {
				if !IsFamily(need) {
					t.Fatalf("%s %s needs %s, not a family part", name, part, need)
				}
			}
		}
	}
}

// FuzzQuery builds a one-SLI policy around fuzzed queries and windows and
// renders it for a fuzzed target, through Load (compile: $window
// substitution, countFromZero, families and their presence parts) and
// every rendering method. Rendering never panics; every rendered query
// parses; and the target's values, whatever they hold (quotes, `"} or
// vector(1)`, control characters, invalid UTF-8, placeholders), change
// nothing but the values of the matchers that held the placeholders: the
// query parsed for the target has the same nodes, operators, functions,
// label names, strings and numbers as the query parsed for the
// placeholders themselves.
func FuzzQuery(f *testing.F) {
	hostile := []Target{
		fuzzTarget,
		{Service: `"} or vector(1) #`, Namespace: `\`, Hash: "\"\n"},
		{Service: "\xff\xfe", Namespace: "\x00", Hash: "\u2028`'"},
		{Service: PlaceholderHash, Namespace: PlaceholderService, Hash: `"$service"`},
		{Service: `",__name__=~".+`, Namespace: "}[5m]", Hash: `\"`},
	}
	i := 0
	for _, name := range SLIPresetNames() {
		s := sliPresets[name]
		for _, pair := range [][2]int64{{300, 60}, {900, 180}, {3600, 1}} {
			tg := hostile[i%len(hostile)]
			i++
			if s.Rate != nil {
				f.Add(true, s.Rate.Events, s.Rate.Presence, pair[0], pair[1], tg.Service, tg.Namespace, tg.Hash)
			} else {
				f.Add(false, s.Ratio.Bad+s.Ratio.Good, s.Ratio.Total, pair[0], pair[1], tg.Service, tg.Namespace, tg.Hash)
			}
		}
	}
	for _, q := range []struct{ a, b string }{
		// UTF-8 label names and metric names (Prometheus 3) that hold a
		// placeholder: a name is not a matcher value.
		{`sum by ("$service") (increase(m{service="$service"}[$window]))`, `sum(increase(m{service="$service"}[$window]))`},
		{`sum(increase({"$hash"="x",service="$service"}[$window]))`, `sum(increase({"m", service="$service"}[$window]))`},
		{`sum(rate(m{service="$service",pod_template_hash!="$hash"}[$window] offset 1m))`, `vector(1) + count(m{service="$service"} @ 100)`},
		{`increase(m{service="$service"}[$window:30s])`, `sum(increase(m{service="$service"}[$window] @ start()))`},
		{`label_replace(increase(m{service="$service"}[$window]), "a", "$1", "b", "(.*)")`, `-increase(m{service="$service"}[$window])`},
	} {
		f.Add(false, q.a, q.b, int64(300), int64(60), hostile[1].Service, hostile[1].Namespace, hostile[1].Hash)
	}
	f.Fuzz(func(t *testing.T, rate bool, a, b string, long, short int64, service, namespace, hash string) {
		if len(a)+len(b)+len(service)+len(namespace)+len(hash) > maxFuzzInput {
			t.Skip()
		}
		doc := fmt.Sprintf("apiVersion: %s\nkind: %s\nmetadata: {name: fuzz}\nspec:\n  windows: [{long: %s, short: %s, factor: 2}]\n  slis:\n  - name: q\n",
			APIVersion, Kind, model.Duration(long*int64(time.Second)), model.Duration(short*int64(time.Second)))
		if rate {
			doc += fmt.Sprintf("    allowance: 2\n    rate: {events: %s, presence: %s}\n", jsonString(a), jsonString(b))
		} else {
			doc += fmt.Sprintf("    objective: 99\n    ratio: {bad: %s, total: %s}\n", jsonString(a), jsonString(b))
		}
		p, err := Load([]byte(doc), "fuzz.yaml")
		if err != nil {
			checkErrorText(t, err)
			return
		}
		s := &p.Spec.SLIs[0]
		checkRenders(t, p, placeholderTarget)
		tg := Target{Service: service, Namespace: namespace, Hash: hash}
		for ph, v := range map[string]string{PlaceholderService: service, PlaceholderNamespace: namespace, PlaceholderHash: hash} {
			if v == "" && s.Uses(ph) {
				// The engine refuses an empty value for a placeholder the
				// policy uses (analysis.Request.Validate): {"$hash"} would
				// be a selector without a non-empty matcher.
				return
			}
		}
		checkRenders(t, p, tg)
		sameStructure(t, "Query", s.Query(placeholderTarget), s.Query(tg), tg)
		for _, part := range s.Parts() {
			for _, w := range p.Windows() {
				sameStructure(t, fmt.Sprintf("%s PartQuery %s", part, w), s.PartQuery(part, w, placeholderTarget), s.PartQuery(part, w, tg), tg)
			}
		}
	})
}

// jsonString quotes s as a JSON string, which YAML reads as the same
// string (invalid UTF-8 becomes U+FFFD, as yaml.v3 would refuse it).
func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// sameStructure parses tpl (rendered for the placeholders) and q (rendered
// for tg) and fails unless they have the same nodes with the same
// operators, functions, names, strings and numbers, the values of
// matchers that hold a placeholder in tpl aside: those must hold tg's
// value for it, exactly.
func sameStructure(t *testing.T, what, tpl, q string, tg Target) {
	t.Helper()
	nodes := func(s string) []parser.Node {
		e, err := parser.NewParser(parser.Options{}).ParseExpr(s)
		if err != nil {
			t.Fatalf("%s: does not parse: %v\n%s", what, err, s)
		}
		var out []parser.Node
		parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
			out = append(out, n)
			return nil
		})
		return out
	}
	want, got := nodes(tpl), nodes(q)
	fail := func(format string, args ...any) {
		t.Helper()
		t.Fatalf("%s: the target's values change the query: %s\ntemplate: %s\nrendered: %s", what, fmt.Sprintf(format, args...), tpl, q)
	}
	if len(want) != len(got) {
		fail("%d nodes, want %d", len(got), len(want))
	}
	values := map[string]string{PlaceholderService: tg.Service, PlaceholderNamespace: tg.Namespace, PlaceholderHash: tg.Hash}
	for i := range want {
		if reflect.TypeOf(want[i]) != reflect.TypeOf(got[i]) {
			fail("node %d is a %T, want %T", i, got[i], want[i])
		}
		switch w := want[i].(type) {
		case *parser.VectorSelector:
			g := got[i].(*parser.VectorSelector)
			if len(w.LabelMatchers) != len(g.LabelMatchers) {
				fail("selector %s has %d matchers, want %d", g, len(g.LabelMatchers), len(w.LabelMatchers))
			}
			for j, wm := range w.LabelMatchers {
				gm := g.LabelMatchers[j]
				want := wm.Value
				if v, ok := values[wm.Value]; ok {
					want = v
				}
				if gm.Name != wm.Name || gm.Type != wm.Type || gm.Value != want {
					fail("matcher %s, want %s %s %q", gm, wm.Name, wm.Type, want)
				}
			}
			if w.OriginalOffset != g.OriginalOffset || (w.Timestamp == nil) != (g.Timestamp == nil) || w.StartOrEnd != g.StartOrEnd {
				fail("selector %s has another offset or @, want %s", g, w)
			}
		case *parser.MatrixSelector:
			if g := got[i].(*parser.MatrixSelector); g.Range != w.Range {
				fail("range %s, want %s", g.Range, w.Range)
			}
		case *parser.SubqueryExpr:
			if g := got[i].(*parser.SubqueryExpr); g.Range != w.Range || g.Step != w.Step || g.OriginalOffset != w.OriginalOffset {
				fail("subquery %s, want %s", g, w)
			}
		case *parser.Call:
			if g := got[i].(*parser.Call); g.Func.Name != w.Func.Name || len(g.Args) != len(w.Args) {
				fail("call %s, want %s", g.Func.Name, w.Func.Name)
			}
		case *parser.AggregateExpr:
			if g := got[i].(*parser.AggregateExpr); g.Op != w.Op || g.Without != w.Without || strings.Join(g.Grouping, "\x00") != strings.Join(w.Grouping, "\x00") {
				fail("aggregation %s by %q, want %s by %q", g.Op, g.Grouping, w.Op, w.Grouping)
			}
		case *parser.BinaryExpr:
			g := got[i].(*parser.BinaryExpr)
			if g.Op != w.Op || g.ReturnBool != w.ReturnBool || !reflect.DeepEqual(g.VectorMatching, w.VectorMatching) {
				fail("operator %s, want %s", g.Op, w.Op)
			}
		case *parser.StringLiteral:
			if g := got[i].(*parser.StringLiteral); g.Val != w.Val {
				fail("string %q, want %q", g.Val, w.Val)
			}
		case *parser.NumberLiteral:
			if g := got[i].(*parser.NumberLiteral); g.Val != w.Val && !(g.Val != g.Val && w.Val != w.Val) {
				fail("number %g, want %g", g.Val, w.Val)
			}
		case *parser.UnaryExpr:
			if g := got[i].(*parser.UnaryExpr); g.Op != w.Op {
				fail("unary %s, want %s", g.Op, w.Op)
			}
		}
	}
}
