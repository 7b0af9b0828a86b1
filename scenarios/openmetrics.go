package scenarios

import (
	"bytes"
	"slices"
	"strconv"
	"strings"
)

// This file writes the OpenMetrics text format, version 1.0.0:
// https://github.com/prometheus/OpenMetrics/blob/v1.0.0/specification/OpenMetrics.md
//
// A family's lines are contiguous, introduced by its # HELP, # TYPE (and
// # UNIT) lines; a series' points are in increasing time order, and a
// histogram point is written as its _bucket lines, _count and _sum at one
// timestamp. Timestamps are in seconds.

// metricType is an OpenMetrics family type.
type metricType string

const (
	counterType   metricType = "counter"
	gaugeType     metricType = "gauge"
	histogramType metricType = "histogram"
)

// bucketBounds are the upper bounds of phase_propagation_seconds in
// seconds, as OpenMetrics writes them ("le" values are canonical floats,
// which Prometheus 3 also normalises them to, so both agree).
var bucketBounds = []struct {
	le  string
	max int64 // milliseconds; -1 for +Inf
}{
	{"0.1", 100}, {"0.5", 500}, {"1.0", 1000}, {"2.0", 2000}, {"5.0", 5000}, {"+Inf", -1},
}

// label is one label pair.
type label struct{ name, value string }

// point is one sample of a counter or gauge: t in Unix milliseconds.
type point struct{ t, v int64 }

// histPoint is one sample of a histogram: per-bucket (not cumulative) counts
// and the sum of observations in milliseconds.
type histPoint struct {
	t       int64
	buckets [6]int64
	sumMs   int64
}

// series is one series of a family.
type series struct {
	labels []label
	points []point
	hist   []histPoint
}

// family is one metric family.
type family struct {
	name, help, unit string
	typ              metricType
	series           []*series
}

func (f *family) add(labels ...label) *series {
	s := &series{labels: labels}
	f.series = append(f.series, s)
	return s
}

// writeOpenMetrics writes the families in order, then "# EOF".
func writeOpenMetrics(fams []*family) []byte {
	var b bytes.Buffer
	lines := 0
	for _, f := range fams {
		for _, s := range f.series {
			lines += len(s.points) + len(s.hist)*(len(bucketBounds)+2)
		}
	}
	b.Grow(lines * 160) // bytes per line, about
	for _, f := range fams {
		// A series without samples (a lazy child that never had an
		// event) is not written, nor a family without a written series.
		written := slices.DeleteFunc(slices.Clone(f.series), func(s *series) bool { return len(s.points) == 0 && len(s.hist) == 0 })
		if len(written) == 0 {
			continue
		}
		b.WriteString("# HELP " + f.name + " " + escapeHelp(f.help) + "\n")
		b.WriteString("# TYPE " + f.name + " " + string(f.typ) + "\n")
		if f.unit != "" {
			b.WriteString("# UNIT " + f.name + " " + f.unit + "\n")
		}
		switch f.typ {
		case counterType:
			for _, s := range written {
				writePoints(&b, f.name+"_total", s)
			}
		case gaugeType:
			for _, s := range written {
				writePoints(&b, f.name, s)
			}
		case histogramType:
			for _, s := range written {
				writeHistogram(&b, f.name, s)
			}
		}
	}
	b.WriteString("# EOF\n")
	return b.Bytes()
}

func writePoints(b *bytes.Buffer, name string, s *series) {
	prefix := name + formatLabels(s.labels, label{}) + " "
	for _, p := range s.points {
		b.WriteString(prefix)
		b.WriteString(strconv.FormatInt(p.v, 10))
		b.WriteByte(' ')
		b.WriteString(formatTimestamp(p.t))
		b.WriteByte('\n')
	}
}

func writeHistogram(b *bytes.Buffer, name string, s *series) {
	bucketPrefix := make([]string, len(bucketBounds))
	for i, bb := range bucketBounds {
		bucketPrefix[i] = name + "_bucket" + formatLabels(s.labels, label{"le", bb.le}) + " "
	}
	lbls := formatLabels(s.labels, label{})
	countPrefix := name + "_count" + lbls + " "
	sumPrefix := name + "_sum" + lbls + " "
	for _, p := range s.hist {
		ts := " " + formatTimestamp(p.t) + "\n"
		var cum int64
		for i := range bucketBounds {
			cum += p.buckets[i]
			b.WriteString(bucketPrefix[i] + strconv.FormatInt(cum, 10) + ts)
		}
		b.WriteString(countPrefix + strconv.FormatInt(cum, 10) + ts)
		b.WriteString(sumPrefix + formatMillis(p.sumMs) + ts)
	}
}

// formatLabels writes {a="x",b="y"} with extra appended when it has a name.
func formatLabels(ls []label, extra label) string {
	if extra.name != "" {
		ls = append(ls[:len(ls):len(ls)], extra)
	}
	if len(ls) == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteByte('{')
	for i, l := range ls {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(l.name)
		b.WriteString(`="`)
		b.WriteString(escapeLabelValue(l.value))
		b.WriteByte('"')
	}
	b.WriteByte('}')
	return b.String()
}

// escapeLabelValue escapes backslash, double quote and line feed, as
// OpenMetrics requires.
func escapeLabelValue(v string) string {
	if !strings.ContainsAny(v, "\\\"\n") {
		return v
	}
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(v)
}

// escapeHelp escapes backslash, double quote and line feed in HELP text.
func escapeHelp(v string) string { return escapeLabelValue(v) }

// formatTimestamp writes Unix milliseconds as OpenMetrics seconds.
func formatTimestamp(ms int64) string { return formatMillis(ms) }

// formatMillis writes a count of milliseconds as decimal seconds with no
// trailing zeros: 1500 -> "1.5", 2000 -> "2".
func formatMillis(ms int64) string {
	neg := ms < 0
	if neg {
		ms = -ms
	}
	s := strconv.FormatInt(ms/1000, 10)
	if frac := ms % 1000; frac != 0 {
		f := strings.TrimRight(strconv.FormatInt(1000+frac, 10)[1:], "0")
		s += "." + f
	}
	if neg {
		s = "-" + s
	}
	return s
}
