// Command phaseguard-bench runs the decision-quality and cost benchmark
// (package bench) and writes BENCHMARKS.md and the trade-off plot:
//
//	go run ./bench/cmd/phaseguard-bench -seed 1 -healthy 1000 -faulty 1000 -out BENCHMARKS.md -svg bench/tradeoff.svg
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/gob"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/phaseguard/phaseguard/bench"
	"github.com/phaseguard/phaseguard/policies"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "phaseguard-bench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("phaseguard-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	seed := fs.Int64("seed", 1, "corpus seed")
	healthy := fs.Int("healthy", 1000, "healthy canaries")
	faulty := fs.Int("faulty", 1000, "faulty canaries")
	fullDrain := fs.Int("full-drain", 100, "canaries with full drain misrouting at 20-500 requests/s")
	workers := fs.Int("workers", 2, "cases observed at once")
	policy := fs.String("policy", "phase-default", "built-in policy judged")
	stage := fs.String("stage", "canary-50", "policy stage judged; the corpus is fitted to its soak")
	costCases := fs.Int("cost-cases", 10, "cases timed against a real Prometheus (0: skip the cost figures)")
	out := fs.String("out", "BENCHMARKS.md", "Markdown report to write")
	svg := fs.String("svg", "bench/tradeoff.svg", "trade-off plot to write (empty: none)")
	cache := fs.String("observations", "", "file caching the observed runs (gob): read when it holds the same corpus, written otherwise; for re-rendering the report")
	before := fs.String("before", "", "comma-separated observations files (-observations) of earlier runs of this seed, policy and stage, at any size, shown as \"before\" in a before/after section")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	p, err := policies.Preset(*policy)
	if err != nil {
		return err
	}
	st, i := p.Stage(*stage)
	if i < 0 {
		return fmt.Errorf("policy %s has no stage %q", *policy, *stage)
	}
	geo := bench.DefaultGeometry
	geo.Stage = time.Duration(st.Soak)
	// The canary served every stage before the one judged, at
	// DefaultGeometry's share of its traffic (policies give no weights).
	geo.Prior = 0
	for _, s := range p.Spec.Stages[:i] {
		geo.Prior += time.Duration(s.Soak)
	}
	if geo.Exposure >= geo.Stage {
		return fmt.Errorf("stage %s soaks %s: too short for %s of exposure", *stage, geo.Stage, geo.Exposure)
	}
	j := bench.Judge{Policy: p, Stage: *stage}
	for _, b := range bench.DefaultBaselines {
		if !slices.Contains(j.Windows, b.Window()) {
			j.Windows = append(j.Windows, b.Window())
		}
	}

	cases := bench.Corpus(*seed, *healthy, *faulty, *fullDrain, geo)
	key := fmt.Sprintf("seed %d healthy %d faulty %d full-drain %d policy %s stage %s", *seed, *healthy, *faulty, *fullDrain, *policy, *stage)
	began := time.Now()
	command := "go run ./bench/cmd/phaseguard-bench " + strings.Join(withoutFlag(args, "observations"), " ")
	runs, elapsed, rev, err := load(*cache, key)
	if err != nil {
		return err
	}
	if runs == nil {
		// The revision observed is the one at the start: others may
		// commit while the corpus is observed.
		rev = revision()
		fmt.Fprintf(stderr, "observing %d cases with %d workers at %s\n", len(cases), *workers, rev)
		if runs, err = bench.Collect(ctx, j, cases, bench.DefaultBaselines, bench.Sweep, *workers, stderr); err != nil {
			return err
		}
		elapsed = time.Since(began)
		if err := save(*cache, observations{Key: key, Runs: runs, Elapsed: elapsed, Revision: rev, Command: command}); err != nil {
			return err
		}
	}
	_, every := j.Looks()
	r := &bench.Report{
		Command:   command,
		Date:      time.Now(),
		Machine:   machine(),
		Go:        fmt.Sprintf("%s %s/%s", runtime.Version(), runtime.GOOS, runtime.GOARCH),
		Revision:  rev,
		Seed:      *seed,
		Healthy:   *healthy,
		Faulty:    *faulty,
		FullDrain: *fullDrain,
		Workers:   *workers,
		Geometry:  geo,
		Judge:     j,
		Elapsed:   elapsed,
		Runs:      runs,
		Sweep:     bench.Sweep,
	}
	r.Guard = bench.Score("phaseguard", runs, every, bench.GuardOutcome)
	r.Curves = bench.Sweeps(runs, every, bench.DefaultBaselines, bench.Sweep, r.Guard.FRRate)
	for _, path := range strings.Split(*before, ",") {
		if path == "" {
			continue
		}
		o, err := read(path)
		if err != nil {
			return err
		}
		// Any size of the same seed, policy and stage.
		same := fmt.Sprintf("seed %d ", *seed)
		judged := fmt.Sprintf(" policy %s stage %s", *policy, *stage)
		if !strings.HasPrefix(o.Key, same) || !strings.HasSuffix(o.Key, judged) {
			return fmt.Errorf("-before %s: observed %q, not seed %d judged by%s", path, o.Key, *seed, judged)
		}
		corpus := strings.TrimSuffix(o.Key, judged)
		var s0 int64
		var h, f, d int
		if _, err := fmt.Sscanf(corpus, "seed %d healthy %d faulty %d full-drain %d", &s0, &h, &f, &d); err == nil {
			corpus = fmt.Sprintf("seed %d: %d healthy, %d faulty, %d full drain", s0, h, f, d)
		}
		r.Before = append(r.Before, bench.Before{Command: o.Command, Revision: o.Revision,
			Corpus: corpus, Guard: bench.Score("phaseguard", o.Runs, every, bench.GuardOutcome), Runs: o.Runs})
	}

	if *costCases > 0 {
		fmt.Fprintf(stderr, "timing %d cases against a real Prometheus\n", *costCases)
		r.Cost, err = bench.MeasureCost(ctx, j, costSample(cases, *costCases))
		if err != nil {
			if ctx.Err() != nil {
				return err
			}
			r.CostErr = err.Error()
			fmt.Fprintln(stderr, "cost figures skipped:", err)
		}
	} else {
		r.CostErr = "-cost-cases 0"
	}

	if *svg != "" {
		rel, err := filepath.Rel(filepath.Dir(*out), *svg)
		if err != nil {
			return err
		}
		r.SVG = filepath.ToSlash(rel)
		var b bytes.Buffer
		if err := r.WriteSVG(&b); err != nil {
			return err
		}
		if err := os.WriteFile(*svg, b.Bytes(), 0o644); err != nil {
			return err
		}
	}
	var b bytes.Buffer
	if err := r.WriteMarkdown(&b); err != nil {
		return err
	}
	if err := os.WriteFile(*out, b.Bytes(), 0o644); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "wrote %s in %s\n", *out, time.Since(began).Round(time.Second))
	return nil
}

// costSample takes n cases, alternating between the healthy and the faulty
// part of the corpus, so the timing sees both.
func costSample(cases []bench.Case, n int) []bench.Case {
	var healthy, faulty, out []bench.Case
	for _, c := range cases {
		switch c.Set {
		case bench.Healthy:
			healthy = append(healthy, c)
		case bench.Faulty:
			faulty = append(faulty, c)
		}
	}
	for i := 0; len(out) < n && (i < len(healthy) || i < len(faulty)); i++ {
		if i < len(healthy) {
			out = append(out, healthy[i])
		}
		if i < len(faulty) && len(out) < n {
			out = append(out, faulty[i])
		}
	}
	return out
}

// machine describes the CPU: the number of CPUs and lscpu's model name.
func machine() string {
	model := ""
	if out, err := exec.Command("lscpu").Output(); err == nil {
		model = field(out, "Model name:")
	}
	if model == "" {
		if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
			model = field(b, "model name")
		}
	}
	if model == "" {
		model = "unknown CPU"
	}
	return fmt.Sprintf("%d CPUs (nproc), %s (lscpu model name), %s", runtime.NumCPU(), model, loadAverage())
}

func field(b []byte, key string) string {
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == strings.TrimSuffix(key, ":") {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// loadAverage is the 1-minute load average at the end, which matters for the
// timing figures on a shared machine.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "load unknown"
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return "load unknown"
	}
	return "load average " + f[0] + " at the end of the run"
}

// observations is the content of an -observations file.
type observations struct {
	Key      string
	Runs     []*bench.Run
	Elapsed  time.Duration
	Revision string
	// Command ran the observation, without -observations.
	Command string
}

// read decodes an -observations file.
func read(path string) (observations, error) {
	var o observations
	f, err := os.Open(path)
	if err != nil {
		return o, err
	}
	defer f.Close()
	if err := gob.NewDecoder(f).Decode(&o); err != nil {
		return o, fmt.Errorf("read %s: %w", path, err)
	}
	return o, nil
}

// load reads cached runs for key; nil runs when there are none.
func load(path, key string) ([]*bench.Run, time.Duration, string, error) {
	if path == "" {
		return nil, 0, "", nil
	}
	o, err := read(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, 0, "", nil
	}
	if err != nil {
		return nil, 0, "", err
	}
	if o.Key != key || !withOracle(o.Runs) {
		return nil, 0, "", nil
	}
	if o.Revision == "" {
		o.Revision = revision()
	}
	return o.Runs, o.Elapsed, o.Revision, nil
}

// withOracle reports whether every run with a fault has the oracle's
// outcome: observations written before the oracle existed are observed
// again.
func withOracle(runs []*bench.Run) bool {
	for _, r := range runs {
		if r.Truth.Fault != nil && r.Oracle == nil {
			return false
		}
	}
	return true
}

func save(path string, o observations) error {
	if path == "" {
		return nil
	}
	var b bytes.Buffer
	if err := gob.NewEncoder(&b).Encode(o); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return os.WriteFile(path, b.Bytes(), 0o644)
}

// withoutFlag drops flag name and its value from args: the report records
// the command that reproduces it, and a cache does not change the figures.
func withoutFlag(args []string, name string) []string {
	var out []string
	for i := 0; i < len(args); i++ {
		a := strings.TrimLeft(args[i], "-")
		switch {
		case a == name && len(args[i]) > len(a):
			i++ // the value follows
		case strings.HasPrefix(a, name+"=") && len(args[i]) > len(a):
		default:
			out = append(out, args[i])
		}
	}
	return out
}

// revision names the commit the benchmark ran on, and whether the packages
// that decide (or make the data) had uncommitted changes.
func revision() string {
	out, err := exec.Command("git", "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return "unknown (not a git checkout)"
	}
	rev := strings.TrimSpace(string(out))
	dirty, err := exec.Command("git", "status", "--porcelain", "--", "analysis", "policies", "scenarios", "replay").Output()
	switch {
	case err != nil:
		return rev
	case len(bytes.TrimSpace(dirty)) > 0:
		return rev + " with uncommitted changes in analysis, policies, scenarios or replay"
	}
	return rev + " (analysis, policies, scenarios and replay as committed)"
}
