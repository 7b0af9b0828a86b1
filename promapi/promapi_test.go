package promapi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/config"
	"github.com/prometheus/common/model"
)

// evalTime is the evaluation time every test queries at.
var evalTime = time.Unix(1767225900, 0).UTC()

// serve starts an httptest server answering the Prometheus HTTP API with h,
// mounted under prefix the way a server behind a reverse proxy is, and
// returns the URL to configure (prefix included).
func serve(t *testing.T, prefix string, h http.HandlerFunc) string {
	t.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc(prefix+"/api/v1/query", h)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv.URL + prefix
}

// reply writes a JSON body with status code.
func reply(w http.ResponseWriter, code int, body string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	io.WriteString(w, body)
}

// newClient returns a Client for url with cfg's other fields.
func newClient(t *testing.T, url string, cfg Config) *Client {
	t.Helper()
	cfg.URL = url
	c, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return c
}

func TestQueryResults(t *testing.T) {
	t.Parallel()
	const q = `sum by (phase) (increase(phase_requests_total[5m]))`
	tests := []struct {
		name    string
		code    int
		body    string
		want    model.Vector
		wantErr string // substring; the query is always checked too
	}{
		{
			name: "vector",
			code: http.StatusOK,
			body: `{"status":"success","data":{"resultType":"vector","result":[
				{"metric":{"phase":"active"},"value":[1767225900,"120"]},
				{"metric":{"phase":"draining"},"value":[1767225900,"1.5"]}]}}`,
			want: model.Vector{
				{Metric: model.Metric{"phase": "active"}, Value: 120, Timestamp: model.TimeFromUnix(1767225900)},
				{Metric: model.Metric{"phase": "draining"}, Value: 1.5, Timestamp: model.TimeFromUnix(1767225900)},
			},
		},
		{
			name: "empty vector is not an error",
			code: http.StatusOK,
			body: `{"status":"success","data":{"resultType":"vector","result":[]}}`,
			want: model.Vector{},
		},
		{
			name: "warnings are an error",
			code: http.StatusOK,
			body: `{"status":"success","warnings":["partial response"],"data":{"resultType":"vector","result":[
				{"metric":{},"value":[1767225900,"3"]}]}}`,
			wantErr: `incomplete answer: server warnings: "partial response"`,
		},
		{
			name:    "scalar",
			code:    http.StatusOK,
			body:    `{"status":"success","data":{"resultType":"scalar","result":[1767225900,"1"]}}`,
			wantErr: "result type scalar, want vector",
		},
		{
			name: "matrix",
			code: http.StatusOK,
			body: `{"status":"success","data":{"resultType":"matrix","result":[
				{"metric":{},"values":[[1767225900,"1"]]}]}}`,
			wantErr: "result type matrix, want vector",
		},
		{
			name:    "string",
			code:    http.StatusOK,
			body:    `{"status":"success","data":{"resultType":"string","result":[1767225900,"x"]}}`,
			wantErr: `bad_response: unexpected value type "string"`, // client_golang does not decode strings
		},
		{
			name:    "garbage body",
			code:    http.StatusOK,
			body:    `<html>502 Bad Gateway</html>`,
			wantErr: "bad_response",
		},
		{
			name:    "bad_data",
			code:    http.StatusBadRequest,
			body:    `{"status":"error","errorType":"bad_data","error":"invalid parameter \"query\": 1:5: parse error"}`,
			wantErr: `bad_data: invalid parameter "query": 1:5: parse error`,
		},
		{
			name:    "execution error",
			code:    http.StatusUnprocessableEntity,
			body:    `{"status":"error","errorType":"execution","error":"query processing would load too many samples into memory"}`,
			wantErr: "execution: query processing would load too many samples",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			url := serve(t, "", func(w http.ResponseWriter, r *http.Request) {
				if err := r.ParseForm(); err != nil {
					t.Errorf("ParseForm: %v", err)
				}
				if got := r.Form.Get("query"); got != q {
					t.Errorf("query param = %q, want %q", got, q)
				}
				if got := r.Form.Get("time"); got != "1767225900" {
					t.Errorf("time param = %q, want 1767225900", got)
				}
				reply(w, tt.code, tt.body)
			})
			got, err := newClient(t, url, Config{}).Query(t.Context(), q, evalTime)
			if tt.wantErr != "" {
				if err == nil {
					t.Fatalf("Query = %v, want error containing %q", got, tt.wantErr)
				}
				for _, want := range []string{tt.wantErr, fmt.Sprintf("%q", q)} {
					if !strings.Contains(err.Error(), want) {
						t.Errorf("error %q does not contain %q", err, want)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("Query: %v", err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Query mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestQueryTypedErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		code     int
		body     string
		wantType v1.ErrorType
	}{
		{"bad_data", http.StatusBadRequest, `{"status":"error","errorType":"bad_data","error":"parse error"}`, v1.ErrBadData},
		{"garbage", http.StatusOK, `not json`, v1.ErrBadResponse},
		{"not found", http.StatusNotFound, `404 page not found`, v1.ErrClient},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			url := serve(t, "", func(w http.ResponseWriter, _ *http.Request) { reply(w, tt.code, tt.body) })
			_, err := newClient(t, url, Config{}).Query(t.Context(), "up", evalTime)
			var apiErr *v1.Error
			if !errors.As(err, &apiErr) {
				t.Fatalf("error %v (%T) does not wrap *v1.Error", err, err)
			}
			if apiErr.Type != tt.wantType {
				t.Errorf("error type = %q, want %q", apiErr.Type, tt.wantType)
			}
		})
	}
}

func TestQueryNaN(t *testing.T) {
	t.Parallel()
	url := serve(t, "", func(w http.ResponseWriter, _ *http.Request) {
		reply(w, http.StatusOK, `{"status":"success","data":{"resultType":"vector","result":[
			{"metric":{},"value":[1767225900,"NaN"]}]}}`)
	})
	got, err := newClient(t, url, Config{}).Query(t.Context(), "a / b", evalTime)
	if err != nil {
		t.Fatalf("Query: %v", err)
	}
	if len(got) != 1 || !math.IsNaN(float64(got[0].Value)) {
		t.Errorf("Query = %v, want one NaN sample", got)
	}
}

func TestQueryPathPrefix(t *testing.T) {
	t.Parallel()
	url := serve(t, "/prometheus", func(w http.ResponseWriter, _ *http.Request) {
		reply(w, http.StatusOK, `{"status":"success","data":{"resultType":"vector","result":[]}}`)
	})
	if _, err := newClient(t, url+"/", Config{}).Query(t.Context(), "up", evalTime); err != nil {
		t.Fatalf("Query: %v", err)
	}
}

// flaky answers with the given failure statuses in turn, then with an empty
// vector, and counts the requests it got.
func flaky(t *testing.T, failures ...int) (url string, hits *atomic.Int32) {
	t.Helper()
	hits = new(atomic.Int32)
	url = serve(t, "", func(w http.ResponseWriter, _ *http.Request) {
		n := int(hits.Add(1))
		if n <= len(failures) {
			reply(w, failures[n-1], `overloaded`)
			return
		}
		reply(w, http.StatusOK, `{"status":"success","data":{"resultType":"vector","result":[]}}`)
	})
	return url, hits
}

func TestQueryRetries(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		failures  []int
		retries   int
		wantHits  int32
		wantErr   string // empty: success
		wantError v1.ErrorType
	}{
		{name: "503 then success", failures: []int{503}, wantHits: 2},
		{name: "500 429 then success", failures: []int{500, 429}, wantHits: 3},
		{name: "persistent 5xx", failures: []int{502, 502, 502, 502}, wantHits: 3, wantErr: "server error: 502", wantError: v1.ErrServer},
		{name: "retries disabled", failures: []int{503}, retries: -1, wantHits: 1, wantErr: "server error: 503", wantError: v1.ErrServer},
		// client_golang retries a POST answered 403, 405 or 501 as a GET.
		{name: "501 is not retried", failures: []int{501, 501}, wantHits: 2, wantErr: "server error: 501", wantError: v1.ErrServer},
		{name: "4xx is not retried", failures: []int{404}, wantHits: 1, wantErr: "client error: 404", wantError: v1.ErrClient},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			url, hits := flaky(t, tt.failures...)
			got, err := newClient(t, url, Config{Retries: tt.retries}).Query(t.Context(), "up", evalTime)
			if diff := cmp.Diff(tt.wantHits, hits.Load()); diff != "" {
				t.Errorf("requests (-want +got):\n%s", diff)
			}
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Query: %v", err)
				}
				if got == nil {
					t.Errorf("Query = nil, want empty vector")
				}
				return
			}
			if err == nil {
				t.Fatalf("Query = %v, want error", got)
			}
			for _, want := range []string{tt.wantErr, `"up"`} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not contain %q", err, want)
				}
			}
			var apiErr *v1.Error
			if !errors.As(err, &apiErr) || apiErr.Type != tt.wantError {
				t.Errorf("error %v does not wrap a *v1.Error of type %q", err, tt.wantError)
			}
		})
	}
}

func TestQueryRetryAfterPastDeadline(t *testing.T) {
	t.Parallel()
	hits := new(atomic.Int32)
	url := serve(t, "", func(w http.ResponseWriter, _ *http.Request) {
		hits.Add(1)
		w.Header().Set("Retry-After", "30")
		reply(w, http.StatusTooManyRequests, `slow down`)
	})
	start := time.Now()
	_, err := newClient(t, url, Config{Timeout: 5 * time.Second}).Query(t.Context(), "up", evalTime)
	if err == nil || !strings.Contains(err.Error(), "429") {
		t.Fatalf("Query error = %v, want one naming status 429", err)
	}
	if elapsed := time.Since(start); elapsed > 2*time.Second {
		t.Errorf("Query took %s, want no wait for a Retry-After past the deadline", elapsed)
	}
	if got := hits.Load(); got != 1 {
		t.Errorf("requests = %d, want 1", got)
	}
}

// stall answers after the client went away, or after 10s. It reads the
// request first: net/http notices a closed connection, and cancels
// r.Context(), only once the body has been read.
func stall(w http.ResponseWriter, r *http.Request) {
	io.Copy(io.Discard, r.Body)
	select {
	case <-r.Context().Done():
	case <-time.After(10 * time.Second):
	}
	reply(w, http.StatusOK, `{"status":"success","data":{"resultType":"vector","result":[]}}`)
}

func TestQueryDeadline(t *testing.T) {
	t.Parallel()
	url := serve(t, "", stall)
	tests := []struct {
		name   string
		cfg    Config
		ctxTTL time.Duration
	}{
		{name: "caller deadline", ctxTTL: 200 * time.Millisecond},
		{name: "config timeout", cfg: Config{Timeout: 200 * time.Millisecond}, ctxTTL: time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(t.Context(), tt.ctxTTL)
			defer cancel()
			start := time.Now()
			_, err := newClient(t, url, tt.cfg).Query(ctx, "slow_query", evalTime)
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("Query error = %v, want context.DeadlineExceeded", err)
			}
			if err != nil && !strings.Contains(err.Error(), `"slow_query"`) {
				t.Errorf("error %q does not name the query", err)
			}
			if elapsed := time.Since(start); elapsed > 2*time.Second {
				t.Errorf("Query took %s, want about 200ms", elapsed)
			}
		})
	}
}

func TestQueryServerTimeoutParam(t *testing.T) {
	t.Parallel()
	var got atomic.Value
	url := serve(t, "", func(w http.ResponseWriter, r *http.Request) {
		r.ParseForm()
		got.Store(r.Form.Get("timeout"))
		reply(w, http.StatusOK, `{"status":"success","data":{"resultType":"vector","result":[]}}`)
	})
	if _, err := newClient(t, url, Config{Timeout: 7500 * time.Millisecond}).Query(t.Context(), "up", evalTime); err != nil {
		t.Fatalf("Query: %v", err)
	}
	// Whole seconds below the 7.5s left: Prometheus rejects "7.49s".
	if diff := cmp.Diff("7s", got.Load()); diff != "" {
		t.Errorf("timeout param (-want +got):\n%s", diff)
	}
}

func TestQueryConnectionRefused(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	ctx, cancel := context.WithTimeout(t.Context(), time.Second)
	defer cancel()
	start := time.Now()
	_, err := newClient(t, url, Config{}).Query(ctx, "up", evalTime)
	if err == nil || !strings.Contains(err.Error(), `query "up"`) || !strings.Contains(err.Error(), "connection refused") {
		t.Errorf("Query error = %v, want a connection error naming the query", err)
	}
	if elapsed := time.Since(start); elapsed > 1500*time.Millisecond {
		t.Errorf("Query took %s, want at most the 1s deadline", elapsed)
	}
}

// headerRecorder answers with an empty vector and keeps the last request's
// headers.
func headerRecorder(t *testing.T) (string, *atomic.Pointer[http.Header]) {
	t.Helper()
	var h atomic.Pointer[http.Header]
	url := serve(t, "", func(w http.ResponseWriter, r *http.Request) {
		hdr := r.Header.Clone()
		h.Store(&hdr)
		reply(w, http.StatusOK, `{"status":"success","data":{"resultType":"vector","result":[]}}`)
	})
	return url, &h
}

func TestQueryHeaders(t *testing.T) {
	t.Parallel()
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte("file-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tenant := &config.Headers{Headers: map[string]config.Header{"X-Scope-OrgID": {Values: []string{"team-a"}}}}
	tests := []struct {
		name string
		http config.HTTPClientConfig
		want map[string]string
	}{
		{
			name: "bearer token and tenant",
			http: config.HTTPClientConfig{BearerToken: "s3cret-token", HTTPHeaders: tenant},
			want: map[string]string{"Authorization": "Bearer s3cret-token", "X-Scope-Orgid": "team-a"},
		},
		{
			name: "bearer token file",
			http: config.HTTPClientConfig{BearerTokenFile: tokenFile},
			want: map[string]string{"Authorization": "Bearer file-token", "X-Scope-Orgid": ""},
		},
		{
			name: "authorization credentials",
			http: config.HTTPClientConfig{Authorization: &config.Authorization{Type: "Bearer", Credentials: "cred"}},
			want: map[string]string{"Authorization": "Bearer cred", "X-Scope-Orgid": ""},
		},
		{
			name: "basic auth",
			http: config.HTTPClientConfig{BasicAuth: &config.BasicAuth{Username: "u", Password: "p"}, HTTPHeaders: tenant},
			want: map[string]string{"Authorization": "Basic dTpw", "X-Scope-Orgid": "team-a"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			url, h := headerRecorder(t)
			if _, err := newClient(t, url, Config{HTTP: tt.http}).Query(t.Context(), "up", evalTime); err != nil {
				t.Fatalf("Query: %v", err)
			}
			got := map[string]string{}
			for k := range tt.want {
				got[k] = h.Load().Get(k)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("headers (-want +got):\n%s", diff)
			}
		})
	}
}

func TestQueryErrorsNeverShowToken(t *testing.T) {
	t.Parallel()
	const token = "tok-9f8e7d6c5b4a"
	// echo puts the request's Authorization header in the body, as a
	// careless proxy might.
	echo := func(code int) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			reply(w, code, "denied: "+r.Header.Get("Authorization"))
		}
	}
	refused := httptest.NewServer(http.NotFoundHandler())
	refusedURL := refused.URL
	refused.Close()
	tests := []struct {
		name string
		url  func(t *testing.T) string
	}{
		{"5xx echoing", func(t *testing.T) string { return serve(t, "", echo(http.StatusInternalServerError)) }},
		{"401 echoing", func(t *testing.T) string { return serve(t, "", echo(http.StatusUnauthorized)) }},
		{"200 garbage echoing", func(t *testing.T) string { return serve(t, "", echo(http.StatusOK)) }},
		{"connection refused", func(*testing.T) string { return refusedURL }},
		{"timeout", func(t *testing.T) string {
			return serve(t, "", stall)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := newClient(t, tt.url(t), Config{
				HTTP:    config.HTTPClientConfig{BearerToken: token},
				Timeout: 300 * time.Millisecond,
			})
			_, err := c.Query(t.Context(), "up", evalTime)
			if err == nil {
				t.Fatal("Query succeeded, want an error")
			}
			if msg := fmt.Sprintf("%v %+v %#v", err, err, err.Error()); strings.Contains(msg, token) {
				t.Errorf("error shows the token: %s", msg)
			}
		})
	}
}

func TestNewValidates(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		cfg     Config
		wantErr string
	}{
		{"no url", Config{}, "url: must be set"},
		{"bad scheme", Config{URL: "ftp://prom:9090"}, `url: scheme must be http or https`},
		{"no scheme", Config{URL: "prom:9090"}, `url: scheme must be http or https`},
		{"no host", Config{URL: "http:///api"}, `url: host must be set`},
		{"unparsable", Config{URL: "http://[::1?token=abc"}, `url: not a URL`},
		{"password not shown", Config{URL: "ftp://u:hunter2@prom"}, `url: scheme must be http or https`},
		{"no host: its path not shown (found by FuzzDecodeConfig)", Config{URL: "a:///:000000@"}, `url: scheme must be http or https`},
		{"no host, http: its path not shown", Config{URL: "http:///:hunter2@h"}, `url: host must be set`},
		{"port out of range", Config{URL: "http://prom:99999/p"}, `url "http://prom:99999/p": port must be 1 to 65535`},
		{"space", Config{URL: "http://prom:9090/a b"}, `url: must not hold spaces or control characters`},
		{"http without a host: nothing shown", Config{URL: "http:///tok-3a9c1e"}, `url: host must be set`},
		{"user-info", Config{URL: "https://u:hunter2@prom/p"}, `url "https://prom/p": must not hold user-info`},
		{"query", Config{URL: "https://prom/p?access_token=hunter2"}, `url "https://prom/p": must not have a query`},
		{"empty query", Config{URL: "https://prom/p?"}, `url "https://prom/p": must not have a query`},
		{"fragment", Config{URL: "https://prom/p#hunter2"}, `url "https://prom/p": must not have a fragment`},
		{"empty fragment", Config{URL: "https://prom/p#"}, `url "https://prom/p": must not have a fragment`},
		{"negative timeout", Config{URL: "http://prom", Timeout: -time.Second}, "timeout -1s: must not be negative"},
		{"negative response limit", Config{URL: "http://prom", MaxResponseBytes: -1}, "max response bytes -1: must not be negative"},
		{"every problem", Config{URL: "prom", Timeout: -time.Second}, "url: scheme must be http or https\ntimeout -1s: must not be negative"},
		{
			"http config",
			Config{URL: "http://prom", HTTP: config.HTTPClientConfig{BearerToken: "a", BearerTokenFile: "/b"}},
			"http: at most one of bearer_token & bearer_token_file must be configured",
		},
		{
			"missing CA file",
			Config{URL: "http://prom", HTTP: config.HTTPClientConfig{TLSConfig: config.TLSConfig{CAFile: "/nonexistent/ca.pem"}}},
			"http: unable to read CA cert: unable to read file /nonexistent/ca.pem",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := New(tt.cfg)
			if err == nil {
				t.Fatalf("New succeeded, want error %q", tt.wantErr)
			}
			if !strings.HasPrefix(err.Error(), tt.wantErr) {
				t.Errorf("New error = %q, want prefix %q", err, tt.wantErr)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("New error = %q shows the secret", err)
			}
		})
	}
}

// TestErrorTextBounded: a server's error text, however long, reaches
// reasons and summaries cut to maxErrorText bytes, its cause kept.
func TestErrorTextBounded(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("é", 100_000)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprintf(w, `{"status":"error","errorType":"bad_data","error":%q}`, long)
	}))
	defer srv.Close()
	c, err := New(Config{URL: srv.URL, Retries: -1})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Query(context.Background(), "up", time.Unix(1767225600, 0))
	var apiErr *v1.Error
	if err == nil || !errors.As(err, &apiErr) {
		t.Fatalf("got %v; want a *v1.Error", err)
	}
	if msg := err.Error(); len(msg) > maxErrorText+200 || !strings.Contains(msg, "more bytes)") || !utf8.ValidString(msg) {
		t.Errorf("error text of %d bytes (valid UTF-8: %v), want it cut near %d", len(msg), utf8.ValidString(msg), maxErrorText)
	}
}
