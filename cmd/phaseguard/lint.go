package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"strings"

	"github.com/phaseguard/phaseguard/policies"
)

func runLint(_ context.Context, e env, args []string) int {
	fs := flag.NewFlagSet("lint", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintln(e.stderr, "Usage: phaseguard lint FILE...\n\nValidates policy files: strict fields, types, objectives, windows, stages and every PromQL query,\nreporting every problem of a file at once, and flags le/quantile matchers that only one spelling\nof their number satisfies (le=\"2\" against Prometheus 3's le=\"2.0\"). Exit 1 if anything is reported.")
	}
	if code, ok := parse(fs, e, args); !ok {
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
					fmt.Fprintf(e.stdout, "%s: %s\n", path, fe)
				}
				continue
			}
			fmt.Fprintf(e.stdout, "%s: %s\n", path, err)
			continue
		}
		var stages []string
		for _, s := range p.Spec.Stages {
			stages = append(stages, fmt.Sprintf("%s(%s)", s.Name, s.Soak))
		}
		fmt.Fprintf(e.stdout, "%s: ok: policy %s, %d SLIs, %d window pairs, stages %s\n", path, p.Metadata.Name, len(p.Spec.SLIs), len(p.Spec.Windows), strings.Join(stages, " -> "))
	}
	return code
}

func runPresets(_ context.Context, e env, args []string) int {
	fs := flag.NewFlagSet("presets", flag.ContinueOnError)
	if code, ok := parse(fs, e, args); !ok {
		return code
	}
	if fs.NArg() == 0 {
		for _, n := range policies.PresetNames() {
			p, err := policies.Preset(n)
			if err != nil {
				return fail(e, "presets", err)
			}
			fmt.Fprintf(e.stdout, "%-15s %s\n", n, p.Metadata.Description)
		}
		fmt.Fprintf(e.stdout, "\nSLI presets (use as `- preset: NAME` in spec.slis): %s\n", strings.Join(policies.SLIPresetNames(), ", "))
		return exitPass
	}
	data, err := policies.PresetYAML(fs.Arg(0))
	if err != nil {
		return fail(e, "presets", fmt.Errorf("unknown preset %q (known: %s)", fs.Arg(0), strings.Join(policies.PresetNames(), ", ")))
	}
	e.stdout.Write(data)
	return exitPass
}
