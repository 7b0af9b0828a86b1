package replay

import (
	"sync"

	"github.com/prometheus/prometheus/promql/parser"
)

// maxCached bounds the parse cache: a policy has a handful of queries per
// target, a benchmark corpus a few thousand.
const maxCached = 4096

// cachingParser parses each distinct query once. The engine parses the
// query string of every instant query and then rewrites the tree in place
// (step-invariant wrapping, the series it selects), so the cache hands out
// a fresh copy of the parsed tree each time: copying is much cheaper than
// parsing, and an evaluation of a loaded policy parses no PromQL.
type cachingParser struct {
	parser.Parser
	mu    sync.RWMutex
	exprs map[string]parser.Expr
}

func newCachingParser() *cachingParser {
	return &cachingParser{Parser: parser.NewParser(parser.Options{}), exprs: map[string]parser.Expr{}}
}

// ParseExpr returns a private copy of the cached tree for input, parsing it
// on first use.
func (p *cachingParser) ParseExpr(input string) (parser.Expr, error) {
	p.mu.RLock()
	cached, ok := p.exprs[input]
	p.mu.RUnlock()
	if ok {
		if c, ok := cloneExpr(cached); ok {
			return c, nil
		}
	}
	expr, err := p.Parser.ParseExpr(input)
	if err != nil {
		return expr, err
	}
	// Keep a pristine copy; hand the parsed tree itself to the engine.
	if c, ok := cloneExpr(expr); ok {
		p.mu.Lock()
		if len(p.exprs) < maxCached {
			p.exprs[input] = c
		}
		p.mu.Unlock()
	}
	return expr, nil
}

// cloneExpr deep-copies the nodes of e that the engine may rewrite. Label
// matchers, functions and vector matching are never modified and stay
// shared. ok is false for a node type it does not know, so that a new
// node type in a later Prometheus means a parse, never a shared tree.
func cloneExpr(e parser.Expr) (_ parser.Expr, ok bool) {
	ok = true
	var walk func(parser.Expr) parser.Expr
	dur := func(d *parser.DurationExpr) *parser.DurationExpr {
		if d == nil {
			return nil
		}
		return walk(d).(*parser.DurationExpr)
	}
	ts := func(t *int64) *int64 {
		if t == nil {
			return nil
		}
		v := *t
		return &v
	}
	walk = func(e parser.Expr) parser.Expr {
		switch n := e.(type) {
		case nil:
			return nil
		case *parser.AggregateExpr:
			c := *n
			c.Expr, c.Param = walk(n.Expr), walk(n.Param)
			return &c
		case *parser.BinaryExpr:
			c := *n
			c.LHS, c.RHS = walk(n.LHS), walk(n.RHS)
			return &c
		case *parser.Call:
			c := *n
			c.Args = make(parser.Expressions, len(n.Args))
			for i, a := range n.Args {
				c.Args[i] = walk(a)
			}
			return &c
		case *parser.MatrixSelector:
			c := *n
			c.VectorSelector, c.RangeExpr = walk(n.VectorSelector), dur(n.RangeExpr)
			return &c
		case *parser.SubqueryExpr:
			c := *n
			c.Expr, c.RangeExpr, c.OriginalOffsetExpr, c.StepExpr = walk(n.Expr), dur(n.RangeExpr), dur(n.OriginalOffsetExpr), dur(n.StepExpr)
			c.Timestamp = ts(n.Timestamp)
			return &c
		case *parser.VectorSelector:
			c := *n
			c.OriginalOffsetExpr = dur(n.OriginalOffsetExpr)
			c.Timestamp = ts(n.Timestamp)
			c.Series, c.UnexpandedSeriesSet = nil, nil
			return &c
		case *parser.DurationExpr:
			c := *n
			c.LHS, c.RHS = walk(n.LHS), walk(n.RHS)
			return &c
		case *parser.NumberLiteral:
			c := *n
			return &c
		case *parser.StringLiteral:
			c := *n
			return &c
		case *parser.ParenExpr:
			c := *n
			c.Expr = walk(n.Expr)
			return &c
		case *parser.UnaryExpr:
			c := *n
			c.Expr = walk(n.Expr)
			return &c
		case *parser.StepInvariantExpr:
			c := *n
			c.Expr = walk(n.Expr)
			return &c
		}
		ok = false
		return e
	}
	c := walk(e)
	return c, ok
}
