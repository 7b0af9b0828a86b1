package rollouts

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/prometheus/common/config"
	"github.com/prometheus/common/model"

	"github.com/phaseguard/phaseguard/policies"
	"github.com/phaseguard/phaseguard/promapi"
)

// Modes of a measurement.
const (
	// ModeLook judges the windows ending now, once per measurement; Argo's
	// interval, count and failureLimit make the stage.
	ModeLook = "look"
	// ModeStage keeps one measurement running for a whole stage: a look
	// every policy interval until the engine fails the canary or the
	// stage's soak ends in pass or hold.
	ModeStage = "stage"
)

// DefaultTimeout bounds one call of the controller into the plugin when
// the config gives no timeout: the controller sets no deadline itself.
const DefaultTimeout = 30 * time.Second

// Config is the plugin's configuration: the JSON under
// provider.plugin["phaseguard/phaseguard"] of an AnalysisTemplate metric,
// with {{args.*}} already substituted by the controller. It is decoded
// strictly (an unknown field is an error that names it), then defaulted,
// then validated.
type Config struct {
	// Policy is a built-in preset name, inline policy YAML, or the path of
	// a policy file mounted into the controller's pod.
	Policy string `json:"policy"`
	// Prometheus is where the SLIs are queried.
	Prometheus PrometheusConfig `json:"prometheus"`
	// Stage is the policy stage this analysis judges. Required in stage
	// mode (it sets the soak); in look mode it sets how many looks alpha is
	// spread over, and turns on stage ordering.
	Stage string `json:"stage"`
	// Service and Namespace select the service; CanaryHash and StableHash
	// its two versions, from {{args.*}} (Argo's
	// rollouts-pod-template-hash). StableHash is optional: without it there
	// is no baseline comparison.
	Service    string `json:"service"`
	Namespace  string `json:"namespace"`
	CanaryHash string `json:"canaryHash"`
	StableHash string `json:"stableHash"`
	// Mode is ModeLook (default) or ModeStage.
	Mode string `json:"mode"`
	// DryRun makes every measurement Successful; its metadata says what it
	// would have been.
	DryRun bool `json:"dryRun"`
	// OnQueryError, when set, overrides the policy's onQueryError: "hold"
	// (Inconclusive: Argo pauses) or "fail" (Failed: Argo rolls back).
	OnQueryError string `json:"onQueryError"`
	// StageOrdering checks, when Stage has a previous stage in the policy,
	// that the previous stage's AnalysisRun for the same Rollout revision
	// succeeded and soaked long enough. Default true.
	StageOrdering *bool `json:"stageOrdering"`
	// Timeout bounds one call of the controller into the plugin: the
	// evaluation with its queries and the stage ordering check. Default
	// 30s.
	Timeout model.Duration `json:"timeout"`
}

// PrometheusConfig configures the Prometheus HTTP API client. Secrets come
// only from files mounted into the controller's pod or from environment
// variables of the controller, named here: never inline, since the
// template is readable by anyone who can read AnalysisRuns.
type PrometheusConfig struct {
	// Address is the base URL of a server speaking the Prometheus HTTP
	// API (Prometheus, Thanos, Mimir, Cortex, VictoriaMetrics), with any
	// path prefix; no credentials in it.
	Address string `json:"address"`
	// Timeout bounds one query, retries included. Default 10s.
	Timeout model.Duration `json:"timeout"`
	// Retries is the number of retries of a failed query (connection
	// errors, 429, 5xx). Default 2; -1 disables them.
	Retries int `json:"retries"`
	// MaxInFlight bounds the queries this plugin process sends to this
	// server at once, over every AnalysisRun. Default 32.
	MaxInFlight int `json:"maxInFlight"`

	Authorization *AuthorizationConfig `json:"authorization"`
	BasicAuth     *BasicAuthConfig     `json:"basicAuth"`
	OAuth2        *OAuth2Config        `json:"oauth2"`
	TLS           *TLSConfig           `json:"tls"`
	// ProxyURL is an HTTP proxy for the queries; no credentials in it.
	ProxyURL string `json:"proxyUrl"`
	// Headers are extra request headers, e.g. X-Scope-OrgID for Mimir.
	Headers map[string]HeaderConfig `json:"headers"`
	// FollowRedirects and EnableHTTP2 default to true.
	FollowRedirects *bool `json:"followRedirects"`
	EnableHTTP2     *bool `json:"enableHttp2"`
}

// AuthorizationConfig sets the Authorization header: Type (default
// Bearer) and credentials from a file or an environment variable.
type AuthorizationConfig struct {
	Type            string `json:"type"`
	CredentialsFile string `json:"credentialsFile"`
	CredentialsEnv  string `json:"credentialsEnv"`
}

// BasicAuthConfig sets HTTP basic authentication. The password comes from
// a file or an environment variable.
type BasicAuthConfig struct {
	Username     string `json:"username"`
	UsernameFile string `json:"usernameFile"`
	PasswordFile string `json:"passwordFile"`
	PasswordEnv  string `json:"passwordEnv"`
}

// OAuth2Config sets OAuth 2.0 client credentials. The client secret comes
// from a file or an environment variable.
type OAuth2Config struct {
	ClientID         string            `json:"clientId"`
	ClientSecretFile string            `json:"clientSecretFile"`
	ClientSecretEnv  string            `json:"clientSecretEnv"`
	TokenURL         string            `json:"tokenUrl"`
	Scopes           []string          `json:"scopes"`
	EndpointParams   map[string]string `json:"endpointParams"`
}

// TLSConfig configures TLS to the server, from files.
type TLSConfig struct {
	CAFile             string `json:"caFile"`
	CertFile           string `json:"certFile"`
	KeyFile            string `json:"keyFile"`
	ServerName         string `json:"serverName"`
	InsecureSkipVerify bool   `json:"insecureSkipVerify"`
}

// HeaderConfig is one header value: exactly one of Value (not a secret:
// it is visible in the template), File or Env.
type HeaderConfig struct {
	Value string `json:"value"`
	File  string `json:"file"`
	Env   string `json:"env"`
}

// ConfigError is a plugin configuration that cannot be used. It lists
// every problem, each naming its field.
type ConfigError struct {
	Errs []error
}

func (e *ConfigError) Error() string {
	msgs := make([]string, len(e.Errs))
	for i, err := range e.Errs {
		msgs[i] = err.Error()
	}
	return "config: " + strings.Join(msgs, "; ")
}

// Unwrap returns the individual problems.
func (e *ConfigError) Unwrap() []error { return e.Errs }

// DecodeConfig decodes raw strictly, applies defaults and validates. The
// error is a *ConfigError.
func DecodeConfig(raw []byte) (*Config, error) {
	if len(bytes.TrimSpace(raw)) == 0 {
		return nil, &ConfigError{Errs: []error{errors.New("empty: give at least policy, prometheus.address and canaryHash")}}
	}
	var generic any
	if err := json.Unmarshal(raw, &generic); err != nil {
		return nil, &ConfigError{Errs: []error{fmt.Errorf("not JSON: %w", err)}}
	}
	if errs := unknownFields(generic, reflect.TypeFor[Config](), ""); len(errs) > 0 {
		return nil, &ConfigError{Errs: errs}
	}
	c := &Config{}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(c); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			err = fmt.Errorf("%s: want %s, got JSON %s", te.Field, te.Type, te.Value)
		}
		return nil, &ConfigError{Errs: []error{err}}
	}
	c.defaults()
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *Config) defaults() {
	if c.Mode == "" {
		c.Mode = ModeLook
	}
	if c.StageOrdering == nil {
		on := true
		c.StageOrdering = &on
	}
	if c.Timeout == 0 {
		c.Timeout = model.Duration(DefaultTimeout)
	}
	if c.Prometheus.MaxInFlight == 0 {
		c.Prometheus.MaxInFlight = 32
	}
	if c.Prometheus.FollowRedirects == nil {
		on := true
		c.Prometheus.FollowRedirects = &on
	}
	if c.Prometheus.EnableHTTP2 == nil {
		on := true
		c.Prometheus.EnableHTTP2 = &on
	}
}

// Ordering reports whether stage ordering is on.
func (c *Config) Ordering() bool { return c.StageOrdering == nil || *c.StageOrdering }

// checkPolicyRef accepts a preset name, inline YAML, or an absolute path
// to a .yaml or .yml file. Other paths are refused: a policy's load errors
// quote what they read, and the measurement's message is readable by
// anyone who can read AnalysisRuns, so the plugin must not be a way to
// read the controller's other files (its service account token).
func checkPolicyRef(ref string) error {
	ref = strings.TrimSpace(ref)
	switch {
	case ref == "":
		return errors.New("policy: required (a preset name such as phase-default, inline policy YAML, or an absolute path to a .yaml file)")
	case strings.Contains(ref, "\n") || strings.HasPrefix(ref, "apiVersion"), policies.IsPreset(ref):
		return nil
	case filepath.IsAbs(ref) && (strings.HasSuffix(ref, ".yaml") || strings.HasSuffix(ref, ".yml")):
		return nil
	case !strings.ContainsAny(ref, "/.\\"):
		return fmt.Errorf("policy %q: unknown preset (known: %s)", ref, strings.Join(policies.PresetNames(), ", "))
	}
	return fmt.Errorf("policy %q: a policy file must be an absolute path ending in .yaml or .yml", ref)
}

// envNameRE is a portable environment variable name.
var envNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// Validate reports every problem of c at once. Values that reach PromQL
// (service, namespace, hashes, stage) are checked by the engine.
func (c *Config) Validate() error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if err := checkPolicyRef(c.Policy); err != nil {
		errs = append(errs, err)
	}
	switch c.Mode {
	case ModeLook:
	case ModeStage:
		if c.Stage == "" {
			add("stage: required in mode %q (the stage's soak sets how long the measurement runs)", ModeStage)
		}
	default:
		add("mode %q: want %q or %q", c.Mode, ModeLook, ModeStage)
	}
	switch c.OnQueryError {
	case "", "hold", "fail":
	default:
		add("onQueryError %q: want hold or fail", c.OnQueryError)
	}
	if c.Timeout < 0 {
		add("timeout %s: must not be negative", c.Timeout)
	}
	errs = append(errs, c.Prometheus.validate()...)
	if len(errs) > 0 {
		return &ConfigError{Errs: errs}
	}
	return nil
}

func (p *PrometheusConfig) validate() []error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	checkURL := func(field, raw string, required bool) {
		if raw == "" {
			if required {
				add("%s: required", field)
			}
			return
		}
		u, err := url.Parse(raw)
		switch {
		case err != nil:
			add("%s: not a URL", field) // the parse error may echo a secret
		case u.User != nil:
			add("%s: must not hold credentials (use authorization or basicAuth with a file or an environment variable)", field)
		case u.Scheme != "http" && u.Scheme != "https":
			add("%s %q: scheme must be http or https", field, u.Redacted())
		case u.Host == "":
			add("%s %q: host must be set", field, u.Redacted())
		}
	}
	checkURL("prometheus.address", p.Address, true)
	checkURL("prometheus.proxyUrl", p.ProxyURL, false)
	if p.Timeout < 0 {
		add("prometheus.timeout %s: must not be negative", p.Timeout)
	}
	if p.Retries < -1 {
		add("prometheus.retries %d: want -1 (none), 0 (default) or more", p.Retries)
	}
	if p.MaxInFlight < 0 {
		add("prometheus.maxInFlight %d: must not be negative", p.MaxInFlight)
	}
	// oneOf checks that exactly (or, when optional, at most) one secret
	// source is set, and that an environment variable name is one.
	oneOf := func(field string, required bool, file, env string) {
		switch {
		case file != "" && env != "":
			add("%s: give a file or an environment variable, not both", field)
		case file == "" && env == "" && required:
			add("%s: give a file (%sFile) or an environment variable name (%sEnv)", field, field, field)
		}
		if env != "" && !envNameRE.MatchString(env) {
			add("%sEnv %q: not an environment variable name", field, env)
		}
	}
	auths := 0
	if a := p.Authorization; a != nil {
		auths++
		oneOf("prometheus.authorization.credentials", true, a.CredentialsFile, a.CredentialsEnv)
		if strings.EqualFold(a.Type, "basic") {
			add("prometheus.authorization.type: use basicAuth for basic authentication")
		}
	}
	if b := p.BasicAuth; b != nil {
		auths++
		if b.Username != "" && b.UsernameFile != "" {
			add("prometheus.basicAuth: give username or usernameFile, not both")
		}
		oneOf("prometheus.basicAuth.password", true, b.PasswordFile, b.PasswordEnv)
	}
	if o := p.OAuth2; o != nil {
		auths++
		if o.ClientID == "" {
			add("prometheus.oauth2.clientId: required")
		}
		checkURL("prometheus.oauth2.tokenUrl", o.TokenURL, true)
		oneOf("prometheus.oauth2.clientSecret", true, o.ClientSecretFile, o.ClientSecretEnv)
	}
	if auths > 1 {
		add("prometheus: give at most one of authorization, basicAuth and oauth2")
	}
	if t := p.TLS; t != nil && (t.CertFile == "") != (t.KeyFile == "") {
		add("prometheus.tls: give certFile and keyFile together")
	}
	for _, name := range sortedKeys(p.Headers) {
		h := p.Headers[name]
		field := fmt.Sprintf("prometheus.headers[%q]", name)
		n := 0
		for _, v := range []string{h.Value, h.File, h.Env} {
			if v != "" {
				n++
			}
		}
		if n != 1 {
			add("%s: give exactly one of value, file and env", field)
		}
		if h.Env != "" && !envNameRE.MatchString(h.Env) {
			add("%s.env %q: not an environment variable name", field, h.Env)
		}
		if strings.EqualFold(name, "Authorization") || strings.EqualFold(name, "Cookie") || strings.EqualFold(name, "Proxy-Authorization") {
			if h.Value != "" {
				add("%s: a credential header takes file or env, never an inline value", field)
			}
		}
		if http.CanonicalHeaderKey(name) == "" || strings.ContainsAny(name, " :\r\n") {
			add("%s: not a header name", field)
		}
	}
	return errs
}

// client builds the promapi configuration, reading environment variables
// through getenv. Secrets read from the environment stay inside
// config.Secret, which never prints.
func (p *PrometheusConfig) client(getenv func(string) string) (promapi.Config, error) {
	var errs []error
	secret := func(field, name string) config.Secret {
		v := getenv(name)
		if v == "" {
			errs = append(errs, fmt.Errorf("%s: environment variable %s is not set in the controller", field, name))
		}
		return config.Secret(v)
	}
	hc := config.DefaultHTTPClientConfig
	hc.FollowRedirects = *p.FollowRedirects
	hc.EnableHTTP2 = *p.EnableHTTP2
	if a := p.Authorization; a != nil {
		hc.Authorization = &config.Authorization{Type: a.Type, CredentialsFile: a.CredentialsFile}
		if hc.Authorization.Type == "" {
			hc.Authorization.Type = "Bearer"
		}
		if a.CredentialsEnv != "" {
			hc.Authorization.Credentials = secret("prometheus.authorization.credentialsEnv", a.CredentialsEnv)
		}
	}
	if b := p.BasicAuth; b != nil {
		hc.BasicAuth = &config.BasicAuth{Username: b.Username, UsernameFile: b.UsernameFile, PasswordFile: b.PasswordFile}
		if b.PasswordEnv != "" {
			hc.BasicAuth.Password = secret("prometheus.basicAuth.passwordEnv", b.PasswordEnv)
		}
	}
	if o := p.OAuth2; o != nil {
		hc.OAuth2 = &config.OAuth2{ClientID: o.ClientID, ClientSecretFile: o.ClientSecretFile, TokenURL: o.TokenURL, Scopes: o.Scopes, EndpointParams: o.EndpointParams}
		if o.ClientSecretEnv != "" {
			hc.OAuth2.ClientSecret = secret("prometheus.oauth2.clientSecretEnv", o.ClientSecretEnv)
		}
	}
	if t := p.TLS; t != nil {
		hc.TLSConfig = config.TLSConfig{CAFile: t.CAFile, CertFile: t.CertFile, KeyFile: t.KeyFile, ServerName: t.ServerName, InsecureSkipVerify: t.InsecureSkipVerify}
	}
	if p.ProxyURL != "" {
		u, err := url.Parse(p.ProxyURL)
		if err != nil {
			errs = append(errs, errors.New("prometheus.proxyUrl: not a URL"))
		} else {
			hc.ProxyURL = config.URL{URL: u}
		}
	}
	if len(p.Headers) > 0 {
		hs := &config.Headers{Headers: map[string]config.Header{}}
		for name, h := range p.Headers {
			switch {
			case h.Value != "":
				hs.Headers[name] = config.Header{Values: []string{h.Value}}
			case h.File != "":
				hs.Headers[name] = config.Header{Files: []string{h.File}}
			default:
				hs.Headers[name] = config.Header{Secrets: []config.Secret{secret(fmt.Sprintf("prometheus.headers[%q].env", name), h.Env)}}
			}
		}
		hc.HTTPHeaders = hs
	}
	if len(errs) > 0 {
		return promapi.Config{}, &ConfigError{Errs: errs}
	}
	if err := hc.Validate(); err != nil {
		return promapi.Config{}, &ConfigError{Errs: []error{fmt.Errorf("prometheus: %w", err)}}
	}
	return promapi.Config{URL: p.Address, HTTP: hc, Timeout: time.Duration(p.Timeout), Retries: p.Retries}, nil
}

// cacheKey identifies the client a PrometheusConfig builds. It holds names
// of files and environment variables, never their contents.
func (p *PrometheusConfig) cacheKey() string {
	b, _ := json.Marshal(p)
	return string(b)
}

// unknownFields lists every key of v that the struct type t has no field
// for, with its path, and a suggestion when a field is spelled alike.
func unknownFields(v any, t reflect.Type, path string) []error {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	var errs []error
	switch t.Kind() {
	case reflect.Struct:
		obj, ok := v.(map[string]any)
		if !ok {
			return nil // a type error; the decoder reports it
		}
		if t == reflect.TypeFor[model.Duration]() {
			return nil
		}
		fields := map[string]reflect.Type{}
		for i := range t.NumField() {
			f := t.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if name == "" || name == "-" {
				continue
			}
			fields[name] = f.Type
		}
		for _, k := range sortedKeys(obj) {
			ft, ok := fields[k]
			// encoding/json matches keys case-insensitively; a key that
			// only matches that way is a typo here, and reported.
			if !ok {
				errs = append(errs, fmt.Errorf("%s: unknown field%s", joinPath(path, k), suggest(k, fields)))
				continue
			}
			errs = append(errs, unknownFields(obj[k], ft, joinPath(path, k))...)
		}
	case reflect.Map:
		if obj, ok := v.(map[string]any); ok {
			for _, k := range sortedKeys(obj) {
				errs = append(errs, unknownFields(obj[k], t.Elem(), fmt.Sprintf("%s[%q]", path, k))...)
			}
		}
	case reflect.Slice:
		if arr, ok := v.([]any); ok {
			for i, e := range arr {
				errs = append(errs, unknownFields(e, t.Elem(), fmt.Sprintf("%s[%d]", path, i))...)
			}
		}
	}
	return errs
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// suggest names a field spelled like key, ignoring case, '-' and '_'.
func suggest(key string, fields map[string]reflect.Type) string {
	norm := func(s string) string {
		return strings.ToLower(strings.NewReplacer("-", "", "_", "").Replace(s))
	}
	for name := range fields {
		if norm(name) == norm(key) {
			return fmt.Sprintf(" (did you mean %q?)", name)
		}
	}
	names := sortedKeys(fields)
	return fmt.Sprintf(" (known: %s)", strings.Join(names, ", "))
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
