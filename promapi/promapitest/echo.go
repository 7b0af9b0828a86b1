package promapitest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"testing"
)

// Echo ways: where an Echo server quotes a request's headers back.
const (
	// EchoError answers 400 with the headers as the API's error message,
	// as a multi-tenant gateway refusing a request does.
	EchoError = "error"
	// EchoWarning answers 200 with an empty vector and the headers as a
	// warning.
	EchoWarning = "warning"
	// EchoLabel answers 200 with one sample whose label value is the
	// headers.
	EchoLabel = "label"
	// EchoBody answers 502 with the headers as a plain-text body, as a
	// proxy's error page might.
	EchoBody = "body"
)

// Echo is a server speaking the Prometheus HTTP API that quotes every
// header of every request back, and records the requests' headers, so a
// test can check that no credential comes out of a front end and that
// only the credentials it was configured with were sent.
type Echo struct {
	URL string

	mu      sync.Mutex
	headers []http.Header
}

// Headers returns a copy of the headers of every request so far.
func (e *Echo) Headers() []http.Header {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]http.Header, len(e.headers))
	for i, h := range e.headers {
		out[i] = h.Clone()
	}
	return out
}

// ServeEcho starts an Echo server on loopback quoting headers the way
// named by how (EchoError, EchoWarning, EchoLabel, EchoBody), closed when
// the test ends.
func ServeEcho(t testing.TB, how string) *Echo {
	t.Helper()
	e := &Echo{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.mu.Lock()
		e.headers = append(e.headers, r.Header.Clone())
		e.mu.Unlock()
		var lines []string
		for name, vs := range r.Header {
			for _, v := range vs {
				lines = append(lines, name+": "+v)
			}
		}
		sort.Strings(lines)
		quoted := strings.Join(lines, "\n")
		q, _ := json.Marshal("refused request with headers " + quoted)
		w.Header().Set("Content-Type", "application/json")
		switch how {
		case EchoError:
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprintf(w, `{"status":"error","errorType":"bad_data","error":%s}`, q)
		case EchoWarning:
			fmt.Fprintf(w, `{"status":"success","warnings":[%s],"data":{"resultType":"vector","result":[]}}`, q)
		case EchoLabel:
			fmt.Fprintf(w, `{"status":"success","data":{"resultType":"vector","result":[{"metric":{"echo":%s},"value":[1,"1"]}]}}`, q)
		default:
			w.Header().Set("Content-Type", "text/plain")
			w.WriteHeader(http.StatusBadGateway)
			fmt.Fprint(w, quoted)
		}
	}))
	t.Cleanup(srv.Close)
	e.URL = srv.URL
	return e
}
