package action

import (
	"cmp"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/prometheus/common/config"
	"github.com/prometheus/common/model"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/phaseguard/phaseguard/analysis"
	"github.com/phaseguard/phaseguard/internal/redact"
	"github.com/phaseguard/phaseguard/policies"
	"github.com/phaseguard/phaseguard/promapi"
)

// Input names, as in action.yml. The runner passes each as INPUT_<NAME>
// upper-cased with hyphens kept (INPUT_CANARY-HASH).
const (
	inPolicy          = "policy"
	inStage           = "stage"
	inPromURL         = "prometheus-url"
	inPromToken       = "prometheus-bearer-token"
	inPromUser        = "prometheus-username"
	inPromPassword    = "prometheus-password"
	inPromHeaders     = "prometheus-headers"
	inPromCA          = "prometheus-ca"
	inPromTimeout     = "prometheus-timeout"
	inService         = "service"
	inNamespace       = "namespace"
	inCanaryHash      = "canary-hash"
	inStableHash      = "stable-hash"
	inRollout         = "rollout"
	inKubeconfig      = "kubeconfig"
	inGitHubToken     = "github-token"
	inSHA             = "sha"
	inWait            = "wait"
	inTimeout         = "timeout"
	inDryRun          = "dry-run"
	inOnHold          = "on-hold"
	inEnvPrefix       = "environment-prefix"
	inStageOrdering   = "stage-ordering"
	inAt              = "at"
	inSince           = "since"
	inReportPath      = "report-path"
	defaultPolicy     = "phase-default"
	defaultPromTimout = 30 * time.Second
	// maxTimeout is GitHub's limit on a job on a hosted runner.
	maxTimeout = 6 * time.Hour
)

// On-hold behaviours.
const (
	onHoldFail    = "fail"
	onHoldNeutral = "neutral"
)

// InputError is an input (or a runner variable) that cannot be used. It
// names the input; a secret's value is never part of the message.
type InputError struct {
	Input  string
	Value  string
	Secret bool
	Msg    string
}

func (e *InputError) Error() string {
	if e.Secret || e.Value == "" {
		return fmt.Sprintf("input %s: %s", e.Input, e.Msg)
	}
	return fmt.Sprintf("input %s %s: %s", e.Input, quote(e.Value), e.Msg)
}

// quote quotes v for a message, escaping control characters and cutting it
// to a readable length: a hostile value can neither start a workflow
// command on a new line nor flood the log.
func quote(v string) string {
	const max = 80
	if len(v) > max {
		return strconv.Quote(v[:max]) + "..."
	}
	return strconv.Quote(v)
}

// inputs are the validated inputs of one run.
type inputs struct {
	policy     *policies.Policy
	stage      policies.Stage
	stageIndex int

	promURL     string
	promHTTP    config.HTTPClientConfig
	promTimeout time.Duration

	service, namespace     string
	canaryHash, stableHash string

	rollout    string
	kubeconfig []byte

	githubToken string
	sha         string

	wait          bool
	timeout       time.Duration
	dryRun        bool
	onHold        string
	envPrefix     string
	stageOrdering bool
	at            time.Time // zero: now
	since         time.Time // when the canary started serving; zero: unknown
	reportPath    string    // relative to the workspace

	// secrets are the values to mask, in the order found.
	secrets []string
	// basicUser and basicPassword are the basic-auth input, whose
	// "user:password" in Base64 is redacted too.
	basicUser, basicPassword string
}

// addSecrets adds every secret input to set: the values masked, and the
// Base64 of "user:password" an echoed Authorization header would show.
func (in *inputs) addSecrets(set *redact.Set) {
	addSecret(set, in.secrets...)
	set.AddBasicAuth(in.basicUser, in.basicPassword)
}

// environment is the ledger environment of a stage.
func (in *inputs) environment(stage string) string { return in.envPrefix + stage }

// request is the engine request for a look at t of a stage that started
// at since (zero: unknown).
func (in *inputs) request(t, since time.Time) analysis.Request {
	return analysis.Request{
		Since:      since,
		Policy:     in.policy,
		Stage:      in.stage.Name,
		At:         t,
		Service:    in.service,
		Namespace:  in.namespace,
		CanaryHash: in.canaryHash,
		StableHash: in.stableHash,
	}
}

var (
	// rolloutRE is a DNS-1123 subdomain: the syntax of a Kubernetes
	// object name.
	rolloutRE   = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)
	namespaceRE = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$`)
	// shaRE is a full commit id: SHA-1 or SHA-256.
	shaRE = regexp.MustCompile(`^([0-9a-f]{40}|[0-9a-f]{64})$`)
	// envPrefixRE keeps environment names to characters GitHub shows and
	// URL-encodes without surprises.
	envPrefixRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._/-]{0,63}$`)
	// headerNameRE is an RFC 9110 field name (token).
	headerNameRE = regexp.MustCompile("^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
)

// readInputs reads and validates every input, reporting every problem at
// once. Secrets are collected first, so they can be masked before any
// message is printed, and redacted from the values errors quote before
// they are cut to length.
func readInputs(get func(string) string, now time.Time, renv *runnerEnv) (*inputs, error) {
	workspace := renv.workspace
	in := &inputs{stageIndex: -1}
	var errs []error
	quoted := redact.New()
	bad := func(input, value, format string, args ...any) {
		errs = append(errs, &InputError{Input: input, Value: quoted.String(value), Msg: fmt.Sprintf(format, args...)})
	}
	badSecret := func(input, format string, args ...any) {
		errs = append(errs, &InputError{Input: input, Secret: true, Msg: fmt.Sprintf(format, args...)})
	}
	secret := func(v string) {
		if v != "" {
			in.secrets = append(in.secrets, v)
		}
	}

	// Secrets first.
	in.githubToken = get(inGitHubToken)
	secret(in.githubToken)
	token, user, password := get(inPromToken), get(inPromUser), get(inPromPassword)
	secret(token)
	secret(password)
	headersRaw := get(inPromHeaders)
	headers, unread, herrs := parseHeaders(headersRaw)
	for _, h := range headers {
		for _, v := range h.Secrets {
			secret(string(v))
		}
	}
	for _, v := range unread {
		secret(v)
	}
	rawURL := get(inPromURL)
	if u, err := url.Parse(rawURL); err == nil && u.User != nil {
		if p, ok := u.User.Password(); ok {
			secret(p)
		}
	}
	if kc := get(inKubeconfig); kc != "" {
		in.kubeconfig = []byte(kc)
		in.secrets = append(in.secrets, kubeSecrets(in.kubeconfig)...)
	}
	if user != "" {
		in.basicUser, in.basicPassword = user, password
	}
	in.addSecrets(quoted)

	// Policy and stage.
	policyRef := get(inPolicy)
	if policyRef == "" {
		policyRef = defaultPolicy
	}
	p, err := loadPolicy(policyRef, workspace)
	if err != nil {
		errs = append(errs, &InputError{Input: inPolicy, Msg: err.Error()})
	}
	in.policy = p
	stage := get(inStage)
	switch {
	case stage == "":
		bad(inStage, stage, "required: the policy stage this step judges")
	case p != nil:
		st, i := p.Stage(stage)
		if i < 0 {
			var names []string
			for _, s := range p.Spec.Stages {
				names = append(names, s.Name)
			}
			bad(inStage, stage, "not a stage of policy %s (stages: %s)", p.Metadata.Name, strings.Join(names, ", "))
		}
		in.stage, in.stageIndex = st, i
	}

	// Prometheus.
	in.promURL = rawURL
	if err := checkPromURL(rawURL); err != nil {
		errs = append(errs, &InputError{Input: inPromURL, Msg: err.Error()})
	}
	in.promHTTP = config.DefaultHTTPClientConfig
	if err := checkHeaderValue(token); err != nil {
		badSecret(inPromToken, "%v", err)
	}
	if err := checkHeaderValue(user); err != nil || strings.Contains(user, ":") {
		bad(inPromUser, user, "must be one line without control characters or ':'")
	}
	if err := checkHeaderValue(password); err != nil {
		badSecret(inPromPassword, "%v", err)
	}
	switch {
	case token != "" && (user != "" || password != ""):
		badSecret(inPromToken, "give a bearer token or basic auth (%s, %s), not both", inPromUser, inPromPassword)
	case password != "" && user == "":
		badSecret(inPromPassword, "needs %s", inPromUser)
	case token != "":
		in.promHTTP.Authorization = &config.Authorization{Type: "Bearer", Credentials: config.Secret(token)}
	case user != "":
		in.promHTTP.BasicAuth = &config.BasicAuth{Username: user, Password: config.Secret(password)}
	}
	for _, e := range herrs {
		errs = append(errs, &InputError{Input: inPromHeaders, Secret: true, Msg: e.Error()})
	}
	if len(headers) > 0 {
		in.promHTTP.HTTPHeaders = &config.Headers{Headers: headers}
	}
	if ca := get(inPromCA); ca != "" {
		if !x509.NewCertPool().AppendCertsFromPEM([]byte(ca)) {
			bad(inPromCA, "", "no PEM certificate found: give the CA certificate(s) in PEM, not a path")
		}
		in.promHTTP.TLSConfig.CA = ca
	}
	if err := in.promHTTP.Validate(); err != nil {
		badSecret(inPromURL, "HTTP client settings: %v", err)
	}
	in.promTimeout = parseDuration(get(inPromTimeout), defaultPromTimout, time.Second, 5*time.Minute, inPromTimeout, &errs)

	// The target. The engine checks the values that reach PromQL.
	in.service, in.namespace = get(inService), get(inNamespace)
	in.canaryHash, in.stableHash = get(inCanaryHash), get(inStableHash)
	if p != nil {
		req := in.request(time.Time{}, time.Time{})
		errs = append(errs, engineInputErrors(req.Validate())...)
	}

	// Rollback target.
	in.rollout = get(inRollout)
	if in.rollout != "" {
		if len(in.rollout) > 253 || !rolloutRE.MatchString(in.rollout) {
			bad(inRollout, in.rollout, "not a Kubernetes object name (DNS-1123 subdomain)")
		}
		if in.namespace == "" {
			bad(inNamespace, "", "required with %s: the namespace of the Argo Rollout", inRollout)
		} else if !namespaceRE.MatchString(in.namespace) {
			bad(inNamespace, in.namespace, "not a namespace (DNS-1123 label)")
		}
	}
	if in.kubeconfig != nil {
		if _, err := clientcmd.RESTConfigFromKubeConfig(in.kubeconfig); err != nil {
			badSecret(inKubeconfig, "not a usable kubeconfig: %v", err)
		}
	}

	// Ledger.
	if err := checkHeaderValue(in.githubToken); err != nil {
		badSecret(inGitHubToken, "%v", err)
	}
	if in.sha = get(inSHA); in.sha == "" {
		in.sha = renv.sha
	}
	if in.githubToken != "" && !shaRE.MatchString(in.sha) {
		bad(inSHA, in.sha, "not a full commit SHA (40 or 64 lower-case hex digits; default $GITHUB_SHA)")
	}
	in.stageOrdering = parseBool(get(inStageOrdering), true, inStageOrdering, &errs)
	if in.stageOrdering && in.githubToken == "" {
		bad(inGitHubToken, "", "required while %s is true: the stage ledger is kept in GitHub deployments", inStageOrdering)
	}
	in.envPrefix = get(inEnvPrefix)
	if in.envPrefix != "" && !envPrefixRE.MatchString(in.envPrefix) {
		bad(inEnvPrefix, in.envPrefix, "letters, digits, '.', '_', '/', '-'; at most 64, starting with a letter or digit")
	}

	// Behaviour.
	in.wait = parseBool(get(inWait), false, inWait, &errs)
	in.dryRun = parseBool(get(inDryRun), false, inDryRun, &errs)
	switch in.onHold = get(inOnHold); in.onHold {
	case "":
		in.onHold = onHoldFail
	case onHoldFail, onHoldNeutral:
	default:
		bad(inOnHold, in.onHold, "must be %q (the job fails) or %q (the job goes on; read the verdict output)", onHoldFail, onHoldNeutral)
	}
	defTimeout := 5 * time.Minute
	if in.wait && p != nil {
		defTimeout = time.Duration(in.stage.Soak) + 2*time.Duration(p.Spec.Interval) + 5*time.Minute
	}
	in.timeout = parseDuration(get(inTimeout), defTimeout, time.Second, maxTimeout, inTimeout, &errs)
	if at := get(inAt); at != "" {
		t, err := time.Parse(time.RFC3339, at)
		switch {
		case err != nil:
			bad(inAt, at, "not an RFC 3339 time (2026-01-01T00:40:00Z)")
		case t.After(now.Add(time.Minute)):
			bad(inAt, at, "in the future")
		case t.Year() < 2000:
			bad(inAt, at, "before 2000")
		default:
			in.at = t.UTC()
		}
	}
	if since := get(inSince); since != "" {
		t, err := time.Parse(time.RFC3339, since)
		switch {
		case err != nil:
			bad(inSince, since, "not an RFC 3339 time (2026-01-01T00:30:00Z)")
		case !t.Before(now) || (!in.at.IsZero() && !t.Before(in.at)):
			bad(inSince, since, "not before the evaluation time")
		case t.Year() < 2000:
			bad(inSince, since, "before 2000")
		case cmp.Or(in.at, now).Sub(t) > analysis.MaxSinceAge:
			bad(inSince, since, "more than %s before the evaluation: give the canary's start (its first stage's); an older one costs the tests their power", model.Duration(analysis.MaxSinceAge))
		default:
			in.since = t.UTC()
		}
	}
	in.reportPath = get(inReportPath)
	if in.reportPath == "" && in.stageIndex >= 0 && in.stage.Name != "" {
		in.reportPath = filepath.Join(".phaseguard", in.stage.Name+".json")
	}
	if in.reportPath != "" {
		if _, _, err := resolveInWorkspace(workspace, in.reportPath); err != nil {
			bad(inReportPath, in.reportPath, "%v", err)
			in.reportPath = ""
		}
	}
	return in, errors.Join(errs...)
}

// engineInputErrors turns the engine's request errors into InputErrors.
func engineInputErrors(err error) []error {
	if err == nil {
		return nil
	}
	errs := []error{err}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	}
	out := make([]error, 0, len(errs))
	for _, e := range errs {
		var ie *analysis.InputError
		if errors.As(e, &ie) {
			out = append(out, &InputError{Input: ie.Input, Value: ie.Value, Msg: ie.Msg})
			continue
		}
		out = append(out, e)
	}
	return out
}

// loadPolicy resolves a preset name, inline YAML or a file inside the
// workspace, symbolic links included (resolveInWorkspace).
func loadPolicy(ref, workspace string) (*policies.Policy, error) {
	ref = strings.TrimSpace(ref)
	if strings.Contains(ref, "\n") || strings.HasPrefix(ref, "apiVersion") || policies.IsPreset(ref) {
		return policies.Resolve(ref)
	}
	if !filepath.IsLocal(ref) || hasControl(ref) {
		return nil, fmt.Errorf("%s: not a preset (%s), inline YAML or a relative path inside the workspace", quote(ref), strings.Join(policies.PresetNames(), ", "))
	}
	root, name, err := resolveInWorkspace(workspace, ref)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", quote(ref), err)
	}
	return policies.LoadFile(filepath.Join(root, name))
}

// checkPromURL accepts an http(s) URL with a host and no credentials,
// query or fragment: the API paths are appended to it. It is
// promapi.CheckURL, as the CLI and the plugin check theirs, whose errors
// quote no part of a URL that may hold a credential ("a:///:token@"
// quotes nothing); user-info gets the inputs that take its place.
func checkPromURL(raw string) error {
	if raw == "" {
		return errors.New("required: the base URL of the Prometheus HTTP API")
	}
	err := promapi.CheckURL(raw)
	if u, perr := url.Parse(raw); err != nil && perr == nil && u.User != nil {
		return fmt.Errorf("url: must not hold user-info: use %s, or %s and %s (from secrets)", inPromToken, inPromUser, inPromPassword)
	}
	return err
}

// parseHeaders reads "Name: value" lines. The value of a tenant header
// (promapi.TenantHeaders: X-Scope-OrgID, THANOS-TENANT) is an identifier,
// sent as a plain value: it is neither masked nor redacted, since a tenant
// named like the service ("checkout") would otherwise turn every
// service="checkout", environment checkout-canary-10 and output that
// names it into the mark. Every other value is a secret (config.Secret):
// masked and redacted. A line that cannot be read is returned in unread,
// whole and the part after its first ':' or '=', to be kept secret too
// (X-Api-Key=KEY); the errors name the line by number and quote nothing
// of it.
func parseHeaders(raw string) (headers map[string]config.Header, unread []string, errs []error) {
	headers = map[string]config.Header{}
	for i, line := range strings.Split(raw, "\n") {
		line = strings.TrimSpace(strings.TrimSuffix(line, "\r"))
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, value, ok := strings.Cut(line, ":")
		name, value = strings.TrimSpace(name), strings.TrimSpace(value)
		bad := func(format string, args ...any) {
			errs = append(errs, fmt.Errorf("line %d: "+format, append([]any{i + 1}, args...)...))
			unread = append(unread, line)
			if sep := strings.IndexAny(line, ":="); sep >= 0 {
				unread = append(unread, strings.TrimSpace(line[sep+1:]))
			}
		}
		switch {
		case !ok && strings.Contains(line, "="):
			bad("want \"Name: value\", with a colon, not '='")
			continue
		case !ok || !headerNameRE.MatchString(name):
			bad("want \"Name: value\" with a header name of letters, digits and !#$%%&'*+.^_`|~-")
			continue
		case checkHeaderValue(value) != nil || value == "":
			bad("header %s: empty value or control characters", name)
			continue
		}
		name = http.CanonicalHeaderKey(name)
		if _, reserved := config.ReservedHeaders[name]; reserved {
			bad("header %s is set by the client; use %s or %s/%s for credentials", name, inPromToken, inPromUser, inPromPassword)
			continue
		}
		h := headers[name]
		if promapi.TenantHeaders[name] {
			h.Values = append(h.Values, value)
		} else {
			h.Secrets = append(h.Secrets, config.Secret(value))
		}
		headers[name] = h
	}
	return headers, unread, errs
}

// checkHeaderValue rejects what cannot be sent in an HTTP header.
func checkHeaderValue(v string) error {
	if hasControl(v) {
		return errors.New("contains line breaks or control characters")
	}
	return nil
}

func hasControl(s string) bool {
	return strings.ContainsFunc(s, unicode.IsControl)
}

// parseBool accepts the YAML 1.2 core schema booleans, as the Actions
// toolkit's getBooleanInput does.
func parseBool(v string, def bool, input string, errs *[]error) bool {
	switch v {
	case "":
		return def
	case "true", "True", "TRUE":
		return true
	case "false", "False", "FALSE":
		return false
	}
	*errs = append(*errs, &InputError{Input: input, Value: v, Msg: "must be true or false"})
	return def
}

// parseDuration parses a Prometheus duration ("90s", "15m", "1h30m") within
// [lo, hi].
func parseDuration(v string, def, lo, hi time.Duration, input string, errs *[]error) time.Duration {
	if v == "" {
		return def
	}
	d, err := model.ParseDuration(v)
	switch {
	case err != nil:
		*errs = append(*errs, &InputError{Input: input, Value: v, Msg: "not a duration (30s, 15m, 1h)"})
		return def
	case time.Duration(d) < lo || time.Duration(d) > hi:
		*errs = append(*errs, &InputError{Input: input, Value: v, Msg: fmt.Sprintf("must be between %s and %s", model.Duration(lo), model.Duration(hi))})
		return def
	}
	return time.Duration(d)
}

// runnerEnv is what the runner tells the step about the run.
type runnerEnv struct {
	workspace        string
	owner, repo      string
	sha              string
	runID            string
	runAttempt       string
	serverURL        string
	apiURL           *url.URL
	outputFile       string
	summaryFile      string
	kubeconfigPath   string
	inClusterService bool
}

var (
	repoRE  = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,100}/[A-Za-z0-9_.-]{1,100}$`)
	digitRE = regexp.MustCompile(`^[0-9]{1,20}$`)
)

// readRunnerEnv checks the GITHUB_* variables that are set; whether the
// ledger's are set at all is checked with the inputs.
func readRunnerEnv(get func(string) string) (*runnerEnv, error) {
	var errs []error
	bad := func(name, value, msg string) {
		errs = append(errs, &InputError{Input: "$" + name, Value: value, Msg: msg})
	}
	r := &runnerEnv{
		workspace:        get("GITHUB_WORKSPACE"),
		sha:              get("GITHUB_SHA"),
		runID:            get("GITHUB_RUN_ID"),
		runAttempt:       get("GITHUB_RUN_ATTEMPT"),
		serverURL:        strings.TrimSuffix(get("GITHUB_SERVER_URL"), "/"),
		outputFile:       get("GITHUB_OUTPUT"),
		summaryFile:      get("GITHUB_STEP_SUMMARY"),
		kubeconfigPath:   get("KUBECONFIG"),
		inClusterService: get("KUBERNETES_SERVICE_HOST") != "",
	}
	if r.workspace == "" {
		r.workspace = "."
	}
	repo := get("GITHUB_REPOSITORY")
	if repoRE.MatchString(repo) {
		r.owner, r.repo, _ = strings.Cut(repo, "/")
	} else if repo != "" {
		bad("GITHUB_REPOSITORY", repo, "not owner/name")
	}
	if r.runID != "" && !digitRE.MatchString(r.runID) {
		bad("GITHUB_RUN_ID", r.runID, "not a run id")
		r.runID = ""
	}
	if r.runAttempt != "" && !digitRE.MatchString(r.runAttempt) {
		bad("GITHUB_RUN_ATTEMPT", r.runAttempt, "not a number")
		r.runAttempt = ""
	}
	if r.serverURL == "" {
		r.serverURL = "https://github.com"
	}
	if u, err := url.Parse(r.serverURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || hasControl(r.serverURL) {
		bad("GITHUB_SERVER_URL", r.serverURL, "not an http(s) URL")
	}
	api := get("GITHUB_API_URL")
	if api == "" {
		api = "https://api.github.com"
	}
	u, err := url.Parse(api)
	switch {
	case err != nil || u.Host == "" || hasControl(api) || (u.Scheme != "https" && u.Scheme != "http"):
		bad("GITHUB_API_URL", api, "not an http(s) URL")
	case u.Scheme == "http" && !isLoopback(u.Hostname()):
		bad("GITHUB_API_URL", api, "must be https: the token would travel in clear text")
	default:
		if !strings.HasSuffix(u.Path, "/") {
			u.Path += "/"
		}
		r.apiURL = u
	}
	return r, errors.Join(errs...)
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// runURL links the workflow run, for deployment statuses.
func (r *runnerEnv) runURL() string {
	if r.owner == "" || r.runID == "" {
		return ""
	}
	u := fmt.Sprintf("%s/%s/%s/actions/runs/%s", r.serverURL, r.owner, r.repo, r.runID)
	if r.runAttempt != "" && r.runAttempt != "1" {
		u += "/attempts/" + r.runAttempt
	}
	return u
}
