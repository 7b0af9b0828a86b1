package rollouts

import (
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"k8s.io/client-go/rest"

	"github.com/phaseguard/phaseguard/internal/redact"
	"github.com/phaseguard/phaseguard/promapi/promapitest"
)

// TestLearnRESTConfig: the Kubernetes client's credentials are redacted
// whatever their form (inline token, token file, password, client key),
// and so is a token the client sends that was not there when it was
// configured (the service-account token rotated).
func TestLearnRESTConfig(t *testing.T) {
	t.Parallel()
	set := redact.New()
	learnRESTConfig(&rest.Config{BearerToken: "inline-token-3b1c", TLSClientConfig: rest.TLSClientConfig{KeyData: []byte("-----BEGIN EC PRIVATE KEY-----\nkey-line-9f8e7d6c5b4a\n-----END EC PRIVATE KEY-----\n")}}, set)
	learnRESTConfig(&rest.Config{Username: "admin", Password: "password-5e6f"}, set)
	for _, s := range []string{"inline-token-3b1c", "key-line-9f8e7d6c5b4a", "password-5e6f", base64.StdEncoding.EncodeToString([]byte("admin:password-5e6f"))} {
		if !set.Has("[" + s + "]") {
			t.Errorf("%s not learned", s)
		}
	}

	var mu sync.Mutex
	var sent []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		sent = append(sent, r.Header.Get("Authorization"))
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"kind":"AnalysisRunList","apiVersion":"argoproj.io/v1alpha1","metadata":{},"items":[]}`))
	}))
	defer srv.Close()
	token := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(token, []byte("first-token-1a2b\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := &rest.Config{Host: srv.URL, BearerTokenFile: token}
	learnRESTConfig(cfg, set)
	if !set.Has("first-token-1a2b") {
		t.Error("the token file's contents were not learned")
	}
	if err := os.WriteFile(token, []byte("rotated-token-3c4d\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	l, err := NewKubernetesAnalysisRuns(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.ListAnalysisRuns(t.Context(), "shop", ""); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(sent) != 1 || sent[0] != "Bearer rotated-token-3c4d" {
		t.Fatalf("the server got Authorization %q, want the rotated token", sent)
	}
	if !set.Has("rotated-token-3c4d") {
		t.Error("the rotated token the client sent was not learned")
	}
}

// TestKubernetesErrorRedacted: an API server (or a proxy in front of it)
// quoting the request's headers back in its error puts the token in the
// lister's error, which stage ordering turns into a measurement; the
// plugin's set knows it.
func TestKubernetesErrorRedacted(t *testing.T) {
	t.Parallel()
	echo := promapitest.ServeEcho(t, promapitest.EchoBody)
	set := redact.New()
	cfg := &rest.Config{Host: echo.URL, BearerToken: "kube-token-8d9e"}
	learnRESTConfig(cfg, set)
	l, err := NewKubernetesAnalysisRuns(cfg)
	if err != nil {
		t.Fatal(err)
	}
	_, err = l.ListAnalysisRuns(t.Context(), "shop", "")
	if err == nil || !strings.Contains(err.Error(), "kube-token-8d9e") {
		t.Fatalf("the echo did not reach the error (so this test shows nothing): %v", err)
	}
	if got := set.String(oneLine(err)); strings.Contains(got, "kube-token-8d9e") {
		t.Errorf("redacted error still shows the token: %s", got)
	}
}

// TestKubernetesRedirects: the controller's credentials never follow a
// redirect from the API server to another server.
func TestKubernetesRedirects(t *testing.T) {
	t.Parallel()
	var withAuth atomic.Int32
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "" {
			withAuth.Add(1)
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"kind":"AnalysisRunList","apiVersion":"argoproj.io/v1alpha1","items":[]}`))
	}))
	t.Cleanup(other.Close)
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, other.URL+r.URL.RequestURI(), http.StatusTemporaryRedirect)
	}))
	t.Cleanup(api.Close)
	l, err := NewKubernetesAnalysisRuns(&rest.Config{Host: api.URL, BearerToken: "kube-token-redirect"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = l.ListAnalysisRuns(t.Context(), "shop", "")
	if err == nil || !strings.Contains(err.Error(), "refused: credentials are sent only to") {
		t.Errorf("list through a redirect to another server: %v", err)
	}
	if n := withAuth.Load(); n != 0 {
		t.Errorf("the other server got the token %d times", n)
	}
}
