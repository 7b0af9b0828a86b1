package promapi

import (
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/common/config"

	"github.com/phaseguard/phaseguard/internal/redact"
	"github.com/phaseguard/phaseguard/promapi/promapitest"
)

// TestEchoedCredentialsRedacted: a server that quotes the request's
// headers back, in every place an answer has text, never makes Query's
// error show a credential, whatever its source: inline, a file, a header,
// or an OAuth2 access token the client was never configured with.
func TestEchoedCredentialsRedacted(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tokenSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"access_token":"oauth-access-7e1f0c2b9d","token_type":"Bearer","expires_in":3600}`)
	}))
	t.Cleanup(tokenSrv.Close)
	tests := []struct {
		name    string
		http    config.HTTPClientConfig
		secrets []string // none may be shown
	}{
		{"bearer inline", config.HTTPClientConfig{Authorization: &config.Authorization{Type: "Bearer", Credentials: "inline-3c9a1f7e"}}, []string{"inline-3c9a1f7e"}},
		{"bearer file", config.HTTPClientConfig{Authorization: &config.Authorization{Type: "Bearer", CredentialsFile: write("tok", "file-5d2e8b4a\n")}}, []string{"file-5d2e8b4a"}},
		{"custom scheme", config.HTTPClientConfig{Authorization: &config.Authorization{Type: "Token", Credentials: `q"uo<te>d\42`}}, []string{`q"uo<te>d\42`, `q\"uo`, `\u003cte`}},
		{"basic password file", config.HTTPClientConfig{BasicAuth: &config.BasicAuth{Username: "alice", PasswordFile: write("pw", "pw-9b8c7d6e")}}, []string{"pw-9b8c7d6e", base64.StdEncoding.EncodeToString([]byte("alice:pw-9b8c7d6e"))}},
		{"header secret, file and value", config.HTTPClientConfig{HTTPHeaders: &config.Headers{Headers: map[string]config.Header{
			"X-Api-Key":     {Secrets: []config.Secret{"hdr-secret-1a2b3c"}},
			"X-Other-Key":   {Files: []string{write("hdr", "hdr-file-4d5e6f")}},
			"X-Plain-Key":   {Values: []string{"plain-7g8h9i"}},
			"X-Scope-OrgID": {Values: []string{"checkout"}}, // a tenant: shown as is
		}}}, []string{"hdr-secret-1a2b3c", "hdr-file-4d5e6f", "plain-7g8h9i"}},
		{"oauth2 access token", config.HTTPClientConfig{OAuth2: &config.OAuth2{ClientID: "id", ClientSecret: "client-secret-0a9b", TokenURL: tokenSrv.URL}}, []string{"oauth-access-7e1f0c2b9d", "client-secret-0a9b"}},
	}
	for _, tt := range tests {
		for _, how := range []string{promapitest.EchoError, promapitest.EchoWarning, promapitest.EchoLabel, promapitest.EchoBody} {
			t.Run(tt.name+"/"+how, func(t *testing.T) {
				t.Parallel()
				set := redact.New()
				c := newClient(t, promapitest.ServeEcho(t, how).URL, Config{HTTP: tt.http, Retries: -1, Redact: set})
				_, err := c.Query(t.Context(), "up", evalTime)
				if err == nil {
					t.Fatal("Query succeeded, want an error")
				}
				msg := fmt.Sprintf("%v | %+v", err, err)
				for _, s := range tt.secrets {
					if strings.Contains(msg, s) {
						t.Errorf("error shows %q: %s", s, msg)
					}
				}
				if how != promapitest.EchoBody && !strings.Contains(msg, redact.Mark) {
					// A plain 502 body is not quoted at all; every other
					// echo is, with the credential marked.
					t.Errorf("error has no %s where the echo was: %s", redact.Mark, msg)
				}
				if set.Has("checkout") {
					t.Error("a tenant header's value was learned as a secret")
				}
				if c.Secrets() != set || !set.Has(tt.secrets[0]) {
					t.Errorf("the caller's set did not learn %q", tt.secrets[0])
				}
			})
		}
	}
}

// TestRedirects: a redirect within the server is followed with the
// credential; one to another port or host is refused, and that server
// never sees a request.
func TestRedirects(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var otherGot []string
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		otherGot = append(otherGot, r.Header.Get("Authorization"))
		mu.Unlock()
		reply(w, http.StatusOK, `{"status":"success","data":{"resultType":"vector","result":[]}}`)
	}))
	t.Cleanup(other.Close)
	otherLocalhost := strings.Replace(other.URL, "127.0.0.1", "localhost", 1)
	var authAtTarget string
	main := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/moved/api/v1/query":
			authAtTarget = r.Header.Get("Authorization")
			reply(w, http.StatusOK, `{"status":"success","data":{"resultType":"vector","result":[]}}`)
		case strings.Contains(r.FormValue("query"), "port"):
			http.Redirect(w, r, other.URL+"/api/v1/query", http.StatusTemporaryRedirect)
		case strings.Contains(r.FormValue("query"), "host"):
			http.Redirect(w, r, otherLocalhost+"/api/v1/query", http.StatusTemporaryRedirect)
		default:
			http.Redirect(w, r, "/moved/api/v1/query", http.StatusTemporaryRedirect)
		}
	}))
	t.Cleanup(main.Close)
	cfg := func() config.HTTPClientConfig {
		c := config.DefaultHTTPClientConfig
		c.Authorization = &config.Authorization{Type: "Bearer", Credentials: "redirect-secret"}
		return c
	}
	if _, err := newClient(t, main.URL, Config{HTTP: cfg()}).Query(t.Context(), "up", evalTime); err != nil {
		t.Fatalf("same-origin redirect: %v", err)
	}
	if authAtTarget != "Bearer redirect-secret" {
		t.Errorf("same-origin redirect target got Authorization %q", authAtTarget)
	}
	for _, to := range []string{"port", "host"} {
		// The query selects the redirect: a test hook, not a real use.
		_, err := newClient(t, main.URL, Config{HTTP: cfg(), Retries: -1}).Query(t.Context(), fmt.Sprintf(`up{to=%q}`, to), evalTime)
		if err == nil || !strings.Contains(err.Error(), "refused: credentials are sent only to") {
			t.Errorf("redirect to another %s: got %v, want it refused", to, err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(otherGot) > 0 {
		t.Errorf("the other server got %d requests (Authorization %q)", len(otherGot), otherGot)
	}
}

// TestOAuth2TokenRedirect: prometheus/common follows a redirect of the
// OAuth2 token request itself; the client secret it carries never
// reaches another port or host (the dialer refuses any address the
// configuration does not name).
func TestOAuth2TokenRedirect(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var got []string
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		got = append(got, string(body)+" "+r.Header.Get("Authorization"))
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"access_token":"stolen-access","token_type":"Bearer","expires_in":3600}`)
	}))
	t.Cleanup(other.Close)
	token := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, other.URL+"/token", http.StatusTemporaryRedirect)
	}))
	t.Cleanup(token.Close)
	prom := promapitest.ServeEcho(t, promapitest.EchoError)
	c := newClient(t, prom.URL, Config{Retries: -1, HTTP: config.HTTPClientConfig{
		OAuth2: &config.OAuth2{ClientID: "id", ClientSecret: "client-secret-redirected", TokenURL: token.URL + "/token"}}})
	_, err := c.Query(t.Context(), "up", evalTime)
	if err == nil || !errors.Is(err, ErrDialRefused) {
		t.Errorf("Query through a redirected token request: %v, want %v", err, ErrDialRefused)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) > 0 {
		t.Errorf("the other server got the token request: %q", got)
	}
}

// TestCheckHTTPConfig: proxy and token URLs holding credentials or
// parameters are refused, naming the field, quoting nothing.
func TestCheckHTTPConfig(t *testing.T) {
	t.Parallel()
	mustURL := func(raw string) config.URL {
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		return config.URL{URL: u}
	}
	tests := []struct {
		name string
		http config.HTTPClientConfig
		want string
	}{
		{"proxy user-info", config.HTTPClientConfig{ProxyConfig: config.ProxyConfig{ProxyURL: mustURL("http://u:hunter2-pw@proxy:3128")}}, "proxy_url: must not hold user-info"},
		{"token query", config.HTTPClientConfig{OAuth2: &config.OAuth2{ClientID: "i", TokenURL: "https://idp/token?client_secret=hunter2-q"}}, "oauth2.token_url: must not have a query"},
		{"token user-info", config.HTTPClientConfig{OAuth2: &config.OAuth2{ClientID: "i", TokenURL: "https://u:hunter2-u@idp/token"}}, "oauth2.token_url: must not hold user-info"},
		{"token unparsable", config.HTTPClientConfig{OAuth2: &config.OAuth2{ClientID: "i", TokenURL: "http://u:hunter2-x@idp:bad port/"}}, "oauth2.token_url: not a URL"},
		{"oauth2 proxy", config.HTTPClientConfig{OAuth2: &config.OAuth2{ClientID: "i", TokenURL: "https://idp/t", ProxyConfig: config.ProxyConfig{ProxyURL: mustURL("http://p:3128/#hunter2-f")}}}, "oauth2.proxy_url: must not have a fragment"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := New(Config{URL: "http://prom:9090", HTTP: tt.http})
			if err == nil || !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "hunter2") {
				t.Errorf("New: %v, want %q without the secret", err, tt.want)
			}
		})
	}
}

// TestNewLeavesConfigAlone: prometheus/common's Validate defaults
// Authorization.Type through the pointer; New validates a copy, so that
// clients built at once from one config (the plugin builds one per
// connection and timeout) never write to it (a data race under -race).
func TestNewLeavesConfigAlone(t *testing.T) {
	t.Parallel()
	auth := &config.Authorization{Type: "  ", Credentials: "tok-1e2d3c4b"}
	cfg := Config{URL: "http://127.0.0.1:9", HTTP: config.HTTPClientConfig{Authorization: auth}}
	for range 2 {
		if _, err := New(cfg); err != nil {
			t.Fatal(err)
		}
	}
	if auth.Type != "  " || cfg.HTTP.Authorization != auth {
		t.Errorf("New changed the caller's config: authorization type %q", auth.Type)
	}
}

// TestOAuth2ConcurrentFirstQueries: an evaluation's queries go out in
// parallel from a new client; prometheus/common's OAuth2 round tripper
// set up its token source on the first request while a concurrent one
// read it (a data race `go test -race` found in rollouts). New serialises
// requests through an OAuth2 round tripper; under -race this fails
// without it (not on every run: the race detector sees what happens).
func TestOAuth2ConcurrentFirstQueries(t *testing.T) {
	t.Parallel()
	token := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"access_token":"access-1","token_type":"Bearer","expires_in":3600}`)
	}))
	t.Cleanup(token.Close)
	var mu sync.Mutex
	auth := map[string]int{}
	prom := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		auth[r.Header.Get("Authorization")]++
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"status":"success","data":{"resultType":"vector","result":[]}}`)
	}))
	t.Cleanup(prom.Close)
	for range 5 {
		c := newClient(t, prom.URL, Config{Retries: -1, HTTP: config.HTTPClientConfig{
			OAuth2: &config.OAuth2{ClientID: "id", ClientSecret: "client-secret-concurrent", TokenURL: token.URL + "/token"}}})
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				if _, err := c.Query(t.Context(), "up", evalTime); err != nil {
					t.Errorf("Query: %v", err)
				}
			})
		}
		wg.Wait()
	}
	mu.Lock()
	defer mu.Unlock()
	if auth["Bearer access-1"] != 40 {
		t.Errorf("Authorization headers %v, want 40 × Bearer access-1", auth)
	}
}
