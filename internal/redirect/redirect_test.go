package redirect

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

func TestOrigin(t *testing.T) {
	t.Parallel()
	for raw, want := range map[string]string{
		"https://a.example/x?q=1":   "https://a.example:443",
		"http://a.example:8080/":    "http://a.example:8080",
		"http://[::1]/api":          "http://::1:80",
		"https://user:pw@a.example": "https://a.example:443",
	} {
		req := httptest.NewRequest(http.MethodGet, raw, nil)
		if got := Origin(req.URL); got != want {
			t.Errorf("Origin(%s) = %s, want %s", raw, got, want)
		}
	}
}

// TestSameOrigin: a client adding a credential in its transport follows a
// redirect within its server with it, and never reaches another port of
// the same host.
func TestSameOrigin(t *testing.T) {
	t.Parallel()
	var otherHits atomic.Int32
	other := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { otherHits.Add(1) }))
	defer other.Close()
	var gotAuth atomic.Value
	main := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/away":
			http.Redirect(w, r, other.URL+"/x", http.StatusFound)
		case "/here":
			http.Redirect(w, r, "/target", http.StatusFound)
		case "/loop":
			http.Redirect(w, r, "/loop", http.StatusFound)
		default:
			gotAuth.Store(r.Header.Get("Authorization"))
		}
	}))
	defer main.Close()
	c := Client(&http.Client{Transport: authTransport{}})
	resp, err := c.Get(main.URL + "/here")
	if err != nil {
		t.Fatalf("same-origin redirect: %v", err)
	}
	resp.Body.Close()
	if gotAuth.Load() != "Bearer t0ken-abc" {
		t.Errorf("target got Authorization %v", gotAuth.Load())
	}
	if _, err := c.Get(main.URL + "/away"); err == nil || !strings.Contains(err.Error(), "refused: credentials are sent only to") {
		t.Errorf("redirect to another port: %v", err)
	}
	if _, err := c.Get(main.URL + "/loop"); err == nil || !strings.Contains(err.Error(), "stopped after 10 redirects") {
		t.Errorf("redirect loop: %v", err)
	}
	if n := otherHits.Load(); n != 0 {
		t.Errorf("the other server got %d requests", n)
	}
}

type authTransport struct{}

func (authTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer t0ken-abc")
	return http.DefaultTransport.RoundTrip(r)
}
