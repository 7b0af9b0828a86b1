package action

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"

	"github.com/phaseguard/phaseguard/internal/redact"
)

// redirecting starts a server that redirects every request to the same
// path on another server, and that other server, which counts the
// requests carrying an Authorization header.
func redirecting(t *testing.T, tls bool) (from string, withAuth *atomic.Int32) {
	t.Helper()
	withAuth = new(atomic.Int32)
	start := httptest.NewServer
	if tls {
		start = httptest.NewTLSServer
	}
	other := start(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "" {
			withAuth.Add(1)
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{}`))
	}))
	t.Cleanup(other.Close)
	src := start(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, other.URL+r.URL.Path, http.StatusTemporaryRedirect)
	}))
	t.Cleanup(src.Close)
	return src.URL, withAuth
}

// TestLedgerRedirects: the GitHub token never follows a redirect to
// another server (go-github adds it in a transport, under net/http's own
// stripping).
func TestLedgerRedirects(t *testing.T) {
	t.Parallel()
	from, withAuth := redirecting(t, false)
	l := newLedger(&http.Client{}, testToken, mustURL(t, from+"/"), redact.New(), "acme", "shop", testSHA, time.Now)
	_, err := l.create(context.Background(), "canary-10", "d", payload{Tool: "phaseguard"}, false, "")
	if err == nil || !strings.Contains(err.Error(), "refused: credentials are sent only to") {
		t.Errorf("create through a redirect to another server: %v", err)
	}
	if n := withAuth.Load(); n != 0 {
		t.Errorf("the other server got the token %d times", n)
	}
}

// TestKubeRedirects: the Kubernetes client that aborts a Rollout never
// sends its token to another server a redirect names.
func TestKubeRedirects(t *testing.T) {
	t.Parallel()
	from, withAuth := redirecting(t, true)
	kube, err := kubeDynamic(&rest.Config{Host: from, BearerToken: "kube-token-123456", TLSClientConfig: rest.TLSClientConfig{Insecure: true}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = kube.Resource(RolloutsResource).Namespace("shop").Get(context.Background(), "checkout", metav1.GetOptions{})
	if err == nil || !strings.Contains(err.Error(), "refused: credentials are sent only to") {
		t.Errorf("get through a redirect to another server: %v", err)
	}
	if n := withAuth.Load(); n != 0 {
		t.Errorf("the other server got the token %d times", n)
	}
}
