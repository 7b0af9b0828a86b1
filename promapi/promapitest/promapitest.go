// Package promapitest serves the Prometheus HTTP API's instant queries
// with the faults real servers and proxies show, for the tests of
// phaseguard's front ends (CLI, Argo Rollouts plugin, GitHub Action).
//
// A Proxy stands in front of a real server (a Prometheus started by
// internal/promtest) and alters its answers the way a Thanos Querier (warnings on a
// partial response), a VictoriaMetrics cluster ("isPartial": true) or a
// caching proxy (an answer for another evaluation time) does; Oversized
// answers with more bytes than any SLI answer needs, when and as fast as
// told. Everything else about an answer stays real.
package promapitest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Edit changes a successful instant query answer, the JSON object
// {"status": "success", "data": {...}, ...} decoded with numbers kept as
// json.Number, before the proxy sends it.
type Edit func(answer map[string]any)

// MarkPartial marks the answer "isPartial": true, as a VictoriaMetrics
// cluster's vmselect does when a vmstorage node is unavailable
// (VictoriaMetrics/VictoriaMetrics#4721).
func MarkPartial(answer map[string]any) { answer["isPartial"] = true }

// Warn adds warnings to the answer, as a Thanos Querier does for a partial
// response under partial_response_strategy=warn.
func Warn(msgs ...string) Edit {
	return func(answer map[string]any) { answer["warnings"] = msgs }
}

// Inform adds infos to the answer, as Prometheus 3 does for an
// info-level annotation ("metric might not be a counter").
func Inform(msgs ...string) Edit {
	return func(answer map[string]any) { answer["infos"] = msgs }
}

// ShiftTime moves every sample's timestamp by d, as a caching proxy that
// answers from an entry for another evaluation time does.
func ShiftTime(d time.Duration) Edit {
	return func(answer map[string]any) {
		data, _ := answer["data"].(map[string]any)
		result, _ := data["result"].([]any)
		for _, s := range result {
			sample, _ := s.(map[string]any)
			value, _ := sample["value"].([]any)
			if len(value) != 2 {
				continue
			}
			if n, ok := value[0].(json.Number); ok {
				if ts, err := n.Float64(); err == nil {
					value[0] = json.Number(strconv.FormatFloat(ts+d.Seconds(), 'f', -1, 64))
				}
			}
		}
	}
}

// Server is a Proxy. It records the parameters of every instant query it
// forwarded.
type Server struct {
	// URL is the base URL to configure as the Prometheus address.
	URL string

	mu     sync.Mutex
	params []url.Values
}

// Params returns the parameters (URL query and form body) of the instant
// queries received so far, in order.
func (s *Server) Params() []url.Values {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]url.Values(nil), s.params...)
}

// Proxy starts a server that forwards every request to upstream, the base
// URL of a real server, and applies edit (if not nil) to each successful
// /api/v1/query answer. It is closed when t ends.
func Proxy(t testing.TB, upstream string, edit Edit) *Server {
	t.Helper()
	target, err := url.Parse(upstream)
	if err != nil {
		t.Fatalf("promapitest: upstream %q: %v", upstream, err)
	}
	s := &Server{}
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.ModifyResponse = func(resp *http.Response) error {
		if edit == nil || resp.StatusCode != http.StatusOK || !strings.HasSuffix(resp.Request.URL.Path, "/api/v1/query") {
			return nil
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return err
		}
		var answer map[string]any
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.UseNumber()
		if err := dec.Decode(&answer); err == nil && answer["status"] == "success" {
			edit(answer)
			if body, err = json.Marshal(answer); err != nil {
				return err
			}
		}
		resp.Body = io.NopCloser(bytes.NewReader(body))
		resp.ContentLength = int64(len(body))
		resp.Header.Set("Content-Length", strconv.Itoa(len(body)))
		resp.Header.Del("Content-Encoding")
		return nil
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/api/v1/query") {
			// Read the form from a copy of the body, which is then sent on.
			body, err := io.ReadAll(r.Body)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			r.Body = io.NopCloser(bytes.NewReader(body))
			p := r.URL.Query()
			if r.Method == http.MethodPost {
				form, _ := url.ParseQuery(string(body))
				for k, v := range form {
					p[k] = append(p[k], v...)
				}
			}
			s.mu.Lock()
			s.params = append(s.params, p)
			s.mu.Unlock()
			// Ask upstream for an uncompressed answer the edit can read.
			r.Header.Del("Accept-Encoding")
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	s.URL = srv.URL
	return s
}

// Oversized answers every instant query with a well-formed vector of Size
// bytes, whose samples carry the requested evaluation time: an answer
// every check but its size accepts. It starts the answer (status and
// headers, no Content-Length) After the request arrived, then sends the
// body at Rate bytes per second, or as fast as the client reads when Rate
// is zero. It stops when the client goes away.
type Oversized struct {
	Size  int64
	After time.Duration
	Rate  int64

	mu       sync.Mutex
	requests int
	sent     int64
}

// Stats returns the number of requests served so far and the bytes sent
// in all their bodies.
func (o *Oversized) Stats() (requests int, sent int64) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.requests, o.sent
}

// oversizedBlock is the number of distinct series an Oversized answer
// repeats: the body is built from one block of them, so that it costs
// neither time nor memory to send.
const oversizedBlock = 1000

// ServeHTTP implements http.Handler.
func (o *Oversized) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	o.mu.Lock()
	o.requests++
	o.mu.Unlock()
	if err := r.ParseForm(); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	ts := r.Form.Get("time")
	if ts == "" {
		ts = strconv.FormatInt(time.Now().Unix(), 10)
	}
	select {
	case <-time.After(o.After):
	case <-r.Context().Done():
		return
	}

	const (
		head = `{"status":"success","data":{"resultType":"vector","result":[`
		tail = `]}}`
	)
	// Samples of one length, each after a comma, so that the body is
	// exactly Size: head, sample 0 without its comma, samples 1..n-1,
	// spaces, tail.
	var block []byte
	for i := range oversizedBlock {
		block = fmt.Appendf(block, `,{"metric":{"__name__":"phase_requests_total","pod":"p-%06d"},"value":[%s,"1"]}`, i, ts)
	}
	per := int64(len(block) / oversizedBlock)
	n := max((o.Size-int64(len(head)+len(tail))+1)/per, 1)
	pad := max(o.Size-int64(len(head)+len(tail))-(n*per-1), 0)

	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	if !o.send(w, r, []byte(head), block[1:per]) {
		return
	}
	for left := (n - 1) * per; left > 0; {
		part := block[:min(left, int64(len(block)))]
		if !o.send(w, r, part) {
			return
		}
		left -= int64(len(part))
	}
	o.send(w, r, bytes.Repeat([]byte(" "), int(pad)), []byte(tail))
}

// send writes parts, paced at o.Rate, and reports whether the client is
// still there.
func (o *Oversized) send(w http.ResponseWriter, r *http.Request, parts ...[]byte) bool {
	for _, p := range parts {
		if o.Rate > 0 {
			select {
			case <-time.After(time.Duration(float64(len(p)) / float64(o.Rate) * float64(time.Second))):
			case <-r.Context().Done():
				return false
			}
		}
		n, err := w.Write(p)
		o.mu.Lock()
		o.sent += int64(n)
		o.mu.Unlock()
		if err != nil {
			return false
		}
	}
	if f, ok := w.(http.Flusher); ok {
		f.Flush()
	}
	return true
}

// ServeOversized starts a server answering every query as o does and
// returns its URL; the server stops when the test ends.
func ServeOversized(t testing.TB, o *Oversized) string {
	srv := httptest.NewServer(o)
	t.Cleanup(srv.Close)
	return srv.URL
}
