package action

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-github/v60/github"
)

// This file runs the Action as the runner would: INPUT_* and GITHUB_*
// variables, temp files for $GITHUB_OUTPUT and $GITHUB_STEP_SUMMARY, and a
// GitHub API served by httptest the way go-github tests itself.

const (
	testSHA   = "0123456789abcdef0123456789abcdef01234567"
	testToken = "ghs_testtoken_5f2c9a1b7e"
	// baseURLPath prefixes the fake API, as in go-github's tests, so that a
	// client that ignores its BaseURL's path fails.
	baseURLPath = "/api-v3"
)

// step is one run of the Action.
type step struct {
	t      *testing.T
	env    map[string]string
	dir    string // workspace
	opts   []Option
	stdout bytes.Buffer
}

// newStep prepares a step whose inputs are given by action.yml name.
func newStep(t *testing.T, inputs map[string]string) *step {
	t.Helper()
	dir := t.TempDir()
	files := t.TempDir()
	s := &step{t: t, dir: dir, env: map[string]string{
		"CI":                  "true",
		"GITHUB_ACTIONS":      "true",
		"GITHUB_REPOSITORY":   "acme/shop",
		"GITHUB_SHA":          testSHA,
		"GITHUB_RUN_ID":       "4242",
		"GITHUB_RUN_ATTEMPT":  "1",
		"GITHUB_SERVER_URL":   "https://github.com",
		"GITHUB_API_URL":      "https://api.github.invalid",
		"GITHUB_WORKSPACE":    dir,
		"GITHUB_OUTPUT":       filepath.Join(files, "set_output"),
		"GITHUB_STEP_SUMMARY": filepath.Join(files, "step_summary"),
	}}
	for _, f := range []string{"set_output", "step_summary"} {
		if err := os.WriteFile(filepath.Join(files, f), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for k, v := range inputs {
		s.env["INPUT_"+strings.ToUpper(k)] = v
	}
	return s
}

func (s *step) getenv(k string) string { return s.env[k] }

// result is what a step left behind.
type result struct {
	code        int
	outputs     map[string]string
	summary     string
	stdout      string
	annotations []annotation
	masks       []string
}

type annotation struct {
	level, title, msg string
}

func (r *result) annotated(level, substr string) bool {
	for _, a := range r.annotations {
		if a.level == level && (strings.Contains(a.msg, substr) || strings.Contains(a.title, substr)) {
			return true
		}
	}
	return false
}

func (s *step) run(ctx context.Context) *result {
	s.t.Helper()
	code := Run(ctx, Env{Getenv: s.getenv, Stdout: &s.stdout}, s.opts...)
	r := &result{code: code, stdout: s.stdout.String()}
	if p := s.env["GITHUB_OUTPUT"]; p != "" {
		data, err := os.ReadFile(p)
		if err != nil {
			s.t.Fatal(err)
		}
		r.outputs, err = parseOutputFile(data)
		if err != nil {
			s.t.Fatalf("$GITHUB_OUTPUT is not what the runner accepts: %v\n%s", err, data)
		}
	}
	if p := s.env["GITHUB_STEP_SUMMARY"]; p != "" {
		data, err := os.ReadFile(p)
		if err != nil {
			s.t.Fatal(err)
		}
		r.summary = string(data)
	}
	r.annotations, r.masks = parseCommands(r.stdout)
	return r
}

// parseOutputFile reads $GITHUB_OUTPUT as the runner does
// (actions/runner SetOutputFileCommand): "name=value" lines and
// "name<<DELIMITER" heredocs closed by a line equal to the delimiter.
func parseOutputFile(data []byte) (map[string]string, error) {
	out := map[string]string{}
	lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
	if len(data) == 0 {
		return out, nil
	}
	for i := 0; i < len(lines); i++ {
		line := lines[i]
		if line == "" {
			continue
		}
		eq, hd := strings.Index(line, "="), strings.Index(line, "<<")
		switch {
		case hd > 0 && (eq < 0 || hd < eq):
			name, delim := line[:hd], line[hd+2:]
			if delim == "" {
				return nil, fmt.Errorf("line %d: empty delimiter", i+1)
			}
			var val []string
			closed := false
			for i++; i < len(lines); i++ {
				if lines[i] == delim {
					closed = true
					break
				}
				val = append(val, lines[i])
			}
			if !closed {
				return nil, fmt.Errorf("heredoc %s: no closing delimiter", name)
			}
			out[name] = strings.Join(val, "\n")
		case eq > 0:
			out[line[:eq]] = line[eq+1:]
		default:
			return nil, fmt.Errorf("line %d: invalid format %q", i+1, line)
		}
	}
	return out, nil
}

// parseCommands reads the workflow commands a step printed.
func parseCommands(stdout string) (anns []annotation, masks []string) {
	unescape := strings.NewReplacer("%0D", "\r", "%0A", "\n", "%3A", ":", "%2C", ",", "%25", "%")
	sc := bufio.NewScanner(strings.NewReader(stdout))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "::") {
			continue
		}
		cmd, msg, ok := strings.Cut(line[2:], "::")
		if !ok {
			continue
		}
		name, props, _ := strings.Cut(cmd, " ")
		msg = unescape.Replace(msg)
		switch name {
		case "add-mask":
			masks = append(masks, msg)
		case "error", "warning", "notice":
			a := annotation{level: name, msg: msg}
			for _, p := range strings.Split(props, ",") {
				if k, v, ok := strings.Cut(p, "="); ok && k == "title" {
					a.title = unescape.Replace(v)
				}
			}
			anns = append(anns, a)
		}
	}
	return anns, masks
}

// fakeClock is a clock whose Sleep only moves it forward.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock(t time.Time) *fakeClock { return &fakeClock{now: t} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
	return nil
}

// apiCall is one request to the fake GitHub API.
type apiCall struct {
	Method string
	Path   string // without baseURLPath
	Query  string
	Body   map[string]any
	// Header and Raw are the request's headers and body as received.
	Header http.Header
	Raw    string
}

func (c apiCall) String() string {
	s := c.Method + " " + c.Path
	if c.Query != "" {
		s += "?" + c.Query
	}
	return s
}

// fakeGitHub serves the deployments API from memory and records every
// call.
type fakeGitHub struct {
	t     *testing.T
	srv   *httptest.Server
	clock *fakeClock

	mu          sync.Mutex
	calls       []apiCall
	nextID      int64
	deployments []*github.Deployment
	statuses    map[int64][]*github.DeploymentStatus
	// creates counts deployment creations. With barrier set, no creation
	// is answered before barrier of them arrived, so that concurrent runs
	// overlap.
	creates int
	barrier int
	ready   chan struct{}
	// readOnly answers writes 403, as GitHub does for a token without
	// deployments: write.
	readOnly bool
	// token is the token the API accepts (testToken unless set before
	// the first request).
	token string
	// echo answers every request 403 with a message quoting its headers,
	// as a proxy in front of the API might.
	echo bool
}

func newFakeGitHub(t *testing.T, clock *fakeClock) *fakeGitHub {
	f := &fakeGitHub{t: t, clock: clock, nextID: 1000, statuses: map[int64][]*github.DeploymentStatus{}, ready: make(chan struct{}), token: testToken}
	mux := http.NewServeMux()
	api := http.NewServeMux()
	api.HandleFunc("POST /repos/{owner}/{repo}/deployments", f.createDeployment)
	api.HandleFunc("GET /repos/{owner}/{repo}/deployments", f.listDeployments)
	api.HandleFunc("POST /repos/{owner}/{repo}/deployments/{id}/statuses", f.createStatus)
	api.HandleFunc("GET /repos/{owner}/{repo}/deployments/{id}/statuses", f.listStatuses)
	mux.Handle(baseURLPath+"/", http.StripPrefix(baseURLPath, f.record(api)))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("GitHub API request outside the base URL path: %s %s", r.Method, r.URL)
		http.Error(w, "outside base URL", http.StatusBadRequest)
	})
	f.srv = httptest.NewServer(mux)
	t.Cleanup(f.srv.Close)
	return f
}

// apiURL is the value of $GITHUB_API_URL, without the trailing slash the
// runner leaves off.
func (f *fakeGitHub) apiURL() string { return f.srv.URL + baseURLPath }

func (f *fakeGitHub) use(s *step) {
	s.env["GITHUB_API_URL"] = f.apiURL()
	s.opts = append(s.opts, WithGitHubHTTPClient(f.srv.Client()))
}

func (f *fakeGitHub) record(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		token := f.token
		f.mu.Unlock()
		if got := r.Header.Get("Authorization"); got != "Bearer "+token {
			http.Error(w, `{"message":"Bad credentials"}`, http.StatusUnauthorized)
			return
		}
		if r.Header.Get("Accept") == "" {
			f.t.Errorf("%s %s: no Accept header", r.Method, r.URL.Path)
		}
		c := apiCall{Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, Header: r.Header.Clone()}
		if r.Body != nil {
			data, _ := io.ReadAll(r.Body)
			c.Raw = string(data)
			if len(data) > 0 {
				if err := json.Unmarshal(data, &c.Body); err != nil {
					f.t.Errorf("%s %s: body is not JSON: %v", r.Method, r.URL.Path, err)
				}
			}
			r.Body = io.NopCloser(bytes.NewReader(data))
		}
		f.mu.Lock()
		f.calls = append(f.calls, c)
		readOnly, echo := f.readOnly, f.echo
		f.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		if echo {
			var hs strings.Builder
			r.Header.Write(&hs)
			msg, _ := json.Marshal("refused request with headers " + hs.String())
			w.WriteHeader(http.StatusForbidden)
			fmt.Fprintf(w, `{"message":%s}`, msg)
			return
		}
		if readOnly && r.Method != http.MethodGet {
			w.WriteHeader(http.StatusForbidden)
			io.WriteString(w, `{"message":"Resource not accessible by integration"}`)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (f *fakeGitHub) createDeployment(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Ref                   string          `json:"ref"`
		Task                  string          `json:"task"`
		AutoMerge             *bool           `json:"auto_merge"`
		RequiredContexts      *[]string       `json:"required_contexts"`
		Payload               json.RawMessage `json:"payload"`
		Environment           string          `json:"environment"`
		Description           string          `json:"description"`
		ProductionEnvironment bool            `json:"production_environment"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if req.RequiredContexts == nil {
		// GitHub would check every commit status and refuse a commit whose
		// checks are still running.
		http.Error(w, `{"message":"Conflict: Commit status checks failed for main."}`, http.StatusConflict)
		return
	}
	f.mu.Lock()
	f.nextID++
	d := &github.Deployment{
		ID: github.Int64(f.nextID), SHA: github.String(req.Ref), Ref: github.String(req.Ref), Task: github.String(req.Task),
		Payload: req.Payload, Environment: github.String(req.Environment), Description: github.String(req.Description),
		CreatedAt: &github.Timestamp{Time: f.clock.Now()}, UpdatedAt: &github.Timestamp{Time: f.clock.Now()},
	}
	f.deployments = append(f.deployments, d)
	f.creates++
	barrier := f.barrier
	if barrier > 0 && f.creates == barrier {
		close(f.ready)
	}
	f.mu.Unlock()
	if barrier > 0 {
		select {
		case <-f.ready:
		case <-time.After(20 * time.Second):
			f.t.Errorf("fewer than %d deployment creations arrived", barrier)
		}
	}
	w.WriteHeader(http.StatusCreated)
	json.NewEncoder(w).Encode(d)
}

func (f *fakeGitHub) listDeployments(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f.mu.Lock()
	var match []*github.Deployment
	for _, d := range f.deployments {
		if (q.Get("sha") == "" || q.Get("sha") == d.GetSHA()) &&
			(q.Get("environment") == "" || q.Get("environment") == d.GetEnvironment()) &&
			(q.Get("task") == "" || q.Get("task") == d.GetTask()) {
			match = append(match, d)
		}
	}
	f.mu.Unlock()
	// Newest first, as GitHub lists them.
	sort.Slice(match, func(i, j int) bool { return match[i].GetID() > match[j].GetID() })
	page(w, r, match)
}

// page serves one page of items with a Link header, as GitHub paginates.
func page[T any](w http.ResponseWriter, r *http.Request, items []T) {
	q := r.URL.Query()
	per, _ := strconv.Atoi(q.Get("per_page"))
	if per <= 0 || per > 100 {
		per = 30
	}
	pg, _ := strconv.Atoi(q.Get("page"))
	if pg <= 0 {
		pg = 1
	}
	from, to := min((pg-1)*per, len(items)), min(pg*per, len(items))
	if to < len(items) {
		next := *r.URL
		q.Set("page", strconv.Itoa(pg+1))
		next.RawQuery = q.Encode()
		w.Header().Set("Link", fmt.Sprintf(`<http://%s%s%s>; rel="next"`, r.Host, baseURLPath, next.RequestURI()))
	}
	json.NewEncoder(w).Encode(items[from:to])
}

func (f *fakeGitHub) createStatus(w http.ResponseWriter, r *http.Request) {
	id, _ := strconv.ParseInt(r.PathValue("id"), 10, 64)
	var req github.DeploymentStatusRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	switch req.GetState() {
	case stateQueued, statePending, stateInProgress, stateSuccess, stateFailure, stateError, stateInactive:
	default:
		http.Error(w, `{"message":"Validation Failed"}`, http.StatusUnprocessableEntity)
		return
	}
	if len(req.GetDescription()) > 140 {
		http.Error(w, `{"message":"description is too long (maximum is 140 characters)"}`, http.StatusUnprocessableEntity)
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if !slices.ContainsFunc(f.deployments, func(d *github.Deployment) bool { return d.GetID() == id }) {
		http.Error(w, `{"message":"Not Found"}`, http.StatusNotFound)
		return
	}
	f.nextID++
	s := &github.DeploymentStatus{
		ID: github.Int64(f.nextID), State: req.State, Description: req.Description, LogURL: req.LogURL,
		CreatedAt: &github.Timestamp{Time: f.clock.Now()},
	}
	f.statuses[id] = append(f.statuses[id], s)
	w.WriteHeader(http.StatusCreated)
	json.NewEncoder(w).Encode(s)
}

func (f *fakeGitHub) listStatuses(w http.ResponseWriter, r *http.Request) {
	id, _ := strconv.ParseInt(r.PathValue("id"), 10, 64)
	f.mu.Lock()
	sts := slices.Clone(f.statuses[id])
	f.mu.Unlock()
	slices.Reverse(sts) // newest first
	page(w, r, sts)
}

// seed records a deployment of sha to env created at, with the given
// statuses in order.
func (f *fakeGitHub) seed(sha, env string, at time.Time, states ...string) int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.nextID++
	id := f.nextID
	p, _ := json.Marshal(payload{Tool: "phaseguard", Deadline: at.Add(20 * time.Minute)})
	f.deployments = append(f.deployments, &github.Deployment{
		ID: github.Int64(id), SHA: github.String(sha), Ref: github.String(sha), Task: github.String(deploymentTask),
		Environment: github.String(env), Payload: p, CreatedAt: &github.Timestamp{Time: at},
	})
	for _, st := range states {
		f.nextID++
		f.statuses[id] = append(f.statuses[id], &github.DeploymentStatus{ID: github.Int64(f.nextID), State: github.String(st), CreatedAt: &github.Timestamp{Time: at}})
	}
	return id
}

// recorded returns the calls made so far as "METHOD path?query".
func (f *fakeGitHub) recorded() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, c := range f.calls {
		out = append(out, c.String())
	}
	return out
}

// allCalls returns every call so far.
func (f *fakeGitHub) allCalls() []apiCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

func (f *fakeGitHub) writes() []apiCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []apiCall
	for _, c := range f.calls {
		if c.Method != http.MethodGet {
			out = append(out, c)
		}
	}
	return out
}

// states returns the statuses written for a deployment, in order.
func (f *fakeGitHub) states(id int64) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, s := range f.statuses[id] {
		out = append(out, s.GetState())
	}
	return out
}

// deploymentsTo returns the ids of the deployments to env.
func (f *fakeGitHub) deploymentsTo(env string) []int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []int64
	for _, d := range f.deployments {
		if d.GetEnvironment() == env {
			out = append(out, d.GetID())
		}
	}
	return out
}

// noCalls is an HTTP server that fails the test when called: a Prometheus
// (or GitHub) that a refused step must never reach.
func noCalls(t *testing.T, what string) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("%s was called: %s %s", what, r.Method, r.URL)
		http.Error(w, "unexpected", http.StatusTeapot)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

func query(kv ...string) string {
	v := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		v.Set(kv[i], kv[i+1])
	}
	return v.Encode()
}
