package action

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// testPolicy is a policy file's contents: one stage (canary), one SLI.
const testPolicy = "apiVersion: phaseguard.dev/v1alpha1\nkind: Policy\nmetadata: {name: linked}\nspec:\n" +
	"  windows: [{long: 5m, short: 1m, factor: 10}]\n  stages: [{name: canary, soak: 5m}]\n  slis: [{preset: drain-failure}]\n"

// outsideToken is what a file outside the workspace holds: one YAML value,
// a token, which a policy error would quote whole.
const outsideToken = "ghp_0utside0f7he0w0rkspace0c4f3b2a1d9e8"

// TestWorkspaceSymlinksRefused: every workspace-relative path the Action
// reads or writes (policy, report-path, a relative $KUBECONFIG) is refused
// when a symbolic link takes it out of the workspace, with an error naming
// the input that quotes nothing of the file; nothing outside is read into
// any text or written, and nothing is queried or recorded.
func TestWorkspaceSymlinksRefused(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		// setup links paths of the workspace ws to the directory out,
		// which holds tok.yaml (outsideToken) and kubeconfig.
		setup func(t *testing.T, ws, out string)
		set   map[string]string
		env   map[string]string
		input string // the input the error names
		// created is a file of out the run must not create.
		created string
	}{
		{
			name: "policy file linked out",
			setup: func(t *testing.T, ws, out string) {
				symlink(t, filepath.Join(out, "tok.yaml"), filepath.Join(ws, "pol.yaml"))
			},
			set:   map[string]string{"policy": "pol.yaml"},
			input: "policy",
		},
		{
			name:  "policy directory linked out",
			setup: func(t *testing.T, ws, out string) { symlink(t, out, filepath.Join(ws, "conf")) },
			set:   map[string]string{"policy": "conf/tok.yaml"},
			input: "policy",
		},
		{
			name: "policy linked out by a relative link",
			setup: func(t *testing.T, ws, out string) {
				rel, err := filepath.Rel(ws, filepath.Join(out, "tok.yaml"))
				if err != nil {
					t.Fatal(err)
				}
				symlink(t, rel, filepath.Join(ws, "pol.yaml"))
			},
			set:   map[string]string{"policy": "pol.yaml"},
			input: "policy",
		},
		{
			name:    "report directory linked out",
			setup:   func(t *testing.T, ws, out string) { symlink(t, out, filepath.Join(ws, "out")) },
			set:     map[string]string{"report-path": "out/r.json"},
			input:   "report-path",
			created: "r.json",
		},
		{
			name:    "report directory linked out, deeper directories to create",
			setup:   func(t *testing.T, ws, out string) { symlink(t, out, filepath.Join(ws, "out")) },
			set:     map[string]string{"report-path": "out/a/b/r.json"},
			input:   "report-path",
			created: "a",
		},
		{
			name: "report file a dangling link out",
			setup: func(t *testing.T, ws, out string) {
				symlink(t, filepath.Join(out, "r.json"), filepath.Join(ws, "r.json"))
			},
			set:     map[string]string{"report-path": "r.json"},
			input:   "report-path",
			created: "r.json",
		},
		{
			name:    "report directory a dangling link out",
			setup:   func(t *testing.T, ws, out string) { symlink(t, filepath.Join(out, "new"), filepath.Join(ws, "out")) },
			set:     map[string]string{"report-path": "out/r.json"},
			input:   "report-path",
			created: "new",
		},
		{
			name:    "default report directory linked out",
			setup:   func(t *testing.T, ws, out string) { symlink(t, out, filepath.Join(ws, ".phaseguard")) },
			input:   "report-path",
			created: "canary-10.json",
		},
		{
			name: "KUBECONFIG linked out",
			setup: func(t *testing.T, ws, out string) {
				symlink(t, filepath.Join(out, "kubeconfig"), filepath.Join(ws, "kc"))
			},
			set:   map[string]string{"rollout": "checkout"},
			env:   map[string]string{"KUBECONFIG": "kc"},
			input: "$KUBECONFIG",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			kube := serveKubeEcho(t)
			out := t.TempDir()
			writeTestFile(t, filepath.Join(out, "tok.yaml"), outsideToken+"\n")
			writeTestFile(t, filepath.Join(out, "kubeconfig"), string(kube.kubeconfig(t, outsideToken)))
			in := validInputs(noCalls(t, "Prometheus"))
			for k, v := range tt.set {
				in[k] = v
			}
			s := newStep(t, in)
			for k, v := range tt.env {
				s.env[k] = v
			}
			gh := newFakeGitHub(t, newFakeClock(time.Now()))
			gh.use(s)
			tt.setup(t, s.dir, out)
			r := s.run(context.Background())
			t.Logf("reason %q", r.outputs["reason"])
			if r.code != ExitError {
				t.Errorf("exit %d, want %d", r.code, ExitError)
			}
			if !r.annotated("error", tt.input) || !strings.Contains(r.outputs["reason"], tt.input) {
				t.Errorf("reason %q: want an error naming %s; annotations %+v", r.outputs["reason"], tt.input, r.annotations)
			}
			for where, text := range map[string]string{"the log": r.stdout, "the summary": r.summary, "the outputs": strings.Join(sortedValues(r.outputs), "\n")} {
				if strings.Contains(text, outsideToken[4:16]) {
					t.Errorf("%s quotes the file outside the workspace:\n%s", where, text)
				}
			}
			if tt.created != "" {
				if _, err := os.Lstat(filepath.Join(out, tt.created)); err == nil {
					t.Errorf("%s was created outside the workspace", tt.created)
				}
			}
			if calls := gh.recorded(); len(calls) > 0 {
				t.Errorf("GitHub API called: %v", calls)
			}
			if n := kube.called(); n > 0 {
				t.Errorf("the Kubernetes API named by the file outside was called %d times", n)
			}
		})
	}
}

// TestWorkspaceSymlinksInside: links that stay inside the workspace are
// followed, and a workspace that is itself reached through a link is the
// workspace.
func TestWorkspaceSymlinksInside(t *testing.T) {
	t.Parallel()
	wsDir := t.TempDir()
	ws := filepath.Join(t.TempDir(), "workspace")
	symlink(t, wsDir, ws)
	writeTestFile(t, filepath.Join(wsDir, "policies", "p.yaml"), testPolicy)
	symlink(t, filepath.Join(wsDir, "policies", "p.yaml"), filepath.Join(wsDir, "abs.yaml"))
	symlink(t, filepath.Join("policies", "p.yaml"), filepath.Join(wsDir, "rel.yaml"))
	symlink(t, "policies", filepath.Join(wsDir, "conf"))
	if err := os.Mkdir(filepath.Join(wsDir, "reports"), 0o755); err != nil {
		t.Fatal(err)
	}
	symlink(t, "reports", filepath.Join(wsDir, "out"))
	for _, tt := range []struct{ policy, report string }{
		{"policies/p.yaml", "r.json"},
		{"abs.yaml", "out/r.json"},
		{"rel.yaml", "out/new/r.json"},
		{"conf/p.yaml", "new/dir/r.json"},
		{"conf/../rel.yaml", "out/../r.json"},
	} {
		t.Run(tt.policy+" "+tt.report, func(t *testing.T) {
			t.Parallel()
			inputs := map[string]string{
				inPolicy: tt.policy, inStage: "canary", inService: "checkout", inCanaryHash: "7f8c9d6b4",
				inPromURL: "http://127.0.0.1:9", inStageOrdering: "false", inReportPath: tt.report,
			}
			_, err := readInputs(func(k string) string { return inputs[k] }, time.Now(), &runnerEnv{workspace: ws})
			if err != nil {
				t.Fatalf("refused: %v", err)
			}
		})
	}
}

// TestReportLinkedOutDuringRun: a report directory replaced by a link
// out of the workspace while the run looks (a step's background process
// could) is refused when the report is written, not followed.
func TestReportLinkedOutDuringRun(t *testing.T) {
	t.Parallel()
	out := t.TempDir()
	var s *step
	var once sync.Once
	prom := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		once.Do(func() {
			dir := filepath.Join(s.dir, "reports")
			if err := os.RemoveAll(dir); err != nil {
				t.Error(err)
			}
			if err := os.Symlink(out, dir); err != nil {
				t.Error(err)
			}
		})
		http.Error(w, "refused", http.StatusBadRequest)
	}))
	t.Cleanup(prom.Close)
	in := validInputs(prom.URL)
	in["github-token"], in["stage-ordering"], in["report-path"] = "", "false", "reports/r.json"
	s = newStep(t, in)
	if err := os.Mkdir(filepath.Join(s.dir, "reports"), 0o755); err != nil {
		t.Fatal(err)
	}
	r := s.run(context.Background())
	t.Logf("annotations %+v", r.annotations)
	if _, err := os.Lstat(filepath.Join(out, "r.json")); err == nil {
		t.Error("the report was written outside the workspace")
	}
	if r.code != ExitError || !r.annotated("error", "report-path") {
		t.Errorf("exit %d, annotations %+v: want the report refused, naming report-path", r.code, r.annotations)
	}
	if r.outputs["report"] != "" {
		t.Errorf("output report = %q, want none", r.outputs["report"])
	}
}

func symlink(t *testing.T, target, link string) {
	t.Helper()
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
}

func writeTestFile(t *testing.T, path, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
}

func sortedValues(m map[string]string) []string {
	var out []string
	for _, k := range sortedKeys(m) {
		out = append(out, m[k])
	}
	return out
}
