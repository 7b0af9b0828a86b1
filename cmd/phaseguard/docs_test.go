package main

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/argoproj/argo-rollouts/pkg/apis/rollouts/v1alpha1"
	plugintypes "github.com/argoproj/argo-rollouts/utils/plugin/types"
	"gopkg.in/yaml.v3"
	k8syaml "sigs.k8s.io/yaml"

	"github.com/phaseguard/phaseguard/internal/promtest"
	"github.com/phaseguard/phaseguard/internal/redact"
	"github.com/phaseguard/phaseguard/policies"
	"github.com/phaseguard/phaseguard/rollouts"
	"github.com/phaseguard/phaseguard/scenarios"
)

// skippedSnippets are the fenced blocks of the docs that no check can run,
// each matched by its file and the start of its text, with the reason.
// Every other block must pass the check for its kind (TestDocs), and an
// entry that matches no block fails the test: the list stays what it says.
var skippedSnippets = []struct{ file, prefix, why string }{
	{"BENCHMARKS.md", "go run ./bench/cmd/phaseguard-bench ",
		"the benchmark's own command line, written by the generator into its report: a run takes 18 minutes on 2 cores; bench's TestPipelineGolden runs its pipeline on a small corpus"},
	{"rollouts/README.md", "V=vX.Y.Z\n",
		"downloads a published release's sha256sums.txt from github.com (network, and a release); the assets it names are scripts/release.sh's, which .ci/run builds and checks"},
	{"rollouts/README.md", "out-of-order: stage canary-50 needs canary-10",
		"a measurement's message for one cluster's state; rollouts' TestStageOrdering asserts its wording"},
}

// TestDocs checks that the repository's Markdown is true as written. Every
// fenced code block of every *.md file (testdata aside) is run or checked
// according to what it is, and a block no check knows fails the test
// unless skippedSnippets lists it:
//
//   - sh: the block parses (bash -n); each `phaseguard ...` or `go run
//     ./cmd/phaseguard ...` command runs through bash in the repository's
//     root, so globs expand as a reader's shell expands them, with
//     phaseguard the binary built from this package. evaluate, backtest,
//     watch and plan must come to a decision (exit 0, 1 or 2), every
//     other command must succeed (0: lint's 1 is a problem with the
//     input); an error (3), a usage error (4) or 5 minutes without an end
//     fails. A command naming --prometheus runs
//     against a real Prometheus (internal/promtest) holding the bundled
//     healthy canary up to the time of the test. ./scripts/NAME must exist
//     and be executable.
//   - console: each "$ " line is such a command, run the same way, which
//     may also end in 1 or 2 (lint's problems shown); the lines after it
//     must appear in its output, in order (the doc may leave lines out).
//   - json: every field of the block, with its JSON type, is in the JSON
//     lines the block's file's previous command printed.
//   - yaml, by what it is: a workflow, or steps, is linted with
//     actionlint (the version .ci/run runs, with shellcheck), with
//     phaseguard/phaseguard@vN read from this repository's action.yml;
//     each policy and stage a phaseguard step names exists, and a step
//     running ./... or reading a policy file comes after actions/checkout.
//     A policy lints clean (policies.Lint). An AnalysisTemplate's metrics
//     decode strictly into Argo's types, the plugin's config through
//     rollouts.DecodeConfig, and count × interval covers the policy's
//     longest soak. The argo-rollouts-config entry, a connections file and
//     a plugin config fragment go through the plugin's own parsers;
//     action.yml's runs must be what the release pins.
//   - promql: the query parses, and one written with $window is a
//     built-in SLI's, verbatim.
//   - text: the CLI's command list equals `phaseguard help`'s, a layout's
//     directories exist, a kube-state-metrics flag is the one the
//     kube-readiness-flaps hold names.
func TestDocs(t *testing.T) {
	t.Parallel()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	snippets, err := readSnippets(root)
	if err != nil {
		t.Fatal(err)
	}
	if len(snippets) == 0 {
		t.Fatal("no fenced code blocks in the repository's Markdown")
	}
	bin := t.TempDir()
	if out, err := exec.Command("go", "build", "-o", filepath.Join(bin, "phaseguard"), ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	d := &docs{root: root, bin: bin, skipsUsed: map[int]bool{}}
	for _, s := range snippets {
		if (s.lang == "sh" || s.lang == "console") && strings.Contains(s.text, "--prometheus") {
			d.prom = prometheusNow(t)
			break
		}
	}

	byFile := map[string][]snippet{}
	var files []string
	for _, s := range snippets {
		if byFile[s.file] == nil {
			files = append(files, s.file)
		}
		byFile[s.file] = append(byFile[s.file], s)
	}
	t.Run("snippets", func(t *testing.T) {
		for _, f := range files {
			t.Run(f, func(t *testing.T) {
				t.Parallel()
				var last *output // the file's previous command, for a json block
				for _, s := range byFile[f] {
					last = d.check(t, s, last)
				}
			})
		}
	})
	t.Run("actionlint", func(t *testing.T) { d.actionlint(t) })
	for i, sk := range skippedSnippets {
		if !d.skipsUsed[i] {
			t.Errorf("skippedSnippets[%d] (%s, %q) matches no block: remove it", i, sk.file, sk.prefix)
		}
	}
}

// snippet is one fenced code block of a Markdown file.
type snippet struct {
	file string // relative to the repository's root, slash-separated
	line int    // of the opening fence, from 1
	lang string // the info string's first word
	text string // without the fence's indentation, ending in a newline
}

func (s snippet) String() string { return fmt.Sprintf("%s:%d", s.file, s.line) }

var fenceRE = regexp.MustCompile("^( *)(`{3,}|~{3,})\\s*([^`\\s]*)")

// readSnippets returns the fenced code blocks of every Markdown file
// under root, testdata, .git and node_modules aside.
func readSnippets(root string) ([]snippet, error) {
	var out []snippet
	err := filepath.WalkDir(root, func(path string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if e.IsDir() {
			switch e.Name() {
			case "testdata", ".git", "node_modules":
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(e.Name(), ".md") {
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, path)
		if err != nil {
			return err
		}
		found, err := fencedBlocks(filepath.ToSlash(rel), string(data))
		out = append(out, found...)
		return err
	})
	return out, err
}

// fencedBlocks returns the fenced code blocks of a Markdown text
// (CommonMark's fences: three or more backticks or tildes, closed by at
// least as many of the same, possibly indented inside a list item).
func fencedBlocks(file, text string) ([]snippet, error) {
	var out []snippet
	lines := strings.Split(text, "\n")
	for i := 0; i < len(lines); i++ {
		m := fenceRE.FindStringSubmatch(lines[i])
		if m == nil {
			continue
		}
		indent, fence, lang := len(m[1]), m[2], m[3]
		var body []string
		j := i + 1
		for ; j < len(lines); j++ {
			l := strings.TrimLeft(lines[j], " ")
			if strings.HasPrefix(l, fence) && strings.Trim(l, fence[:1]+" \t") == "" {
				break
			}
			k := 0
			for k < indent && k < len(lines[j]) && lines[j][k] == ' ' {
				k++
			}
			body = append(body, lines[j][k:])
		}
		if j == len(lines) {
			return out, fmt.Errorf("%s:%d: fence %s never closed", file, i+1, fence)
		}
		out = append(out, snippet{file: file, line: i + 1, lang: lang, text: strings.Join(body, "\n") + "\n"})
		i = j
	}
	return out, nil
}

// docs holds what the checks share.
type docs struct {
	root string // the repository, absolute
	bin  string // the directory holding the phaseguard binary
	prom string // URL of the real Prometheus, when a command needs one

	mu        sync.Mutex
	skipsUsed map[int]bool
	workflows []workflowSnippet // for actionlint, once every file is read
}

// output is what a command printed.
type output struct {
	cmd            string
	code           int
	stdout, stderr string
}

// check checks one snippet and returns the output of its last command,
// or last when it runs none.
func (d *docs) check(t *testing.T, s snippet, last *output) *output {
	for i, sk := range skippedSnippets {
		if sk.file == s.file && strings.HasPrefix(s.text, sk.prefix) {
			d.mu.Lock()
			d.skipsUsed[i] = true
			d.mu.Unlock()
			t.Logf("%s: skipped: %s", s, sk.why)
			return last
		}
	}
	switch s.lang {
	case "sh", "bash", "shell":
		return d.checkShell(t, s, last)
	case "console":
		return d.checkConsole(t, s, last)
	case "json":
		checkJSON(t, s, last)
	case "yaml", "yml":
		d.checkYAML(t, s)
	case "promql":
		checkPromQL(t, s)
	case "text", "":
		d.checkText(t, s)
	default:
		t.Errorf("%s: no check for a %q block: make it one of sh, console, json, yaml, promql or text, or list it in skippedSnippets with why", s, s.lang)
	}
	return last
}

// shellCommands returns the commands of a shell text, one per logical
// line (a trailing backslash continues it), blank lines and comments left
// out.
func shellCommands(text string) []string {
	var out []string
	cur := ""
	for _, l := range strings.Split(text, "\n") {
		if cur == "" && (strings.TrimSpace(l) == "" || strings.HasPrefix(strings.TrimSpace(l), "#")) {
			continue
		}
		if c, ok := strings.CutSuffix(l, "\\"); ok {
			cur += c
			continue
		}
		out = append(out, strings.TrimSpace(cur+l))
		cur = ""
	}
	if cur != "" {
		out = append(out, strings.TrimSpace(cur))
	}
	return out
}

var assignmentRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*=`)

// commandKind tells what a shell command of the docs is: "phaseguard"
// (run), "script" (./scripts/NAME: must exist and be executable) or ""
// (no check), with phaseguard's subcommand or the script's path.
func commandKind(cmd string) (kind, arg string) {
	w := strings.Fields(cmd)
	for len(w) > 0 && assignmentRE.MatchString(w[0]) {
		w = w[1:]
	}
	switch {
	case len(w) == 0:
		return "", ""
	case w[0] == "phaseguard":
		return "phaseguard", strings.Join(w[1:min(2, len(w))], "")
	case len(w) >= 3 && w[0] == "go" && w[1] == "run" && w[2] == "./cmd/phaseguard":
		return "phaseguard", strings.Join(w[3:min(4, len(w))], "")
	case strings.HasPrefix(w[0], "./scripts/"):
		return "script", w[0]
	}
	return "", ""
}

// decisions are the exit codes of a decision: pass, fail, hold.
var decisions = []int{exitPass, exitFail, exitHold}

// deciding are the commands whose exit code is a decision.
var deciding = []string{"evaluate", "backtest", "watch", "plan"}

func (d *docs) checkShell(t *testing.T, s snippet, last *output) *output {
	if out, err := exec.Command("bash", "-n", "-c", s.text).CombinedOutput(); err != nil {
		t.Errorf("%s: does not parse as bash: %v\n%s", s, err, out)
		return last
	}
	for _, cmd := range shellCommands(s.text) {
		switch kind, arg := commandKind(cmd); kind {
		case "phaseguard":
			want := []int{exitPass}
			if slices.Contains(deciding, arg) {
				want = decisions
			}
			last = d.run(t, s, cmd, want)
		case "script":
			d.checkScript(t, s, arg)
		default:
			t.Errorf("%s: no check for %q: docs run phaseguard and name ./scripts; list the block in skippedSnippets with why if it cannot be checked", s, cmd)
		}
	}
	return last
}

// checkScript checks that a script a snippet names exists in the
// repository, is executable and parses.
func (d *docs) checkScript(t *testing.T, s snippet, script string) {
	path := filepath.Join(d.root, filepath.FromSlash(script))
	fi, err := os.Stat(path)
	switch {
	case err != nil:
		t.Errorf("%s: %s: %v", s, script, err)
	case !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0:
		t.Errorf("%s: %s is not an executable file (%s)", s, script, fi.Mode())
	default:
		if out, err := exec.Command("bash", "-n", path).CombinedOutput(); err != nil {
			t.Errorf("%s: %s does not parse as bash: %v\n%s", s, script, err, out)
		}
	}
}

var prometheusFlagRE = regexp.MustCompile(`(--prometheus[= ])\S+`)

// run runs a phaseguard command of the docs through bash in the
// repository's root and fails the test unless it exits with one of want.
func (d *docs) run(t *testing.T, s snippet, cmd string, want []int) *output {
	sent := strings.Replace(cmd, "go run ./cmd/phaseguard", "phaseguard", 1)
	if d.prom != "" {
		sent = prometheusFlagRE.ReplaceAllString(sent, "${1}"+d.prom)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	c := exec.CommandContext(ctx, "bash", "-c", sent)
	c.Dir = d.root
	c.Env = append(os.Environ(), "PATH="+d.bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	var stdout, stderr bytes.Buffer
	c.Stdout, c.Stderr = &stdout, &stderr
	err := c.Run()
	out := &output{cmd: cmd, stdout: stdout.String(), stderr: stderr.String()}
	var ee *exec.ExitError
	switch {
	case ctx.Err() != nil:
		t.Errorf("%s: %s: no end in 5 minutes\nstdout:\n%s\nstderr:\n%s", s, cmd, out.stdout, out.stderr)
		return out
	case errors.As(err, &ee):
		out.code = ee.ExitCode()
	case err != nil:
		t.Fatalf("%s: %s: %v", s, cmd, err)
	}
	if !slices.Contains(want, out.code) {
		t.Errorf("%s: %s: exit %d, want one of %v (0 pass, 1 fail or lint's problems, 2 hold)\nstdout:\n%s\nstderr:\n%s", s, cmd, out.code, want, out.stdout, out.stderr)
	} else {
		t.Logf("%s: %s: exit %d", s, cmd, out.code)
	}
	return out
}

// checkConsole runs each "$ " command of a console block and finds the
// lines shown after it in its output, in order.
func (d *docs) checkConsole(t *testing.T, s snippet, last *output) *output {
	type shown struct {
		cmd  string
		want []string
	}
	var cmds []*shown
	lines := strings.Split(strings.TrimSuffix(s.text, "\n"), "\n")
	for i := 0; i < len(lines); i++ {
		l := lines[i]
		if c, ok := strings.CutPrefix(l, "$ "); ok {
			for strings.HasSuffix(c, "\\") && i+1 < len(lines) {
				i++
				c = strings.TrimSuffix(c, "\\") + lines[i]
			}
			cmds = append(cmds, &shown{cmd: c})
			continue
		}
		if len(cmds) == 0 {
			t.Errorf("%s: output before the first \"$ \" command", s)
			return last
		}
		cmds[len(cmds)-1].want = append(cmds[len(cmds)-1].want, strings.TrimRight(l, " "))
	}
	if len(cmds) == 0 {
		t.Errorf("%s: a console block without a \"$ \" command", s)
	}
	for _, c := range cmds {
		if kind, _ := commandKind(c.cmd); kind != "phaseguard" {
			t.Errorf("%s: %s: console blocks run phaseguard commands", s, c.cmd)
			continue
		}
		last = d.run(t, s, c.cmd, decisions)
		got := strings.Split(last.stdout, "\n")
		for i := range got {
			got[i] = strings.TrimRight(got[i], " ")
		}
		at := 0
		for _, w := range c.want {
			i := slices.Index(got[at:], w)
			if i < 0 {
				t.Errorf("%s: %s: the output lacks, in this order,\n%s\noutput:\n%s", s, c.cmd, w, last.stdout)
				break
			}
			at += i + 1
		}
	}
	return last
}

// checkJSON checks that every field of a JSON block is in the JSON lines
// the previous command printed, with the same JSON type (null in the
// block stands for any).
func checkJSON(t *testing.T, s snippet, last *output) {
	var doc any
	if err := json.Unmarshal([]byte(s.text), &doc); err != nil {
		t.Errorf("%s: not JSON: %v", s, err)
		return
	}
	if last == nil {
		t.Errorf("%s: a JSON block shows a command's output, and no command of %s runs before it", s, s.file)
		return
	}
	got := map[string]bool{}
	for _, l := range strings.Split(strings.TrimSpace(last.stdout), "\n") {
		var v any
		if err := json.Unmarshal([]byte(l), &v); err != nil {
			t.Errorf("%s: %s printed a line that is not JSON (%v): %s", s, last.cmd, err, l)
			return
		}
		for path, kind := range jsonShape("", v) {
			got[path+" "+kind] = true
			got[path+" null"] = true
		}
	}
	for path, kind := range jsonShape("", doc) {
		if !got[path+" "+kind] {
			t.Errorf("%s: %s (%s) is not in the output of %s", s, path, kind, last.cmd)
		}
	}
}

// jsonShape returns the path of every value in v with its JSON type;
// array elements share their array's path with [].
func jsonShape(path string, v any) map[string]string {
	out := map[string]string{}
	var walk func(string, any)
	walk = func(p string, v any) {
		switch v := v.(type) {
		case map[string]any:
			out[p] = "object"
			for k, e := range v {
				walk(p+"."+k, e)
			}
		case []any:
			out[p] = "array"
			for _, e := range v {
				walk(p+"[]", e)
			}
		case string:
			out[p] = "string"
		case float64:
			out[p] = "number"
		case bool:
			out[p] = "bool"
		case nil:
			out[p] = "null"
		}
	}
	walk(path, v)
	return out
}

// checkYAML checks a YAML block by what it is.
func (d *docs) checkYAML(t *testing.T, s snippet) {
	var doc any
	if err := yaml.Unmarshal([]byte(s.text), &doc); err != nil {
		t.Errorf("%s: not YAML: %v", s, err)
		return
	}
	has := func(key string) bool {
		m, ok := doc.(map[string]any)
		_, found := m[key]
		return ok && found
	}
	switch {
	case isSteps(doc):
		d.checkWorkflow(t, s, true)
	case has("jobs"):
		d.checkWorkflow(t, s, false)
	case has("kind") && doc.(map[string]any)["kind"] == "Policy":
		if _, err := policies.Lint([]byte(s.text), s.String()); err != nil {
			t.Errorf("%s: the policy does not lint clean: %v", s, err)
		}
	case has("metrics"):
		checkAnalysisMetrics(t, s)
	case has("metricProviderPlugins"):
		checkPluginEntry(t, s)
	case has("connections"):
		checkConnections(t, s)
	case has("runs"):
		d.checkActionRuns(t, s)
	case has("policy"):
		checkPluginConfig(t, s)
	default:
		t.Errorf("%s: no check for this YAML: give it one in docs_test.go or list it in skippedSnippets with why", s)
	}
}

// isSteps reports whether doc is a list of workflow steps.
func isSteps(doc any) bool {
	l, ok := doc.([]any)
	if !ok || len(l) == 0 {
		return false
	}
	for _, e := range l {
		m, ok := e.(map[string]any)
		if !ok || (m["uses"] == nil && m["run"] == nil) {
			return false
		}
	}
	return true
}

// workflowSnippet is a workflow for actionlint, made of a snippet.
type workflowSnippet struct {
	s      snippet
	text   string
	offset int // the snippet's first line is text's line offset+1
}

// stepsHeader wraps a list of steps into a workflow.
const stepsHeader = "on: push\njobs:\n  snippet:\n    runs-on: ubuntu-latest\n    steps:\n"

var actionRefRE = regexp.MustCompile(`phaseguard/phaseguard@v[0-9][0-9.]*`)

// checkWorkflow checks a workflow, or steps of one, for what actionlint
// cannot know: the policy and stage each phaseguard step names exist, and
// a step that runs ./... or reads a policy file comes after the checkout.
// actionlint runs on it later, with every other workflow snippet.
func (d *docs) checkWorkflow(t *testing.T, s snippet, steps bool) {
	text, offset := s.text, 0
	if steps {
		text = stepsHeader + indent(s.text, "      ")
		offset = strings.Count(stepsHeader, "\n")
	}
	var wf struct {
		Jobs map[string]struct {
			Steps []struct {
				ID   string         `yaml:"id"`
				Name string         `yaml:"name"`
				Uses string         `yaml:"uses"`
				Run  string         `yaml:"run"`
				With map[string]any `yaml:"with"`
			} `yaml:"steps"`
		} `yaml:"jobs"`
	}
	if err := yaml.Unmarshal([]byte(text), &wf); err != nil {
		t.Errorf("%s: not a workflow: %v", s, err)
		return
	}
	for name, job := range wf.Jobs {
		checkedOut := false
		for i, st := range job.Steps {
			step := fmt.Sprintf("job %s, step %d", name, i+1)
			if strings.HasPrefix(st.Uses, "actions/checkout@") {
				checkedOut = true
			}
			var needs []string
			if m := localRunRE.FindStringSubmatch(st.Run); m != nil {
				needs = append(needs, "runs "+m[1])
			}
			if actionRefRE.MatchString(st.Uses) {
				str := func(k string) string {
					if v, ok := st.With[k]; ok {
						return fmt.Sprint(v)
					}
					return ""
				}
				ref := cmp.Or(str("policy"), "phase-default")
				if strings.Contains(ref, "${{") {
					continue
				}
				p, err := d.policy(ref)
				if err != nil {
					t.Errorf("%s: %s: policy %s: %v", s, step, ref, err)
					continue
				}
				if !policies.IsPreset(ref) && !strings.Contains(ref, "\n") {
					needs = append(needs, "reads the policy file "+ref)
				}
				if stage := str("stage"); !strings.Contains(stage, "${{") {
					if _, i := p.Stage(stage); i < 0 {
						var names []string
						for _, st := range p.Spec.Stages {
							names = append(names, st.Name)
						}
						t.Errorf("%s: %s: stage %q is not one of policy %s's: %s", s, step, stage, ref, strings.Join(names, ", "))
					}
				}
			}
			if len(needs) > 0 && !checkedOut {
				t.Errorf("%s: %s %s before any actions/checkout step: the runner's workspace is empty", s, step, strings.Join(needs, " and "))
			}
		}
	}
	d.mu.Lock()
	d.workflows = append(d.workflows, workflowSnippet{s: s, text: actionRefRE.ReplaceAllString(text, "./"), offset: offset})
	d.mu.Unlock()
}

var localRunRE = regexp.MustCompile(`(?:^|[\s;&|(])(\./[\w./-]+)`)

// policy resolves a policy reference of the docs: a preset, inline YAML,
// or a file relative to the repository's root.
func (d *docs) policy(ref string) (*policies.Policy, error) {
	if policies.IsPreset(ref) || strings.Contains(ref, "\n") {
		return policies.Resolve(ref)
	}
	return policies.LoadFile(filepath.Join(d.root, filepath.FromSlash(ref)))
}

func indent(text, prefix string) string {
	lines := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
	for i, l := range lines {
		if l != "" {
			lines[i] = prefix + l
		}
	}
	return strings.Join(lines, "\n") + "\n"
}

// actionlint lints every workflow snippet with actionlint, at the version
// .ci/run runs, in a project holding this repository's action.yml (what
// phaseguard/phaseguard@vN is) and Dockerfile, with shellcheck when it is
// installed (under CI=true it must be).
func (d *docs) actionlint(t *testing.T) {
	if len(d.workflows) == 0 {
		t.Fatal("no workflow snippets: the Action's docs hold at least one")
	}
	ci, err := os.ReadFile(filepath.Join(d.root, ".ci", "run"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`github\.com/rhysd/actionlint/cmd/actionlint@(v[0-9.]+)`).FindSubmatch(ci)
	if m == nil {
		t.Fatal(".ci/run names no actionlint version (github.com/rhysd/actionlint/cmd/actionlint@vX.Y.Z)")
	}
	inCI := os.Getenv("CI") == "true"
	if _, err := exec.LookPath("shellcheck"); err != nil {
		if inCI {
			t.Fatal("shellcheck is not installed (Debian package shellcheck; scripts/test.sh installs it): actionlint checks the snippets' run: scripts with it")
		}
		t.Log("shellcheck is not installed: run: scripts are not checked")
	}
	gobin := t.TempDir()
	install := exec.Command("go", "install", "github.com/rhysd/actionlint/cmd/actionlint@"+string(m[1]))
	install.Env = append(os.Environ(), "GOBIN="+gobin, "GOFLAGS=")
	if out, err := install.CombinedOutput(); err != nil {
		if inCI {
			t.Fatalf("go install actionlint %s: %v\n%s", m[1], err, out)
		}
		t.Skipf("go install actionlint %s: %v (offline?)\n%s", m[1], err, out)
	}

	project := t.TempDir()
	workflows := filepath.Join(project, ".github", "workflows")
	if err := os.MkdirAll(workflows, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"action.yml", "Dockerfile"} {
		data, err := os.ReadFile(filepath.Join(d.root, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(project, f), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// actionlint takes a directory with .github/workflows and .git for a
	// project, whose local actions (uses: ./) it reads.
	if err := os.WriteFile(filepath.Join(project, ".git"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	byPath := map[string]workflowSnippet{}
	var paths []string
	for _, w := range d.workflows {
		name := fmt.Sprintf("%s-%d.yml", strings.NewReplacer("/", "-", ".", "-").Replace(w.s.file), w.s.line)
		path := filepath.Join(".github", "workflows", name)
		if err := os.WriteFile(filepath.Join(project, path), []byte(w.text), 0o644); err != nil {
			t.Fatal(err)
		}
		byPath[path] = w
		paths = append(paths, path)
	}
	lint := exec.Command(filepath.Join(gobin, "actionlint"), append([]string{"-format", "{{json .}}"}, paths...)...)
	lint.Dir = project
	var stdout, stderr bytes.Buffer
	lint.Stdout, lint.Stderr = &stdout, &stderr
	err = lint.Run()
	var ee *exec.ExitError
	if err != nil && !(errors.As(err, &ee) && ee.ExitCode() == 1) {
		t.Fatalf("actionlint: %v\n%s%s", err, stdout.String(), stderr.String())
	}
	var problems []struct {
		Message  string `json:"message"`
		Filepath string `json:"filepath"`
		Line     int    `json:"line"`
		Kind     string `json:"kind"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &problems); err != nil {
		t.Fatalf("actionlint's output: %v\n%s", err, stdout.String())
	}
	for _, p := range problems {
		w, ok := byPath[p.Filepath]
		if !ok {
			t.Errorf("actionlint: %s:%d: %s", p.Filepath, p.Line, p.Message)
			continue
		}
		t.Errorf("%s:%d: actionlint (%s): %s", w.s.file, w.s.line+p.Line-w.offset, p.Kind, p.Message)
	}
	t.Logf("actionlint %s: %d workflow snippets, %d problems", m[1], len(paths), len(problems))
}

// argsExample fills a template's {{args.NAME}} as a Rollout would.
var argsExample = map[string]string{
	"stage":       "canary-10",
	"service":     "checkout",
	"namespace":   "shop",
	"canary-hash": scenarios.DefaultCanaryHash,
	"stable-hash": scenarios.DefaultStableHash,
}

var argRE = regexp.MustCompile(`\{\{\s*args\.([A-Za-z0-9_.-]+)\s*\}\}`)

// checkAnalysisMetrics decodes an AnalysisTemplate's metrics strictly
// into Argo's types, each phaseguard plugin config (its arguments filled
// as a Rollout fills them) through the plugin's own decoding, and checks
// that a metric's looks cover the longest soak of its policy: Argo takes
// the first at once, so count looks last (count-1) × interval.
func checkAnalysisMetrics(t *testing.T, s snippet) {
	var tpl struct {
		Metrics []v1alpha1.Metric `json:"metrics"`
	}
	if err := k8syaml.UnmarshalStrict([]byte(s.text), &tpl); err != nil {
		t.Errorf("%s: not an AnalysisTemplate's metrics: %v", s, err)
		return
	}
	for _, m := range tpl.Metrics {
		raw, ok := m.Provider.Plugin[rollouts.Name]
		if !ok {
			continue
		}
		var missing []string
		filled := argRE.ReplaceAllStringFunc(string(raw), func(a string) string {
			name := argRE.FindStringSubmatch(a)[1]
			v, ok := argsExample[name]
			if !ok {
				missing = append(missing, name)
			}
			return v
		})
		if len(missing) > 0 {
			t.Errorf("%s: metric %s: no example value for args %v", s, m.Name, missing)
			continue
		}
		cfg, err := rollouts.DecodeConfig([]byte(filled))
		if err != nil {
			t.Errorf("%s: metric %s: the plugin refuses its config: %v", s, m.Name, err)
			continue
		}
		p, err := policies.Resolve(cfg.Policy)
		if err != nil {
			t.Errorf("%s: metric %s: %v", s, m.Name, err)
			continue
		}
		interval, err := m.Interval.Duration()
		if err != nil || m.Count == nil {
			t.Errorf("%s: metric %s: want interval and count (%v)", s, m.Name, err)
			continue
		}
		var longest time.Duration
		for _, st := range p.Spec.Stages {
			longest = max(longest, time.Duration(st.Soak))
		}
		if covered := time.Duration(m.Count.IntValue()-1) * interval; covered < longest {
			t.Errorf("%s: metric %s: count %d every %s covers %s, less than policy %s's longest soak %s", s, m.Name, m.Count.IntValue(), interval, covered, p.Metadata.Name, longest)
		}
	}
}

// checkPluginEntry decodes the argo-rollouts-config entry strictly into
// Argo's own type and its args through the plugin's.
func checkPluginEntry(t *testing.T, s snippet) {
	var cm struct {
		MetricProviderPlugins string `json:"metricProviderPlugins"`
	}
	if err := k8syaml.UnmarshalStrict([]byte(s.text), &cm); err != nil {
		t.Errorf("%s: %v", s, err)
		return
	}
	var items []plugintypes.PluginItem
	if err := k8syaml.UnmarshalStrict([]byte(cm.MetricProviderPlugins), &items); err != nil {
		t.Errorf("%s: metricProviderPlugins: %v", s, err)
		return
	}
	for _, it := range items {
		if it.Name != rollouts.Name {
			t.Errorf("%s: plugin %q, want %q", s, it.Name, rollouts.Name)
		}
		if _, err := rollouts.ParseArgs(it.Args, func(string) string { return "" }); err != nil {
			t.Errorf("%s: args %q: %v", s, it.Args, err)
		}
	}
}

// checkConnections parses a connections file as the plugin does, with a
// stand-in for each file it names: a CA certificate for a ca_file, a
// token for any other.
func checkConnections(t *testing.T, s snippet) {
	dir := t.TempDir()
	var doc any
	if err := yaml.Unmarshal([]byte(s.text), &doc); err != nil {
		t.Errorf("%s: %v", s, err)
		return
	}
	var files func(any)
	files = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, e := range v {
				name, ok := e.(string)
				if !ok || !strings.HasSuffix(k, "_file") {
					files(e)
					continue
				}
				data := []byte("token-for-the-docs-test\n")
				if k == "ca_file" {
					srv := httptest.NewTLSServer(nil)
					data = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
					srv.Close()
				}
				if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
					t.Fatal(err)
				}
			}
		case []any:
			for _, e := range v {
				files(e)
			}
		}
	}
	files(doc)
	conns, err := rollouts.ParseConnections([]byte(s.text), dir, redact.New())
	if err != nil {
		t.Errorf("%s: the plugin refuses the connections: %v", s, err)
	} else if len(conns) == 0 {
		t.Errorf("%s: no connection", s)
	}
}

// checkPluginConfig decodes a fragment of the plugin's config, completed
// with the fields it needs, through the plugin's own decoding.
func checkPluginConfig(t *testing.T, s snippet) {
	cfg := map[string]any{
		"policy":     "phase-default",
		"prometheus": map[string]any{"address": "http://prometheus:9090"},
		"canaryHash": scenarios.DefaultCanaryHash,
	}
	var frag map[string]any
	if err := yaml.Unmarshal([]byte(s.text), &frag); err != nil {
		t.Errorf("%s: %v", s, err)
		return
	}
	for k, v := range frag {
		cfg[k] = v
	}
	raw, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rollouts.DecodeConfig(raw); err != nil {
		t.Errorf("%s: the plugin refuses it: %v", s, err)
	}
}

// checkActionRuns checks action.yml's runs as the docs say a release pins
// it: what the release workflow's sed makes of the repository's action.yml.
func (d *docs) checkActionRuns(t *testing.T, s snippet) {
	type runs struct {
		Using string `yaml:"using"`
		Image string `yaml:"image"`
	}
	var shown, action struct {
		Runs runs `yaml:"runs"`
	}
	if err := yaml.Unmarshal([]byte(s.text), &shown); err != nil {
		t.Errorf("%s: %v", s, err)
		return
	}
	data, err := os.ReadFile(filepath.Join(d.root, "action.yml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(data, &action); err != nil {
		t.Fatal(err)
	}
	release, err := os.ReadFile(filepath.Join(d.root, ".github", "workflows", "release.yml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`IMAGE: ghcr.io/${{ github.repository }}@${{ steps.build.outputs.digest }}`,
		`sed -i "s|^  image: Dockerfile\$|  image: docker://${IMAGE}|" action.yml`,
	} {
		if !bytes.Contains(release, []byte(want)) {
			t.Errorf("%s: the release workflow no longer pins action.yml with %s: update this check and the doc", s, want)
		}
	}
	if action.Runs.Image != "Dockerfile" || shown.Runs.Using != action.Runs.Using ||
		!regexp.MustCompile(`^docker://ghcr\.io/phaseguard/phaseguard@sha256:<digest>$`).MatchString(shown.Runs.Image) {
		t.Errorf("%s: runs %+v, want action.yml's (%+v) with image docker://ghcr.io/phaseguard/phaseguard@sha256:<digest>", s, shown.Runs, action.Runs)
	}
}

// checkPromQL parses a query; one written with $window must be a built-in
// SLI's, verbatim (bad or good over total, or events).
func checkPromQL(t *testing.T, s snippet) {
	text := strings.Join(strings.Fields(s.text), " ")
	if _, err := promqlParser.ParseExpr(strings.ReplaceAll(text, policies.PlaceholderWindow, "5m")); err != nil {
		t.Errorf("%s: does not parse: %v", s, err)
		return
	}
	if !strings.Contains(text, policies.PlaceholderWindow) {
		return
	}
	for _, n := range policies.SLIPresetNames() {
		p, err := sliPreset(n)
		if err != nil {
			t.Fatal(err)
		}
		for _, q := range p.SLI.Queries() {
			if q.Field == "ratio.total" {
				continue
			}
			if q.Field != "rate.events" {
				q.Expr += " / " + p.Ratio.Total
			}
			if text == strings.Join(strings.Fields(q.Expr), " ") {
				return
			}
		}
	}
	t.Errorf("%s: a query with $window that is no built-in SLI's (bad / total, or events) as it is written in policies/presets.go", s)
}

// checkText checks a text block by what it is.
func (d *docs) checkText(t *testing.T, s snippet) {
	lines := strings.Split(strings.TrimSuffix(s.text, "\n"), "\n")
	all := func(re *regexp.Regexp) bool {
		return !slices.ContainsFunc(lines, func(l string) bool { return !re.MatchString(l) })
	}
	switch {
	case all(commandLineRE):
		checkCommandList(t, s, lines)
	case all(layoutLineRE):
		for _, l := range lines {
			dir := layoutLineRE.FindStringSubmatch(l)[1]
			if fi, err := os.Stat(filepath.Join(d.root, dir)); err != nil || !fi.IsDir() {
				t.Errorf("%s: %s is not a directory of the repository", s, dir)
			}
		}
	case strings.HasPrefix(s.text, "--metric-labels-allowlist="):
		hint := policies.Hint("kube_pod_labels", "label_rollouts_pod_template_hash", policies.MissingLabel)
		if !strings.Contains(hint, strings.TrimSpace(s.text)) {
			t.Errorf("%s: kube-readiness-flaps' hold names another flag: %s", s, hint)
		}
	default:
		t.Errorf("%s: no check for this text: make it a command (sh, console), give it a check in docs_test.go, or list it in skippedSnippets with why", s)
	}
}

var (
	commandLineRE = regexp.MustCompile(`^phaseguard (\S+) +(\S.*)$`)
	layoutLineRE  = regexp.MustCompile(`^([a-z0-9_./-]+/) +\S`)
)

// checkCommandList checks a list of the CLI's commands against the
// commands `phaseguard help` lists, summaries included.
func checkCommandList(t *testing.T, s snippet, lines []string) {
	listed := map[string]string{}
	for _, l := range lines {
		m := commandLineRE.FindStringSubmatch(l)
		listed[m[1]] = m[2]
	}
	for name, c := range commands() {
		switch summary, ok := listed[name]; {
		case !ok:
			t.Errorf("%s: the list lacks phaseguard %s (%s)", s, name, c.summary)
		case summary != c.summary:
			t.Errorf("%s: phaseguard %s: %q, but phaseguard help says %q", s, name, summary, c.summary)
		}
		delete(listed, name)
	}
	for name := range listed {
		t.Errorf("%s: phaseguard %s is listed, but there is no such command", s, name)
	}
}

// prometheusNow starts a real Prometheus holding the bundled healthy
// canary, generated so that its stage ends as the test starts: a command
// the docs show against a live server (--at defaults to now) judges data
// there.
func prometheusNow(t *testing.T) string {
	t.Helper()
	b, ok := scenarios.Lookup("healthy")
	if !ok {
		t.Fatal("no bundled healthy scenario")
	}
	spec := b.Spec
	spec.Start = time.Now().Add(-spec.WarmUp - spec.Stage).Truncate(spec.ScrapeInterval)
	sc, err := scenarios.Generate(spec)
	if err != nil {
		t.Fatal(err)
	}
	return promtest.Start(t, promtest.Backfill(sc.OpenMetrics)).URL()
}

// TestDocsPresetTable: the README's table of SLI presets lists every
// built-in SLI preset, and no other, with its kind and objective as
// `phaseguard presets` shows them.
func TestDocsPresetTable(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, table, ok := strings.Cut(string(data), "\n| SLI preset | kind | objective | reads |\n|---|---|---|---|\n")
	if !ok {
		t.Fatal("README.md has no table of SLI presets (| SLI preset | kind | objective | reads |)")
	}
	listed := map[string]bool{}
	for _, row := range strings.Split(table, "\n") {
		if !strings.HasPrefix(row, "| ") {
			break
		}
		cells := strings.Split(row, " | ")
		if len(cells) < 4 {
			t.Errorf("row %q: want 4 cells", row)
			continue
		}
		name := strings.Trim(strings.TrimPrefix(cells[0], "| "), "`")
		listed[name] = true
		s, err := sliPreset(name)
		if err != nil {
			t.Errorf("row %q: %v", row, err)
			continue
		}
		if cells[1] != s.Kind() || cells[2] != objective(s.SLI) {
			t.Errorf("%s: kind %q, objective %q; want %q, %q", name, cells[1], cells[2], s.Kind(), objective(s.SLI))
		}
	}
	for _, n := range policies.SLIPresetNames() {
		if !listed[n] {
			t.Errorf("the table lacks SLI preset %s", n)
		}
	}
}
