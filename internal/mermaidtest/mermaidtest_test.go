package mermaidtest

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestParse checks that the parser is Mermaid's: it accepts charts GitHub
// draws and rejects the chart an outage once produced (an empty x axis
// and an empty line), with Mermaid's own message.
func TestParse(t *testing.T) {
	t.Parallel()
	p := New(t)
	charts := []struct {
		text string
		ok   bool
	}{
		{"xychart-beta\n    title \"Burn rate by window\"\n    x-axis \"window\" [\"5m\", \"1m\"]\n    y-axis \"burn rate (x budget)\" 0 --> 200\n    line [200, 200]\n", true},
		{"%%{init: {\"themeVariables\": {\"xyChart\": {\"plotColorPalette\": \"#d62728, #1f77b4\"}}}}%%\nxychart-beta\n    x-axis \"minutes since 00:38:30Z\" 0.5 --> 1.5\n    line [100, 150, 200]\n    line [0.5, 0.25, 0]\n", true},
		{"flowchart LR\n    A --> B\n", true},
		{"xychart-beta\n    title \"Burn rate by window\"\n    x-axis \"window\" []\n    y-axis \"burn rate (x budget)\"\n    line []\n", false},
		{"xychart-beta\n    x-axis \"window\" [\"5m\\\"\", \"1m\"]\n    line [1, 2]\n", false},
		{"xychart-beta\n    x-axis \"m\" 1 --> 2\n    line [NaN, 2]\n", false},
		{"not a diagram\n", false},
	}
	var texts []string
	for _, c := range charts {
		texts = append(texts, c.text)
	}
	errs := p.Parse(t, texts)
	for i, c := range charts {
		if got := errs[i] == nil; got != c.ok {
			t.Errorf("chart %d parsed %v, want %v (error %v):\n%s", i, got, c.ok, errs[i], c.text)
		}
	}
	if errs[3] != nil && !strings.Contains(errs[3].Error(), "got 'SQUARE_BRACES_END'") {
		t.Errorf("empty x axis: error %q is not Mermaid's parse error", errs[3])
	}
	if !strings.HasPrefix(p.Version, "11.") {
		t.Errorf("mermaid %q parsed, want 11.x (GitHub's)", p.Version)
	}
}

func TestBlocks(t *testing.T) {
	t.Parallel()
	page := "# x\n\n```mermaid\nxychart-beta\n  line [1, 2]\n```\n\n````promql\n```mermaid\nnot a chart\n```\n````\n\n  ~~~ mermaid {x}\nflowchart LR\n~~~\n```mermaid\nleft open\n"
	want := []string{"xychart-beta\n  line [1, 2]\n", "flowchart LR\n", "left open\n"}
	if diff := cmp.Diff(want, Blocks(page)); diff != "" {
		t.Errorf("Blocks (-want +got):\n%s", diff)
	}
}

// recordingTB records how a test would have ended instead of ending it.
type recordingTB struct {
	testing.TB
	ended string
}

func (r *recordingTB) Helper()           {}
func (r *recordingTB) Fatal(args ...any) { r.ended = "fatal: " + fmt.Sprint(args...) }
func (r *recordingTB) Skip(args ...any)  { r.ended = "skip: " + fmt.Sprint(args...) }

// TestMissing: a missing node or npm package skips, and fails under
// CI=true.
func TestMissing(t *testing.T) {
	// Not parallel: it sets environment variables.
	empty, bin := t.TempDir(), t.TempDir()
	// New only looks node up: any executable of that name will do.
	if err := os.WriteFile(filepath.Join(bin, "node"), []byte("#!/bin/sh\nexit 1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, path, dir, want string
	}{
		{"node", empty, "", "mermaidtest: node not found on PATH; install it with: apt-get install -y nodejs npm"},
		{"packages", bin, empty, "mermaidtest: npm package mermaid not found in " + empty + " (set $PHASEGUARD_MERMAID to another directory, or run ./scripts/test.sh, or: npm install --prefix " + empty + " mermaid@11 jsdom@26)"},
	} {
		t.Setenv("PATH", tc.path)
		t.Setenv(EnvDir, tc.dir)
		for _, ci := range []string{"", "true"} {
			t.Setenv("CI", ci)
			tb := &recordingTB{TB: t}
			if p := New(tb); p != nil {
				t.Errorf("%s missing, CI=%q: New returned a parser", tc.name, ci)
			}
			want := "skip: " + tc.want
			if ci == "true" {
				want = "fatal: " + tc.want
			}
			if diff := cmp.Diff(want, tb.ended); diff != "" {
				t.Errorf("%s missing, CI=%q (-want +got):\n%s", tc.name, ci, diff)
			}
		}
	}
}

// TestInstalledByTestSh: scripts/test.sh, the README's test command (and
// CI's), installs the packages this package names.
func TestInstalledByTestSh(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile("../../scripts/test.sh")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"mermaid_packages=(" + Packages + ")", `export PHASEGUARD_MERMAID="${PHASEGUARD_MERMAID:-${XDG_CACHE_HOME:-$HOME/.cache}/phaseguard/mermaid}"`, `npm install --prefix "$PHASEGUARD_MERMAID"`} {
		if !strings.Contains(string(data), want) {
			t.Errorf("scripts/test.sh lacks %q", want)
		}
	}
}
