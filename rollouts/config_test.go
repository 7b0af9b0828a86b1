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
		{"no address", `{"policy": "/p.yaml"}`, []string{"prometheus.address: required"}},
		{"credentials in address", `{"policy": "/p.yaml", "prometheus": {"address": "http://user:s3cr3t@p:9090"}}`, []string{"prometheus.address: must not hold credentials"}},
		{"address scheme", `{"policy": "/p.yaml", "prometheus": {"address": "ftp://p"}}`, []string{"scheme must be http or https"}},
		{"mode", `{` + base + `, "mode": "forever"}`, []string{`mode "forever": want "look" or "stage"`}},
		{"stage mode needs stage", `{` + base + `, "mode": "stage"}`, []string{"stage: required in mode \"stage\""}},
		{"onQueryError", `{` + base + `, "onQueryError": "pass"}`, []string{`onQueryError "pass": want hold or fail`}},
		{"secret needs a source", `{"policy": "/p.yaml", "prometheus": {"address": "http://p:9090", "authorization": {}}, "canaryHash": "abc"}`, []string{"prometheus.authorization.credentials: give a file"}},
		{"secret two sources", `{"policy": "/p.yaml", "prometheus": {"address": "http://p:9090", "basicAuth": {"username": "u", "passwordFile": "/f", "passwordEnv": "P"}}}`, []string{"prometheus.basicAuth.password: give a file or an environment variable, not both"}},
		{"env name", `{"policy": "/p.yaml", "prometheus": {"address": "http://p:9090", "authorization": {"credentialsEnv": "not a name"}}}`, []string{`credentialsEnv "not a name": not an environment variable name`}},
		{"inline credential header", `{"policy": "/p.yaml", "prometheus": {"address": "http://p:9090", "headers": {"Authorization": {"value": "Bearer s3cr3t"}}}}`, []string{"a credential header takes file or env, never an inline value"}},
		{"header needs one source", `{"policy": "/p.yaml", "prometheus": {"address": "http://p:9090", "headers": {"X-Scope-OrgID": {"value": "a", "env": "B"}}}}`, []string{`prometheus.headers["X-Scope-OrgID"]: give exactly one of value, file and env`}},
		{"two auths", `{"policy": "/p.yaml", "prometheus": {"address": "http://p:9090", "authorization": {"credentialsFile": "/t"}, "basicAuth": {"username": "u", "passwordFile": "/p"}}}`, []string{"at most one of authorization, basicAuth and oauth2"}},
		{"tls half", `{"policy": "/p.yaml", "prometheus": {"address": "http://p:9090", "tls": {"certFile": "/c"}}}`, []string{"certFile and keyFile together"}},
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

func TestPrometheusClientSecrets(t *testing.T) {
	t.Parallel()
	c, err := DecodeConfig([]byte(`{"policy": "phase-default", "canaryHash": "abc", "prometheus": {
		"address": "https://mimir.example:443/prometheus", "timeout": "5s", "retries": -1,
		"authorization": {"credentialsEnv": "PROM_TOKEN"},
		"tls": {"caFile": "/etc/ca.pem", "serverName": "mimir"},
		"headers": {"X-Scope-OrgID": {"value": "tenant-1"}, "X-Api-Key": {"env": "API_KEY"}, "X-From-File": {"file": "/etc/h"}}}}`))
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"PROM_TOKEN": "tok-123", "API_KEY": "key-456"}
	pc, err := c.Prometheus.client(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if pc.URL != "https://mimir.example:443/prometheus" || pc.Timeout != 5*time.Second || pc.Retries != -1 {
		t.Errorf("client config = %s %s %d", pc.URL, pc.Timeout, pc.Retries)
	}
	if pc.HTTP.Authorization == nil || pc.HTTP.Authorization.Type != "Bearer" || pc.HTTP.Authorization.Credentials != config.Secret("tok-123") {
		t.Errorf("authorization = %+v", pc.HTTP.Authorization)
	}
	if got := pc.HTTP.HTTPHeaders.Headers["X-Api-Key"].Secrets; len(got) != 1 || got[0] != "key-456" {
		t.Errorf("X-Api-Key secrets = %v", got)
	}
	if pc.HTTP.TLSConfig.CAFile != "/etc/ca.pem" || pc.HTTP.TLSConfig.ServerName != "mimir" {
		t.Errorf("tls = %+v", pc.HTTP.TLSConfig)
	}
	// The cache key names where secrets come from, never what they are.
	if key := c.Prometheus.cacheKey(); strings.Contains(key, "tok-123") || strings.Contains(key, "key-456") {
		t.Errorf("cache key holds a secret: %s", key)
	}

	// An environment variable that is not set is a config error naming it.
	_, err = c.Prometheus.client(func(string) string { return "" })
	if err == nil || !strings.Contains(err.Error(), "environment variable PROM_TOKEN is not set") {
		t.Errorf("unset variable: error %v", err)
	}
}
