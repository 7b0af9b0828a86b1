package rollouts

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
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
	// Policy is a built-in preset name, inline policy YAML, or the
	// absolute path of a policy file inside the operator's policy
	// directory (the plugin's --policy-dir; see WithPolicyDir).
	Policy string `json:"policy"`
	// Prometheus is where the SLIs are queried.
	Prometheus PrometheusConfig `json:"prometheus"`
	// Stage is the policy stage this analysis judges. Required in stage
	// mode (it sets the soak); in look mode it sets the soak a hold waits
	// for (the longest stage's when empty) and the soak the metric's count
	// must cover, and turns on stage ordering. The engine's tests do not
	// depend on it: they are anytime-valid, so no looks are counted.
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

// PrometheusConfig says which server the SLIs are queried on, and how.
//
// Where credentials come from is the operator's decision, never a
// template's: a template is written by whoever may create AnalysisRuns,
// and the plugin runs in the controller's pod, with its service account
// token and environment. So a template either names a connection the
// operator defined (Connection: address, credentials, TLS, proxy and
// headers all come from the plugin's connections file), or gives an
// Address with no credentials, or with credential values that Argo
// resolved from the AnalysisRun's own secrets: Authorization.Credentials,
// BasicAuth.Password and the value of a credential header are accepted
// only when the stored template gives them as {{args.NAME}} of an argument
// with valueFrom.secretKeyRef (checked against the AnalysisRun at each
// call, see checkSecretArgs). Every field that would name a file or an
// environment variable of the controller is refused, naming the field.
type PrometheusConfig struct {
	// Connection names a connection of the operator's connections file.
	// With it, the template sets none of Address, Authorization,
	// BasicAuth, OAuth2, TLS, ProxyURL, Headers, FollowRedirects and
	// EnableHTTP2.
	Connection string `json:"connection"`
	// Address is the base URL of a server speaking the Prometheus HTTP
	// API (Prometheus, Thanos, Mimir, Cortex, VictoriaMetrics), with any
	// path prefix; no user-info, query or fragment.
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
	// OAuth2 is refused in templates: its client secret and token URL are
	// the operator's (a connection's oauth2). Kept as a field so that the
	// error says so instead of "unknown field".
	OAuth2 any        `json:"oauth2"`
	TLS    *TLSConfig `json:"tls"`
	// ProxyURL is an HTTP proxy for the queries; no user-info, query or
	// fragment.
	ProxyURL string `json:"proxyUrl"`
	// Headers are extra request headers, e.g. X-Scope-OrgID for Mimir.
	Headers map[string]HeaderConfig `json:"headers"`
	// FollowRedirects and EnableHTTP2 default to true. A redirect to
	// another scheme, host or port is never followed.
	FollowRedirects *bool `json:"followRedirects"`
	EnableHTTP2     *bool `json:"enableHttp2"`
}

// AuthorizationConfig sets the Authorization header: Type (default
// Bearer) and Credentials, given as {{args.NAME}} of an argument with
// valueFrom.secretKeyRef. CredentialsFile and CredentialsEnv are refused.
type AuthorizationConfig struct {
	Type            string `json:"type"`
	Credentials     string `json:"credentials"`
	CredentialsFile string `json:"credentialsFile"`
	CredentialsEnv  string `json:"credentialsEnv"`
}

// BasicAuthConfig sets HTTP basic authentication: Username, and Password
// given as {{args.NAME}} of an argument with valueFrom.secretKeyRef.
// UsernameFile, PasswordFile and PasswordEnv are refused.
type BasicAuthConfig struct {
	Username     string `json:"username"`
	Password     string `json:"password"`
	UsernameFile string `json:"usernameFile"`
	PasswordFile string `json:"passwordFile"`
	PasswordEnv  string `json:"passwordEnv"`
}

// TLSConfig configures TLS to the server. CAFile, CertFile and KeyFile
// are refused in templates (a connection's tls_config has them).
type TLSConfig struct {
	CAFile             string `json:"caFile"`
	CertFile           string `json:"certFile"`
	KeyFile            string `json:"keyFile"`
	ServerName         string `json:"serverName"`
	InsecureSkipVerify bool   `json:"insecureSkipVerify"`
}

// HeaderConfig is one header value. The value of a credential header
// (see credentialHeader) must be {{args.NAME}} of an argument with
// valueFrom.secretKeyRef. File and Env are refused.
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
	if c.Prometheus.Connection != "" {
		return // the connection sets the rest; Validate refuses them here
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
// to a .yaml or .yml file; whether a file is inside the operator's policy
// directory is the plugin's check (Plugin.policyRef), made before the
// file is read.
func checkPolicyRef(ref string) error {
	ref = strings.TrimSpace(ref)
	switch {
	case ref == "":
		return errors.New("policy: required (a preset name such as phase-default, inline policy YAML, or an absolute path to a .yaml file in the operator's policy directory)")
	case isInlinePolicy(ref), policies.IsPreset(ref):
		return nil
	case filepath.IsAbs(ref) && (strings.HasSuffix(ref, ".yaml") || strings.HasSuffix(ref, ".yml")):
		return nil
	case !strings.ContainsAny(ref, "/.\\"):
		return fmt.Errorf("policy %q: unknown preset (known: %s)", ref, strings.Join(policies.PresetNames(), ", "))
	}
	return fmt.Errorf("policy %q: a policy file must be an absolute path ending in .yaml or .yml, inside the operator's policy directory", ref)
}

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

// connectionNameRE is a connection's name: a DNS-1123 label.
var connectionNameRE = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)

// useConnection ends the error of a field a template may not set: where
// credentials come from is the operator's decision.
const useConnection = "credentials, files and environment variables are the operator's: define a connection in the plugin's connections file and set prometheus.connection, or give the credential as {{args.NAME}} of an argument with valueFrom.secretKeyRef"

func (p *PrometheusConfig) validate() []error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if p.Timeout < 0 {
		add("prometheus.timeout %s: must not be negative", p.Timeout)
	}
	if p.Retries < -1 {
		add("prometheus.retries %d: want -1 (none), 0 (default) or more", p.Retries)
	}
	if p.MaxInFlight < 0 {
		add("prometheus.maxInFlight %d: must not be negative", p.MaxInFlight)
	}
	// Fields naming a file or an environment variable of the controller,
	// refused whatever else is set.
	refuse := func(field, value, what string) {
		if value != "" {
			add("%s: names %s of the controller; %s", field, what, useConnection)
		}
	}
	const file, env = "a file", "an environment variable"
	if a := p.Authorization; a != nil {
		refuse("prometheus.authorization.credentialsFile", a.CredentialsFile, file)
		refuse("prometheus.authorization.credentialsEnv", a.CredentialsEnv, env)
	}
	if b := p.BasicAuth; b != nil {
		refuse("prometheus.basicAuth.usernameFile", b.UsernameFile, file)
		refuse("prometheus.basicAuth.passwordFile", b.PasswordFile, file)
		refuse("prometheus.basicAuth.passwordEnv", b.PasswordEnv, env)
	}
	if t := p.TLS; t != nil {
		refuse("prometheus.tls.caFile", t.CAFile, file)
		refuse("prometheus.tls.certFile", t.CertFile, file)
		refuse("prometheus.tls.keyFile", t.KeyFile, file)
	}
	if p.OAuth2 != nil {
		add("prometheus.oauth2: not in templates (its client secret and token URL are the operator's); %s", useConnection)
	}
	for _, name := range sortedKeys(p.Headers) {
		h := p.Headers[name]
		refuse(fmt.Sprintf("prometheus.headers[%q].file", name), h.File, file)
		refuse(fmt.Sprintf("prometheus.headers[%q].env", name), h.Env, env)
	}

	if p.Connection != "" {
		if !connectionNameRE.MatchString(p.Connection) {
			add("prometheus.connection %q: not a connection name (lower-case letters, digits, '-')", p.Connection)
		}
		// The connection sets where and how; a template's own settings
		// would quietly mix with it.
		for _, f := range []struct {
			field string
			set   bool
		}{
			{"address", p.Address != ""}, {"authorization", p.Authorization != nil}, {"basicAuth", p.BasicAuth != nil},
			{"tls", p.TLS != nil}, {"proxyUrl", p.ProxyURL != ""}, {"headers", p.Headers != nil},
			{"followRedirects", p.FollowRedirects != nil}, {"enableHttp2", p.EnableHTTP2 != nil},
		} {
			if f.set {
				add("prometheus.%s: not with prometheus.connection (connection %q sets the address, credentials, TLS, proxy and headers)", f.field, p.Connection)
			}
		}
		return errs
	}

	checkURL := func(field, raw string) {
		if err := promapi.CheckURL(raw); err != nil {
			add("%s: %w", field, err)
		}
	}
	if p.Address == "" {
		add("prometheus.address: required (or prometheus.connection)")
	} else {
		checkURL("prometheus.address", p.Address)
	}
	if p.ProxyURL != "" {
		checkURL("prometheus.proxyUrl", p.ProxyURL)
	}
	auths := 0
	if a := p.Authorization; a != nil {
		auths++
		if a.Credentials == "" && a.CredentialsFile == "" && a.CredentialsEnv == "" {
			add("prometheus.authorization.credentials: required, as {{args.NAME}} of an argument with valueFrom.secretKeyRef")
		}
		if strings.EqualFold(a.Type, "basic") {
			add("prometheus.authorization.type: use basicAuth for basic authentication")
		}
	}
	if b := p.BasicAuth; b != nil {
		auths++
		if b.Username == "" && b.UsernameFile == "" {
			add("prometheus.basicAuth.username: required")
		}
		if b.Password == "" && b.PasswordFile == "" && b.PasswordEnv == "" {
			add("prometheus.basicAuth.password: required, as {{args.NAME}} of an argument with valueFrom.secretKeyRef")
		}
	}
	if auths > 1 {
		add("prometheus: give at most one of authorization and basicAuth")
	}
	for _, name := range sortedKeys(p.Headers) {
		h := p.Headers[name]
		field := fmt.Sprintf("prometheus.headers[%q]", name)
		if h.Value == "" && h.File == "" && h.Env == "" {
			add("%s.value: required", field)
		}
		if http.CanonicalHeaderKey(name) == "" || strings.ContainsAny(name, " :\r\n\t") {
			add("%s: not a header name", field)
		}
	}
	return errs
}

// credentialHeader reports whether a header carries a credential: its
// value must then come from a secret argument. Authorization-like names,
// and any name with a word that says so (X-Api-Key, X-Auth-Token).
func credentialHeader(name string) bool {
	n := strings.ToLower(name)
	for _, w := range []string{"authorization", "cookie", "auth", "token", "secret", "password", "passwd", "key", "session", "credential", "signature"} {
		if strings.Contains(n, w) {
			return true
		}
	}
	return false
}

// credentialField is a field of a template's config that carries a
// credential value: its name, its path in the plugin's JSON and its value
// (as Argo resolved it).
type credentialField struct {
	field string
	path  []string
	value string
}

// credentialFields lists the credential values p sets.
func (p *PrometheusConfig) credentialFields() []credentialField {
	var out []credentialField
	if a := p.Authorization; a != nil && a.Credentials != "" {
		out = append(out, credentialField{"prometheus.authorization.credentials", []string{"prometheus", "authorization", "credentials"}, a.Credentials})
	}
	if b := p.BasicAuth; b != nil && b.Password != "" {
		out = append(out, credentialField{"prometheus.basicAuth.password", []string{"prometheus", "basicAuth", "password"}, b.Password})
	}
	for _, name := range sortedKeys(p.Headers) {
		if h := p.Headers[name]; h.Value != "" && credentialHeader(name) {
			out = append(out, credentialField{fmt.Sprintf("prometheus.headers[%q].value", name), []string{"prometheus", "headers", name, "value"}, h.Value})
		}
	}
	return out
}

// client builds the promapi configuration of a template that names no
// connection. Credential values stay inside config.Secret, which never
// prints; checkSecretArgs has checked where they come from.
func (p *PrometheusConfig) client() promapi.Config {
	hc := config.DefaultHTTPClientConfig
	hc.FollowRedirects = p.FollowRedirects == nil || *p.FollowRedirects
	hc.EnableHTTP2 = p.EnableHTTP2 == nil || *p.EnableHTTP2
	if a := p.Authorization; a != nil {
		hc.Authorization = &config.Authorization{Type: a.Type, Credentials: config.Secret(a.Credentials)}
		if hc.Authorization.Type == "" {
			hc.Authorization.Type = "Bearer"
		}
	}
	if b := p.BasicAuth; b != nil {
		hc.BasicAuth = &config.BasicAuth{Username: b.Username, Password: config.Secret(b.Password)}
	}
	if t := p.TLS; t != nil {
		hc.TLSConfig = config.TLSConfig{ServerName: t.ServerName, InsecureSkipVerify: t.InsecureSkipVerify}
	}
	if p.ProxyURL != "" {
		if u, err := url.Parse(p.ProxyURL); err == nil { // validate checked it
			hc.ProxyURL = config.URL{URL: u}
		}
	}
	if len(p.Headers) > 0 {
		hs := &config.Headers{Headers: map[string]config.Header{}}
		for name, h := range p.Headers {
			if credentialHeader(name) {
				hs.Headers[name] = config.Header{Secrets: []config.Secret{config.Secret(h.Value)}}
			} else {
				hs.Headers[name] = config.Header{Values: []string{h.Value}}
			}
		}
		hc.HTTPHeaders = hs
	}
	return promapi.Config{URL: p.Address, HTTP: hc, Timeout: time.Duration(p.Timeout), Retries: p.Retries}
}

// cacheKey identifies the client a PrometheusConfig builds: a SHA-256 of
// its JSON, which holds credential values resolved from secret arguments,
// so that the key itself holds none.
func (p *PrometheusConfig) cacheKey() string {
	b, _ := json.Marshal(p)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
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
