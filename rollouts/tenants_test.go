package rollouts_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/argoproj/argo-rollouts/pkg/apis/rollouts/v1alpha1"

	"github.com/phaseguard/phaseguard/internal/redact"
	"github.com/phaseguard/phaseguard/promapi/promapitest"
	"github.com/phaseguard/phaseguard/rollouts"
)

// tinyPolicy has one SLI with short PromQL, so that a server's error
// reaches the measurement's metadata whole.
const tinyPolicy = `apiVersion: phaseguard.dev/v1alpha1
kind: Policy
metadata: {name: tiny}
spec:
  interval: 30s
  minSamples: 100
  windows:
    - {long: 5m, short: 1m, factor: 10}
  stages:
    - {name: canary-10, soak: 10m}
  slis:
    - name: errors
      objective: 99.9
      ratio:
        bad: sum(increase(e{service="$service",pod_template_hash="$hash"}[$window]))
        total: sum(increase(t{service="$service",pod_template_hash="$hash"}[$window]))
`

// mainLike returns a plugin set up as Main sets it up (its log written
// through the set it is given) and the log.
func mainLike(t *testing.T, now func() time.Time, opts ...rollouts.Option) (*rollouts.Plugin, *redact.Writer, *lockedBuffer) {
	t.Helper()
	set := redact.New()
	log := &lockedBuffer{}
	out := set.Writer(log)
	logger := rollouts.NewLogger(out, func(k string) string {
		return map[string]string{rollouts.EnvLogLevel: "debug", rollouts.EnvLogFormat: "json"}[k]
	})
	p := rollouts.New(append([]rollouts.Option{rollouts.WithLogger(logger), rollouts.WithRedact(set), rollouts.WithClock(now)}, opts...)...)
	p.InitPlugin()
	return p, out, log
}

// measurementTexts returns every text of a measurement: message, value,
// metadata keys and values.
func measurementTexts(m v1alpha1.Measurement) []string {
	out := []string{m.Message, m.Value}
	for k, v := range m.Metadata {
		out = append(out, k, v)
	}
	return out
}

// TestTenantsRedactedApart: one team's secrets redact only that team's
// measurements. Team a's template takes three credentials from its
// Secret whose values are texts team b's measurements are made of: a
// metadata key Resume reads ("stage.startedAt"), the stage's name, and
// the AnalysisRun's name. Team b's stage-mode measurement still resumes
// (a redacted key lost its state before), shows its stage, and its log
// lines are whole; team a's own measurement redacts its secrets where the
// server echoed them and still resumes, its keys and stage state intact.
func TestTenantsRedactedApart(t *testing.T) {
	t.Parallel()
	echo := promapitest.ServeEcho(t, promapitest.EchoWarning)
	now := time.Date(2026, 3, 2, 12, 0, 0, 0, time.UTC)
	clk := newClock(now)
	p, out, log := mainLike(t, clk.now)
	const runName = "checkout-7f8c9d6b4-3-1" // storedRun's
	aSecrets := map[string]string{"token": "stage.startedAt", "key": "canary-10", "name": runName}
	config := func(prometheus string) string {
		return `{"policy": "phase-default", "service": "checkout", "namespace": "shop", "canaryHash": "7f8c9d6b4", "stage": "canary-10", "mode": "stage", "stageOrdering": false, "timeout": "5s",
			"prometheus": {"retries": -1, "address": "` + echo.URL + `"` + prometheus + `}}`
	}
	arA, metricA := storedRun(t, "team-a", config(`, "authorization": {"credentials": "{{args.token}}"}, "headers": {"X-Api-Key": {"value": "{{args.key}}"}, "X-Auth-Token": {"value": "{{args.name}}"}}`),
		secretArg("token", aSecrets["token"]), secretArg("key", aSecrets["key"]), secretArg("name", aSecrets["name"]))
	arB, metricB := storedRun(t, "team-b", config(""))

	stage := func(team string, ar *v1alpha1.AnalysisRun, metric v1alpha1.Metric) v1alpha1.Measurement {
		t.Helper()
		clk.set(now)
		m := p.Run(ar, metric)
		if m.Phase != v1alpha1.AnalysisPhaseRunning {
			t.Fatalf("%s Run: %s %q", team, m.Phase, m.Message)
		}
		raw, _ := json.Marshal(m) // as the AnalysisRun stores it
		m = v1alpha1.Measurement{}
		if err := json.Unmarshal(raw, &m); err != nil {
			t.Fatal(err)
		}
		clk.set(now.Add(30 * time.Second))
		m = p.Resume(ar, metric, m)
		if m.Phase != v1alpha1.AnalysisPhaseRunning || m.Metadata["stage.looks"] != "2" || m.Metadata["stage.startedAt"] != now.Format(time.RFC3339Nano) {
			t.Errorf("%s Resume: %s %q, stage state %v", team, m.Phase, m.Message, m.Metadata)
		}
		return m
	}
	a := stage("team a", arA, metricA)
	b := stage("team b", arB, metricB)

	// Team a's measurement: its secrets, echoed by the server, marked.
	if !strings.Contains(strings.Join(measurementTexts(a), "\n"), redact.Mark) {
		t.Errorf("team a's measurement marks nothing: was anything echoed? %q", a.Message)
	}
	for _, v := range a.Metadata {
		if strings.Contains(v, "Bearer "+aSecrets["token"]) || strings.Contains(v, runName) {
			t.Errorf("team a's measurement shows its secret: %q", v)
		}
	}
	// Team b's: nothing marked, its stage and text whole.
	for _, s := range measurementTexts(b) {
		if strings.Contains(s, redact.Mark) {
			t.Errorf("team b's measurement is redacted with team a's secrets: %q", s)
		}
	}
	if !strings.HasPrefix(b.Message, "stage canary-10 look 2") || b.Metadata["stage"] != "canary-10" {
		t.Errorf("team b's message %q, stage %q", b.Message, b.Metadata["stage"])
	}
	for k, v := range p.GetMetadata(metricB) {
		if strings.Contains(v, redact.Mark) {
			t.Errorf("team b's GetMetadata %s = %q", k, v)
		}
	}

	// The log: team a's lines without its secrets, team b's whole.
	if err := out.Flush(); err != nil {
		t.Fatal(err)
	}
	var aLines, bLines int
	for line := range strings.Lines(log.String()) {
		switch {
		case strings.Contains(line, `"team-a/`):
			aLines++
			if strings.Contains(line, "Bearer "+aSecrets["token"]) || strings.Contains(line, runName) {
				t.Errorf("team a's log line shows its secret: %s", line)
			}
		case strings.Contains(line, `"team-b/`):
			bLines++
			if strings.Contains(line, redact.Mark) || !strings.Contains(line, `"team-b/`+runName+`"`) {
				t.Errorf("team b's log line is redacted with team a's secrets: %s", line)
			}
		}
	}
	if aLines == 0 || bLines == 0 {
		t.Errorf("log lines: team a %d, team b %d; want some of each:\n%s", aLines, bLines, log.String())
	}
}

// TestNoRedactionOracle: a template pointing at its own server cannot
// test guesses of credentials the plugin holds for others. The server
// answers every query with an error quoting candidates: the password of
// an operator's connection, another template's secret, a wrong guess,
// and the template's own secret. Only the last is marked: a mark on any
// other would tell the template's author that the guess is a credential.
func TestNoRedactionOracle(t *testing.T) {
	t.Parallel()
	opsPassword := randomSecret(t, "ops-password")
	otherSecret := randomSecret(t, "other-template")
	ownSecret := randomSecret(t, "own")
	const wrongGuess = "wrong-guess-5e1d"
	candidates := []string{opsPassword, otherSecret, wrongGuess, ownSecret}
	guesser := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q, _ := json.Marshal("candidates " + strings.Join(candidates, " "))
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprintf(w, `{"status":"error","errorType":"bad_data","error":%s}`, q)
	}))
	t.Cleanup(guesser.Close)
	ops := promapitest.ServeEcho(t, promapitest.EchoError)
	other := promapitest.ServeEcho(t, promapitest.EchoError)
	dir := t.TempDir()
	conns := writeFile(t, dir, "connections.yaml", fmt.Sprintf("connections:\n  - {name: ops, url: %s, basic_auth: {username: alice, password: %s}}\n", ops.URL, opsPassword))
	p, _, _ := mainLike(t, func() time.Time { return time.Now().Add(-time.Hour) }, rollouts.WithConnectionsFile(conns))

	policy, _ := json.Marshal(tinyPolicy)
	config := func(prometheus string) string {
		return `{"policy": ` + string(policy) + `, "service": "checkout", "namespace": "shop", "canaryHash": "7f8c9d6b4", "stageOrdering": false, "timeout": "5s",
			"prometheus": {"retries": -1, ` + prometheus + `}}`
	}
	// The operator's connection and another team's template, used first.
	for _, run := range []struct {
		ns, prometheus string
		args           []v1alpha1.Argument
	}{
		{"team-ops", `"connection": "ops"`, nil},
		{"team-x", `"address": "` + other.URL + `", "authorization": {"credentials": "{{args.token}}"}`, []v1alpha1.Argument{secretArg("token", otherSecret)}},
	} {
		ar, metric := storedRun(t, run.ns, config(run.prometheus), run.args...)
		if m := p.Run(ar, metric); m.Phase == v1alpha1.AnalysisPhaseError || !strings.Contains(strings.Join(measurementTexts(m), " "), redact.Mark) {
			t.Fatalf("%s: %s %q: want a hold whose echoed credential is marked", run.ns, m.Phase, m.Message)
		}
	}
	if !carries(ops.Headers(), opsPassword) || !carries(other.Headers(), otherSecret) {
		t.Fatal("the connection's and the other template's servers did not get their credentials")
	}

	ar, metric := storedRun(t, "team-evil", config(`"address": "`+guesser.URL+`", "authorization": {"credentials": "{{args.token}}"}`), secretArg("token", ownSecret))
	m := p.Run(ar, metric)
	text := strings.Join(measurementTexts(m), "\n")
	for _, c := range []string{opsPassword, otherSecret, wrongGuess} {
		if !strings.Contains(text, "candidates "+opsPassword+" "+otherSecret+" "+wrongGuess+" "+redact.Mark) {
			t.Errorf("candidate %s is not shown as the server sent it (a mark tells the template it is a credential):\n%s", c, text)
		}
	}
	if strings.Contains(text, ownSecret) {
		t.Errorf("the template's own secret is shown:\n%s", text)
	}
	if md := p.GetMetadata(metric); strings.Contains(fmt.Sprint(md), redact.Mark) {
		t.Errorf("GetMetadata marks something: %v", md)
	}
}
