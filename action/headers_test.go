package action

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-github/v60/github"

	"github.com/phaseguard/phaseguard/internal/redact"
	"github.com/phaseguard/phaseguard/promapi/promapitest"
)

// TestTenantHeaders: the value of a tenant header (X-Scope-OrgID,
// THANOS-TENANT, in any spelling) is an identifier, not a credential: it
// is neither masked nor redacted, so a tenant named like the service and
// the environment prefix ("checkout") leaves the ledger's environment,
// the outputs and the next stage's lookup intact. Every other header value
// is still masked and never leaves, even quoted back by the server.
func TestTenantHeaders(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"X-Scope-OrgID", "THANOS-TENANT", "x-scope-orgid"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			const tenant = "checkout"
			sec := newLeakSecrets(t, "api-key", "github-token")
			echo := promapitest.ServeEcho(t, promapitest.EchoError)
			clock := newFakeClock(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
			gh := newFakeGitHub(t, clock)
			gh.token = sec["github-token"]
			in := validInputs(echo.URL)
			in["github-token"] = sec["github-token"]
			in["prometheus-headers"] = name + ": " + tenant + "\nX-Api-Key: " + sec["api-key"]
			in["environment-prefix"] = tenant + "-"
			stage := func(name string) *leakRun {
				in["stage"] = name
				s := newStep(t, in)
				gh.use(s)
				s.opts = append(s.opts, WithClock(clock))
				return runLeaking(t, s, gh, masksOf(sec))
			}

			lr := stage("canary-10")
			sent := echo.Headers()
			if len(sent) == 0 || sent[0].Get(name) != tenant || sent[0].Get("X-Api-Key") != sec["api-key"] {
				t.Fatalf("Prometheus did not get the headers: %v", sent)
			}
			const env = tenant + "-canary-10"
			if got := lr.r.outputs["environment"]; got != env {
				t.Errorf("output environment = %q, want %q", got, env)
			}
			ids := gh.deploymentsTo(env)
			if len(ids) != 1 {
				t.Fatalf("deployments to %s: %v; every write: %v", env, ids, gh.writes())
			}
			for _, c := range gh.writes() {
				if e, ok := c.Body["environment"]; ok && e != env {
					t.Errorf("%s: environment %q, want %q", c, e, env)
				}
			}
			if contains(lr.r.masks, tenant) {
				t.Errorf("the tenant was masked: %q", lr.r.masks)
			}
			if !contains(lr.r.masks, sec["api-key"]) {
				t.Errorf("the API key was not masked: %q", lr.r.masks)
			}
			for where, text := range lr.texts {
				if strings.Contains(text, redact.Mark+"-canary") || strings.Contains(text, `service="`+redact.Mark) {
					t.Errorf("%s has a redacted identifier:\n%s", where, text)
				}
			}
			if !strings.Contains(lr.texts["the log"], http.CanonicalHeaderKey(name)+": "+tenant) {
				t.Errorf("the log does not quote the tenant the server echoed:\n%s", lr.texts["the log"])
			}
			checkNoLeak(t, sec.forms(""), lr.texts)

			// The next stage finds canary-10 by its environment once it
			// passed and soaked.
			gh.addStatus(ids[0], stateSuccess)
			if err := clock.Sleep(context.Background(), time.Hour); err != nil {
				t.Fatal(err)
			}
			lr = stage("canary-50")
			if reason := lr.r.outputs["reason"]; strings.HasPrefix(reason, "out-of-order") {
				t.Errorf("canary-50 refused: %s", reason)
			}
			if got := gh.deploymentsTo(tenant + "-canary-50"); len(got) != 1 {
				t.Errorf("deployments to %s-canary-50: %v", tenant, got)
			}
			checkNoLeak(t, sec.forms(""), lr.texts)
		})
	}
}

// TestLedgerKeepsStructure: whatever the secrets, what the ledger sends
// keeps its structure: the environment, the ref, the payload's keys and
// values are sent as given (a secret "checkout" or "deadline" changes
// none), and only the free text, the descriptions, is redacted. Reading
// the deployment back finds it by its environment with its deadline.
func TestLedgerKeepsStructure(t *testing.T) {
	t.Parallel()
	sec := newLeakSecrets(t, "prometheus")
	set := redact.New()
	addSecret(set, "checkout", "deadline", "canary-10", testSHA[:12], "7f8c9d6b4", sec["prometheus"])
	gh := newFakeGitHub(t, newFakeClock(time.Now()))
	l := newLedger(gh.srv.Client(), testToken, mustURL(t, gh.apiURL()+"/"), set, "acme", "shop", testSHA, time.Now)
	deadline := time.Date(2026, 3, 1, 12, 30, 0, 0, time.UTC)
	p := payload{Tool: "phaseguard", Stage: "canary-10", Policy: "phase-default", Service: "checkout", CanaryHash: "7f8c9d6b4", Deadline: deadline}
	ctx := context.Background()
	d, err := l.create(ctx, "checkout-canary-10", "judging: "+sec["prometheus"], p, false, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := l.setStatus(ctx, d.GetID(), stateFailure, "fail: the server said "+sec["prometheus"], ""); err != nil {
		t.Fatal(err)
	}
	writes := gh.writes()
	if len(writes) != 3 {
		t.Fatalf("writes: %v", writes)
	}
	create := writes[0].Body
	want := map[string]any{"tool": "phaseguard", "stage": "canary-10", "policy": "phase-default", "service": "checkout", "canary_hash": "7f8c9d6b4", "deadline": "2026-03-01T12:30:00Z"}
	if diff := cmp.Diff(want, create["payload"]); diff != "" {
		t.Errorf("payload (-want +got):\n%s", diff)
	}
	if create["environment"] != "checkout-canary-10" || create["ref"] != testSHA || create["task"] != deploymentTask {
		t.Errorf("deployment environment %v, ref %v, task %v", create["environment"], create["ref"], create["task"])
	}
	texts := map[string]string{}
	for i, c := range writes {
		texts[fmt.Sprintf("request %d (%s)", i+1, c)] = c.Raw
		if desc, _ := c.Body["description"].(string); !strings.Contains(desc, redact.Mark) {
			t.Errorf("%s: description %q without the mark", c, desc)
		}
	}
	checkNoLeak(t, sec.forms(""), texts)
	recs, err := l.deployments(ctx, "checkout-canary-10")
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 1 || !recs[0].deadline.Equal(deadline) {
		t.Errorf("read back %d deployment(s) to checkout-canary-10; want 1 with deadline %s", len(recs), deadline)
	}
}

// TestOutputsKeepIdentifiers: outputs that name things (the stage, the
// environment, the report's path) are written as given, as a later job
// looks them up; only the free text, reason, is redacted.
func TestOutputsKeepIdentifiers(t *testing.T) {
	t.Parallel()
	set := redact.New()
	addSecret(set, "checkout", "secret-reason")
	path := filepath.Join(t.TempDir(), "out")
	outs := []output{
		{name: "reason", value: "checkout said secret-reason"},
		{name: "stage", value: "checkout", id: true},
		{name: "environment", value: "checkout-canary-10", id: true},
		{name: "report", value: ".phaseguard/checkout.json", id: true},
	}
	if err := writeOutputs(set, path, outs); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	got, err := parseOutputFile(data)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"reason":      redact.Mark + " said " + redact.Mark,
		"stage":       "checkout",
		"environment": "checkout-canary-10",
		"report":      ".phaseguard/checkout.json",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("outputs (-want +got):\n%s", diff)
	}
}

// addStatus appends a status to deployment id, as another run would.
func (f *fakeGitHub) addStatus(id int64, state string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.nextID++
	f.statuses[id] = append(f.statuses[id], &github.DeploymentStatus{ID: github.Int64(f.nextID), State: github.String(state), CreatedAt: &github.Timestamp{Time: f.clock.Now()}})
}

// TestHeaderLineUnread: a prometheus-headers line that cannot be read (no
// colon, a bad name, a header the client sets) fails the step with an
// error naming the input and the line's number; the line, which likely
// holds a credential, is masked and quoted nowhere, and Prometheus is
// never asked.
func TestHeaderLineUnread(t *testing.T) {
	t.Parallel()
	const secret = "k3y-9f8e7d6c5b4a"
	tests := []struct{ name, headers, masked string }{
		{"equals sign", "X-Api-Key=" + secret, secret},
		{"equals sign after a good line", "X-Scope-OrgID: shop\nX-Api-Key = " + secret, secret},
		{"no separator", "X-Api-Key " + secret, "X-Api-Key " + secret},
		{"bad name", "X Api Key: " + secret, secret},
		{"set by the client", "Authorization: Bearer " + secret, "Bearer " + secret},
		{"control character", "X-Api-Key: " + secret + "\x01", "X-Api-Key: " + secret + "\x01"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			in := validInputs(noCalls(t, "Prometheus"))
			in["prometheus-headers"] = tt.headers
			s := newStep(t, in)
			gh := newFakeGitHub(t, newFakeClock(time.Now()))
			gh.use(s)
			r := s.run(context.Background())
			t.Logf("reason %q", r.outputs["reason"])
			if r.code != ExitError {
				t.Errorf("exit %d, want %d", r.code, ExitError)
			}
			if !r.annotated("error", "input prometheus-headers: line ") {
				t.Errorf("no error naming prometheus-headers and the line: %+v", r.annotations)
			}
			if !contains(r.masks, tt.masked) {
				t.Errorf("%q not masked (masks %q)", tt.masked, r.masks)
			}
			for where, text := range map[string]string{"the log": stripMaskLines(r.stdout), "the summary": r.summary, "the outputs": strings.Join(sortedValues(r.outputs), "\n")} {
				if strings.Contains(text, secret) {
					t.Errorf("%s quotes the line:\n%s", where, text)
				}
			}
			if calls := gh.recorded(); len(calls) > 0 {
				t.Errorf("GitHub API called: %v", calls)
			}
		})
	}
}
