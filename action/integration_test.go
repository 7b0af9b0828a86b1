package action

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/phaseguard/phaseguard/analysis"
	"github.com/phaseguard/phaseguard/internal/kubetest"
	"github.com/phaseguard/phaseguard/internal/mermaidtest"
	"github.com/phaseguard/phaseguard/internal/promtest"
	"github.com/phaseguard/phaseguard/scenarios"
)

// TestWithPrometheus runs the Action against a real Prometheus per bundled
// scenario (backfilled with promtool), a fake GitHub API and, for the
// rollback, a real in-process Kubernetes API server. Nothing here skips:
// a missing Prometheus or API server fails the test.
func TestWithPrometheus(t *testing.T) {
	t.Parallel()
	proms := map[string]*scenarioServer{}
	for _, name := range []string{"healthy", "drain-misrouting", "thin-traffic"} {
		proms[name] = startScenario(t, name)
	}
	t.Run("verdicts", func(t *testing.T) { testVerdicts(t, proms) })
	t.Run("ledger", func(t *testing.T) { testLedger(t, proms["healthy"]) })
	t.Run("concurrent runs", func(t *testing.T) { testConcurrent(t, proms["healthy"]) })
	t.Run("auth and TLS", func(t *testing.T) { testAuth(t, proms["healthy"]) })
	t.Run("rollout abort", func(t *testing.T) { testRolloutAbort(t, proms["drain-misrouting"]) })
}

// scenarioServer is a Prometheus serving one scenario.
type scenarioServer struct {
	url   string
	truth scenarios.Truth
}

// startScenario starts a real Prometheus backfilled with the bundled
// scenario name.
func startScenario(t *testing.T, name string) *scenarioServer {
	t.Helper()
	b, ok := scenarios.Lookup(name)
	if !ok {
		t.Fatalf("no bundled scenario %q", name)
	}
	srv := promtest.Start(t, promtest.Backfill(b.OpenMetrics))
	return &scenarioServer{url: srv.URL(), truth: b.Truth}
}

// inputs are the inputs of a step judging canary-10 of the scenario.
func (s *scenarioServer) inputs(at time.Time) map[string]string {
	return map[string]string{
		"policy":         "phase-default",
		"stage":          "canary-10",
		"prometheus-url": s.url,
		"service":        s.truth.Service,
		"namespace":      s.truth.Namespace,
		"canary-hash":    s.truth.CanaryHash,
		"stable-hash":    s.truth.StableHash,
		"github-token":   testToken,
		"at":             at.UTC().Format(time.RFC3339),
	}
}

// now is the fake clock's time for scenario runs: after all the data.
func (s *scenarioServer) now() time.Time { return s.truth.End.Add(time.Hour) }

func testVerdicts(t *testing.T, proms map[string]*scenarioServer) {
	t.Parallel()
	cases := []verdictCase{
		{name: "healthy", scenario: "healthy", at: stageEnd, code: ExitPass, verdict: analysis.Pass,
			states: []string{stateInProgress, stateSuccess}, looks: "1", notice: "notice", reason: "all 7 SLIs pass"},
		{name: "drain misrouting", scenario: "drain-misrouting", at: stageEnd, code: ExitFail, verdict: analysis.Fail, rollback: true,
			states: []string{stateInProgress, stateFailure}, looks: "1", notice: "error", reason: "drain-failure: "},
		{name: "thin traffic", scenario: "thin-traffic", at: stageEnd, code: ExitFail, verdict: analysis.Hold,
			states: []string{stateInProgress, stateError}, looks: "1", notice: "warning"},
		{name: "thin traffic neutral", scenario: "thin-traffic", at: stageEnd, set: map[string]string{"on-hold": "neutral"}, code: ExitPass, verdict: analysis.Hold,
			states: []string{stateInProgress, stateError}, looks: "1", notice: "warning"},
		{name: "healthy watched", scenario: "healthy", at: stageStart, set: map[string]string{"wait": "true"}, code: ExitPass, verdict: analysis.Pass,
			states: []string{stateInProgress, stateSuccess}, looks: "20", notice: "notice"},
		{name: "drain misrouting watched", scenario: "drain-misrouting", at: func(tr scenarios.Truth) time.Time { return tr.Fault.Onset.Add(-5 * time.Minute) },
			set: map[string]string{"wait": "true"}, code: ExitFail, verdict: analysis.Fail, rollback: true,
			states: []string{stateInProgress, stateFailure}, notice: "error", reason: "drain-failure: "},
		{name: "drain misrouting dry run", scenario: "drain-misrouting", at: stageEnd, set: map[string]string{"dry-run": "true", "rollout": "checkout"}, code: ExitPass,
			verdict: analysis.Fail, looks: "1", notice: "warning"},
		// The watch starts mid-stage; since says the canary took its
		// traffic at the stage start, so the windows are whole.
		{name: "watch cut by timeout", scenario: "healthy", at: midStage, set: map[string]string{"wait": "true", "timeout": "3m", "since": "stage start"}, code: ExitFail, verdict: analysis.Hold,
			states: []string{stateInProgress, stateError}, looks: "6", notice: "warning", reason: "timeout after watching 3m of the 10m soak (6 of 20 looks); last look pass: "},
	}
	// Every chart of the runs, parsed by Mermaid's parser once they end.
	var mu sync.Mutex
	var charts, owners []string
	t.Run("runs", func(t *testing.T) {
		testVerdictRuns(t, proms, cases, func(name, summary string) {
			mu.Lock()
			defer mu.Unlock()
			for _, c := range mermaidtest.Blocks(summary) {
				charts, owners = append(charts, c), append(owners, name)
			}
		})
	})
	t.Run("charts parse", func(t *testing.T) {
		if len(charts) < len(cases) {
			t.Fatalf("%d charts in the summaries of %d runs", len(charts), len(cases))
		}
		p := mermaidtest.New(t)
		if p == nil {
			return
		}
		for i, err := range p.Parse(t, charts) {
			if err != nil {
				t.Errorf("%s: Mermaid %s rejects the chart: %v\n%s", owners[i], p.Version, err, charts[i])
			}
		}
	})
}

// verdictCase is one run of testVerdicts.
type verdictCase struct {
	name     string
	scenario string
	at       func(scenarios.Truth) time.Time
	set      map[string]string
	code     int
	verdict  analysis.Decision
	rollback bool
	states   []string // deployment statuses written
	looks    string
	notice   string // annotation level
	// reason, when set, is the start of the reason output.
	reason string
}

// testVerdictRuns runs each case, handing its summary to summary.
func testVerdictRuns(t *testing.T, proms map[string]*scenarioServer, cases []verdictCase, summary func(name, page string)) {
	runURL := "https://github.com/acme/shop/actions/runs/4242"
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := proms[tc.scenario]
			in := p.inputs(tc.at(p.truth))
			for k, v := range tc.set {
				if v == "stage start" {
					v = p.truth.StageStart.UTC().Format(time.RFC3339)
				}
				in[k] = v
			}
			now := p.now()
			if tc.name == "watch cut by timeout" {
				// The watch starts now: looks are taken as the clock moves.
				now = midStage(p.truth)
			}
			clock := newFakeClock(now)
			gh := newFakeGitHub(t, clock)
			s := newStep(t, in)
			gh.use(s)
			s.opts = append(s.opts, WithClock(clock))
			r := s.run(context.Background())
			if r.code != tc.code {
				t.Errorf("exit %d, want %d\n%s", r.code, tc.code, r.stdout)
			}
			if got := r.outputs["verdict"]; got != string(tc.verdict) {
				t.Errorf("verdict %q, want %q (reason %q)", got, tc.verdict, r.outputs["reason"])
			}
			if !strings.HasPrefix(r.outputs["reason"], tc.reason) {
				t.Errorf("reason %q, want prefix %q", r.outputs["reason"], tc.reason)
			}
			if got := r.outputs["rollback"]; got != strconv.FormatBool(tc.rollback) {
				t.Errorf("rollback %q, want %v", got, tc.rollback)
			}
			if tc.looks != "" && r.outputs["looks"] != tc.looks {
				t.Errorf("looks %q, want %s", r.outputs["looks"], tc.looks)
			}
			if tc.verdict == analysis.Fail && tc.looks == "" {
				if n, _ := strconv.Atoi(r.outputs["looks"]); n < 2 || n >= 20 {
					t.Errorf("a watch that fails mid-stage took %d looks", n)
				}
			}
			if _, err := strconv.ParseFloat(r.outputs["max-burn"], 64); err != nil {
				t.Errorf("max-burn %q: %v", r.outputs["max-burn"], err)
			}
			if !r.annotated(tc.notice, r.outputs["reason"]) {
				t.Errorf("no ::%s with the reason; annotations %+v", tc.notice, r.annotations)
			}
			// A timeout before the soak's end is warned of at the start,
			// and the hold it ends in says what a pass needs.
			cut := tc.name == "watch cut by timeout"
			if got := r.annotated("warning", "timeout before the soak's end"); got != cut {
				t.Errorf("warning of a timeout before the soak's end: %v, want %v; annotations %+v", got, cut, r.annotations)
			}
			if cut && !strings.HasSuffix(r.outputs["reason"], "; a pass needs the soak watched to its end: raise the timeout input (at most 6h) above the soak left, and the job's timeout-minutes above that") {
				t.Errorf("reason %q: want the timeout's hint at its end", r.outputs["reason"])
			}

			// The ledger.
			ids := gh.deploymentsTo("canary-10")
			if tc.states == nil {
				if w := gh.writes(); len(w) != 0 {
					t.Errorf("dry run wrote to the ledger: %v", w)
				}
			} else {
				if len(ids) != 1 {
					t.Fatalf("deployments to canary-10: %v", ids)
				}
				if diff := cmp.Diff(tc.states, gh.states(ids[0])); diff != "" {
					t.Errorf("deployment statuses (-want +got):\n%s", diff)
				}
				if r.outputs["deployment-id"] != strconv.FormatInt(ids[0], 10) || r.outputs["environment"] != "canary-10" {
					t.Errorf("outputs deployment-id %q environment %q", r.outputs["deployment-id"], r.outputs["environment"])
				}
				for _, c := range gh.writes() {
					if strings.HasSuffix(c.Path, "/statuses") {
						if c.Body["log_url"] != runURL || c.Body["auto_inactive"] != false {
							t.Errorf("status without log_url or with auto_inactive: %v", c.Body)
						}
					}
				}
			}

			// The report is the last verdict.
			data, err := os.ReadFile(filepath.Join(s.dir, r.outputs["report"]))
			if err != nil {
				t.Fatal(err)
			}
			var v analysis.Verdict
			if err := json.Unmarshal(data, &v); err != nil {
				t.Fatalf("report: %v", err)
			}
			if v.Decision != tc.verdict || v.Reason != r.outputs["reason"] || len(v.SLIs) != 7 {
				t.Errorf("report: verdict %s reason %q, %d SLIs", v.Decision, v.Reason, len(v.SLIs))
			}

			// The summary.
			for _, want := range []string{"### SLIs", "```mermaid", "xychart-beta", "<details><summary>Exact PromQL", "`drain-failure`", "pod_template_hash=\"" + p.truth.CanaryHash + "\""} {
				if !strings.Contains(r.summary, want) {
					t.Errorf("summary lacks %q", want)
				}
			}
			if in["wait"] == "true" && !strings.Contains(r.summary, "Burn rate over "+r.outputs["looks"]+" looks") {
				t.Errorf("watched summary does not chart the looks")
			}
			if in["wait"] != "true" && !strings.Contains(r.summary, "Burn rate by window") {
				t.Errorf("single-look summary does not chart the windows")
			}
			if strings.Contains(r.stdout, testToken) && strings.Count(r.stdout, testToken) != 1 {
				t.Errorf("the token was printed beyond its mask")
			}
			summary(tc.name, r.summary)
		})
	}
}

func stageEnd(tr scenarios.Truth) time.Time   { return tr.StageEnd }
func stageStart(tr scenarios.Truth) time.Time { return tr.StageStart }
func midStage(tr scenarios.Truth) time.Time   { return tr.StageStart.Add(15 * time.Minute) }

// testLedger checks stage ordering through to a judged stage, call by
// call, and that an abandoned run does not block the stage forever.
func testLedger(t *testing.T, p *scenarioServer) {
	t.Parallel()
	now := p.now()
	t.Run("previous stage passed and soaked", func(t *testing.T) {
		t.Parallel()
		clock := newFakeClock(now)
		gh := newFakeGitHub(t, clock)
		prev := gh.seed(testSHA, "checkout-canary-10", now.Add(-11*time.Minute), stateInProgress, stateSuccess)
		in := p.inputs(p.truth.StageEnd)
		in["stage"], in["environment-prefix"] = "canary-50", "checkout-"
		s := newStep(t, in)
		gh.use(s)
		s.opts = append(s.opts, WithClock(clock))
		r := s.run(context.Background())
		if r.code != ExitPass || r.outputs["verdict"] != "pass" {
			t.Fatalf("exit %d verdict %q: %s", r.code, r.outputs["verdict"], r.outputs["reason"])
		}
		id := gh.deploymentsTo("checkout-canary-50")
		if len(id) != 1 {
			t.Fatalf("deployments to checkout-canary-50: %v", id)
		}
		list := func(env string) string {
			return "GET /repos/acme/shop/deployments?" + query("environment", env, "per_page", "100", "sha", testSHA, "task", deploymentTask)
		}
		want := []string{
			list("checkout-canary-10"),
			"GET /repos/acme/shop/deployments/" + strconv.FormatInt(prev, 10) + "/statuses?per_page=100",
			"POST /repos/acme/shop/deployments",
			"POST /repos/acme/shop/deployments/" + strconv.FormatInt(id[0], 10) + "/statuses",
			list("checkout-canary-50"),
			"POST /repos/acme/shop/deployments/" + strconv.FormatInt(id[0], 10) + "/statuses",
		}
		if diff := cmp.Diff(want, gh.recorded()); diff != "" {
			t.Errorf("API calls (-want +got):\n%s", diff)
		}
		create := gh.writes()[0].Body
		for k, v := range map[string]any{"ref": testSHA, "task": deploymentTask, "environment": "checkout-canary-50", "auto_merge": false, "production_environment": false} {
			if create[k] != v {
				t.Errorf("create deployment: %s = %v, want %v", k, create[k], v)
			}
		}
		if rc, ok := create["required_contexts"].([]any); !ok || len(rc) != 0 {
			t.Errorf("create deployment: required_contexts %v, want []", create["required_contexts"])
		}
		if diff := cmp.Diff([]string{stateInProgress, stateSuccess}, gh.states(id[0])); diff != "" {
			t.Errorf("statuses (-want +got):\n%s", diff)
		}
	})
	t.Run("abandoned run does not block", func(t *testing.T) {
		t.Parallel()
		clock := newFakeClock(now)
		gh := newFakeGitHub(t, clock)
		// A run that died an hour ago with its deployment in progress;
		// its deadline (20m after it started) has long passed.
		dead := gh.seed(testSHA, "canary-10", now.Add(-time.Hour), stateInProgress)
		s := newStep(t, p.inputs(p.truth.StageEnd))
		gh.use(s)
		s.opts = append(s.opts, WithClock(clock))
		r := s.run(context.Background())
		if r.code != ExitPass {
			t.Fatalf("exit %d: %s", r.code, r.outputs["reason"])
		}
		if got := gh.states(dead); len(got) != 1 {
			t.Errorf("the abandoned deployment was changed: %v", got)
		}
	})
}

// testConcurrent runs two steps for the same commit and stage whose
// deployments overlap: exactly one may judge the stage.
func testConcurrent(t *testing.T, p *scenarioServer) {
	t.Parallel()
	clock := newFakeClock(p.now())
	gh := newFakeGitHub(t, clock)
	gh.barrier = 2
	results := make([]*result, 2)
	var wg sync.WaitGroup
	for i := range results {
		in := p.inputs(p.truth.StageEnd)
		s := newStep(t, in)
		s.env["GITHUB_RUN_ID"] = strconv.Itoa(5000 + i)
		gh.use(s)
		s.opts = append(s.opts, WithClock(clock))
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = s.run(context.Background())
		}()
	}
	wg.Wait()
	var passed, yielded int
	for _, r := range results {
		switch {
		case r.code == ExitPass && r.outputs["verdict"] == "pass":
			passed++
		case r.code == ExitFail && strings.HasPrefix(r.outputs["reason"], "concurrent: deployment "):
			yielded++
			if r.outputs["rollback"] != "false" || r.outputs["looks"] != "0" {
				t.Errorf("the yielding run judged or rolled back: %v", r.outputs)
			}
		default:
			t.Errorf("exit %d, outputs %v", r.code, r.outputs)
		}
	}
	if passed != 1 || yielded != 1 {
		t.Fatalf("%d runs passed and %d yielded, want 1 and 1", passed, yielded)
	}
	ids := gh.deploymentsTo("canary-10")
	if len(ids) != 2 {
		t.Fatalf("deployments %v", ids)
	}
	// The older deployment judges; the younger yields.
	if diff := cmp.Diff([]string{stateInProgress, stateSuccess}, gh.states(ids[0])); diff != "" {
		t.Errorf("older deployment (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{stateInProgress, stateInactive}, gh.states(ids[1])); diff != "" {
		t.Errorf("younger deployment (-want +got):\n%s", diff)
	}
}

// testAuth puts a TLS proxy that demands a bearer token, a tenant header
// and an API key header in front of Prometheus.
func testAuth(t *testing.T, p *scenarioServer) {
	t.Parallel()
	const token, tenant, apiKey = "prom-s3cret-token-81f2", "tenant-8c1d", "api-key-5e7a"
	target, err := url.Parse(p.url)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(target)
	var mu sync.Mutex
	var denied int
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+token || r.Header.Get("X-Scope-OrgID") != tenant || r.Header.Get("X-Api-Key") != apiKey {
			mu.Lock()
			denied++
			mu.Unlock()
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	ca := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}))

	run := func(t *testing.T, set map[string]string) *result {
		in := p.inputs(p.truth.StageEnd)
		in["prometheus-url"] = srv.URL + "/"
		in["prometheus-ca"] = ca
		in["github-token"], in["stage-ordering"] = "", "false"
		for k, v := range set {
			in[k] = v
		}
		return newStep(t, in).run(context.Background())
	}
	t.Run("credentials", func(t *testing.T) {
		r := run(t, map[string]string{"prometheus-bearer-token": token, "prometheus-headers": "X-Scope-OrgID: " + tenant + "\nX-Api-Key: " + apiKey + "\n"})
		if r.code != ExitPass || r.outputs["verdict"] != "pass" {
			t.Fatalf("exit %d, %v", r.code, r.outputs)
		}
		// The tenant is an identifier, not masked (TestTenantHeaders).
		if !contains(r.masks, token) || !contains(r.masks, apiKey) || contains(r.masks, tenant) {
			t.Errorf("masks %q, want the token and the API key, not the tenant", r.masks)
		}
		for _, line := range strings.Split(r.stdout, "\n") {
			if (strings.Contains(line, token) || strings.Contains(line, apiKey)) && !strings.HasPrefix(line, "::add-mask::") {
				t.Errorf("a credential was printed: %q", line)
			}
		}
		if strings.Contains(r.summary, token) || strings.Contains(r.summary, apiKey) {
			t.Error("a credential reached the summary")
		}
	})
	t.Run("wrong token never passes", func(t *testing.T) {
		r := run(t, map[string]string{"prometheus-bearer-token": "wrong-token-123", "prometheus-headers": "X-Scope-OrgID: " + tenant + "\nX-Api-Key: " + apiKey})
		if r.code == ExitPass || r.outputs["verdict"] != "hold" || !strings.Contains(r.outputs["reason"], "query error") {
			t.Errorf("exit %d, %v", r.code, r.outputs)
		}
	})
	t.Run("unknown CA", func(t *testing.T) {
		r := run(t, map[string]string{"prometheus-bearer-token": token, "prometheus-headers": "X-Scope-OrgID: " + tenant + "\nX-Api-Key: " + apiKey, "prometheus-ca": ""})
		if r.code == ExitPass || r.outputs["verdict"] != "hold" {
			t.Errorf("exit %d, %v", r.code, r.outputs)
		}
	})
}

// testRolloutAbort fails a stage whose Rollout lives in a real API server
// and checks that it is aborted through the status subresource.
func testRolloutAbort(t *testing.T, p *scenarioServer) {
	t.Parallel()
	cfg := kubetest.Start(t, kubetest.Rollouts)
	const ns = "shop"
	for _, name := range []string{"checkout", "checkout-env", "checkout-main-resource"} {
		kubetest.Create(t, cfg, rolloutYAML(ns, name))
	}
	dyn := kubetest.Dynamic(t, cfg)
	abortedOf := func(name string) (bool, bool) {
		obj, err := dyn.Resource(kubetest.Rollouts).Namespace(ns).Get(context.Background(), name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		abort, found, err := unstructured.NestedBool(obj.Object, "status", "abort")
		if err != nil {
			t.Fatal(err)
		}
		return abort, found
	}

	// Why the status subresource: the same patch on the main resource is
	// accepted and silently dropped.
	if _, err := dyn.Resource(kubetest.Rollouts).Namespace(ns).Patch(context.Background(), "checkout-main-resource", types.MergePatchType, []byte(abortPatch), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	if abort, _ := abortedOf("checkout-main-resource"); abort {
		t.Fatal("the API server stored status.abort from a patch of the main resource: the test server does not enforce the status subresource")
	}

	kubeconfig := kubeconfigFor(t, cfg)
	run := func(t *testing.T, rollout string, viaEnv bool) *result {
		in := p.inputs(p.truth.StageEnd)
		in["rollout"], in["namespace"] = rollout, ns
		in["github-token"], in["stage-ordering"] = "", "false"
		if !viaEnv {
			in["kubeconfig"] = string(kubeconfig)
		}
		s := newStep(t, in)
		if viaEnv {
			// A relative KUBECONFIG is a file in the workspace.
			if err := os.MkdirAll(filepath.Join(s.dir, "kube"), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(s.dir, "kube", "config"), kubeconfig, 0o600); err != nil {
				t.Fatal(err)
			}
			s.env["KUBECONFIG"] = filepath.Join("kube", "config")
		}
		return s.run(context.Background())
	}
	t.Run("abort", func(t *testing.T) {
		if abort, _ := abortedOf("checkout"); abort {
			t.Fatal("aborted before the run")
		}
		r := run(t, "checkout", false)
		if r.code != ExitFail || r.outputs["verdict"] != "fail" || r.outputs["rollback"] != "true" || r.outputs["rollout-aborted"] != "true" {
			t.Fatalf("exit %d, outputs %v\n%s", r.code, r.outputs, r.stdout)
		}
		if abort, found := abortedOf("checkout"); !abort || !found {
			t.Errorf("status.abort = %v (found %v) after the run, want true", abort, found)
		}
		if !strings.Contains(r.summary, "was aborted") {
			t.Error("the summary does not report the abort")
		}
	})
	t.Run("abort with KUBECONFIG", func(t *testing.T) {
		r := run(t, "checkout-env", true)
		if r.code != ExitFail || r.outputs["rollout-aborted"] != "true" {
			t.Fatalf("exit %d, outputs %v\n%s", r.code, r.outputs, r.stdout)
		}
		if abort, _ := abortedOf("checkout-env"); !abort {
			t.Error("status.abort is not true after the run")
		}
	})
	t.Run("missing rollout", func(t *testing.T) {
		r := run(t, "no-such-rollout", false)
		if r.code != ExitError || r.outputs["rollback"] != "true" || r.outputs["rollout-aborted"] != "false" {
			t.Errorf("exit %d, outputs %v", r.code, r.outputs)
		}
		if !r.annotated("error", "rollback of no-such-rollout failed") {
			t.Errorf("no error annotation: %+v", r.annotations)
		}
	})
}

func rolloutYAML(ns, name string) string {
	return `apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata:
  name: ` + name + `
  namespace: ` + ns + `
spec:
  replicas: 2
  selector:
    matchLabels: {app: ` + name + `}
  template:
    metadata:
      labels: {app: ` + name + `}
    spec:
      containers:
        - {name: app, image: "ghcr.io/acme/checkout:2"}
  strategy:
    canary:
      steps:
        - setWeight: 10
        - pause: {}
        - setWeight: 50
        - pause: {}
`
}

// kubeconfigFor writes a kubeconfig for cfg, as a user would put in a
// secret.
func kubeconfigFor(t *testing.T, cfg *rest.Config) []byte {
	t.Helper()
	cfg = rest.CopyConfig(cfg)
	if err := rest.LoadTLSFiles(cfg); err != nil {
		t.Fatal(err)
	}
	c := clientcmdapi.NewConfig()
	c.Clusters["test"] = &clientcmdapi.Cluster{
		Server: cfg.Host, CertificateAuthorityData: cfg.CAData, InsecureSkipTLSVerify: cfg.Insecure, TLSServerName: cfg.ServerName,
	}
	c.AuthInfos["test"] = &clientcmdapi.AuthInfo{
		Token: cfg.BearerToken, ClientCertificateData: cfg.CertData, ClientKeyData: cfg.KeyData, Username: cfg.Username, Password: cfg.Password,
	}
	c.Contexts["test"] = &clientcmdapi.Context{Cluster: "test", AuthInfo: "test"}
	c.CurrentContext = "test"
	data, err := clientcmd.Write(*c)
	if err != nil {
		t.Fatal(err)
	}
	return data
}
