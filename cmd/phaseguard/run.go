package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"unicode/utf8"

	"golang.org/x/term"

	"github.com/phaseguard/phaseguard/action"
	"github.com/phaseguard/phaseguard/analysis"
	"github.com/phaseguard/phaseguard/internal/redact"
	"github.com/phaseguard/phaseguard/report"
)

// Exit codes, so that a shell pipeline can gate on a verdict.
const (
	exitPass  = 0 // the verdict is pass (lint: every policy is valid)
	exitFail  = 1 // the verdict is fail: roll back (lint: a policy has problems)
	exitHold  = 2 // the verdict is hold: pause for a human
	exitError = 3 // no verdict: bad input, unreadable file, unusable data source
	exitUsage = 4 // unknown command or flag
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// env gives a command its IO and environment, so it runs in tests without
// a process.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	getenv         func(string) string
	// secrets holds every credential the command is configured with or
	// sends; stdout and stderr are redacted with it.
	secrets *redact.Set
	// terminal is stdout's width in columns when it is a terminal, 0
	// otherwise (a file, a pipe, a CI log, TERM=dumb).
	terminal int
}

type command struct {
	summary string
	run     func(ctx context.Context, e env, args []string) int
}

func commands() map[string]command {
	return map[string]command{
		"evaluate":       {"judge the canary once, at --at (default now)", runEvaluate},
		"backtest":       {"walk a time range at --step and print the verdict at each step", runBacktest},
		"lint":           {"validate policy files and their PromQL", runLint},
		"demo":           {"replay bundled canaries through the engine; no setup needed", runDemo},
		"presets":        {"list the built-in policies and SLI presets, or print one with its PromQL", runPresets},
		"watch":          {"look at a stage every interval until it is decided, with a live status on a terminal", runWatch},
		"plan":           {"tell whether each stage's soak can pass a canary at a given traffic, and the least that can", runPlan},
		"action":         {"run as the GitHub Action (inputs from INPUT_* variables; see action.yml)", runAction},
		"version":        {"print the version", runVersion},
		"install-plugin": {"copy this binary into a directory, for the Argo Rollouts controller (an init container)", runInstallPlugin},
	}
}

// run is main without the process: it returns the exit code. Everything
// it writes to stdout and stderr is redacted: a server may quote the
// credentials it was sent in an error that reaches a reason.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, getenv func(string) string) int {
	secrets := redact.New()
	sticky := &stickyWriter{w: stdout}
	out, errOut := secrets.Writer(sticky), secrets.Writer(stderr)
	defer errOut.Flush()
	defer out.Flush()
	e := env{stdin: stdin, stdout: out, stderr: errOut, getenv: getenv, secrets: secrets, terminal: terminalWidth(stdout, getenv)}
	cmds := commands()
	var name string // the command, for a write error's message
	var code int
	if len(args) == 2 && args[0] == "help" {
		if _, ok := cmds[args[1]]; ok {
			args = []string{args[1], "-h"} // help evaluate: evaluate's flags
		}
	}
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		name = "help"
		usage(out, cmds)
		code = exitPass
		if len(args) == 0 {
			code = exitUsage
		}
	} else {
		c, ok := cmds[args[0]]
		if !ok {
			fmt.Fprintf(stderr, "phaseguard: unknown command %q\n\n", args[0])
			usage(stderr, cmds)
			return exitUsage
		}
		name = args[0]
		code = c.run(ctx, e, args[1:])
	}
	out.Flush()
	if sticky.err != nil && code != exitError && (code != exitUsage || name == "help") { // those said why
		// A report that was not written is no pass (stdout a full disk,
		// a closed pipe); a fail or a hold keeps its code.
		fmt.Fprintf(errOut, "phaseguard %s: writing the output: %v\n", name, sticky.err)
		if code == exitPass {
			code = exitError
		}
	}
	return code
}

// stickyWriter writes to w and keeps the first error, which fmt.Fprint
// callers do not check.
type stickyWriter struct {
	w   io.Writer
	err error
}

func (s *stickyWriter) Write(p []byte) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	n, err := s.w.Write(p)
	s.err = err
	return n, err
}

// terminalWidth is w's width in columns when it is a terminal (80 when
// the size is unknown), 0 when it is not one or TERM is dumb.
func terminalWidth(w io.Writer, getenv func(string) string) int {
	f, ok := w.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) || getenv("TERM") == "dumb" {
		return 0
	}
	if width, _, err := term.GetSize(int(f.Fd())); err == nil && width > 0 {
		return width
	}
	return 80
}

func usage(w io.Writer, cmds map[string]command) {
	fmt.Fprintln(w, "phaseguard stops a canary release before phase-flip errors burn its error budget.")
	fmt.Fprintln(w, "\nUsage: phaseguard <command> [flags]\n\nCommands:")
	names := make([]string, 0, len(cmds))
	width := 0
	for n := range cmds {
		names = append(names, n)
		width = max(width, len(n))
	}
	sort.Strings(names)
	for _, n := range names {
		// A summary too long for the line wraps under itself.
		head := fmt.Sprintf("  %-*s ", width, n)
		for _, l := range report.Wrap(cmds[n].summary, report.Width, head, strings.Repeat(" ", len(head))) {
			fmt.Fprintln(w, l)
		}
	}
	fmt.Fprintln(w, "\nExit codes: 0 pass, 1 fail, 2 hold, 3 error, 4 usage.")
	fmt.Fprintln(w, "Run 'phaseguard <command> -h' for a command's flags.")
}

// parse parses flags, reporting errors the same way for every command;
// -h prints "Usage: phaseguard NAME [flags]" and the flags (flagUsage).
func parse(fs *flag.FlagSet, e env, args []string) (code int, ok bool) {
	return parseUsage(fs, e, args, fmt.Sprintf("Usage: phaseguard %s [flags]", fs.Name()))
}

// parseUsage is parse for a command that describes itself: -h prints
// text, then the flags if it has any.
func parseUsage(fs *flag.FlagSet, e env, args []string, text string) (code int, ok bool) {
	fs.SetOutput(e.stderr)
	fs.Usage = func() {
		fmt.Fprintln(e.stderr, text)
		flagUsage(e.stderr, fs)
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitPass, false
		}
		return exitUsage, false
	}
	if fs.NArg() > 0 && fs.Name() != "lint" && fs.Name() != "presets" && fs.Name() != "install-plugin" {
		fmt.Fprintf(e.stderr, "phaseguard %s: unexpected argument %q\n", fs.Name(), fs.Arg(0))
		return exitUsage, false
	}
	return 0, true
}

// flagUsage writes the flags of fs as flag.PrintDefaults does, after a
// "Flags:" line, with each usage text wrapped at spaces to report.Width
// (the indent "    \t" counted as the 8 columns it fills) rather than on
// one line however long. Nothing when fs has no flags.
func flagUsage(w io.Writer, fs *flag.FlagSet) {
	// PrintDefaults knows each flag's type name and whether its default
	// is worth showing; its usage lines start "    \t".
	var b strings.Builder
	out := fs.Output()
	fs.SetOutput(&b)
	fs.PrintDefaults()
	fs.SetOutput(out)
	if b.Len() == 0 {
		return
	}
	fmt.Fprintln(w, "\nFlags:")
	for l := range strings.Lines(b.String()) {
		l = strings.TrimSuffix(l, "\n")
		if text, ok := strings.CutPrefix(l, "    \t"); ok {
			for _, wl := range report.Wrap(text, report.Width-8, "", "") {
				fmt.Fprintln(w, "    \t"+wl)
			}
			continue
		}
		fmt.Fprintln(w, l)
	}
}

// exitCode maps a decision to the process exit code.
func exitCode(d analysis.Decision) int {
	switch d {
	case analysis.Pass:
		return exitPass
	case analysis.Fail:
		return exitFail
	}
	return exitHold
}

// fail reports err for a command and returns exitError. The lines of the
// error after its first (errors.Join puts a problem on each) are indented
// by two spaces; a line that does not fit report.Width wraps at spaces
// under itself, indented by two spaces more than it (the first line's
// under "phaseguard CMD:", by two). The error is redacted before it
// wraps: stderr's redaction goes by lines, and would miss a secret of
// several words that a wrap split.
func fail(e env, cmd string, err error) int {
	for i, l := range strings.Split(e.secrets.String(err.Error()), "\n") {
		text := strings.TrimLeft(l, " ")
		lead := l[:len(l)-len(text)]
		first, rest := "phaseguard "+cmd+": "+lead, "  "
		if i > 0 {
			first, rest = "  "+lead, "    "+lead
		}
		for _, wl := range fit(text, first, rest) {
			fmt.Fprintln(e.stderr, wl)
		}
	}
	return exitError
}

// redactedReason is v with its reason redacted by secrets, for a layout
// that wraps the reason: stdout's redaction goes by lines, and would miss
// a secret of several words that a wrap split.
func redactedReason(secrets *redact.Set, v *analysis.Verdict) *analysis.Verdict {
	c := *v
	c.Reason = secrets.String(v.Reason)
	return &c
}

// fit is first+s as one line, its spacing kept, when that fits
// report.Width; else s wrapped at spaces (report.Wrap: never inside a
// word), its first line starting with first and the others with rest.
func fit(s, first, rest string) []string {
	if utf8.RuneCountInString(first+s) <= report.Width && !strings.Contains(s, "\n") {
		return []string{first + s}
	}
	return report.Wrap(s, report.Width, first, rest)
}

// runAction is the GitHub Action's entry point: the Docker image runs
// `phaseguard action`, and the runner passes inputs as INPUT_* variables.
func runAction(ctx context.Context, e env, args []string) int {
	if len(args) > 0 {
		fmt.Fprintf(e.stderr, "phaseguard action: takes no arguments (inputs come from INPUT_* variables), got %q\n", args[0])
		return exitUsage
	}
	return action.Run(ctx, action.Env{Getenv: e.getenv, Stdout: e.stdout})
}

func runVersion(_ context.Context, e env, args []string) int {
	fs := flag.NewFlagSet("version", flag.ContinueOnError)
	if code, ok := parse(fs, e, args); !ok {
		return code
	}
	fmt.Fprintf(e.stdout, "phaseguard %s\n", version)
	return exitPass
}
