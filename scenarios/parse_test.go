package scenarios

import (
	"errors"
	"fmt"
	"io"
	"math"
	"strings"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/textparse"
)

// parsedPoint is one parsed sample: t in Unix milliseconds.
type parsedPoint struct {
	t int64
	v float64
}

// parsedSeries is one series as Prometheus' OpenMetrics parser reads it.
type parsedSeries struct {
	labels labels.Labels
	family string
	typ    model.MetricType
	points []parsedPoint
}

// parsed is a whole file.
type parsed struct {
	series   map[string]*parsedSeries // by the series' text
	byLabels map[string]bool          // labels.String() of every series
	order    []string
	samples  int
}

// parseOM reads b with textparse's OpenMetrics parser to "# EOF" and checks
// what promtool's backfill and the OpenMetrics spec need: every sample has a
// timestamp, each family's lines are contiguous, each series' lines are
// contiguous (no duplicate series) with strictly increasing timestamps.
func parseOM(b []byte) (*parsed, error) {
	p := textparse.NewOpenMetricsParser(b, labels.NewSymbolTable())
	out := &parsed{series: map[string]*parsedSeries{}, byLabels: map[string]bool{}}
	var (
		family   string
		typ      model.MetricType
		seen     = map[string]bool{}
		last     string
		lastTime = map[string]int64{}
	)
	for {
		e, err := p.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("parse after %d samples: %w", out.samples, err)
		}
		switch e {
		case textparse.EntryType:
			name, tp := p.Type()
			if seen[string(name)] {
				return nil, fmt.Errorf("family %s appears twice", name)
			}
			family, typ = string(name), tp
			seen[family] = true
		case textparse.EntrySeries:
			raw, ts, v := p.Series()
			// The raw text identifies a series: the generator writes the
			// labels of a series in one order.
			key := string(raw)
			s, ok := out.series[key]
			if !ok {
				var l labels.Labels
				p.Labels(&l)
				if !strings.HasPrefix(l.Get(model.MetricNameLabel), family) {
					return nil, fmt.Errorf("sample %s outside its family %s", l, family)
				}
				if _, dup := out.byLabels[l.String()]; dup {
					return nil, fmt.Errorf("series %s written twice", l)
				}
				out.byLabels[l.String()] = true
				s = &parsedSeries{labels: l, family: family, typ: typ}
				out.series[key] = s
				out.order = append(out.order, key)
			}
			if ts == nil {
				return nil, fmt.Errorf("sample %s has no timestamp", key)
			}
			if typ != model.MetricTypeHistogram && ok && last != key {
				return nil, fmt.Errorf("series %s is not contiguous", key)
			}
			if prev, ok := lastTime[key]; ok && *ts <= prev {
				return nil, fmt.Errorf("series %s: timestamp %d after %d", key, *ts, prev)
			}
			lastTime[key] = *ts
			last = key
			s.points = append(s.points, parsedPoint{*ts, v})
			out.samples++
		case textparse.EntryHistogram:
			return nil, errors.New("unexpected native histogram")
		}
	}
	return out, nil
}

// match returns the series whose labels satisfy every matcher, given as
// name, value pairs; a value starting with "!" must differ.
func (p *parsed) match(name string, pairs ...string) []*parsedSeries {
	var out []*parsedSeries
next:
	for _, key := range p.order {
		s := p.series[key]
		if s.labels.Get(model.MetricNameLabel) != name {
			continue
		}
		for i := 0; i < len(pairs); i += 2 {
			v := s.labels.Get(pairs[i])
			if want, neg := strings.CutPrefix(pairs[i+1], "!"); neg {
				if v == want {
					continue next
				}
			} else if v != pairs[i+1] {
				continue next
			}
		}
		out = append(out, s)
	}
	return out
}

// increase sums what the matching counters grew by in [from, to], counter
// resets included, like PromQL's increase() without extrapolation, except
// that a series whose first sample is after from (created inside the
// range, as a lazy child is on its first event) counts from zero.
func (p *parsed) increase(from, to int64, name string, pairs ...string) float64 {
	var sum float64
	for _, s := range p.match(name, pairs...) {
		prev := math.NaN()
		if len(s.points) > 0 && s.points[0].t > from {
			prev = 0
		}
		for _, pt := range s.points {
			if pt.t < from || pt.t > to {
				continue
			}
			switch {
			case math.IsNaN(prev):
			case pt.v >= prev:
				sum += pt.v - prev
			default:
				sum += pt.v
			}
			prev = pt.v
		}
	}
	return sum
}
