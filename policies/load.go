package policies

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/prometheus/common/model"
	"gopkg.in/yaml.v3"

	"github.com/phaseguard/phaseguard/internal/regularfile"
)

// Defaults applied to fields a policy leaves empty.
const (
	DefaultAlpha        = 0.05
	DefaultInterval     = model.Duration(30 * time.Second)
	DefaultMinSamples   = 100
	DefaultMaxRatio     = 2
	DefaultMinBurn      = 1
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

// Limits on what one policy holds. Each SLI is one batched query per
// target per look, holding every part (and a presence check per metric
// family it reads) in every window, so the work of loading a policy and of
// each look grows with their product; a policy may come from anyone who
// can write an AnalysisTemplate (inline YAML), and the plugin process that
// loads it serves every AnalysisRun of the cluster.
const (
	maxSLIs        = 50
	maxWindowPairs = 8
	// maxFamilies bounds the metric families the queries of one SLI read
	// (an SLI reads one or two).
	maxFamilies = 16
)

// Error is every problem found in one policy.
type Error struct {
	Source string
	Errs   []error
}

// maxShownProblems and maxProblemText bound the text of an Error: the
// first maxShownProblems problems, each cut to maxProblemText bytes (a
// problem quotes the query it is about, which may be long). Errs keeps
// every problem whole.
const (
	maxShownProblems = 50
	maxProblemText   = 1 << 10
)

func (e *Error) Error() string {
	var b strings.Builder
	noun := "problems"
	if len(e.Errs) == 1 {
		noun = "problem"
	}
	fmt.Fprintf(&b, "policy %s: %d %s", e.Source, len(e.Errs), noun)
	for i, err := range e.Errs {
		if i == maxShownProblems {
			fmt.Fprintf(&b, "\n  ... and %d more", len(e.Errs)-i)
			break
		}
		b.WriteString("\n  ")
		b.WriteString(cutText(err.Error(), maxProblemText))
	}
	return b.String()
}

// cutText cuts s to at most n bytes at a rune boundary, marking the cut.
func cutText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

// Unwrap returns the individual problems.
func (e *Error) Unwrap() []error { return e.Errs }

// MaxFileSize is the largest policy accepted, file or inline: a policy is
// a page of YAML, and the plugin process that reads one serves every
// AnalysisRun of the cluster.
const MaxFileSize = 1 << 20

// LoadFile reads and loads a policy file. It is the one place a policy file
// is read, for the CLI, the Action and the plugin: it refuses, naming the
// path, anything but a regular file (a directory, /dev/zero, a FIFO) and a
// file over MaxFileSize, before reading it.
func LoadFile(path string) (*Policy, error) {
	data, err := readFile(path)
	if err != nil {
		return nil, err
	}
	return Load(data, path)
}

// LintFile reads a policy file as LoadFile does and reports, in one
// *Error sorted by line, every problem Load reports together with the
// findings of lint (see Lint). It returns the policy only when there is
// nothing to report.
func LintFile(path string) (*Policy, error) {
	data, err := readFile(path)
	if err != nil {
		return nil, err
	}
	return Lint(data, path)
}

// readFile reads a policy file of at most MaxFileSize bytes
// (regularfile.Read), naming the path in a refusal.
func readFile(path string) ([]byte, error) {
	data, err := regularfile.Read(path, MaxFileSize)
	switch {
	case errors.Is(err, regularfile.ErrRefused):
		return nil, &Error{Source: path, Errs: []error{fmt.Errorf("%s: a policy is a YAML file of at most 1 MiB", strings.TrimPrefix(err.Error(), regularfile.ErrRefused.Error()+": "))}}
	case err != nil:
		return nil, fmt.Errorf("read policy: %w", err)
	}
	return data, nil
}

// Resolve loads a policy named by ref: a built-in preset name, inline YAML
// (anything containing a newline or starting with "apiVersion"), or a file
// path (read by LoadFile).
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
// once with its field path and line: problems of decoding (unknown fields,
// wrong types) and of validating every field that did decode. A field
// given an explicit zero (`alpha: 0`, `windows: []`) is validated as
// written; only absent fields take defaults.
//
// What a policy costs to load and to evaluate is bounded whatever it holds:
// at most 1 MiB, also once its aliases are expanded (2 MiB), 50 SLIs, 8
// window pairs, 256 PromQL tokens per query and 16 metric families per
// SLI; decoding stops after 100 problems, and the error's text shows the
// first 50, each cut to 1 KiB.
func Load(data []byte, source string) (*Policy, error) {
	p, errs, _ := load(data, source)
	if len(errs) > 0 {
		return nil, &Error{Source: source, Errs: errs}
	}
	return p, nil
}

// Lint is Load that also reports what lint finds in a policy that loads
// (see Policy.Warnings): a query that only one spelling of a label value
// satisfies, a ratio SLI that counts with rate(). Every problem and
// finding comes in one *Error, sorted by
// line; the policy is returned only when there is nothing to report.
func Lint(data []byte, source string) (*Policy, error) {
	p, errs, warns := load(data, source)
	errs = append(errs, warns...)
	sortByLine(errs)
	if len(errs) > 0 {
		return nil, &Error{Source: source, Errs: errs}
	}
	return p, nil
}

const emptyPolicy = "empty policy: nothing but blank lines, comments or null"

// load decodes, defaults and validates data: the policy (nil when there
// are errors), the errors and the lint findings, each sorted by line.
func load(data []byte, source string) (*Policy, []error, []error) {
	one := func(err error) []error { return []error{err} }
	if len(data) > MaxFileSize {
		return nil, one(fmt.Errorf("%d bytes: a policy may have at most %d (1 MiB)", len(data), MaxFileSize)), nil
	}
	var root yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&root); errors.Is(err, io.EOF) {
		return nil, one(errors.New(emptyPolicy)), nil
	} else if err != nil {
		return nil, one(fmt.Errorf("not YAML: %w", err)), nil
	}
	if len(root.Content) == 0 || root.Content[0].Tag == "!!null" {
		return nil, one(errors.New(emptyPolicy)), nil
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		return nil, one(&FieldError{Path: "(document)", Line: extra.Line, Msg: "more than one YAML document; a policy file holds one"}), nil
	}
	p := &Policy{source: source}
	d := newDecoder()
	d.decode("", &root, reflect.ValueOf(p).Elem())
	errs := p.expandPresets(d)
	p.defaults(d)
	errs = append(errs, p.validate(d)...)
	var kept []error
	for _, err := range errs {
		var fe *FieldError
		if errors.As(err, &fe) && d.masks(fe.Path) {
			continue
		}
		kept = append(kept, err)
	}
	errs = append(d.errs, kept...)
	sortByLine(errs)
	warns := p.lint(d.lines)
	sortByLine(warns)
	p.warnings = warns
	if len(errs) > 0 {
		return nil, errs, warns
	}
	return p, nil, warns
}

// expandPresets fills each SLI that names a preset with the preset's
// fields, where the SLI leaves them out (an explicit `objective: 0` stays
// 0, and validation says so).
func (p *Policy) expandPresets(d *decoder) []error {
	var errs []error
	for i := range p.Spec.SLIs {
		s := &p.Spec.SLIs[i]
		if s.Preset == "" {
			continue
		}
		path := fmt.Sprintf("spec.slis[%d]", i)
		absent := func(field string) bool { return !d.given[path+"."+field] }
		base, ok := sliPresets[s.Preset]
		if !ok {
			errs = append(errs, &FieldError{Path: path + ".preset", Line: d.lines[path+".preset"], Msg: fmt.Sprintf("unknown SLI preset %q (known: %s)", s.Preset, strings.Join(SLIPresetNames(), ", "))})
			continue
		}
		if absent("name") {
			s.Name = s.Preset
		}
		if absent("description") {
			s.Description = base.Description
		}
		if absent("objective") {
			s.Objective = base.Objective
		}
		if absent("allowance") {
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

// defaults fills the fields the document leaves out. A field given a zero
// keeps it, for validate to refuse: a zero written in a policy is a
// mistake or a wish the default would silently overrule.
func (p *Policy) defaults(d *decoder) {
	s := &p.Spec
	absent := func(path string) bool { return !d.given[path] }
	if absent("spec.alpha") {
		s.Alpha = DefaultAlpha
	}
	if absent("spec.interval") {
		s.Interval = DefaultInterval
	}
	if absent("spec.minSamples") {
		s.MinSamples = DefaultMinSamples
	}
	if absent("spec.onQueryError") {
		s.OnQueryError = DefaultOnQueryError
	}
	if absent("spec.windows") {
		s.Windows = append([]WindowPair(nil), DefaultWindows...)
	}
	if absent("spec.baseline.maxRatio") {
		s.Baseline.MaxRatio = DefaultMaxRatio
	}
	if absent("spec.baseline.minBurn") {
		s.Baseline.MinBurn = DefaultMinBurn
	}
}

// nameRE is a DNS-1123 label, as Kubernetes names one: at most 63
// lower-case letters, digits and '-', a letter or digit at each end. A
// name longer than that would not fit a report's columns either.
// Bounds of an SLI's budget: an objective of at most 99.9999 % (one bad
// event in a million) and an allowance of at least 1e-6 events per hour.
// Tighter budgets cannot be tested by any canary's traffic and reach the
// edge of float64 in the engine's bounds (a budget that rounds to zero).
const (
	MaxObjective = 99.9999
	MinAllowance = 1e-6
)

var nameRE = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$`)

// dnsLabel is what a name must be, for a message.
const dnsLabel = "a DNS-1123 label (at most 63 lower-case letters, digits and '-', a letter or digit at each end)"

func (p *Policy) validate(d *decoder) []error {
	lines := d.lines
	var errs []error
	bad := func(path, format string, args ...any) {
		errs = append(errs, &FieldError{Path: path, Line: lineOf(lines, path), Msg: fmt.Sprintf(format, args...)})
	}
	// orDefault tells the author of an explicit zero how to get the
	// default instead.
	orDefault := func(field string, def any) string {
		return fmt.Sprintf(" (leave %s out for the default %v)", field, def)
	}
	if p.APIVersion != APIVersion {
		bad("apiVersion", "must be %q, got %q", APIVersion, p.APIVersion)
	}
	if p.Kind != Kind {
		bad("kind", "must be %q, got %q", Kind, p.Kind)
	}
	if !nameRE.MatchString(p.Metadata.Name) {
		bad("metadata.name", "must be %s, got %s", dnsLabel, quoteCut(p.Metadata.Name))
	}
	s := &p.Spec
	switch {
	case s.Alpha == 0:
		bad("spec.alpha", "must be in (0, 0.5), got 0%s", orDefault("alpha", DefaultAlpha))
	case !(s.Alpha > 0 && s.Alpha < 0.5):
		bad("spec.alpha", "must be in (0, 0.5), got %g", s.Alpha)
	}
	switch {
	case s.Interval == 0:
		bad("spec.interval", "must be at least 1s, got 0s%s", orDefault("interval", DefaultInterval))
	case s.Interval < model.Duration(time.Second):
		bad("spec.interval", "must be at least 1s, got %s", s.Interval)
	}
	switch {
	case s.MinSamples == 0:
		// 0 is not "no floor": a pass needs at least one event, and 1 is
		// the least evidence a policy can ask for.
		bad("spec.minSamples", "must be at least 1, got 0: a pass needs events (minSamples: 1 is the least; leave minSamples out for the default %d)", DefaultMinSamples)
	case !(s.MinSamples >= 1) || math.IsInf(s.MinSamples, 0):
		bad("spec.minSamples", "must be at least 1, got %g", s.MinSamples)
	}
	if s.OnQueryError != "hold" && s.OnQueryError != "fail" {
		bad("spec.onQueryError", `must be "hold" or "fail", got %q`, s.OnQueryError)
	}
	if len(s.Windows) == 0 && d.given["spec.windows"] {
		bad("spec.windows", "empty: give at least one window pair%s", orDefault("windows", "5m/1m>10×, 15m/3m>2×"))
	}
	if len(s.Windows) > maxWindowPairs {
		bad("spec.windows", "at most %d window pairs, got %d: every SLI is queried in every window at each look", maxWindowPairs, len(s.Windows))
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
	switch b := s.Baseline; {
	case b.MaxRatio == 0:
		bad("spec.baseline.maxRatio", "must be at least 1, got 0%s", orDefault("maxRatio", DefaultMaxRatio))
	case !(b.MaxRatio >= 1) || math.IsInf(b.MaxRatio, 0):
		bad("spec.baseline.maxRatio", "must be at least 1, got %g", b.MaxRatio)
	}
	if b := s.Baseline; b.MinBurn < 0 || math.IsNaN(b.MinBurn) || math.IsInf(b.MinBurn, 0) {
		bad("spec.baseline.minBurn", "must be a burn rate of 0 or more, got %g (0: fail a canary worse than stable even within its budget)", b.MinBurn)
	}
	stages := map[string]bool{}
	for i, st := range s.Stages {
		path := fmt.Sprintf("spec.stages[%d]", i)
		if !nameRE.MatchString(st.Name) {
			bad(path+".name", "must be %s, got %s", dnsLabel, quoteCut(st.Name))
		} else if stages[st.Name] {
			bad(path+".name", "duplicate stage %q", st.Name)
		}
		stages[st.Name] = true
		switch {
		case !d.given[path+".soak"]:
			bad(path+".soak", "missing: the least time the stage must run, and pass, before the next may start, e.g. 10m")
		case st.Soak <= 0:
			bad(path+".soak", "must be positive, got %s: a stage passes only after soaking this long", st.Soak)
		}
	}
	slis := s.SLIs
	switch {
	case len(slis) == 0:
		bad("spec.slis", "at least one SLI is required")
	case len(slis) > maxSLIs:
		bad("spec.slis", "at most %d SLIs, got %d (the rest are not checked): each is a query per target at each look", maxSLIs, len(slis))
		slis = slis[:maxSLIs]
	}
	names := map[string]bool{}
	windows := windowsOf(s.Windows)
	if len(windows) == 0 || len(s.Windows) > maxWindowPairs {
		// windows: [] and too many windows are reported above; check the
		// queries with the default windows rather than with none or all.
		windows = windowsOf(DefaultWindows)
	}
	for i := range slis {
		sli := &s.SLIs[i]
		path := fmt.Sprintf("spec.slis[%d]", i)
		given := func(field string) bool { return d.given[path+"."+field] }
		if _, known := sliPresets[sli.Preset]; sli.Preset != "" && !known {
			continue // reported by expandPresets
		}
		if !nameRE.MatchString(sli.Name) {
			bad(path+".name", "must be %s, got %s", dnsLabel, quoteCut(sli.Name))
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
			switch {
			case sli.Objective == 0 && !given("objective"):
				bad(path+".objective", "missing: a ratio SLI needs an objective in percent, e.g. 99.9")
			case sli.Objective == 0 && sli.Preset != "":
				bad(path+".objective", "must be a percentage of good events in [50, 100), got 0 (leave objective out for preset %s's %g)", sli.Preset, sliPresets[sli.Preset].Objective)
			case !(sli.Objective >= 50 && sli.Objective < 100):
				bad(path+".objective", "must be a percentage of good events in [50, 100), got %g (99.9 means a 0.1 %% budget)", sli.Objective)
			case sli.Objective > MaxObjective:
				// 99.99999999999 rounded to a zero budget and hung the
				// engine; no canary's traffic can test a budget under
				// one in a million anyway.
				bad(path+".objective", "must be at most %g (a budget of one bad event in a million), got %g", MaxObjective, sli.Objective)
			}
			if sli.Allowance != 0 || given("allowance") {
				bad(path+".allowance", "only for rate SLIs")
			}
		case sli.Rate != nil:
			if sli.Rate.Events == "" {
				bad(path+".rate.events", "missing")
			}
			switch {
			case sli.Allowance == 0 && !given("allowance"):
				bad(path+".allowance", "missing: a rate SLI needs an allowance in events per hour")
			case sli.Allowance == 0 && sli.Preset != "":
				bad(path+".allowance", "must be a positive number of events per hour, got 0 (leave allowance out for preset %s's %g)", sli.Preset, sliPresets[sli.Preset].Allowance)
			case !(sli.Allowance >= MinAllowance) || math.IsInf(sli.Allowance, 0):
				bad(path+".allowance", "must be a number of events per hour of at least %g (less cannot be tested by any canary), got %g", MinAllowance, sli.Allowance)
			}
			if sli.Objective != 0 || given("objective") {
				bad(path+".objective", "only for ratio SLIs")
			}
		}
		cerrs := sli.compile(path, windows)
		perr := checkPartTargets(path, sli, cerrs)
		for _, err := range append(cerrs, perr...) {
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
