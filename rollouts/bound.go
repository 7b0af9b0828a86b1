package rollouts

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/argoproj/argo-rollouts/pkg/apis/rollouts/v1alpha1"
)

// The AnalysisRun keeps its measurements (the last 10 of each metric, by
// default) in its status, one etcd object of at most 1.5 MB, and sends the
// whole run to the plugin at every call. A measurement whose queries fail
// would otherwise carry every SLI's PromQL in its metadata, several KB
// each. So a measurement's message and metadata are bounded; whatever is
// cut is logged in full by the plugin.
const (
	// MaxMeasurementBytes bounds a measurement's message plus the keys
	// and values of its metadata, in bytes.
	MaxMeasurementBytes = 4096
	// maxMessageBytes bounds the message.
	maxMessageBytes = 1024
	// maxEssentialBytes bounds one value of an essential key (names,
	// times, counts: all far shorter unless a name is absurd).
	maxEssentialBytes = 64
	// maxDetailBytes bounds any other metadata value.
	maxDetailBytes = 384
	// maxKeyBytes is the longest metadata key kept (a key cannot be
	// shortened: sli.NAME.field with a very long SLI name is left out).
	maxKeyBytes = 128
	// maxValueBytes bounds the measurement's value (burns as JSON).
	maxValueBytes = 1024
	// cutReserve is room kept for keyCut and its value.
	cutReserve = 200
)

// keyCut says what was left out of a measurement to keep it bounded.
const keyCut = "cut"

// essentialKeys are never left out: the verdict, what Resume reads back
// (stage.*), what Terminate reads, and the summary figures.
var essentialKeys = map[string]bool{
	keyVerdict: true, "mode": true, "dryRun": true, "wouldBe": true, "terminated": true,
	keyPolicy: true, keyStage: true, keyEvaluatedAt: true, keyMaxBurn: true, keyConfidence: true,
	keyQueries: true, keyQueryErrors: true, "evaluationMs": true,
	keyStageStart: true, keySoakEnd: true, keyLooks: true, keyHolds: true, keyWorst: true, keyStageSince: true,
	keySince: true, keyLook: true, keyLookSoakEnd: true, keyPending: true,
	// GetMetadata's.
	"plugin": true, "connection": true, "prometheus": true,
}

// fitMeasurement bounds a message and metadata to MaxMeasurementBytes
// (message + keys + values), keeping, in order: the essential keys (each
// value cut to maxEssentialBytes), the message (cut to maxMessageBytes),
// then the rest in detailRank's order, each value cut to maxDetailBytes. What does not fit is
// left out and counted under keyCut. It reports whether anything was cut
// or left out. md is not modified.
func fitMeasurement(msg string, md map[string]string) (string, map[string]string, bool) {
	if md == nil {
		m := cutText(msg, maxMessageBytes)
		return m, nil, m != msg
	}
	out := make(map[string]string, len(md)+1)
	shortened, left := 0, 0
	fit := func(s string, n int) string {
		c := cutText(s, n)
		if c != s {
			shortened++
		}
		return c
	}
	msg = fit(msg, maxMessageBytes)
	used := len(msg)
	var rest []string
	for k, v := range md {
		switch {
		case k == keyCut:
			// recomputed below
		case essentialKeys[k]:
			v = fit(v, maxEssentialBytes)
			out[k] = v
			used += len(k) + len(v)
		default:
			rest = append(rest, k)
		}
	}
	sort.Slice(rest, func(i, j int) bool {
		a, b := detailRank(rest[i], md), detailRank(rest[j], md)
		if a != b {
			return a < b
		}
		return rest[i] < rest[j]
	})
	limit := MaxMeasurementBytes - cutReserve
	for _, k := range rest {
		v := md[k]
		if len(k) > maxKeyBytes {
			left++
			continue
		}
		v = fit(v, maxDetailBytes)
		if used+len(k)+len(v) > limit {
			left++
			continue
		}
		out[k] = v
		used += len(k) + len(v)
	}
	if shortened == 0 && left == 0 {
		if prev := md[keyCut]; prev != "" {
			// Cut by an earlier call (Terminate and Resume start from a
			// bounded measurement): still true of what it holds.
			out[keyCut] = cutText(prev, cutReserve-len(keyCut))
		}
		return msg, out, false
	}
	out[keyCut] = fmt.Sprintf("%d metadata key(s) left out and %d value(s) shortened to keep the measurement under %d bytes; the plugin's log has them in full", left, shortened, MaxMeasurementBytes)
	return msg, out, true
}

// detailRank orders non-essential metadata keys, most useful first: the
// verdicts and burns of failing and holding SLIs, the verdict's reason
// (the message mostly says it already), why the canary's start is this
// run's (sinceNote), the passing SLIs' verdicts, the
// rest of the failing and holding SLIs' figures, the passing SLIs',
// baselines, and last the query errors (their reasons quote them, short).
func detailRank(k string, md map[string]string) int {
	switch k {
	case keyReason:
		return 2
	case keySinceNote:
		return 3 // why the windows start at this run: short, and rare
	}
	name, field, ok := sliKey(k)
	if !ok {
		return 90
	}
	pass := md["sli."+name+".verdict"] == "pass"
	switch {
	case field == "verdict" && !pass:
		return 0
	case field == "burn" && !pass:
		return 1
	case field == "verdict":
		return 3
	case field == "baseline":
		return 60 + b2i(pass)
	case field == "error":
		return 70 + b2i(pass)
	}
	order := map[string]int{"reason": 0, "samples": 1, "value": 2, "budget": 3, "burn": 4}
	o, known := order[field]
	if !known {
		return 80
	}
	return 10 + 20*b2i(pass) + o
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// sliKey splits "sli.NAME.field".
func sliKey(k string) (name, field string, ok bool) {
	rest, ok := strings.CutPrefix(k, "sli.")
	if !ok {
		return "", "", false
	}
	i := strings.LastIndexByte(rest, '.')
	if i < 0 {
		return "", "", false
	}
	return rest[:i], rest[i+1:], true
}

// cutText returns s if it has at most n bytes, else its beginning, cut at
// a character boundary, with a mark of how much was cut, n bytes at most
// in all.
func cutText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	mark := fmt.Sprintf("… (cut from %d bytes)", len(s))
	keep := max(n-len(mark), 0)
	for keep > 0 && !utf8.RuneStart(s[keep]) {
		keep--
	}
	return s[:keep] + mark
}

// measurementBytes is what MaxMeasurementBytes bounds.
func measurementBytes(m v1alpha1.Measurement) int {
	n := len(m.Message)
	for k, v := range m.Metadata {
		n += len(k) + len(v)
	}
	return n
}

// finish redacts every text of m with the call's set (see call and
// redactMetadata: metadata keys and the plugin's own values are kept as
// written) and bounds it; what is cut is logged in full, redacted too.
func (p *Plugin) finish(cl *call, m v1alpha1.Measurement) v1alpha1.Measurement {
	set := cl.secrets()
	p.metaSecrets.put(cl.metric, set)
	m.Message = set.String(m.Message)
	m.Value = boundValue(set.String(m.Value))
	md := redactMetadata(set, m.Metadata)
	msg, bounded, cut := fitMeasurement(m.Message, md)
	if cut {
		full, _ := json.Marshal(md)
		p.log.Info("measurement detail cut to fit the AnalysisRun", cl.logFields("phase", string(m.Phase), "message", m.Message, "metadata", string(full))...)
	}
	m.Message, m.Metadata = msg, bounded
	return m
}

// boundValue bounds a measurement's value, a JSON object of burn rates
// (valueJSON), to maxValueBytes: past it, the largest burns are kept,
// and the object stays valid JSON.
func boundValue(v string) string {
	if len(v) <= maxValueBytes {
		return v
	}
	var burns map[string]*float64
	if err := json.Unmarshal([]byte(v), &burns); err != nil {
		return cutText(v, maxValueBytes)
	}
	names := make([]string, 0, len(burns))
	for k := range burns {
		names = append(names, k)
	}
	sort.Slice(names, func(i, j int) bool {
		a, b := burns[names[i]], burns[names[j]]
		switch {
		case a == nil || b == nil:
			if (a == nil) != (b == nil) {
				return b == nil
			}
		case *a != *b:
			return *a > *b
		}
		return names[i] < names[j]
	})
	kept := map[string]json.RawMessage{}
	size := 2
	for _, k := range names {
		key, _ := json.Marshal(k)
		val := []byte("null")
		if b := burns[k]; b != nil {
			val = []byte(num(*b))
		}
		if size+len(key)+1+len(val)+1 > maxValueBytes {
			continue
		}
		kept[k] = val
		size += len(key) + 1 + len(val) + 1
	}
	out, _ := json.Marshal(kept)
	return string(out)
}
