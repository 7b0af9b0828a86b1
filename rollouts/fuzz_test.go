package rollouts_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"

	"sigs.k8s.io/yaml"

	"github.com/phaseguard/phaseguard/rollouts"
)

// FuzzDecodeConfig feeds plugin configs (the JSON under
// provider.plugin["phaseguard/phaseguard"]) through DecodeConfig. Run it
// with
//
//	go test -run='^$' -fuzz='^FuzzDecodeConfig$' -fuzztime=1000000x -parallel 1 ./rollouts/
//
// or with every other target through scripts/fuzz.sh. DecodeConfig never
// panics and returns a config that validates or a *ConfigError, never both
// or neither; the error's text is valid UTF-8 when the input is; and it
// never quotes a credential the config holds: the value of
// authorization.credentials, basicAuth.password or a header (as a string,
// or as the JSON number or other literal written in its place), or the
// password or query of the address or proxy URL.
func FuzzDecodeConfig(f *testing.F) {
	for _, seed := range seedConfigs(f) {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		if len(raw) > 64<<10 {
			t.Skip()
		}
		cfg, err := rollouts.DecodeConfig(raw)
		if (cfg == nil) == (err == nil) {
			t.Fatalf("DecodeConfig returned config %v and error %v: want exactly one", cfg != nil, err)
		}
		if err == nil {
			if err := cfg.Validate(); err != nil {
				t.Fatalf("a decoded config does not validate: %v", err)
			}
			return
		}
		var ce *rollouts.ConfigError
		if !errors.As(err, &ce) || len(ce.Errs) == 0 {
			t.Fatalf("error %T is not a *ConfigError with problems: %v", err, err)
		}
		msg := err.Error()
		if utf8.Valid(raw) && !utf8.ValidString(msg) {
			t.Errorf("error is not valid UTF-8: %q", msg)
		}
		var generic any
		if json.Unmarshal(raw, &generic) != nil {
			return
		}
		others := strings.Join(strings.Fields(nonSecretText(generic)), " ")
		for _, s := range configSecrets(generic) {
			// A value of a few characters, or one the config also holds
			// elsewhere or the messages say anyway, proves nothing.
			if len(s) < 6 || strings.Contains(others, s) || !strings.Contains(msg, s) || strings.Contains(vocabulary, s) {
				continue
			}
			t.Errorf("the error quotes the credential %q:\n%s", s, msg)
		}
	})
}

// vocabulary is what configuration errors say whatever the config holds:
// a credential that is a part of it is not told apart from the message.
const vocabulary = `config: empty: give at least policy, prometheus.address and canaryHash not JSON unknown field (did you mean known: want got JSON ` +
	`prometheus.authorization.credentials prometheus.basicAuth.password prometheus.headers value required, as {{args.NAME}} of an argument with valueFrom.secretKeyRef ` +
	`prometheus.address prometheus.proxyUrl url: must be set not a URL must not hold user-info must not have a query must not have a fragment ` +
	`scheme must be http or https host must be set must not hold spaces or control characters port must be 1 to 65535 (credentials go in the HTTP settings: authorization, basic auth) phaseguard adds the query parameters ` +
	`string number bool object array null true false`

// configSecrets returns the credential values of a decoded config: the
// text of authorization.credentials, basicAuth.password and every header's
// value (a number or literal as written), and the password and query of
// the address and the proxy URL.
func configSecrets(v any) []string {
	obj, _ := v.(map[string]any)
	prom, _ := lookup(obj, "prometheus").(map[string]any)
	if prom == nil {
		return nil
	}
	var out []string
	add := func(v any) {
		switch v := v.(type) {
		case nil:
		case string:
			out = append(out, v)
		default:
			b, _ := json.Marshal(v)
			out = append(out, string(b))
		}
	}
	if a, ok := lookup(prom, "authorization").(map[string]any); ok {
		add(lookup(a, "credentials"))
	}
	if b, ok := lookup(prom, "basicAuth").(map[string]any); ok {
		add(lookup(b, "password"))
	}
	if hs, ok := lookup(prom, "headers").(map[string]any); ok {
		for _, h := range hs {
			if h, ok := h.(map[string]any); ok {
				add(lookup(h, "value"))
			}
		}
	}
	for _, field := range []string{"address", "proxyUrl"} {
		if u, ok := lookup(prom, field).(string); ok {
			out = append(out, urlSecrets(u)...)
		}
	}
	return out
}

// lookup returns obj's value for key as encoding/json matches it: the
// exact key, or else one that differs only in case.
func lookup(obj map[string]any, key string) any {
	if v, ok := obj[key]; ok {
		return v
	}
	for k, v := range obj {
		if strings.EqualFold(k, key) {
			return v
		}
	}
	return nil
}

// urlSecrets returns what a URL holds after its user name (the password
// of user:password@, whether or not the URL parses) and its query.
func urlSecrets(raw string) []string {
	var out []string
	if i := strings.IndexAny(raw, "?#"); i >= 0 {
		out = append(out, raw[i+1:])
		raw = raw[:i]
	}
	if at := strings.LastIndex(raw, "@"); at >= 0 {
		rest := raw[:at]
		if i := strings.Index(rest, "://"); i >= 0 {
			rest = rest[i+3:]
		} else if i := strings.Index(rest, ":"); i >= 0 {
			rest = rest[i+1:] // http:user:password@host
		}
		if _, pw, ok := strings.Cut(rest, ":"); ok {
			out = append(out, pw)
		}
	}
	return out
}

// nonSecretText joins every key and every value of v but the credentials
// configSecrets returns, so that a credential that is also written
// somewhere else in the config is not mistaken for a leak.
func nonSecretText(v any) string {
	secret := map[string]bool{}
	for _, s := range configSecrets(v) {
		secret[s] = true
	}
	var b strings.Builder
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				b.WriteString(k + " ")
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		case string:
			// A URL around a secret is not one: keep what is left.
			for s := range secret {
				if s != "" {
					v = strings.ReplaceAll(v, s, " ")
				}
			}
			b.WriteString(v + " ")
		default:
			j, _ := json.Marshal(v)
			if !secret[string(j)] {
				b.Write(j)
				b.WriteString(" ")
			}
		}
	}
	walk(v)
	return b.String()
}

// argRE is an argument reference as the controller substitutes it.
var argRE = regexp.MustCompile(`\{\{\s*args\.([-a-zA-Z0-9_]+)\s*\}\}`)

// seedConfigs returns the plugin configs of the examples' templates, as
// written and with their arguments filled, and configs that put
// credentials where an error might quote them.
func seedConfigs(f *testing.F) [][]byte {
	f.Helper()
	files, err := filepath.Glob("examples/*analysistemplate*.yaml")
	if err != nil || len(files) < 2 {
		f.Fatalf("found %d example templates: %v", len(files), err)
	}
	var out [][]byte
	for _, name := range files {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		var tpl struct {
			Spec struct {
				Metrics []struct {
					Provider struct {
						Plugin map[string]json.RawMessage `json:"plugin"`
					} `json:"provider"`
				} `json:"metrics"`
			} `json:"spec"`
		}
		if err := yaml.Unmarshal(data, &tpl); err != nil {
			f.Fatalf("%s: %v", name, err)
		}
		for _, m := range tpl.Spec.Metrics {
			raw := m.Provider.Plugin[rollouts.Name]
			if raw == nil {
				f.Fatalf("%s: a metric without the %s plugin", name, rollouts.Name)
			}
			out = append(out, raw, argRE.ReplaceAllFunc(raw, func(b []byte) []byte {
				return append([]byte("filled-"), argRE.FindSubmatch(b)[1]...)
			}))
		}
	}
	const base = `"policy": "phase-default", "canaryHash": "7f8c9d6b4", `
	for _, s := range []string{
		`{` + base + `"prometheus": {"address": "http://prometheus:9090", "authorization": {"credentials": 982374659823}}}`,
		`{` + base + `"prometheus": {"address": "http://prometheus:9090", "authorization": {"credentials": ["tok-3f9a8b7c"]}}}`,
		`{` + base + `"prometheus": {"address": "http://prometheus:9090", "basicAuth": {"username": "u", "password": true}}}`,
		`{` + base + `"prometheus": {"address": "http://prometheus:9090", "basicAuth": {"username": "u", "password": "pw-77c1d2e3", "passwordEnv": "X"}}}`,
		`{` + base + `"prometheus": {"address": "http://prometheus:9090", "headers": {"X-Api-Key": {"value": 123456789}, "X-Scope-OrgID": {"value": "tenant-1a2b3c"}}}}`,
		`{` + base + `"prometheus": {"address": "http:user:pw-8d7e6f5a@prometheus:9090"}}`,
		`{` + base + `"prometheus": {"address": "ftp://user:pw-8d7e6f5a@prometheus:9090/?access_token=tok-1c2d3e4f"}}`,
		`{` + base + `"prometheus": {"address": "http://prometheus:9090/%zz?access_token=tok-1c2d3e4f", "proxyUrl": "http://u:pw-9a8b7c6d@proxy:3128"}}`,
		`{` + base + `"prometheus": {"connection": "mimir", "authorization": {"credentials": "tok-5e6f7a8b"}, "Headers": {"Authorization": {"value": "Bearer tok-5e6f7a8b"}}}}`,
		`{` + base + `"Prometheus": {"Address": "http://prometheus:9090", "Authorization": {"Credentials": "tok-4b3c2d1e", "credentialsFile": "/var/run/secrets/kubernetes.io/serviceaccount/token"}}}`,
	} {
		if !json.Valid([]byte(s)) {
			f.Fatalf("seed is not JSON: %s", s)
		}
		out = append(out, []byte(s))
	}
	return out
}

// TestConfigSecrets checks the fuzz target's notion of a credential: what
// it must find, so that FuzzDecodeConfig can fail.
func TestConfigSecrets(t *testing.T) {
	t.Parallel()
	var v any
	if err := json.Unmarshal([]byte(`{"prometheus": {"address": "http:u:pw-1@h?q=tok-2", "proxyUrl": "http://u:pw-3@p",
		"Authorization": {"credentials": 12345}, "basicAuth": {"password": "pw-4"}, "headers": {"X": {"value": "v-5"}}}}`), &v); err != nil {
		t.Fatal(err)
	}
	got := strings.Join(configSecrets(v), " ")
	for _, want := range []string{"pw-1", "q=tok-2", "pw-3", "12345", "pw-4", "v-5"} {
		if !strings.Contains(got, want) {
			t.Errorf("configSecrets found %q, not %q", got, want)
		}
	}
	if others := nonSecretText(v); bytes.Contains([]byte(others), []byte("pw-")) || strings.Contains(others, "12345") {
		t.Errorf("nonSecretText holds a credential: %s", others)
	}
}
