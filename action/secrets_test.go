package action

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/phaseguard/phaseguard/internal/redact"
	"github.com/phaseguard/phaseguard/promapi/promapitest"
)

// secretTail is the end of every test secret: characters that quoting,
// JSON, Markdown, workflow-command and URL escaping each change, so that a
// secret redacted only in its raw form still shows.
const secretTail = `_*"<&>%:,\`

// leakSecrets is one random secret per credential input.
type leakSecrets map[string]string

// newLeakSecrets draws a secret for each name: the name, 32 random hex
// digits and secretTail.
func newLeakSecrets(t *testing.T, names ...string) leakSecrets {
	t.Helper()
	s := leakSecrets{}
	for _, n := range names {
		b := make([]byte, 16)
		if _, err := rand.Read(b); err != nil {
			t.Fatal(err)
		}
		s[n] = n + "-" + hex.EncodeToString(b) + secretTail
	}
	return s
}

// forms returns what would show a secret, or part of it, whatever its
// escaping: the head and tail of its random part (a secret cut short by a
// truncation shows one of them), its Base64 forms, and the Base64 of
// user:password for the password.
func (s leakSecrets) forms(basicUser string) map[string]string {
	out := map[string]string{}
	for n, v := range s {
		r := strings.TrimSuffix(strings.TrimPrefix(v, n+"-"), secretTail)
		out[n+" (head)"] = r[:8]
		out[n+" (tail)"] = r[len(r)-8:]
		out[n+" (base64)"] = base64.StdEncoding.EncodeToString([]byte(v))
		out[n+" (base64url)"] = base64.RawURLEncoding.EncodeToString([]byte(v))
		out[n+" (basic auth)"] = base64.StdEncoding.EncodeToString([]byte(basicUser + ":" + v))
	}
	return out
}

// checkNoLeak fails t for every form found in any of texts (where → text).
func checkNoLeak(t *testing.T, forms, texts map[string]string) {
	t.Helper()
	for _, where := range sortedKeys(texts) {
		text := texts[where]
		for _, what := range sortedKeys(forms) {
			if i := strings.Index(text, forms[what]); i >= 0 {
				t.Errorf("%s shows %s: …%s…", where, what, text[max(i-100, 0):min(i+60, len(text))])
			}
		}
	}
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// kubeEcho is a Kubernetes API server on loopback that refuses every
// request with a 403 Status quoting its headers, as an authorizing proxy
// might. It serves TLS: client-go sends a kubeconfig's credentials over
// nothing else.
type kubeEcho struct {
	url   string
	ca    []byte // PEM
	mu    sync.Mutex
	calls int
}

func serveKubeEcho(t *testing.T) *kubeEcho {
	k := &kubeEcho{}
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		k.mu.Lock()
		k.calls++
		k.mu.Unlock()
		var lines []string
		for name, vs := range r.Header {
			for _, v := range vs {
				lines = append(lines, name+": "+v)
			}
		}
		sort.Strings(lines)
		msg, _ := json.Marshal("forbidden: request with headers " + strings.Join(lines, "\n"))
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusForbidden)
		fmt.Fprintf(w, `{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":%s,"reason":"Forbidden","code":403}`, msg)
	}))
	t.Cleanup(srv.Close)
	k.url = srv.URL
	k.ca = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	return k
}

func (k *kubeEcho) called() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.calls
}

// kubeconfig is a kubeconfig for k authenticating with token.
func (k *kubeEcho) kubeconfig(t *testing.T, token string) []byte {
	t.Helper()
	c := clientcmdapi.NewConfig()
	c.Clusters["echo"] = &clientcmdapi.Cluster{Server: k.url, CertificateAuthorityData: k.ca}
	c.AuthInfos["echo"] = &clientcmdapi.AuthInfo{Token: token}
	c.Contexts["echo"] = &clientcmdapi.Context{Cluster: "echo", AuthInfo: "echo"}
	c.CurrentContext = "echo"
	data, err := clientcmd.Write(*c)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// leakRun is what one run left behind, for checkNoLeak.
type leakRun struct {
	r       *result
	outputs string // the $GITHUB_OUTPUT file
	report  string
	texts   map[string]string
}

// runLeaking runs s with gh as its GitHub API and collects every text the
// run emitted, stored or sent to GitHub. masks are the values the log may
// show in ::add-mask:: commands (those the runner hides).
func runLeaking(t *testing.T, s *step, gh *fakeGitHub, masks []string) *leakRun {
	t.Helper()
	r := s.run(context.Background())
	lr := &leakRun{r: r, texts: map[string]string{}}
	data, err := os.ReadFile(s.env["GITHUB_OUTPUT"])
	if err != nil {
		t.Fatal(err)
	}
	lr.outputs = string(data)
	if p := r.outputs["report"]; p != "" {
		data, err := os.ReadFile(filepath.Join(s.dir, p))
		if err != nil {
			t.Fatalf("report: %v", err)
		}
		lr.report = string(data)
	}
	// The log but the masks the runner hides.
	var log strings.Builder
	sc := bufio.NewScanner(strings.NewReader(r.stdout))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		// The runner undoes the command's escaping of the mask.
		if m, ok := strings.CutPrefix(sc.Text(), "::add-mask::"); ok && contains(masks, unescapeData(m)) {
			continue
		}
		log.WriteString(sc.Text() + "\n")
	}
	lr.texts["the log"] = log.String()
	lr.texts["$GITHUB_OUTPUT"] = lr.outputs
	lr.texts["$GITHUB_STEP_SUMMARY"] = r.summary
	lr.texts["the report"] = lr.report
	for i, c := range gh.allCalls() {
		where := fmt.Sprintf("GitHub API request %d (%s)", i+1, c)
		h := c.Header.Clone()
		if got, want := h.Get("Authorization"), "Bearer "+gh.token; got != want {
			t.Errorf("%s: Authorization %q, want the github-token", where, got)
		}
		h.Del("Authorization")
		var hs strings.Builder
		if err := h.Write(&hs); err != nil {
			t.Fatal(err)
		}
		lr.texts[where] = c.Method + " " + c.Path + "?" + c.Query + "\n" + hs.String() + "\n" + c.Raw
	}
	return lr
}

// unescapeData undoes escapeData, as the runner reads a command.
func unescapeData(v string) string {
	return strings.NewReplacer("%0D", "\r", "%0A", "\n", "%25", "%").Replace(v)
}

// masksOf is every line the Action may mask: each secret's lines.
func masksOf(secrets leakSecrets) []string {
	var out []string
	for _, v := range secrets {
		out = append(out, strings.Split(v, "\n")...)
	}
	return out
}

// TestSecretsNeverLeave runs the Action with a random secret in every
// credential input (bearer token or basic-auth password, two header
// values, github-token, the kubeconfig's token) and a tenant header, an
// identifier sent as it is (TestTenantHeaders), against servers that quote
// every request header back: a Prometheus-compatible API (as an error, a
// warning, a label value and a plain-text body; promapitest.Echo) and a
// Kubernetes API refusing the rollback with the headers in its Status.
// No secret, whole, cut short or in Base64, is in the log, the outputs,
// the job summary, the report or any request to the GitHub API, and the
// mark stands where the echo was.
func TestSecretsNeverLeave(t *testing.T) {
	t.Parallel()
	kube := serveKubeEcho(t)
	const user = "phaseguard-reader"
	inputsFor := func(prom, auth string, sec leakSecrets) map[string]string {
		in := validInputs(prom)
		in["github-token"] = sec["github-token"]
		in["prometheus-headers"] = "X-Scope-OrgID: shop\nX-Auth-Token: " + sec["header"] + "\nX-Api-Key: " + sec["api-key"]
		switch auth {
		case "bearer":
			in["prometheus-bearer-token"] = sec["prometheus"]
		case "basic":
			in["prometheus-username"], in["prometheus-password"] = user, sec["prometheus"]
		}
		in["rollout"], in["namespace"] = "checkout", "shop"
		in["kubeconfig"] = string(kube.kubeconfig(t, sec["kube"]))
		return in
	}
	markIn := func(t *testing.T, lr *leakRun, where ...string) {
		t.Helper()
		jsonMark, _ := json.Marshal(redact.Mark)
		has := map[string]bool{
			"reason":  strings.Contains(lr.r.outputs["reason"], redact.Mark),
			"log":     strings.Contains(lr.texts["the log"], redact.Mark),
			"summary": strings.Contains(lr.r.summary, md(redact.Mark)),
			"report":  strings.Contains(lr.report, redact.Mark) || strings.Contains(lr.report, strings.Trim(string(jsonMark), `"`)),
		}
		for _, w := range where {
			if !has[w] {
				t.Errorf("no %s in the %s where the echo was", redact.Mark, w)
			}
		}
	}

	for _, auth := range []string{"bearer", "basic"} {
		for _, way := range []string{promapitest.EchoError, promapitest.EchoWarning, promapitest.EchoLabel, promapitest.EchoBody} {
			t.Run("prometheus "+auth+" "+way, func(t *testing.T) {
				t.Parallel()
				sec := newLeakSecrets(t, "prometheus", "header", "api-key", "github-token", "kube")
				echo := promapitest.ServeEcho(t, way)
				gh := newFakeGitHub(t, newFakeClock(time.Now()))
				gh.token = sec["github-token"]
				s := newStep(t, inputsFor(echo.URL, auth, sec))
				gh.use(s)
				lr := runLeaking(t, s, gh, masksOf(sec))
				t.Logf("exit %d, verdict %s, reason %q", lr.r.code, lr.r.outputs["verdict"], lr.r.outputs["reason"])

				// The credentials were sent, so the echo quoted them.
				if len(echo.Headers()) == 0 {
					t.Fatal("Prometheus was never asked")
				}
				sent := echo.Headers()[0]
				wantAuth := "Bearer " + sec["prometheus"]
				if auth == "basic" {
					wantAuth = "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+sec["prometheus"]))
				}
				if sent.Get("Authorization") != wantAuth || sent.Get("X-Scope-OrgID") != "shop" || sent.Get("X-Auth-Token") != sec["header"] || sent.Get("X-Api-Key") != sec["api-key"] {
					t.Fatalf("Prometheus did not get the configured credentials: %v", sent)
				}
				if v := lr.r.outputs["verdict"]; v == "pass" {
					t.Errorf("verdict %s from a server that answers nothing but its echo", v)
				}
				if len(gh.writes()) == 0 {
					t.Error("nothing written to the GitHub API: its requests were not checked")
				}
				checkNoLeak(t, sec.forms(user), lr.texts)
				// A 502's plain body is never quoted; a label value is
				// no reason's business.
				if way == promapitest.EchoError || way == promapitest.EchoWarning {
					markIn(t, lr, "reason", "log", "summary", "report")
				}
			})
		}
	}

	// The GitHub API's refusal quotes the github-token: the run is
	// refused before a look, and the reason is the report's too.
	t.Run("github", func(t *testing.T) {
		t.Parallel()
		sec := newLeakSecrets(t, "prometheus", "header", "api-key", "github-token", "kube")
		gh := newFakeGitHub(t, newFakeClock(time.Now()))
		gh.token, gh.echo = sec["github-token"], true
		s := newStep(t, inputsFor(noCalls(t, "Prometheus"), "bearer", sec))
		gh.use(s)
		lr := runLeaking(t, s, gh, masksOf(sec))
		t.Logf("exit %d, verdict %s, reason %q", lr.r.code, lr.r.outputs["verdict"], lr.r.outputs["reason"])
		if lr.r.code != ExitError || !strings.Contains(lr.r.outputs["reason"], "403") {
			t.Errorf("exit %d, reason %q: want the ledger's refusal", lr.r.code, lr.r.outputs["reason"])
		}
		checkNoLeak(t, sec.forms(user), lr.texts)
		markIn(t, lr, "reason", "log", "summary", "report")
	})

	// The rollback's error quotes the Kubernetes API's refusal, which
	// quotes the kubeconfig's token: from the input, and from a
	// $KUBECONFIG file the Action learns the credentials of only when it
	// builds the client.
	drain := startScenario(t, "drain-misrouting")
	for _, source := range []string{"input", "KUBECONFIG"} {
		t.Run("kubernetes "+source, func(t *testing.T) {
			t.Parallel()
			sec := newLeakSecrets(t, "prometheus", "header", "api-key", "github-token", "kube")
			clock := newFakeClock(drain.now())
			gh := newFakeGitHub(t, clock)
			gh.token = sec["github-token"]
			in := inputsFor(drain.url, "bearer", sec)
			for k, v := range drain.inputs(drain.truth.StageEnd) {
				if k != "prometheus-url" && k != "github-token" {
					in[k] = v
				}
			}
			var masks []string
			if source == "KUBECONFIG" {
				delete(in, "kubeconfig")
				// Masked when learned, not before: only its own lines.
				masks = []string{sec["kube"]}
			}
			s := newStep(t, in)
			if source == "KUBECONFIG" {
				if err := os.WriteFile(filepath.Join(s.dir, "kubeconfig"), kube.kubeconfig(t, sec["kube"]), 0o600); err != nil {
					t.Fatal(err)
				}
				s.env["KUBECONFIG"] = "kubeconfig"
			}
			gh.use(s)
			s.opts = append(s.opts, WithClock(clock))
			before := kube.called()
			lr := runLeaking(t, s, gh, append(masksOf(sec), masks...))
			t.Logf("exit %d, verdict %s, rollback %s, aborted %s", lr.r.code, lr.r.outputs["verdict"], lr.r.outputs["rollback"], lr.r.outputs["rollout-aborted"])
			if lr.r.outputs["rollback"] != "true" || lr.r.outputs["rollout-aborted"] != "false" || kube.called() == before {
				t.Fatalf("the rollback did not reach the Kubernetes API: outputs %v\n%s", lr.r.outputs, lr.r.stdout)
			}
			if !lr.r.annotated("error", "rollback of checkout failed") {
				t.Errorf("no error annotation for the refused rollback: %+v", lr.r.annotations)
			}
			checkNoLeak(t, sec.forms(user), lr.texts)
			markIn(t, lr, "log", "summary")
		})
	}
}

// TestLedgerRedacts: a description that quotes a secret near its end
// reaches GitHub redacted, not cut inside the secret, in the deployment
// and in its status (TestLedgerKeepsStructure: the rest is sent as given).
func TestLedgerRedacts(t *testing.T) {
	t.Parallel()
	sec := newLeakSecrets(t, "prometheus")
	set := redact.New()
	addSecret(set, sec["prometheus"])
	gh := newFakeGitHub(t, newFakeClock(time.Now()))
	l := newLedger(gh.srv.Client(), testToken, mustURL(t, gh.apiURL()+"/"), set, "acme", "shop", testSHA, time.Now)
	// The cut at 140 bytes (137 and "…") would keep the name and 12 hex
	// digits of the secret's random part.
	desc := strings.Repeat("x", 137-len("prometheus-")-12) + sec["prometheus"]
	d, err := l.create(context.Background(), "canary-10", desc, payload{Tool: "phaseguard", Service: "checkout"}, false, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := l.setStatus(context.Background(), d.GetID(), stateFailure, desc, ""); err != nil {
		t.Fatal(err)
	}
	texts := map[string]string{}
	for i, c := range gh.allCalls() {
		texts[fmt.Sprintf("request %d (%s)", i+1, c)] = c.Raw
	}
	checkNoLeak(t, sec.forms(""), texts)
	var marks int
	for _, c := range gh.writes() {
		marks += strings.Count(c.Raw, redact.Mark)
	}
	if marks != 2 {
		t.Errorf("%d marks in the bodies written, want one per description that quoted the secret:\n%v", marks, gh.writes())
	}
}

// TestRedactStringsCopies: redacting the summary's or the report's data
// leaves the verdict they were taken from as it was.
func TestRedactStringsCopies(t *testing.T) {
	t.Parallel()
	type inner struct{ S string }
	type outer struct {
		A   string
		L   []string
		P   *inner
		M   map[string]inner
		N   int
		arr [1]string
	}
	orig := outer{A: "a s3cret", L: []string{"s3cret"}, P: &inner{"s3cret!"}, M: map[string]inner{"s3cret": {"s3cret"}}, N: 7, arr: [1]string{"s3cret"}}
	c := orig
	redactStrings(redact.New("s3cret"), reflect.ValueOf(&c))
	m := redact.Mark
	if c.A != "a "+m || c.L[0] != m || c.P.S != m+"!" || c.M[m].S != m || c.N != 7 {
		t.Errorf("redacted copy %+v (P %+v)", c, *c.P)
	}
	if c.arr[0] != "s3cret" {
		t.Error("an unexported field was changed")
	}
	if orig.A != "a s3cret" || orig.L[0] != "s3cret" || orig.P.S != "s3cret!" || orig.M["s3cret"].S != "s3cret" {
		t.Errorf("the original changed: %+v (P %+v)", orig, *orig.P)
	}
}

func mustURL(t *testing.T, raw string) *url.URL {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// TestPromURLCredentialsRefused: a prometheus-url with user-info, a query
// or a fragment is refused with an error naming the input, Prometheus is
// never asked, and the part that may hold a credential is shown nowhere.
func TestPromURLCredentialsRefused(t *testing.T) {
	t.Parallel()
	const secret = "c0ffee15deadbeef42"
	tests := []struct{ name, url, want string }{
		{"user-info", "http://admin:" + secret + "@127.0.0.1:9090", "must not hold user-info"},
		{"query", "http://127.0.0.1:9090/prom?access_token=" + secret, "must not have a query"},
		{"fragment", "http://127.0.0.1:9090/prom#" + secret, "must not have a fragment"},
		{"unparsable", "http://127.0.0.1:9090/%zz?access_token=" + secret, "not a URL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			in := validInputs(noCalls(t, "Prometheus"))
			in["prometheus-url"] = tt.url
			in["github-token"], in["stage-ordering"] = "", "false"
			s := newStep(t, in)
			r := s.run(context.Background())
			if r.code != ExitError {
				t.Errorf("exit %d, want %d", r.code, ExitError)
			}
			if !r.annotated("error", "input prometheus-url") || !strings.Contains(r.outputs["reason"], tt.want) {
				t.Errorf("reason %q: want an error naming prometheus-url (%s); annotations %+v", r.outputs["reason"], tt.want, r.annotations)
			}
			log := stripMaskLines(r.stdout)
			for where, text := range map[string]string{"the log": log, "the summary": r.summary, "the reason": r.outputs["reason"]} {
				if strings.Contains(text, secret) {
					t.Errorf("%s shows the URL's credential: %s", where, text)
				}
			}
		})
	}
}

// stripMaskLines drops the ::add-mask:: commands, which the runner hides.
func stripMaskLines(log string) string {
	var b strings.Builder
	for line := range strings.Lines(log) {
		if !strings.HasPrefix(line, "::add-mask::") {
			b.WriteString(line)
		}
	}
	return b.String()
}
