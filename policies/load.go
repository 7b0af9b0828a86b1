package policies

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/common/model"
	"gopkg.in/yaml.v3"
)

// Defaults applied to fields a policy leaves empty.
const (
	DefaultAlpha        = 0.05
	DefaultInterval     = model.Duration(30 * time.Second)
	DefaultMinSamples   = 100
	DefaultMaxRatio     = 2
	DefaultOnQueryError = "hold"
)

// DefaultWindows are the burn-rate pairs used when a policy gives none.
// The SRE Workbook's 1h/5m at 14.4× and 6h/30m at 6× are for a 30-day SLO;
// a canary stage lasts minutes, so the windows shrink to minutes and the
// factors follow what a stage can afford to spend:
var DefaultWindows = []WindowPair{
	// fast burn: an obvious break (drain misrouting, split brain) shows in
	// a minute; 10× budget in both windows stops the stage at once.
	{Long: model.Duration(5 * time.Minute), Short: model.Duration(time.Minute), Factor: 10},
	// slow burn: a steady 2× over a quarter hour still spends a stage's
	// budget; the 3m short window lets the pair reset once the burn stops.
	{Long: model.Duration(15 * time.Minute), Short: model.Duration(3 * time.Minute), Factor: 2},
}

// Error is every problem found in one policy.
type Error struct {
	Source string
	Errs   []error
}

func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "policy %s: %d problem(s)", e.Source, len(e.Errs))
	for _, err := range e.Errs {
		b.WriteString("\n  ")
		b.WriteString(err.Error())
	}
	return b.String()
}

// Unwrap returns the individual problems.
func (e *Error) Unwrap() []error { return e.Errs }

// LoadFile reads and loads a policy file.
func LoadFile(path string) (*Policy, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read policy: %w", err)
	}
	return Load(data, path)
}

// Resolve loads a policy named by ref: a built-in preset name, inline YAML
// (anything containing a newline or starting with "apiVersion"), or a file
// path.
func Resolve(ref string) (*Policy, error) {
	ref = strings.TrimSpace(ref)
	switch {
	case ref == "":
		return nil, errors.New("policy: empty reference (give a preset name, a file path or inline YAML)")
	case strings.Contains(ref, "\n") || strings.HasPrefix(ref, "apiVersion"):
		return Load([]byte(ref), "inline")
	case IsPreset(ref):
		return Preset(ref)
	}
	return LoadFile(ref)
}

// Load decodes, defaults and validates a policy, reporting every problem at
// once with its field path and line.
func Load(data []byte, source string) (*Policy, error) {
	var root yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&root); err != nil {
		return nil, &Error{Source: source, Errs: []error{fmt.Errorf("not YAML: %w", err)}}
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		return nil, &Error{Source: source, Errs: []error{&FieldError{Path: "(document)", Line: extra.Line, Msg: "more than one YAML document; a policy file holds one"}}}
	}
	p := &Policy{source: source}
	d := &decoder{lines: map[string]int{}}
	d.decode("", &root, reflect.ValueOf(p).Elem())
	if len(d.errs) > 0 {
		return nil, &Error{Source: source, Errs: d.errs}
	}
	errs := p.expandPresets(d.lines)
	p.defaults()
	errs = append(errs, p.validate(d.lines)...)
	sortByLine(errs)
	if len(errs) > 0 {
		return nil, &Error{Source: source, Errs: errs}
	}
	return p, nil
}

// expandPresets fills each SLI that names a preset with the preset's
// fields, where the SLI leaves them empty.
func (p *Policy) expandPresets(lines map[string]int) []error {
	var errs []error
	for i := range p.Spec.SLIs {
		s := &p.Spec.SLIs[i]
		if s.Preset == "" {
			continue
		}
		base, ok := sliPresets[s.Preset]
		if !ok {
			path := fmt.Sprintf("spec.slis[%d].preset", i)
			errs = append(errs, &FieldError{Path: path, Line: lines[path], Msg: fmt.Sprintf("unknown SLI preset %q (known: %s)", s.Preset, strings.Join(SLIPresetNames(), ", "))})
			continue
		}
		if s.Name == "" {
			s.Name = s.Preset
		}
		if s.Description == "" {
			s.Description = base.Description
		}
		if s.Objective == 0 {
			s.Objective = base.Objective
		}
		if s.Allowance == 0 {
			s.Allowance = base.Allowance
		}
		if s.Ratio == nil && s.Rate == nil {
			if base.Ratio != nil {
				r := *base.Ratio
				s.Ratio = &r
			}
			if base.Rate != nil {
				r := *base.Rate
				s.Rate = &r
			}
		}
	}
	return errs
}

func (p *Policy) defaults() {
	s := &p.Spec
	if s.Alpha == 0 {
		s.Alpha = DefaultAlpha
	}
	if s.Interval == 0 {
		s.Interval = DefaultInterval
	}
	if s.MinSamples == 0 {
		s.MinSamples = DefaultMinSamples
	}
	if s.OnQueryError == "" {
		s.OnQueryError = DefaultOnQueryError
	}
	if len(s.Windows) == 0 {
		s.Windows = append([]WindowPair(nil), DefaultWindows...)
	}
	if s.Baseline.MaxRatio == 0 {
		s.Baseline.MaxRatio = DefaultMaxRatio
	}
}

var nameRE = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)

func (p *Policy) validate(lines map[string]int) []error {
	var errs []error
	bad := func(path, format string, args ...any) {
		errs = append(errs, &FieldError{Path: path, Line: lineOf(lines, path), Msg: fmt.Sprintf(format, args...)})
	}
	if p.APIVersion != APIVersion {
		bad("apiVersion", "must be %q, got %q", APIVersion, p.APIVersion)
	}
	if p.Kind != Kind {
		bad("kind", "must be %q, got %q", Kind, p.Kind)
	}
	if !nameRE.MatchString(p.Metadata.Name) {
		bad("metadata.name", "must be a DNS-1123 label (lower-case letters, digits, '-'), got %q", p.Metadata.Name)
	}
	s := &p.Spec
	if !(s.Alpha > 0 && s.Alpha < 0.5) {
		bad("spec.alpha", "must be in (0, 0.5), got %g", s.Alpha)
	}
	if s.Interval < model.Duration(time.Second) {
		bad("spec.interval", "must be at least 1s, got %s", s.Interval)
	}
	if !(s.MinSamples >= 1) || math.IsInf(s.MinSamples, 0) {
		bad("spec.minSamples", "must be at least 1, got %g", s.MinSamples)
	}
	if s.OnQueryError != "hold" && s.OnQueryError != "fail" {
		bad("spec.onQueryError", `must be "hold" or "fail", got %q`, s.OnQueryError)
	}
	for i, w := range s.Windows {
		path := fmt.Sprintf("spec.windows[%d]", i)
		if w.Long <= 0 || w.Short <= 0 {
			bad(path, "long and short must be positive durations, got %s and %s", w.Long, w.Short)
		} else if w.Short >= w.Long {
			bad(path+".short", "must be shorter than long (%s), got %s", w.Long, w.Short)
		}
		if w.Long > model.Duration(24*time.Hour) {
			bad(path+".long", "at most 24h for a canary stage, got %s", w.Long)
		}
		if !(w.Factor >= 1) || math.IsInf(w.Factor, 0) {
			bad(path+".factor", "must be at least 1 (a healthy canary burns at most 1×), got %g", w.Factor)
		}
	}
	if b := s.Baseline; !(b.MaxRatio >= 1) || math.IsInf(b.MaxRatio, 0) {
		bad("spec.baseline.maxRatio", "must be at least 1, got %g", b.MaxRatio)
	} else if b.MinBurn < 0 || math.IsNaN(b.MinBurn) {
		bad("spec.baseline.minBurn", "must not be negative, got %g", b.MinBurn)
	}
	stages := map[string]bool{}
	for i, st := range s.Stages {
		path := fmt.Sprintf("spec.stages[%d]", i)
		if !nameRE.MatchString(st.Name) {
			bad(path+".name", "must be a DNS-1123 label, got %q", st.Name)
		} else if stages[st.Name] {
			bad(path+".name", "duplicate stage %q", st.Name)
		}
		stages[st.Name] = true
		if st.Soak < 0 {
			bad(path+".soak", "must not be negative, got %s", st.Soak)
		}
	}
	if len(s.SLIs) == 0 {
		bad("spec.slis", "at least one SLI is required")
	}
	names := map[string]bool{}
	windows := windowsOf(s.Windows)
	for i := range s.SLIs {
		sli := &s.SLIs[i]
		path := fmt.Sprintf("spec.slis[%d]", i)
		if _, known := sliPresets[sli.Preset]; sli.Preset != "" && !known {
			continue // reported by expandPresets
		}
		if !nameRE.MatchString(sli.Name) {
			bad(path+".name", "must be a DNS-1123 label, got %q", sli.Name)
		} else if names[sli.Name] {
			bad(path+".name", "duplicate SLI %q", sli.Name)
		}
		names[sli.Name] = true
		switch {
		case sli.Ratio != nil && sli.Rate != nil:
			bad(path, "give ratio or rate, not both")
			continue
		case sli.Ratio == nil && sli.Rate == nil:
			bad(path, "missing queries: give ratio (bad or good, and total), rate (events), or a preset")
			continue
		case sli.Ratio != nil:
			r := sli.Ratio
			if (r.Bad == "") == (r.Good == "") {
				bad(path+".ratio", "give exactly one of bad and good")
			}
			if r.Total == "" {
				bad(path+".ratio.total", "missing")
			}
			if sli.Objective == 0 {
				bad(path+".objective", "missing: a ratio SLI needs an objective in percent, e.g. 99.9")
			} else if !(sli.Objective >= 50 && sli.Objective < 100) {
				bad(path+".objective", "must be a percentage of good events in [50, 100), got %g (99.9 means a 0.1 %% budget)", sli.Objective)
			}
			if sli.Allowance != 0 {
				bad(path+".allowance", "only for rate SLIs")
			}
		case sli.Rate != nil:
			if sli.Rate.Events == "" {
				bad(path+".rate.events", "missing")
			}
			if sli.Allowance == 0 {
				bad(path+".allowance", "missing: a rate SLI needs an allowance in events per hour")
			} else if !(sli.Allowance > 0) || math.IsInf(sli.Allowance, 0) {
				bad(path+".allowance", "must be a positive number of events per hour, got %g", sli.Allowance)
			}
			if sli.Objective != 0 {
				bad(path+".objective", "only for ratio SLIs")
			}
		}
		for _, err := range sli.compile(path, windows) {
			var fe *FieldError
			if errors.As(err, &fe) && fe.Line == 0 {
				fe.Line = lineOf(lines, fe.Path)
			}
			errs = append(errs, err)
		}
	}
	return errs
}

// sortByLine orders problems as they appear in the file.
func sortByLine(errs []error) {
	line := func(err error) int {
		var fe *FieldError
		if errors.As(err, &fe) {
			return fe.Line
		}
		return 0
	}
	slices.SortStableFunc(errs, func(a, b error) int { return line(a) - line(b) })
}

// lineOf returns the line of path, or of its nearest ancestor that has one
// (a missing field is reported at the line of the mapping it is missing from).
func lineOf(lines map[string]int, path string) int {
	for path != "" {
		if l := lines[path]; l > 0 {
			return l
		}
		i := strings.LastIndexAny(path, ".[")
		if i < 0 {
			break
		}
		path = path[:i]
	}
	return 0
}

// windowsOf returns the distinct windows of the pairs, longest first.
func windowsOf(pairs []WindowPair) []time.Duration {
	var out []time.Duration
	seen := map[time.Duration]bool{}
	for _, p := range pairs {
		for _, w := range []time.Duration{time.Duration(p.Long), time.Duration(p.Short)} {
			if w > 0 && !seen[w] {
				seen[w] = true
				out = append(out, w)
			}
		}
	}
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && out[j] > out[j-1]; j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out
}
