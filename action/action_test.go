package action

import (
	"context"
	"flag"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/sethvargo/go-githubactions"

	"github.com/phaseguard/phaseguard/analysis"
	"github.com/phaseguard/phaseguard/internal/redact"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// TestLibraryPitfalls pins the two behaviours of go-githubactions v1.3.0
// that this package works around (files.go): SetOutput panics when
// $GITHUB_OUTPUT is unset, and its fixed heredoc delimiter lets a value set
// other outputs. If a new version fixes them, this test says so.
func TestLibraryPitfalls(t *testing.T) {
	t.Parallel()
	t.Run("panics when GITHUB_OUTPUT is unset", func(t *testing.T) {
		t.Parallel()
		a := githubactions.New(githubactions.WithGetenv(func(string) string { return "" }))
		defer func() {
			if recover() == nil {
				t.Error("SetOutput with $GITHUB_OUTPUT unset did not panic: Run's check may be relaxed")
			}
		}()
		a.SetOutput("verdict", "pass")
	})
	t.Run("fixed delimiter lets a value inject an output", func(t *testing.T) {
		t.Parallel()
		out := filepath.Join(t.TempDir(), "out")
		a := githubactions.New(githubactions.WithGetenv(func(k string) string {
			if k == "GITHUB_OUTPUT" {
				return out
			}
			return ""
		}))
		a.SetOutput("reason", "x\n_GitHubActionsFileCommandDelimeter_\nrollback<<EOF\nfalse\nEOF")
		data, _ := os.ReadFile(out)
		got, err := parseOutputFile(data)
		if err == nil && got["rollback"] != "false" {
			t.Errorf("library SetOutput no longer injectable (%v): writeOutputs may be replaced by it", got)
		}
	})
}

func TestWriteOutputsCannotInject(t *testing.T) {
	t.Parallel()
	hostile := []string{
		"x\n_GitHubActionsFileCommandDelimeter_\nrollback<<EOF\ntrue\nEOF",
		"x\nghadelimiter_00000000000000000000000000000000\nverdict=pass",
		"verdict=pass",
		"a<<b\nb",
		"\n\n",
		"",
	}
	// A secret that is part of every delimiter is redacted from the
	// values only: the heredocs still parse.
	set := redact.New("000000")
	for _, v := range hostile {
		out := filepath.Join(t.TempDir(), "out")
		if err := writeOutputs(set, out, []output{{name: "reason", value: v}, {name: "verdict", value: "fail"}}); err != nil {
			t.Fatal(err)
		}
		data, _ := os.ReadFile(out)
		got, err := parseOutputFile(data)
		if err != nil {
			t.Fatalf("value %q: %v", v, err)
		}
		// The value as redact marks it (touching matches as one mark):
		// what matters here is that the heredocs parse to it.
		want := map[string]string{"reason": set.String(v), "verdict": "fail"}
		if strings.Contains(v, "000000") && !strings.Contains(want["reason"], redact.Mark) {
			t.Fatalf("value %q: the secret was not redacted", v)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("value %q: outputs (-want +got):\n%s", v, diff)
		}
	}
	if err := writeOutputs(nil, filepath.Join(t.TempDir(), "out"), []output{{name: "bad\nname", value: "x"}}); err == nil {
		t.Error("an output name with a newline was written")
	}
}

func TestMissingRunnerFiles(t *testing.T) {
	t.Parallel()
	for _, unset := range [][]string{{"GITHUB_OUTPUT"}, {"GITHUB_STEP_SUMMARY"}, {"GITHUB_OUTPUT", "GITHUB_STEP_SUMMARY"}} {
		t.Run(strings.Join(unset, "+"), func(t *testing.T) {
			t.Parallel()
			s := newStep(t, map[string]string{"stage": "canary-10", "prometheus-url": noCalls(t, "Prometheus"), "canary-hash": "abc", "service": "checkout", "stage-ordering": "false"})
			for _, v := range unset {
				delete(s.env, v)
			}
			r := s.run(context.Background())
			if r.code != ExitError {
				t.Errorf("exit %d, want %d", r.code, ExitError)
			}
			for _, v := range unset {
				if !r.annotated("error", "$"+v) {
					t.Errorf("no ::error naming $%s in:\n%s", v, r.stdout)
				}
			}
		})
	}
}

// validInputs is a complete, valid set of inputs whose Prometheus and
// GitHub must not be called: tests change one input to a bad value.
func validInputs(prom string) map[string]string {
	return map[string]string{
		"policy":         "phase-default",
		"stage":          "canary-10",
		"prometheus-url": prom,
		"service":        "checkout",
		"namespace":      "shop",
		"canary-hash":    "7f8c9d6b4",
		"stable-hash":    "6d4b9c7f5",
		"github-token":   testToken,
	}
}

func TestHostileInputs(t *testing.T) {
	t.Parallel()
	const delim = "_GitHubActionsFileCommandDelimeter_"
	cases := []struct {
		name   string
		set    map[string]string
		env    map[string]string
		inputs []string // every input the errors must name
	}{
		{"promql injection in canary-hash", map[string]string{"canary-hash": `abc"} or vector(1) or up{x="`}, nil, []string{"canary-hash"}},
		{"promql injection in stable-hash", map[string]string{"stable-hash": `x"}[5m]) or on() vector(0) #`}, nil, []string{"stable-hash"}},
		{"regex in service", map[string]string{"service": `.*`}, nil, []string{"service"}},
		{"brace in service", map[string]string{"service": `checkout}`}, nil, []string{"service"}},
		{"output injection via canary-hash", map[string]string{"canary-hash": "abc\n" + delim + "\nverdict<<EOF\npass\nEOF\nrollback=false"}, nil, []string{"canary-hash"}},
		{"output injection via stage", map[string]string{"stage": "canary-10\nverdict=pass"}, nil, []string{"stage"}},
		{"workflow command via service", map[string]string{"service": "x\n::add-mask::y\n::error::pwned"}, nil, []string{"service"}},
		{"stage equal hashes", map[string]string{"stable-hash": "7f8c9d6b4"}, nil, []string{"stable-hash"}},
		{"missing canary-hash", map[string]string{"canary-hash": ""}, nil, []string{"canary-hash"}},
		{"unknown stage", map[string]string{"stage": "canary-99"}, nil, []string{"stage"}},
		{"missing stage", map[string]string{"stage": ""}, nil, []string{"stage"}},
		{"policy outside workspace", map[string]string{"policy": "../../etc/passwd"}, nil, []string{"policy"}},
		{"absolute policy", map[string]string{"policy": "/etc/passwd"}, nil, []string{"policy"}},
		{"missing policy file", map[string]string{"policy": "policies/none.yaml"}, nil, []string{"policy"}},
		{"bad inline policy", map[string]string{"policy": "apiVersion: x\nkind: Policy\n"}, nil, []string{"policy"}},
		{"ftp url", map[string]string{"prometheus-url": "ftp://prometheus:9090"}, nil, []string{"prometheus-url"}},
		{"javascript url", map[string]string{"prometheus-url": "javascript:alert(1)"}, nil, []string{"prometheus-url"}},
		{"url without host", map[string]string{"prometheus-url": "http://"}, nil, []string{"prometheus-url"}},
		{"url with query", map[string]string{"prometheus-url": "http://prometheus:9090/?query=up"}, nil, []string{"prometheus-url"}},
		{"url with newline", map[string]string{"prometheus-url": "http://prometheus:9090\n::error::x"}, nil, []string{"prometheus-url"}},
		{"url with credentials", map[string]string{"prometheus-url": "http://admin:hunter2secret@prometheus:9090"}, nil, []string{"prometheus-url"}},
		{"bad port", map[string]string{"prometheus-url": "http://prometheus:99999"}, nil, []string{"prometheus-url"}},
		{"missing url", map[string]string{"prometheus-url": ""}, nil, []string{"prometheus-url"}},
		{"token and basic auth", map[string]string{"prometheus-bearer-token": "tok-123456", "prometheus-username": "u"}, nil, []string{"prometheus-bearer-token"}},
		{"password without user", map[string]string{"prometheus-password": "pw-123456"}, nil, []string{"prometheus-password"}},
		{"reserved header", map[string]string{"prometheus-headers": "Authorization: Bearer x"}, nil, []string{"prometheus-headers"}},
		{"bad header name", map[string]string{"prometheus-headers": "X Scope: 1"}, nil, []string{"prometheus-headers"}},
		{"header without value", map[string]string{"prometheus-headers": "X-Scope-OrgID:"}, nil, []string{"prometheus-headers"}},
		{"ca not pem", map[string]string{"prometheus-ca": "/etc/ssl/ca.pem"}, nil, []string{"prometheus-ca"}},
		{"prometheus-timeout words", map[string]string{"prometheus-timeout": "ten seconds"}, nil, []string{"prometheus-timeout"}},
		{"prometheus-timeout zero", map[string]string{"prometheus-timeout": "0s"}, nil, []string{"prometheus-timeout"}},
		{"timeout negative", map[string]string{"timeout": "-5m"}, nil, []string{"timeout"}},
		{"timeout too long", map[string]string{"timeout": "7h"}, nil, []string{"timeout"}},
		{"timeout go syntax", map[string]string{"timeout": "1h2m3.5s"}, nil, []string{"timeout"}},
		{"wait yes", map[string]string{"wait": "yes"}, nil, []string{"wait"}},
		{"dry-run maybe", map[string]string{"dry-run": "maybe"}, nil, []string{"dry-run"}},
		{"stage-ordering 1", map[string]string{"stage-ordering": "1"}, nil, []string{"stage-ordering"}},
		{"on-hold ignore", map[string]string{"on-hold": "ignore"}, nil, []string{"on-hold"}},
		{"at not a time", map[string]string{"at": "yesterday"}, nil, []string{"at"}},
		{"at in the future", map[string]string{"at": "2999-01-01T00:00:00Z"}, nil, []string{"at"}},
		{"since not a time", map[string]string{"since": "yesterday"}, nil, []string{"since"}},
		{"since after at", map[string]string{"at": "2026-01-01T00:40:00Z", "since": "2026-01-01T00:41:00Z"}, nil, []string{"since"}},
		{"since a month before at", map[string]string{"at": "2026-01-01T00:40:00Z", "since": "2025-12-01T00:00:00Z"}, nil, []string{"since"}},
		{"report-path escapes", map[string]string{"report-path": "../../report.json"}, nil, []string{"report-path"}},
		{"report-path absolute", map[string]string{"report-path": "/tmp/report.json"}, nil, []string{"report-path"}},
		{"environment-prefix newline", map[string]string{"environment-prefix": "prod\nx"}, nil, []string{"environment-prefix"}},
		{"environment-prefix space", map[string]string{"environment-prefix": "my env-"}, nil, []string{"environment-prefix"}},
		{"rollout name", map[string]string{"rollout": "Checkout_Rollout"}, nil, []string{"rollout"}},
		{"rollout without namespace", map[string]string{"rollout": "checkout", "namespace": ""}, nil, []string{"namespace"}},
		{"rollout with bad namespace", map[string]string{"rollout": "checkout", "namespace": "Shop"}, nil, []string{"namespace"}},
		{"kubeconfig garbage", map[string]string{"rollout": "checkout", "kubeconfig": "{not: [yaml"}, nil, []string{"kubeconfig"}},
		{"sha not a sha", map[string]string{"sha": "main"}, nil, []string{"sha"}},
		{"sha injection", map[string]string{"sha": testSHA + "\nverdict=pass"}, nil, []string{"sha"}},
		{"ordering without token", map[string]string{"github-token": ""}, nil, []string{"github-token"}},
		{"token with newline", map[string]string{"github-token": "abc\ndef"}, nil, []string{"github-token"}},
		{"api url in clear text", nil, map[string]string{"GITHUB_API_URL": "http://api.example.com"}, []string{"$GITHUB_API_URL"}},
		{"bad repository", nil, map[string]string{"GITHUB_REPOSITORY": "acme/shop/extra"}, []string{"$GITHUB_REPOSITORY"}},
		{"several at once", map[string]string{"canary-hash": "a b", "timeout": "soon", "on-hold": "maybe"}, nil, []string{"canary-hash", "timeout", "on-hold"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			in := validInputs(noCalls(t, "Prometheus"))
			for k, v := range tc.set {
				in[k] = v
			}
			s := newStep(t, in)
			gh := newFakeGitHub(t, newFakeClock(time.Now()))
			gh.use(s)
			for k, v := range tc.env {
				s.env[k] = v
			}
			r := s.run(context.Background())
			if r.code == ExitPass {
				t.Fatalf("exit %d: a bad input passed\n%s", r.code, r.stdout)
			}
			if r.code != ExitError {
				t.Errorf("exit %d, want %d", r.code, ExitError)
			}
			want := map[string]string{
				"verdict": "fail", "rollback": "false", "rollout-aborted": "false", "max-burn": "", "looks": "0",
				"deployment-id": "", "environment": "",
			}
			for k, v := range want {
				if r.outputs[k] != v {
					t.Errorf("output %s = %q, want %q", k, r.outputs[k], v)
				}
			}
			wantNames := []string{"verdict", "reason", "max-burn", "rollback", "rollout-aborted", "report", "stage", "environment", "deployment-id", "looks"}
			for k := range r.outputs {
				if !contains(wantNames, k) {
					t.Errorf("unexpected output %q (injected?)", k)
				}
			}
			if !strings.HasPrefix(r.outputs["reason"], "invalid input: ") {
				t.Errorf("reason %q", r.outputs["reason"])
			}
			for _, name := range tc.inputs {
				if !r.annotated("error", "input "+name) {
					t.Errorf("no ::error naming input %s; annotations: %+v", name, r.annotations)
				}
				if !strings.Contains(strings.ReplaceAll(r.summary, `\`, ""), "input "+name) {
					t.Errorf("summary does not name input %s:\n%s", name, r.summary)
				}
			}
			for _, line := range strings.Split(r.stdout, "\n") {
				if strings.HasPrefix(line, "::") && !strings.HasPrefix(line, "::error ") && !strings.HasPrefix(line, "::add-mask::") {
					t.Errorf("unexpected workflow command: %q", line)
				}
			}
			for _, line := range strings.Split(r.stdout, "\n") {
				if strings.Contains(line, "hunter2secret") && line != "::add-mask::hunter2secret" {
					t.Errorf("the password in the URL was printed: %q", line)
				}
			}
			if strings.Contains(r.summary, "hunter2secret") || strings.Contains(r.outputs["reason"], "hunter2secret") {
				t.Error("the password in the URL reached the summary or outputs")
			}
			if calls := gh.recorded(); len(calls) > 0 {
				t.Errorf("GitHub API called with a bad input: %v", calls)
			}
		})
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// TestOutOfOrder checks the refusals of stage ordering: none judges, none
// creates a deployment, and Prometheus is never asked.
func TestOutOfOrder(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	cases := []struct {
		name   string
		seed   func(gh *fakeGitHub)
		reason string
	}{
		{"no previous stage", func(*fakeGitHub) {}, "out-of-order: previous stage canary-10 has not passed for commit 0123456 (no successful deployment to environment checkout-canary-10)"},
		{"previous stage of another commit", func(gh *fakeGitHub) {
			gh.seed(strings.Repeat("f", 40), "checkout-canary-10", now.Add(-time.Hour), stateInProgress, stateSuccess)
		}, "out-of-order: previous stage canary-10 has not passed"},
		{"previous stage of another prefix", func(gh *fakeGitHub) {
			gh.seed(testSHA, "canary-10", now.Add(-time.Hour), stateInProgress, stateSuccess)
		}, "out-of-order: previous stage canary-10 has not passed"},
		{"previous stage failed", func(gh *fakeGitHub) {
			gh.seed(testSHA, "checkout-canary-10", now.Add(-time.Hour), stateInProgress, stateFailure)
		}, "out-of-order: previous stage canary-10 did not pass for commit 0123456: its latest deployment 1001 to checkout-canary-10 is failure"},
		{"previous stage held", func(gh *fakeGitHub) {
			gh.seed(testSHA, "checkout-canary-10", now.Add(-time.Hour), stateInProgress, stateError)
		}, "is error"},
		{"previous stage passed then failed", func(gh *fakeGitHub) {
			gh.seed(testSHA, "checkout-canary-10", now.Add(-time.Hour), stateInProgress, stateSuccess)
			gh.seed(testSHA, "checkout-canary-10", now.Add(-30*time.Minute), stateInProgress, stateFailure)
		}, "its latest deployment 1004 to checkout-canary-10 is failure"},
		{"previous stage still judged", func(gh *fakeGitHub) {
			gh.seed(testSHA, "checkout-canary-10", now.Add(-2*time.Minute), stateInProgress)
		}, "out-of-order: previous stage canary-10 is still being judged for commit 0123456 (deployment 1001 to checkout-canary-10)"},
		{"previous stage not soaked", func(gh *fakeGitHub) {
			gh.seed(testSHA, "checkout-canary-10", now.Add(-4*time.Minute), stateInProgress, stateSuccess)
		}, "out-of-order: previous stage canary-10 passed for commit 0123456 but has soaked 4m of 10m (deployment 1001 to checkout-canary-10, started 2026-03-01T11:56:00Z); retry after 2026-03-01T12:06:00Z"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			clock := newFakeClock(now)
			gh := newFakeGitHub(t, clock)
			tc.seed(gh)
			in := validInputs(noCalls(t, "Prometheus"))
			in["stage"] = "canary-50"
			in["environment-prefix"] = "checkout-"
			s := newStep(t, in)
			gh.use(s)
			s.opts = append(s.opts, WithClock(clock))
			r := s.run(context.Background())
			if r.code != ExitFail {
				t.Errorf("exit %d, want %d", r.code, ExitFail)
			}
			if !strings.Contains(r.outputs["reason"], tc.reason) || !strings.HasPrefix(r.outputs["reason"], "out-of-order: ") {
				t.Errorf("reason\n got %q\nwant %q...", r.outputs["reason"], tc.reason)
			}
			if r.outputs["verdict"] != "fail" || r.outputs["rollback"] != "false" || r.outputs["deployment-id"] != "" {
				t.Errorf("outputs %v", r.outputs)
			}
			if !r.annotated("error", "out-of-order") {
				t.Errorf("no ::error annotation: %+v", r.annotations)
			}
			if w := gh.writes(); len(w) > 0 {
				t.Errorf("an out-of-order run wrote to the ledger: %v", w)
			}
			calls := gh.recorded()
			if len(calls) == 0 || calls[0] != "GET /repos/acme/shop/deployments?"+query("environment", "checkout-canary-10", "per_page", "100", "sha", testSHA, "task", deploymentTask) {
				t.Errorf("calls %v", calls)
			}
			report, err := os.ReadFile(filepath.Join(s.dir, ".phaseguard", "canary-50.json"))
			if err != nil || !strings.Contains(string(report), "out-of-order") {
				t.Errorf("report: %v %s", err, report)
			}
		})
	}
}

// TestSummary renders the job summary of fixed verdicts against golden
// files (go test ./action -run TestSummary -update rewrites them).
func TestSummary(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 1, 1, 0, 40, 0, 0, time.UTC)
	nan := analysis.Num(math.NaN())
	mk := func(t time.Time, drain, flaps analysis.Num) *analysis.Verdict {
		return &analysis.Verdict{
			Time: t, Policy: "phase-default", Stage: "canary-10", Decision: analysis.Fail,
			Reason: "drain-failure: burn 200× > 10× in 5m/1m | <b>", Confidence: 0.9975, Queries: 4,
			SLIs: []analysis.SLIResult{
				{
					Name: "drain-failure", Kind: "ratio", Decision: analysis.Fail, Reason: "burn 200× > 10× in 5m and 1m",
					Budget: 0.001, Value: 0.2, Samples: 15000,
					Windows: []analysis.WindowResult{
						{Window: "5m", Bad: 3000, Total: 15000, Value: 0.2, Burn: drain, BurnLower: drain * 0.9, BurnUpper: drain * 1.1},
						{Window: "1m", Bad: 600, Total: 3000, Value: 0.2, Burn: drain, BurnLower: drain * 0.8, BurnUpper: drain * 1.2},
					},
					Tripped:  []string{"5m/1m>10×"},
					Queries:  []string{"sum(increase(phase_requests_total{service=\"checkout\",pod_template_hash=\"7f8c9d6b4\",phase!=\"active\"}[5m]))", "q with ``` fence"},
					Baseline: &analysis.BaselineResult{Hash: "6d4b9c7f5", Value: 0.0003, Samples: 135000, PValue: 0.000001, Worse: true},
				},
				{
					Name: "flaps", Kind: "rate", Decision: analysis.Hold, Reason: "no data",
					Budget: 2, Value: nan, Samples: nan,
					Windows: []analysis.WindowResult{
						{Window: "5m", Bad: nan, Total: 1.0 / 12, Value: nan, Burn: flaps, BurnLower: nan, BurnUpper: nan},
						{Window: "1m", Bad: nan, Total: 1.0 / 60, Value: nan, Burn: flaps, BurnLower: nan, BurnUpper: nan},
					},
					Queries: []string{"sum(increase(phase_transitions_total[5m]))"},
					Error:   "query \"x\": server error: 503 | <script>",
				},
			},
		}
	}
	cases := []struct {
		name  string
		looks []*analysis.Verdict
		s     summary
	}{
		{"single-look", []*analysis.Verdict{mk(at, 200, nan)}, summary{Rollback: true, Rollout: "checkout", Namespace: "shop", Aborted: true}},
		{"watched", []*analysis.Verdict{mk(at.Add(-time.Minute), 100, 0.5), mk(at.Add(-30*time.Second), 150, 0.25), mk(at, 200, 0)}, summary{Wait: true, DryRun: true, Notes: []string{"dry run: the stage would have been rolled back"}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := tc.s
			last := tc.looks[len(tc.looks)-1]
			s.Decision, s.Reason, s.Stage, s.Policy = string(last.Decision), last.Reason, "canary-10", "phase-default"
			s.Service, s.CanaryHash, s.StableHash = "checkout", "7f8c9d6b4", "6d4b9c7f5"
			s.Environment, s.DeploymentID, s.RunURL = "canary-10", 1001, "https://github.com/acme/shop/actions/runs/4242"
			s.At, s.Looks, s.PlannedLooks, s.Confidence, s.MaxBurn = last.Time.Format(time.RFC3339), len(tc.looks), 20, "99.75 %", fmtBurn(last.MaxBurn())
			s.SLIs, s.Queries = sliSummaries(last), last.Queries
			s.Chart, s.Legend = burnChart(tc.looks, at.Add(-90*time.Second))
			got, err := renderSummary(&s)
			if err != nil {
				t.Fatal(err)
			}
			golden(t, "summary-"+tc.name+".md", got)
		})
	}
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if diff := cmp.Diff(string(want), got); diff != "" {
		t.Errorf("%s (-want +got):\n%s", path, diff)
	}
}

func TestTruncate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		n    int
		want string
	}{
		{"short", 140, "short"},
		{"abcdef", 5, "ab…"},
		{"ab×cde", 6, "ab…"}, // "×" is 2 bytes: cut before it, not inside
		{"a××××", 8, "a××…"},
	} {
		got := truncate(tc.in, tc.n)
		if got != tc.want || len(got) > tc.n {
			t.Errorf("truncate(%q, %d) = %q (%d bytes), want %q", tc.in, tc.n, got, len(got), tc.want)
		}
	}
}

// TestMasks checks that every credential is masked before anything else
// is printed, and printed nowhere else, even when the step fails.
func TestMasks(t *testing.T) {
	t.Parallel()
	kubeconfig := `apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: u, user: {token: kube-token-7d1e9f}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
`
	secrets := []string{testToken, "prom-token-2b8a", "api-key-secret-44", "kube-token-7d1e9f"}
	in := validInputs(noCalls(t, "Prometheus"))
	in["prometheus-bearer-token"] = secrets[1]
	// A tenant is an identifier: not masked (TestTenantHeaders).
	in["prometheus-headers"] = "X-Scope-OrgID: shop\nX-Api-Key: " + secrets[2]
	in["rollout"], in["kubeconfig"] = "checkout", kubeconfig
	in["timeout"] = "never" // fail before anything is called
	s := newStep(t, in)
	r := s.run(context.Background())
	if r.code != ExitError {
		t.Fatalf("exit %d", r.code)
	}
	lines := strings.Split(r.stdout, "\n")
	for i, want := range secrets {
		if !contains(r.masks, want) {
			t.Errorf("%s not masked (masks %q)", want, r.masks)
		}
		if lines[i] != "::add-mask::"+want {
			t.Errorf("line %d is %q: masks must come first", i+1, lines[i])
		}
	}
	for _, line := range lines[len(secrets):] {
		for _, sec := range secrets {
			if strings.Contains(line, sec) {
				t.Errorf("%s printed: %q", sec, line)
			}
		}
	}
	for _, sec := range secrets {
		if strings.Contains(r.summary, sec) {
			t.Errorf("%s in the summary", sec)
		}
		for k, v := range r.outputs {
			if strings.Contains(v, sec) {
				t.Errorf("%s in output %s", sec, k)
			}
		}
	}
}

// TestLedgerForbidden: a token that may not write deployments stops the
// step before anything is judged, and says what to change.
func TestLedgerForbidden(t *testing.T) {
	t.Parallel()
	clock := newFakeClock(time.Now())
	gh := newFakeGitHub(t, clock)
	gh.readOnly = true
	s := newStep(t, validInputs(noCalls(t, "Prometheus")))
	gh.use(s)
	s.opts = append(s.opts, WithClock(clock))
	r := s.run(context.Background())
	if r.code != ExitError || r.outputs["verdict"] != "fail" || r.outputs["looks"] != "0" {
		t.Errorf("exit %d, outputs %v", r.code, r.outputs)
	}
	if !strings.Contains(r.outputs["reason"], "403") || !strings.Contains(r.outputs["reason"], "deployments: write") {
		t.Errorf("reason %q", r.outputs["reason"])
	}
	want := []string{"POST /repos/acme/shop/deployments"}
	if diff := cmp.Diff(want, gh.recorded()); diff != "" {
		t.Errorf("calls (-want +got):\n%s", diff)
	}
}
