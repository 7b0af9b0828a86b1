package rollouts

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/common/config"
	"github.com/prometheus/common/model"
)

func TestDecodeConfigDefaults(t *testing.T) {
	t.Parallel()
	c, err := DecodeConfig([]byte(`{"policy": "phase-default", "prometheus": {"address": "http://prometheus:9090"}, "canaryHash": "7f8c9d6b4"}`))
	if err != nil {
		t.Fatal(err)
	}
	on := true
	want := &Config{
		Policy:        "phase-default",
		Prometheus:    PrometheusConfig{Address: "http://prometheus:9090", MaxInFlight: 32, FollowRedirects: &on, EnableHTTP2: &on},
		CanaryHash:    "7f8c9d6b4",
		Mode:          ModeLook,
		StageOrdering: &on,
		Timeout:       model.Duration(DefaultTimeout),
	}
	if diff := cmp.Diff(want, c); diff != "" {
		t.Errorf("config (-want +got):\n%s", diff)
	}
}

func TestDecodeConfigErrors(t *testing.T) {
	t.Parallel()
	const base = `"policy": "phase-default", "prometheus": {"address": "http://prometheus:9090"}, "canaryHash": "abc"`
	for _, tc := range []struct {
		name string
		json string
		want []string // substrings of the error, all required
	}{
		{"empty", ``, []string{"config: empty"}},
		{"not JSON", `{"policy": `, []string{"not JSON"}},
		{"unknown field", `{` + base + `, "canary": "x"}`, []string{`canary: unknown field (known: `}},
		{"unknown field suggestion", `{` + base + `, "canary_hash": "x"}`, []string{`canary_hash: unknown field (did you mean "canaryHash"?)`}},
		{"case only differs", `{` + base + `, "DryRun": true}`, []string{`DryRun: unknown field (did you mean "dryRun"?)`}},
		{"nested unknown field", `{"policy": "/p.yaml", "prometheus": {"address": "http://p:9090", "bearerToken": "s3cr3t"}, "canaryHash": "abc"}`, []string{`prometheus.bearerToken: unknown field`}},
		{"every unknown field at once", `{` + base + `, "a": 1, "prometheus2": {}}`, []string{"a: unknown field", "prometheus2: unknown field"}},
		{"wrong type", `{` + base + `, "dryRun": "yes"}`, []string{"dryRun: want bool"}},
		{"bad duration", `{` + base + `, "timeout": "soon"}`, []string{"soon"}},
		{"unknown preset", `{` + strings.Replace(base, "phase-default", "phase-defualt", 1) + `}`, []string{`policy "phase-defualt": unknown preset (known: `, "phase-default"}},
		{"policy file not yaml", `{` + strings.Replace(base, "phase-default", "/var/run/secrets/kubernetes.io/serviceaccount/token", 1) + `}`, []string{"a policy file must be an absolute path ending in .yaml or .yml"}},
		{"policy file relative", `{` + strings.Replace(base, "phase-default", "policies/p.yaml", 1) + `}`, []string{"must be an absolute path"}},
		{"no policy", `{"prometheus": {"address": "http://p:9090"}}`, []string{"policy: required"}},
		{"credentials in address", `{"policy": "/p.yaml", "prometheus": {"address": "http://user:s3cr3t@p:9090"}}`, []string{"prometheus.address: url \"http://p:9090\": must not hold user-info"}},
		{"query in address", `{"policy": "/p.yaml", "prometheus": {"address": "https://p:9090/prom?access_token=s3cr3t"}}`, []string{"prometheus.address: url \"https://p:9090/prom\": must not have a query"}},
		{"fragment in address", `{"policy": "/p.yaml", "prometheus": {"address": "https://p:9090/#s3cr3t"}}`, []string{"prometheus.address: url \"https://p:9090/\": must not have a fragment"}},
		{"query in proxy", `{"policy": "/p.yaml", "prometheus": {"address": "https://p:9090", "proxyUrl": "http://proxy:3128?token=s3cr3t"}}`, []string{"prometheus.proxyUrl: url \"http://proxy:3128\": must not have a query"}},
		{"user-info in proxy", `{"policy": "/p.yaml", "prometheus": {"address": "https://p:9090", "proxyUrl": "http://u:s3cr3t@proxy:3128"}}`, []string{"prometheus.proxyUrl: url \"http://proxy:3128\": must not hold user-info"}},
		{"address scheme", `{"policy": "/p.yaml", "prometheus": {"address": "ftp://p"}}`, []string{"scheme must be http or https"}},
		{"mode", `{` + base + `, "mode": "forever"}`, []string{`mode "forever": want "look" or "stage"`}},
		{"stage mode needs stage", `{` + base + `, "mode": "stage"}`, []string{"stage: required in mode \"stage\""}},
		{"onQueryError", `{` + base + `, "onQueryError": "pass"}`, []string{`onQueryError "pass": want hold or fail`}},
		{"credential needs a value", `{"policy": "/p.yaml", "prometheus": {"address": "http://p:9090", "authorization": {}}, "canaryHash": "abc"}`, []string{"prometheus.authorization.credentials: required, as {{args.NAME}}"}},
		{"password needs a value", `{"policy": "/p.yaml", "prometheus": {"address": "http://p:9090", "basicAuth": {"username": "u"}}}`, []string{"prometheus.basicAuth.password: required"}},
		{"header needs a value", `{"policy": "/p.yaml", "prometheus": {"address": "http://p:9090", "headers": {"X-Scope-OrgID": {}}}}`, []string{`prometheus.headers["X-Scope-OrgID"].value: required`}},
		{"two auths", `{"policy": "/p.yaml", "prometheus": {"address": "http://p:9090", "authorization": {"credentials": "{{args.t}}"}, "basicAuth": {"username": "u", "password": "{{args.p}}"}}}`, []string{"at most one of authorization and basicAuth"}},
		{"no address", `{"policy": "/p.yaml"}`, []string{"prometheus.address: required (or prometheus.connection)"}},
		{"connection name", `{"policy": "/p.yaml", "prometheus": {"connection": "Mimir_1"}}`, []string{`prometheus.connection "Mimir_1": not a connection name`}},
		{"connection and address", `{"policy": "/p.yaml", "prometheus": {"connection": "mimir", "address": "http://p:9090"}}`, []string{`prometheus.address: not with prometheus.connection (connection "mimir" sets`}},
		{"connection and the rest", `{"policy": "/p.yaml", "prometheus": {"connection": "mimir", "authorization": {"credentials": "x"}, "basicAuth": {}, "tls": {}, "proxyUrl": "http://p", "headers": {}, "followRedirects": true, "enableHttp2": false}}`,
			[]string{"prometheus.authorization: not with prometheus.connection", "prometheus.basicAuth: not with", "prometheus.tls: not with", "prometheus.proxyUrl: not with", "prometheus.headers: not with", "prometheus.followRedirects: not with", "prometheus.enableHttp2: not with"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := DecodeConfig([]byte(tc.json))
			if err == nil {
				t.Fatal("decoded without error")
			}
			var ce *ConfigError
			if !errors.As(err, &ce) {
				t.Errorf("error is %T, want *ConfigError", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\ndoes not contain %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "s3cr3t") {
				t.Errorf("error %q repeats a secret", err)
			}
		})
	}
}

// TestTemplateRefusesControllerFiles: every field of a template that
// would name a file or an environment variable of the controller is
// refused, naming the field and pointing to connections, without quoting
// the file or the variable.
func TestTemplateRefusesControllerFiles(t *testing.T) {
	t.Parallel()
	const token = "/var/run/secrets/kubernetes.io/serviceaccount/token"
	for _, tc := range []struct{ field, prometheus string }{
		{"prometheus.authorization.credentialsFile", `"authorization": {"credentialsFile": "` + token + `"}`},
		{"prometheus.authorization.credentialsEnv", `"authorization": {"credentialsEnv": "AWS_SECRET_ACCESS_KEY"}`},
		{"prometheus.basicAuth.usernameFile", `"basicAuth": {"usernameFile": "` + token + `", "password": "{{args.p}}"}`},
		{"prometheus.basicAuth.passwordFile", `"basicAuth": {"username": "u", "passwordFile": "` + token + `"}`},
		{"prometheus.basicAuth.passwordEnv", `"basicAuth": {"username": "u", "passwordEnv": "AWS_SECRET_ACCESS_KEY"}`},
		{"prometheus.tls.caFile", `"tls": {"caFile": "` + token + `"}`},
		{"prometheus.tls.certFile", `"tls": {"certFile": "` + token + `", "keyFile": "/etc/k"}`},
		{"prometheus.tls.keyFile", `"tls": {"certFile": "/etc/c", "keyFile": "` + token + `"}`},
		{`prometheus.headers["Authorization"].file`, `"headers": {"Authorization": {"file": "` + token + `"}}`},
		{`prometheus.headers["X-Scope-OrgID"].env`, `"headers": {"X-Scope-OrgID": {"env": "AWS_SECRET_ACCESS_KEY"}}`},
		{"prometheus.oauth2", `"oauth2": {"clientId": "c", "clientSecretFile": "` + token + `", "tokenUrl": "https://attacker.example/token"}`},
		{"prometheus.oauth2", `"oauth2": {"clientId": "c", "clientSecretEnv": "AWS_SECRET_ACCESS_KEY", "tokenUrl": "https://attacker.example/token"}`},
	} {
		for _, where := range []string{`"address": "https://attacker.example"`, `"connection": "mimir"`} {
			t.Run(tc.field+" "+where, func(t *testing.T) {
				t.Parallel()
				_, err := DecodeConfig([]byte(`{"policy": "phase-default", "canaryHash": "abc", "prometheus": {` + where + `, ` + tc.prometheus + `}}`))
				if err == nil {
					t.Fatal("accepted")
				}
				if !strings.Contains(err.Error(), tc.field+": ") || !strings.Contains(err.Error(), "define a connection in the plugin's connections file") {
					t.Errorf("error %q does not name %s and say to define a connection", err, tc.field)
				}
				if strings.Contains(err.Error(), token) || strings.Contains(err.Error(), "AWS_SECRET_ACCESS_KEY") {
					t.Errorf("error %q quotes the file or variable", err)
				}
			})
		}
	}
}

func TestPrometheusClient(t *testing.T) {
	t.Parallel()
	c, err := DecodeConfig([]byte(`{"policy": "phase-default", "canaryHash": "abc", "prometheus": {
		"address": "https://mimir.example:443/prometheus", "timeout": "5s", "retries": -1,
		"authorization": {"credentials": "tok-123"},
		"tls": {"serverName": "mimir"},
		"headers": {"X-Scope-OrgID": {"value": "tenant-1"}, "X-Api-Key": {"value": "key-456"}}}}`))
	if err != nil {
		t.Fatal(err)
	}
	pc := c.Prometheus.client()
	if pc.URL != "https://mimir.example:443/prometheus" || pc.Timeout != 5*time.Second || pc.Retries != -1 {
		t.Errorf("client config = %s %s %d", pc.URL, pc.Timeout, pc.Retries)
	}
	if pc.HTTP.Authorization == nil || pc.HTTP.Authorization.Type != "Bearer" || pc.HTTP.Authorization.Credentials != config.Secret("tok-123") {
		t.Errorf("authorization = %+v", pc.HTTP.Authorization)
	}
	// A credential header's value is a Secret (never printed), another
	// header's a plain value.
	if got := pc.HTTP.HTTPHeaders.Headers["X-Api-Key"]; len(got.Secrets) != 1 || got.Secrets[0] != "key-456" || len(got.Values) != 0 {
		t.Errorf("X-Api-Key = %+v", got)
	}
	if got := pc.HTTP.HTTPHeaders.Headers["X-Scope-OrgID"]; len(got.Values) != 1 || got.Values[0] != "tenant-1" {
		t.Errorf("X-Scope-OrgID = %+v", got)
	}
	if pc.HTTP.TLSConfig.ServerName != "mimir" || !pc.HTTP.FollowRedirects || !pc.HTTP.EnableHTTP2 {
		t.Errorf("tls = %+v, redirects %t, http2 %t", pc.HTTP.TLSConfig, pc.HTTP.FollowRedirects, pc.HTTP.EnableHTTP2)
	}
	// The cache key tells credentials apart without holding them.
	key := c.Prometheus.cacheKey()
	if strings.Contains(key, "tok-123") || strings.Contains(key, "key-456") {
		t.Errorf("cache key holds a secret: %s", key)
	}
	other := c.Prometheus
	other.Authorization = &AuthorizationConfig{Credentials: "tok-789"}
	if other.cacheKey() == key {
		t.Error("two credentials share a cache key")
	}
	fields := c.Prometheus.credentialFields()
	var names []string
	for _, f := range fields {
		names = append(names, f.field)
	}
	if diff := cmp.Diff([]string{"prometheus.authorization.credentials", `prometheus.headers["X-Api-Key"].value`}, names); diff != "" {
		t.Errorf("credential fields (-want +got):\n%s", diff)
	}
}

func TestCredentialHeader(t *testing.T) {
	t.Parallel()
	for name, want := range map[string]bool{
		"Authorization": true, "proxy-authorization": true, "Cookie": true, "X-Api-Key": true, "X-Auth-Token": true,
		"X-Scope-OrgID": false, "X-Grafana-Org-Id": false, "Accept": false,
	} {
		if got := credentialHeader(name); got != want {
			t.Errorf("credentialHeader(%q) = %t, want %t", name, got, want)
		}
	}
}
