package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/promql/parser"
	"gopkg.in/yaml.v3"

	"github.com/phaseguard/phaseguard/policies"
	"github.com/phaseguard/phaseguard/report"
)

func runLint(_ context.Context, e env, args []string) int {
	fs := flag.NewFlagSet("lint", flag.ContinueOnError)
	usage := "Usage: phaseguard lint FILE...\n\nValidates policy files: strict fields, types, objectives, windows, stages and every PromQL query,\nreporting every problem of a file at once. It also flags le/quantile matchers that only one\nspelling of their number satisfies (le=\"2\" against Prometheus 3's le=\"2.0\"), and ratio SLIs\nthat count with rate() or irate() where the engine needs events (increase()): such policies load,\nbut read no events or hold on thin evidence. Exit 1 if anything is reported."
	if code, ok := parseUsage(fs, e, args, usage); !ok {
		return code
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return exitUsage
	}
	code := exitPass
	for _, path := range fs.Args() {
		p, err := policies.LintFile(path)
		if err != nil {
			code = exitFail
			var pe *policies.Error
			if errors.As(err, &pe) {
				for _, fe := range pe.Errs {
					finding(e, path, fe.Error())
				}
				continue
			}
			finding(e, path, err.Error())
			continue
		}
		var stages []string
		for _, s := range p.Spec.Stages {
			stages = append(stages, fmt.Sprintf("%s(%s)", s.Name, s.Soak))
		}
		if len(stages) == 0 {
			stages = []string{"none"}
		}
		finding(e, path, fmt.Sprintf("ok: policy %s, %s, %s, stages %s", p.Metadata.Name, report.Plural(len(p.Spec.SLIs), "SLI", "SLIs"), report.Plural(len(p.Spec.Windows), "window pair", "window pairs"), strings.Join(stages, " -> ")))
	}
	return code
}

// finding prints what lint says of the file at path, "PATH: line N:
// field: problem" or "PATH: ok: ...", within report.Width: a longer one
// wraps under its first line indented by four spaces, so that each line
// starting with the path begins a finding (grep FILE finds them all).
func finding(e env, path, msg string) {
	for _, l := range fit(path+": "+msg, "", "    ") {
		fmt.Fprintln(e.stdout, l)
	}
}

// runPresets lists the built-in policies and SLI presets, or prints one:
// a policy as its YAML followed by each SLI's queries, presets expanded;
// an SLI preset as the fields a policy's spec.slis entry would give,
// followed by its queries as the engine sends them. Both print as YAML
// (the extra text is comments), so the output can start a policy file.
func runPresets(_ context.Context, e env, args []string) int {
	fs := flag.NewFlagSet("presets", flag.ContinueOnError)
	usage := "Usage: phaseguard presets [NAME]\n\nWithout NAME, lists the built-in policies (for --policy) and SLI presets (for `- preset: NAME`\nin a policy's spec.slis). With NAME, prints that policy or SLI preset as YAML with its PromQL."
	if code, ok := parseUsage(fs, e, args, usage); !ok {
		return code
	}
	switch {
	case fs.NArg() == 0:
		return listPresets(e)
	case fs.NArg() > 1:
		fmt.Fprintf(e.stderr, "phaseguard presets: one NAME at a time, got %d\n", fs.NArg())
		return exitUsage
	}
	name := fs.Arg(0)
	switch {
	case policies.IsPreset(name):
		return printPolicyPreset(e, name)
	case slices.Contains(policies.SLIPresetNames(), name):
		return printSLIPreset(e, name)
	}
	return fail(e, "presets", fmt.Errorf("unknown preset %q (policies: %s; SLI presets: %s)", name,
		strings.Join(policies.PresetNames(), ", "), strings.Join(policies.SLIPresetNames(), ", ")))
}

func listPresets(e env) int {
	fmt.Fprintln(e.stdout, "Policies (--policy NAME; phaseguard presets NAME prints one):")
	tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
	for _, n := range policies.PresetNames() {
		p, err := policies.Preset(n)
		if err != nil {
			return fail(e, "presets", err)
		}
		fmt.Fprintf(tw, "  %s\t%s\n", n, p.Metadata.Description)
	}
	tw.Flush()
	fmt.Fprintln(e.stdout, "\nSLI presets (- preset: NAME in a policy's spec.slis; phaseguard presets NAME prints one):")
	names := policies.SLIPresetNames()
	nameWidth := 0
	for _, n := range names {
		nameWidth = max(nameWidth, len(n))
	}
	fmt.Fprintf(e.stdout, "  %-*s  %-5s  %-9s  %s\n", nameWidth, "NAME", "KIND", "OBJECTIVE", "WHAT IT COUNTS")
	for _, n := range names {
		s, err := sliPreset(n)
		if err != nil {
			return fail(e, "presets", err)
		}
		head := fmt.Sprintf("  %-*s  %-5s  %-9s  ", nameWidth, n, s.Kind(), objective(s.SLI))
		for _, l := range report.Wrap(s.Description, report.Width, head, strings.Repeat(" ", len(head))) {
			fmt.Fprintln(e.stdout, l)
		}
	}
	return exitPass
}

// printPolicyPreset writes a built-in policy's YAML, then each SLI's
// queries with its preset expanded, as comments.
func printPolicyPreset(e env, name string) int {
	data, err := policies.PresetYAML(name)
	if err != nil {
		return fail(e, "presets", err)
	}
	p, err := policies.Preset(name)
	if err != nil {
		return fail(e, "presets", err)
	}
	e.stdout.Write(data)
	fmt.Fprintln(e.stdout)
	for _, l := range report.Wrap("The PromQL of each SLI, presets expanded: $window is each window of spec.windows, and $service, $namespace and $hash are filled per target. `phaseguard presets SLI` shows an SLI preset's queries as the engine sends them.", report.Width, "# ", "# ") {
		fmt.Fprintln(e.stdout, l)
	}
	for i := range p.Spec.SLIs {
		s := &p.Spec.SLIs[i]
		fmt.Fprintf(e.stdout, "#\n# %s: %s\n", s.Name, describe(s))
		for _, q := range s.Queries() {
			_, field, _ := strings.Cut(q.Field, ".") // bad, events: the kind is said above
			fmt.Fprintf(e.stdout, "#   %-*s %s\n", len("presence:"), field+":", q.Expr)
		}
	}
	return exitPass
}

// printSLIPreset writes an SLI preset's fields as YAML, then its queries
// as sent for one target in the longest default window, as comments.
func printSLIPreset(e env, name string) int {
	s, err := sliPreset(name)
	if err != nil {
		return fail(e, "presets", err)
	}
	w := slices.Max(s.windows)
	for _, l := range report.Wrap(fmt.Sprintf("SLI preset %s, %s. In a policy, `- preset: %s` in spec.slis uses it (fields written beside it override these), or copy the fields below and edit them.", name, describe(s.SLI), name), report.Width, "# ", "# ") {
		fmt.Fprintln(e.stdout, l)
	}
	enc := yaml.NewEncoder(e.stdout)
	enc.SetIndent(2)
	if err := enc.Encode(sliFields(s.SLI)); err != nil {
		return fail(e, "presets", err)
	}
	if err := enc.Close(); err != nil {
		return fail(e, "presets", err)
	}
	fmt.Fprintln(e.stdout)
	for _, l := range report.Wrap(fmt.Sprintf("As the engine sends them for one target, in the %s window (every window alike): series born in the window count from zero (README, \"How the engine decides\", rule 1); $service, $namespace and $hash are filled per target.", model.Duration(w)), report.Width, "# ", "# ") {
		fmt.Fprintln(e.stdout, l)
	}
	placeholders := policies.Target{Service: policies.PlaceholderService, Namespace: policies.PlaceholderNamespace, Hash: policies.PlaceholderHash}
	for _, part := range s.Parts() {
		if policies.IsFamily(part) {
			continue
		}
		q := s.PartQuery(part, w, placeholders)
		fmt.Fprintf(e.stdout, "#\n# %s:\n", fieldOf(s.SLI, part))
		if expr, err := promqlParser.ParseExpr(q); err == nil {
			q = parser.Prettify(expr)
		}
		for _, l := range strings.Split(q, "\n") {
			fmt.Fprintf(e.stdout, "#   %s\n", l)
		}
	}
	return exitPass
}

// promqlParser parses queries for display, with Prometheus's defaults.
var promqlParser = parser.NewParser(parser.Options{})

// loadedSLI is an SLI preset compiled in a policy of the default fields.
type loadedSLI struct {
	*policies.SLI
	windows []time.Duration
}

// sliPreset compiles the SLI preset name as the only SLI of a policy
// that gives nothing else, so that its queries are those any policy
// using it with the default windows sends.
func sliPreset(name string) (loadedSLI, error) {
	if !slices.Contains(policies.SLIPresetNames(), name) {
		return loadedSLI{}, fmt.Errorf("unknown SLI preset %q", name)
	}
	doc := fmt.Sprintf("apiVersion: phaseguard.dev/v1alpha1\nkind: Policy\nmetadata: {name: %s}\nspec:\n  slis:\n    - preset: %s\n", name, name)
	p, err := policies.Load([]byte(doc), "SLI preset "+name)
	if err != nil {
		return loadedSLI{}, err
	}
	return loadedSLI{SLI: &p.Spec.SLIs[0], windows: p.Windows()}, nil
}

// objective gives an SLI's objective (percent good) or allowance (events
// an hour) in short.
func objective(s *policies.SLI) string {
	if s.Kind() == policies.KindRate {
		return fmt.Sprintf("%g/h", s.Allowance)
	}
	return fmt.Sprintf("%g %%", s.Objective)
}

// describe says what kind an SLI is and what it allows, in words.
func describe(s *policies.SLI) string {
	if s.Kind() == policies.KindRate {
		return fmt.Sprintf("a rate SLI, allowance %g events an hour", s.Allowance)
	}
	return fmt.Sprintf("a ratio SLI, objective %g %% (budget %g %%)", s.Objective, 100*s.Budget())
}

// fieldOf names the policy field a part of s comes from.
func fieldOf(s *policies.SLI, p policies.Part) string {
	if s.Rate != nil {
		return "rate." + string(p)
	}
	return "ratio." + string(p)
}

// sliFields is an SLI as a policy's spec.slis entry writes it, empty
// fields left out.
func sliFields(s *policies.SLI) any {
	type ratio struct {
		Bad   string `yaml:"bad,omitempty"`
		Good  string `yaml:"good,omitempty"`
		Total string `yaml:"total,omitempty"`
	}
	type rate struct {
		Events   string `yaml:"events,omitempty"`
		Presence string `yaml:"presence,omitempty"`
	}
	out := struct {
		Name        string  `yaml:"name"`
		Description string  `yaml:"description,omitempty"`
		Objective   float64 `yaml:"objective,omitempty"`
		Allowance   float64 `yaml:"allowance,omitempty"`
		Ratio       *ratio  `yaml:"ratio,omitempty"`
		Rate        *rate   `yaml:"rate,omitempty"`
	}{Name: s.Name, Description: s.Description, Objective: s.Objective, Allowance: s.Allowance}
	if r := s.Ratio; r != nil {
		out.Ratio = &ratio{r.Bad, r.Good, r.Total}
	}
	if r := s.Rate; r != nil {
		out.Rate = &rate{r.Events, r.Presence}
	}
	return out
}
