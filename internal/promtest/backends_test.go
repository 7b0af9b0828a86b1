package promtest_test

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"

	"github.com/phaseguard/phaseguard/analysis"
	"github.com/phaseguard/phaseguard/internal/promtest"
	"github.com/phaseguard/phaseguard/policies"
	"github.com/phaseguard/phaseguard/promapi"
	"github.com/phaseguard/phaseguard/replay"
	"github.com/phaseguard/phaseguard/scenarios"
)

// lookOffsets are the looks into each bundled scenario's 30 min stage,
// before, around and after the faults' onsets (10 and 15 min). They fall
// 7s after a scrape: Prometheus 3 (the embedded engine) selects range
// windows left-open, (t-w, t], 2.x (Debian's server) [t-w, t], so a look
// on a scrape would count the boundary sample in one and not the other.
var lookOffsets = []time.Duration{3, 9, 16, 23, 29}

// edgeSlack is the absolute part of the count tolerance, in events: a
// sparse counter that moved between the sample before a window and the
// first sample in it counts in VictoriaMetrics and not in the embedded
// engine (3 at most in the bundled scenarios).
const edgeSlack = 5

// tolerance is how far a server's event count in a window may be from the
// embedded engine's. The README's "Backends" section explains it.
//
//   - VictoriaMetrics counts a counter's increase from the last sample
//     before the window to the last sample in it, without extrapolating;
//     the embedded engine extrapolates the samples inside the window to its
//     edges. The two spans differ by under one scrape interval at each
//     edge: allow twice the window's average events in a scrape interval,
//     plus edgeSlack.
//   - Prometheus 2.42 counts as the embedded Prometheus 3 engine does,
//     except in a window cut at the canary's start (Request.Since): there a
//     series starts on the window's edge, and 2.x and 3 clamp the
//     extrapolation to a counter's zero point in a different order. Such
//     windows get VictoriaMetrics' tolerance; every other window must agree
//     to 1e-9.
func tolerance(backend string, cut bool, scrape, span time.Duration, want float64) float64 {
	if backend == "prometheus" && !cut {
		return 1e-9 * math.Max(1, math.Abs(want))
	}
	return 2*scrape.Seconds()/span.Seconds()*math.Abs(want) + edgeSlack
}

// TestBackendsAgree loads every bundled scenario into the embedded engine
// (replay), a real Prometheus and a real VictoriaMetrics, evaluates the
// default policy through each at several looks of the stage, and checks
// that each server gives the embedded engine's verdict, overall and SLI by
// SLI, with every window's event counts (canary and stable, bad and total)
// within tolerance. It logs, per backend and window, the largest count
// differences it saw: the README's figures.
func TestBackendsAgree(t *testing.T) {
	t.Parallel()
	p, err := policies.Preset("phase-default")
	if err != nil {
		t.Fatal(err)
	}
	demo := scenarios.Demo()
	if len(demo) == 0 {
		t.Fatal("no bundled scenarios")
	}
	for _, b := range demo {
		t.Run(b.Name, func(t *testing.T) {
			t.Parallel()
			embedded, err := replay.Load(bytes.NewReader(b.OpenMetrics))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { embedded.Close() })
			servers := []struct {
				name string
				srv  *promtest.Server
			}{
				{"prometheus", promtest.Start(t, promtest.Backfill(b.OpenMetrics))},
				{"victoria-metrics", promtest.StartVictoriaMetrics(t, promtest.Backfill(b.OpenMetrics))},
			}
			tr := b.Truth
			scrape := time.Duration(tr.ScrapeInterval)
			for _, s := range servers {
				live, err := promapi.New(promapi.Config{URL: s.srv.URL()})
				if err != nil {
					t.Fatal(err)
				}
				stats := map[string]*diffStats{}
				for _, off := range lookOffsets {
					at := tr.StageStart.Add(off*time.Minute + 7*time.Second)
					req := analysis.Request{
						Policy: p, Stage: "canary-50", At: at, Since: tr.StageStart,
						Service: tr.Service, Namespace: tr.Namespace,
						CanaryHash: tr.CanaryHash, StableHash: tr.StableHash,
					}
					look := fmt.Sprintf("%s at stage+%s", s.name, at.Sub(tr.StageStart))
					want, err := analysis.New(embedded).Evaluate(context.Background(), req)
					if err != nil {
						t.Fatalf("%s: embedded: %v", look, err)
					}
					got, err := analysis.New(live).Evaluate(context.Background(), req)
					if err != nil {
						t.Fatalf("%s: %v", look, err)
					}
					if got.QueryErrors != 0 || want.QueryErrors != 0 {
						t.Errorf("%s: %d query errors, embedded %d: %s", look, got.QueryErrors, want.QueryErrors, got.Reason)
						continue
					}
					if got.Decision != want.Decision {
						t.Errorf("%s: %s (%s), embedded %s (%s)", look, got.Decision, got.Reason, want.Decision, want.Reason)
					}
					if len(got.SLIs) != len(want.SLIs) {
						t.Fatalf("%s: %d SLIs, embedded %d", look, len(got.SLIs), len(want.SLIs))
					}
					for i := range got.SLIs {
						g, w := got.SLIs[i], want.SLIs[i]
						if g.Decision != w.Decision {
							t.Errorf("%s %s: %s (%s), embedded %s (%s)", look, g.Name, g.Decision, g.Reason, w.Decision, w.Reason)
						}
						for _, d := range windowCounts(look+" "+g.Name, g, w) {
							if d.err != "" {
								t.Error(d.err)
								continue
							}
							tol := tolerance(s.name, d.cut, scrape, d.span, d.want)
							if math.IsNaN(d.got) != math.IsNaN(d.want) || math.Abs(d.got-d.want) > tol {
								t.Errorf("%s: %g, embedded %g: off by more than %.4g", d.where, d.got, d.want, tol)
							}
							key := d.window
							if d.cut {
								key = "cut"
							}
							if stats[key] == nil {
								stats[key] = &diffStats{}
							}
							stats[key].add(d)
						}
					}
				}
				if len(stats) == 0 {
					t.Errorf("%s: no window counts compared", s.name)
				}
				for _, k := range slices.Sorted(maps.Keys(stats)) {
					t.Logf("%s window %s: %s", s.name, k, stats[k])
				}
			}
		})
	}
}

// count is one event count of one window, from a server and from the
// embedded engine.
type count struct {
	where     string
	window    string        // the policy's window, "5m"
	cut       bool          // cut at the canary's start
	span      time.Duration // the time the window counted
	got, want float64
	err       string // the two do not list the same windows
}

// windowCounts pairs the bad and total counts of every canary and stable
// window of g (a server's) and w (the embedded engine's), leaving out
// totals that are zero on both sides.
func windowCounts(where string, g, w analysis.SLIResult) []count {
	var out []count
	pair := func(side string, gw, ww []analysis.WindowResult) {
		if len(gw) != len(ww) {
			out = append(out, count{err: fmt.Sprintf("%s %s: %d windows, embedded %d", where, side, len(gw), len(ww))})
			return
		}
		for i, ew := range ww {
			if gw[i].Window != ew.Window || gw[i].Span != ew.Span {
				out = append(out, count{err: fmt.Sprintf("%s %s: window %s span %q, embedded %s span %q", where, side, gw[i].Window, gw[i].Span, ew.Window, ew.Span)})
				continue
			}
			c := count{where: fmt.Sprintf("%s %s %s", where, side, ew.Window), window: ew.Window, cut: ew.Span != ""}
			span := ew.Window
			if c.cut {
				span = ew.Span
			}
			d, err := model.ParseDuration(span)
			if err != nil {
				out = append(out, count{err: fmt.Sprintf("%s: span %q: %v", c.where, span, err)})
				continue
			}
			c.span = time.Duration(d)
			bad, total := c, c
			bad.where, bad.got, bad.want = c.where+" bad", float64(gw[i].Bad), float64(ew.Bad)
			total.where, total.got, total.want = c.where+" total", float64(gw[i].Total), float64(ew.Total)
			out = append(out, bad)
			if total.got != 0 || total.want != 0 {
				out = append(out, total)
			}
		}
	}
	pair("canary", g.Windows, w.Windows)
	switch {
	case g.Baseline != nil && w.Baseline != nil:
		pair("stable", g.Baseline.Windows, w.Baseline.Windows)
	case (g.Baseline == nil) != (w.Baseline == nil):
		out = append(out, count{err: fmt.Sprintf("%s: baseline %v, embedded %v", where, g.Baseline != nil, w.Baseline != nil)})
	}
	return out
}

// diffStats summarises the differences of many counts: the median and
// largest relative ones among counts of at least 100 events, the largest
// absolute one among smaller counts.
type diffStats struct {
	n            int
	large, small count
	rel, abs     float64
	rels         []float64
}

func (s *diffStats) add(c count) {
	s.n++
	d := math.Abs(c.got - c.want)
	if math.Abs(c.want) >= 100 {
		r := d / math.Abs(c.want)
		s.rels = append(s.rels, r)
		if s.large.where == "" || r > s.rel {
			s.large, s.rel = c, r
		}
	} else if s.small.where == "" || d > s.abs {
		s.small, s.abs = c, d
	}
}

func (s *diffStats) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d counts", s.n)
	if s.large.where != "" {
		slices.Sort(s.rels)
		fmt.Fprintf(&b, "; >=100 events: median %.2f%%, up to %.2f%% (%.6g vs embedded %.6g, %s)", 100*s.rels[len(s.rels)/2], 100*s.rel, s.large.got, s.large.want, s.large.where)
	}
	if s.small.where != "" {
		fmt.Fprintf(&b, "; <100 events: up to %.3g (%.6g vs embedded %.6g, %s)", s.abs, s.small.got, s.small.want, s.small.where)
	}
	return b.String()
}
