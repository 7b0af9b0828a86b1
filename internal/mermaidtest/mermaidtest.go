// Package mermaidtest checks Mermaid charts with Mermaid's own parser in
// tests: mermaid.parse from the npm package mermaid@11, run by node with
// jsdom as its DOM (parse.mjs). The mermaid CLI cannot be used: it
// downloads a browser. GitHub renders a chart with Mermaid 11, and a chart
// its parser rejects shows as an error box in the job summary.
//
// The npm packages live in a directory of their own, Dir: scripts/test.sh
// installs them there (npm install --prefix DIR mermaid@11 jsdom@26). A
// missing node or package skips the test, unless the environment has
// CI=true, where it fails it: the rule of promtest.Binary.
package mermaidtest

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// EnvDir names the environment variable that holds the directory the npm
// packages were installed into (npm install --prefix DIR).
const EnvDir = "PHASEGUARD_MERMAID"

// Packages are the npm packages the parser needs, as scripts/test.sh
// installs them. jsdom 26 is the last to run on node 18 (Debian 12's and
// Ubuntu 24.04's), which mermaid 11 runs on too.
const Packages = "mermaid@11 jsdom@26"

//go:embed parse.mjs
var script string

// Dir is where the npm packages are: $PHASEGUARD_MERMAID, or else
// phaseguard/mermaid in the user's cache directory
// (${XDG_CACHE_HOME:-$HOME/.cache} on Linux), where scripts/test.sh puts
// them.
func Dir() string {
	if d := os.Getenv(EnvDir); d != "" {
		return d
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		return ""
	}
	return filepath.Join(cache, "phaseguard", "mermaid")
}

// Parser runs parse.mjs.
type Parser struct {
	node, dir string
	// Version is the version of the mermaid package that parsed, known
	// after the first Parse.
	Version string
}

// New finds node and the npm packages, or ends the test: a failure when
// CI=true, a skip otherwise. It returns nil when the test was ended (a
// testing.TB whose Fatal and Skip return, in tests of this package).
func New(t testing.TB) *Parser {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		missing(t, "mermaidtest: node not found on PATH; install it with: apt-get install -y nodejs npm")
		return nil
	}
	dir := Dir()
	for _, pkg := range []string{"mermaid", "jsdom"} {
		if _, err := os.Stat(filepath.Join(dir, "node_modules", pkg, "package.json")); err != nil {
			missing(t, fmt.Sprintf("mermaidtest: npm package %s not found in %s (set $%s to another directory, or run ./scripts/test.sh, or: npm install --prefix %s %s)", pkg, dir, EnvDir, dir, Packages))
			return nil
		}
	}
	return &Parser{node: node, dir: dir}
}

// missing ends the test for a missing component.
func missing(t testing.TB, msg string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	} else {
		t.Skip(msg)
	}
}

// parseTimeout bounds one run of parse.mjs: loading Mermaid takes about a
// second, each chart milliseconds.
const parseTimeout = 2 * time.Minute

// Parse parses each chart with mermaid.parse in one node process and
// returns one entry per chart: nil when Mermaid accepts it, else Mermaid's
// message. A failure to run the parser at all ends the test.
func (p *Parser) Parse(t testing.TB, charts []string) []error {
	t.Helper()
	if len(charts) == 0 {
		return nil
	}
	in, err := json.Marshal(charts)
	if err != nil {
		t.Fatal(err)
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), parseTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, p.node, "--input-type=module", "-e", script)
	cmd.Env = append(os.Environ(), EnvDir+"="+p.dir)
	cmd.Stdin = bytes.NewReader(in)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("mermaidtest: %s parse.mjs: %v\n%s", p.node, err, stderr.String())
		return nil
	}
	var out struct {
		Mermaid string    `json:"mermaid"`
		Errors  []*string `json:"errors"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &out); err != nil || len(out.Errors) != len(charts) {
		t.Fatalf("mermaidtest: parse.mjs answered %q (%v) for %d charts\n%s", stdout.String(), err, len(charts), stderr.String())
		return nil
	}
	p.Version = out.Mermaid
	errs := make([]error, len(charts))
	for i, e := range out.Errors {
		if e != nil {
			errs[i] = errors.New(*e)
		}
	}
	return errs
}

// Blocks returns the text of each ```mermaid code block of a Markdown
// page, as GitHub hands it to Mermaid. A block left open at the end of
// the page is returned too: GitHub renders it up to the end.
func Blocks(markdown string) []string {
	var out []string
	// fence is the open code fence, "" outside one; mermaid tells
	// whether it is a mermaid block.
	var fence string
	var mermaid bool
	var b strings.Builder
	for _, line := range strings.SplitAfter(markdown, "\n") {
		trimmed := strings.TrimRight(line, " \t\r\n")
		if fence == "" {
			if f, info, ok := openFence(trimmed); ok {
				fence, mermaid = f, info == "mermaid"
				b.Reset()
			}
			continue
		}
		if closesFence(trimmed, fence) {
			if mermaid {
				out = append(out, b.String())
			}
			fence = ""
			continue
		}
		b.WriteString(line)
	}
	if fence != "" && mermaid {
		out = append(out, b.String())
	}
	return out
}

// closesFence reports whether line closes the code block opened by fence:
// up to 3 spaces, at least as many of the fence's character, nothing else.
func closesFence(line, fence string) bool {
	rest := strings.TrimLeft(line, " ")
	return len(line)-len(rest) <= 3 && strings.HasPrefix(rest, fence) && strings.Trim(rest, fence[:1]+" \t") == ""
}

// openFence reports whether line opens a fenced code block (CommonMark:
// up to 3 spaces, then 3 or more backticks or tildes), with its fence and
// info string.
func openFence(line string) (fence, info string, ok bool) {
	rest := strings.TrimLeft(line, " ")
	if len(line)-len(rest) > 3 || len(rest) < 3 || (rest[0] != '`' && rest[0] != '~') {
		return "", "", false
	}
	n := len(rest) - len(strings.TrimLeft(rest, rest[:1]))
	if n < 3 {
		return "", "", false
	}
	info = strings.TrimSpace(rest[n:])
	if rest[0] == '`' && strings.Contains(info, "`") {
		return "", "", false
	}
	if i := strings.IndexAny(info, " \t"); i >= 0 {
		info = info[:i]
	}
	return rest[:n], info, true
}
