package rollouts

import (
	"container/list"
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/common/model"

	"github.com/phaseguard/phaseguard/analysis"
	"github.com/phaseguard/phaseguard/internal/redact"
	"github.com/phaseguard/phaseguard/policies"
	"github.com/phaseguard/phaseguard/promapi"
)

// cacheSize bounds each cache: a cluster has a handful of distinct
// Prometheus configurations and policies; a bound keeps a stream of
// distinct ones from growing the process without limit.
const cacheSize = 64

// cache shares engines (one HTTP client each, with the set the client
// learns what it sends into) and loaded policies between calls. It is
// safe for concurrent use.
type cache struct {
	mu       sync.Mutex
	engines  *lru[cachedEngine]
	policies *lru[*policies.Policy]
}

type cachedEngine struct {
	engine  *analysis.Engine
	secrets *redact.Set
}

func newCache() *cache {
	return &cache{engines: newLRU[cachedEngine](cacheSize), policies: newLRU[*policies.Policy](cacheSize)}
}

// engine returns the engine cached under key and its client's set,
// building the client from cfg on first use, with at most maxInFlight
// queries at once. The client learns into cfg.Redact, or, when it is
// nil, into a new set of its own. A configuration that cannot build a
// client is not cached.
func (c *cache) engine(key string, cfg promapi.Config, maxInFlight int, now func() time.Time) (*analysis.Engine, *redact.Set, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.engines.get(key); ok {
		return e.engine, e.secrets, nil
	}
	if cfg.Redact == nil {
		cfg.Redact = redact.New()
	}
	client, err := promapi.New(cfg)
	if err != nil {
		return nil, cfg.Redact, &ConfigError{Errs: []error{fmt.Errorf("prometheus: %w", err)}}
	}
	q := &limitedQuerier{q: client, slots: make(chan struct{}, max(maxInFlight, 1))}
	e := cachedEngine{engine: analysis.New(q, analysis.WithClock(now)), secrets: cfg.Redact}
	c.engines.put(key, e)
	return e.engine, e.secrets, nil
}

// policy loads a policy reference: a preset, inline YAML or a file. A file
// is reloaded when its size or modification time changes, so an updated
// ConfigMap mount takes effect without restarting the controller.
func (c *cache) policy(ref string) (*policies.Policy, error) {
	key := ref
	ref = strings.TrimSpace(ref)
	if !isInlinePolicy(ref) && !policies.IsPreset(ref) {
		if fi, err := os.Stat(ref); err == nil {
			key = fmt.Sprintf("%s\x00%d\x00%d", ref, fi.Size(), fi.ModTime().UnixNano())
		}
	}
	c.mu.Lock()
	p, ok := c.policies.get(key)
	c.mu.Unlock()
	if ok {
		return p, nil
	}
	p, err := policies.Resolve(ref)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.policies.put(key, p)
	c.mu.Unlock()
	return p, nil
}

// limitedQuerier bounds the queries in flight to one server over every
// call of the process: 200 AnalysisRuns at once must not open 200 × the
// engine's parallelism connections to Prometheus.
type limitedQuerier struct {
	q     analysis.Querier
	slots chan struct{}
}

func (l *limitedQuerier) Query(ctx context.Context, query string, ts time.Time) (model.Vector, error) {
	select {
	case l.slots <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("wait for a query slot (prometheus.maxInFlight %d): %w", cap(l.slots), ctx.Err())
	}
	defer func() { <-l.slots }()
	return l.q.Query(ctx, query, ts)
}

// lru is a small least-recently-used map. Callers lock.
type lru[V any] struct {
	max   int
	order *list.List // of *lruEntry[V], most recent first
	items map[string]*list.Element
}

type lruEntry[V any] struct {
	key string
	val V
}

func newLRU[V any](max int) *lru[V] {
	return &lru[V]{max: max, order: list.New(), items: map[string]*list.Element{}}
}

func (l *lru[V]) get(key string) (V, bool) {
	if e, ok := l.items[key]; ok {
		l.order.MoveToFront(e)
		return e.Value.(*lruEntry[V]).val, true
	}
	var zero V
	return zero, false
}

func (l *lru[V]) put(key string, v V) {
	if e, ok := l.items[key]; ok {
		e.Value.(*lruEntry[V]).val = v
		l.order.MoveToFront(e)
		return
	}
	l.items[key] = l.order.PushFront(&lruEntry[V]{key: key, val: v})
	for l.order.Len() > l.max {
		last := l.order.Back()
		l.order.Remove(last)
		delete(l.items, last.Value.(*lruEntry[V]).key)
	}
}

func (l *lru[V]) len() int { return l.order.Len() }
