package promapi

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"

	"github.com/phaseguard/phaseguard/promapi/promapitest"
)

// answer is a successful vector answer with one sample at evalTime and the
// given extra top-level fields (`"warnings":[...]`), as JSON.
func answer(extra string) string {
	if extra != "" {
		extra = "," + extra
	}
	return `{"status":"success","data":{"resultType":"vector","result":[
		{"metric":{"phaseguard_part":"bad"},"value":[1767225900,"3"]}]}` + extra + `}`
}

func TestQueryIncomplete(t *testing.T) {
	t.Parallel()
	const thanos = `partial response: fetch series for store Addr: store-gw-1:10901 LabelSets: {cluster=\"eu-1\"}: context deadline exceeded`
	long := strings.Repeat("é", 400) // 800 bytes, cut to 300 at a rune boundary
	tests := []struct {
		name string
		code int
		body string
		// wantErr are substrings of the error; none: the answer is used.
		wantErr []string
		// notErr must not be in the error.
		notErr []string
	}{
		{
			name:    "thanos warning",
			body:    answer(`"warnings":["` + thanos + `"]`),
			wantErr: []string{"incomplete answer: server warnings: ", `"partial response: fetch series for store Addr: store-gw-1:10901 LabelSets: {cluster=\"eu-1\"}: context deadline exceeded"`},
		},
		{
			name:    "promql warning",
			body:    answer(`"warnings":["PromQL warning: encountered a mix of histograms and floats for metric name \"x\""]`),
			wantErr: []string{"server warnings: ", "encountered a mix of histograms and floats"},
		},
		{
			name:    "many warnings are counted, three quoted",
			body:    answer(`"warnings":["w1","w2","w3","w4","w5"]`),
			wantErr: []string{`server warnings: "w1", "w2", "w3" and 2 more`},
			notErr:  []string{"w4"},
		},
		{
			name:    "a long warning is cut",
			body:    answer(`"warnings":["` + long + `"]`),
			wantErr: []string{`"` + strings.Repeat("é", 150) + `…"`},
			notErr:  []string{strings.Repeat("é", 151)},
		},
		{
			name:    "warnings that are not strings",
			body:    answer(`"warnings":{"store":"down"}`),
			wantErr: []string{`server warnings: "{\"store\":\"down\"}"`},
		},
		{name: "infos alone", body: answer(`"infos":["PromQL info: metric might not be a counter, name does not end in _total/_sum/_count/_bucket: \"phase_requests\" (1:20)"]`)},
		{name: "empty warnings", body: answer(`"warnings":[]`)},
		{name: "null warnings", body: answer(`"warnings":null`)},
		{
			name:    "victoriametrics isPartial",
			body:    answer(`"isPartial":true`),
			wantErr: []string{`incomplete answer: partial response, the server marked it "isPartial": true`},
		},
		{
			name:    "isPartial as a string",
			body:    answer(`"isPartial":"true"`),
			wantErr: []string{`partial response, the server marked it "isPartial": "true"`},
		},
		{name: "isPartial false", body: answer(`"isPartial":false`)},
		{name: "isPartial null", body: answer(`"isPartial":null`)},
		{
			name:    "isPartial and warnings",
			body:    answer(`"isPartial":true,"warnings":["vmstorage-2 unavailable"]`),
			wantErr: []string{`"isPartial": true; server warnings: "vmstorage-2 unavailable"`},
		},
		{
			// An error answer stays the server's error, whatever else it
			// carries.
			name:    "error with warnings",
			code:    http.StatusUnprocessableEntity,
			body:    `{"status":"error","errorType":"execution","error":"too many samples","warnings":["partial response"],"isPartial":true}`,
			wantErr: []string{"execution: too many samples"},
			notErr:  []string{"incomplete"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			code := tt.code
			if code == 0 {
				code = http.StatusOK
			}
			url := serve(t, "", func(w http.ResponseWriter, _ *http.Request) { reply(w, code, tt.body) })
			got, err := newClient(t, url, Config{}).Query(t.Context(), "sum(up)", evalTime)
			if len(tt.wantErr) == 0 {
				if err != nil {
					t.Fatalf("Query: %v", err)
				}
				if len(got) != 1 || got[0].Value != 3 {
					t.Errorf("Query = %v, want the one sample", got)
				}
				return
			}
			if err == nil {
				t.Fatalf("Query = %v, want an error", got)
			}
			for _, want := range append(tt.wantErr, `query "sum(up)": `) {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not contain %q", err, want)
				}
			}
			for _, not := range tt.notErr {
				if strings.Contains(err.Error(), not) {
					t.Errorf("error %q contains %q", err, not)
				}
			}
			if tt.code == 0 && !errors.Is(err, ErrIncomplete) {
				t.Errorf("error %v does not wrap ErrIncomplete", err)
			}
		})
	}
}

func TestQueryOtherTime(t *testing.T) {
	t.Parallel()
	// stamp answers two samples, at the times f returns given the
	// requested time, as the server formats them (float seconds).
	stamp := func(f func(requested string) (string, string)) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if err := r.ParseForm(); err != nil {
				t.Errorf("ParseForm: %v", err)
			}
			t1, t2 := f(r.Form.Get("time"))
			reply(w, http.StatusOK, fmt.Sprintf(`{"status":"success","data":{"resultType":"vector","result":[
				{"metric":{"phaseguard_window":"5m"},"value":[%s,"1"]},
				{"metric":{"phaseguard_window":"1m"},"value":[%s,"2"]}]}}`, t1, t2))
		}
	}
	echo := func(req string) (string, string) { return req, req }
	tests := []struct {
		name    string
		at      time.Time
		h       http.HandlerFunc
		wantErr string // empty: the answer is used
	}{
		{name: "at the requested time", at: evalTime, h: stamp(echo)},
		// Sent to the millisecond, and answered at that millisecond.
		{name: "sub-millisecond time", at: evalTime.Add(123456789 * time.Nanosecond), h: stamp(echo)},
		{
			name:    "cached answer for an earlier look",
			at:      evalTime,
			h:       stamp(func(string) (string, string) { return "1767225600", "1767225600" }),
			wantErr: `answer for another evaluation time: sample {phaseguard_window="5m"} is at 2026-01-01T00:00:00Z, requested 2026-01-01T00:05:00Z`,
		},
		{
			name:    "one sample off",
			at:      evalTime,
			h:       stamp(func(req string) (string, string) { return req, "1767225960" }),
			wantErr: `sample {phaseguard_window="1m"} is at 2026-01-01T00:06:00Z, requested 2026-01-01T00:05:00Z`,
		},
		{
			name:    "a millisecond off",
			at:      evalTime,
			h:       stamp(func(req string) (string, string) { return req, "1767225900.001" }),
			wantErr: `is at 2026-01-01T00:05:00.001Z, requested 2026-01-01T00:05:00Z`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			url := serve(t, "", tt.h)
			got, err := newClient(t, url, Config{}).Query(t.Context(), "sum(up)", tt.at)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Query: %v", err)
				}
				want := model.TimeFromUnixNano(tt.at.UnixNano())
				if len(got) != 2 || got[0].Timestamp != want || got[1].Timestamp != want {
					t.Errorf("Query = %v, want two samples at %v", got, want)
				}
				return
			}
			if err == nil {
				t.Fatalf("Query = %v, want an error", got)
			}
			if !strings.Contains(err.Error(), tt.wantErr) || !errors.Is(err, ErrOtherTime) {
				t.Errorf("error %q does not contain %q or does not wrap ErrOtherTime", err, tt.wantErr)
			}
		})
	}
}

// sized answers a successful empty vector padded with spaces to n bytes,
// with a Content-Length header or, with chunked, without one.
func sized(n int, chunked bool) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		body := `{"status":"success","data":{"resultType":"vector","result":[]}}`
		body += strings.Repeat(" ", n-len(body))
		w.Header().Set("Content-Type", "application/json")
		if !chunked {
			w.Header().Set("Content-Length", strconv.Itoa(n))
		}
		w.WriteHeader(http.StatusOK)
		io.WriteString(w, body[:n/2])
		w.(http.Flusher).Flush()
		io.WriteString(w, body[n/2:])
	}
}

func TestQueryResponseTooLarge(t *testing.T) {
	t.Parallel()
	const limit = 1000
	tests := []struct {
		name    string
		h       http.Handler
		limit   int64
		wantErr string // empty: the answer is used
	}{
		{name: "at the limit", h: sized(limit, false), limit: limit},
		{name: "at the limit, chunked", h: sized(limit, true), limit: limit},
		{name: "a byte over, announced", h: sized(limit+1, false), limit: limit, wantErr: "response too large: 1001 bytes announced, over the limit of 1000 bytes"},
		{name: "a byte over, chunked", h: sized(limit+1, true), limit: limit, wantErr: "response too large: more than 1000 bytes"},
		{name: "default limit", h: sized(DefaultMaxResponseBytes, true)},
		{name: "over the default limit", h: sized(DefaultMaxResponseBytes+1, true), wantErr: "response too large: more than 4 MiB"},
		{name: "100 MB", h: &promapitest.Oversized{Size: 100e6}, wantErr: "response too large: more than 4 MiB"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := httptest.NewServer(tt.h)
			t.Cleanup(srv.Close)
			got, err := newClient(t, srv.URL, Config{MaxResponseBytes: tt.limit}).Query(t.Context(), "up", evalTime)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Query: %v", err)
				}
				if got == nil {
					t.Errorf("Query = nil, want an empty vector")
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), `query "up"`) || !errors.Is(err, ErrResponseTooLarge) {
				t.Errorf("Query error = %v, want one wrapping ErrResponseTooLarge, naming the query and containing %q", err, tt.wantErr)
			}
			if o, ok := tt.h.(*promapitest.Oversized); ok {
				// The client stopped reading at the limit: what the server
				// got out is the limit and what the socket buffers hold.
				srv.Close() // waits for the handler
				if _, sent := o.Stats(); sent > 24<<20 {
					t.Errorf("server sent %d bytes before the client stopped reading", sent)
				}
			}
		})
	}
}

func TestQueryErrorAnswerOverLimit(t *testing.T) {
	t.Parallel()
	// An error answer over the limit is cut, and still reported by its
	// status.
	url := serve(t, "", func(w http.ResponseWriter, _ *http.Request) {
		reply(w, http.StatusUnprocessableEntity, `{"status":"error","errorType":"execution","error":"`+strings.Repeat("x", 5000)+`"}`)
	})
	_, err := newClient(t, url, Config{MaxResponseBytes: 1000}).Query(t.Context(), "up", evalTime)
	var apiErr *v1.Error
	if !errors.As(err, &apiErr) || apiErr.Type != v1.ErrClient || !strings.Contains(err.Error(), "client error: 422") {
		t.Fatalf("Query error = %v, want a *v1.Error naming status 422", err)
	}
	if errors.Is(err, ErrResponseTooLarge) || len(apiErr.Detail) != 1000 {
		t.Errorf("error %v with %d bytes of detail, want the status and the body cut to 1000 bytes", err, len(apiErr.Detail))
	}
}

// endless is an io.Reader of zeros that counts the bytes it gave out.
type endless struct{ n int64 }

func (r *endless) Read(p []byte) (int, error) {
	clear(p)
	r.n += int64(len(p))
	return len(p), nil
}

func TestReadAtMost(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		body      int64 // -1: endless
		announced int64 // -1: unknown
		limit     int64
		wantErr   bool
	}{
		{"empty", 0, 0, 10, false},
		{"empty, unknown size", 0, -1, 10, false},
		{"under", 9, 9, 10, false},
		{"at", 10, 10, 10, false},
		{"at, unknown size", 10, -1, 10, false},
		{"over", 11, -1, 10, true},
		{"announced too short", 11, 3, 10, true},
		{"zero limit", 1, -1, 0, true},
		{"endless", -1, -1, 1000, true},
		{"endless, 4 MiB", -1, -1, DefaultMaxResponseBytes, true},
		{"endless, announced small", -1, 10, DefaultMaxResponseBytes, true},
		{"large, under", DefaultMaxResponseBytes - 1, -1, DefaultMaxResponseBytes, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			src := &endless{}
			var r io.Reader = src
			if tt.body >= 0 {
				r = io.LimitReader(src, tt.body)
			}
			got, err := readAtMost(r, tt.announced, tt.limit)
			if tt.wantErr {
				if !errors.Is(err, errOverLimit) || int64(len(got)) != tt.limit {
					t.Errorf("readAtMost = %d bytes, %v; want %d bytes and errOverLimit", len(got), err, tt.limit)
				}
			} else if err != nil || int64(len(got)) != tt.body {
				t.Errorf("readAtMost = %d bytes, %v; want %d bytes", len(got), err, tt.body)
			}
			if int64(cap(got)) > tt.limit+1 || src.n > tt.limit+1 {
				t.Errorf("buffer of %d bytes, %d read from the body; want at most limit+1 = %d", cap(got), src.n, tt.limit+1)
			}
		})
	}
}

func TestQueryAsksForCompleteData(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		// post is how the server answers a POST: client_golang falls back
		// to GET on 405.
		post int
		want string // the method that got the answer
	}{
		{name: "POST", post: http.StatusOK, want: http.MethodPost},
		{name: "GET", post: http.StatusMethodNotAllowed, want: http.MethodGet},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var (
				mu     sync.Mutex
				method string
				inURL  url.Values
				inBody url.Values
			)
			url := serve(t, "", func(w http.ResponseWriter, r *http.Request) {
				if r.Method == http.MethodPost && tt.post != http.StatusOK {
					reply(w, tt.post, `method not allowed`)
					return
				}
				if err := r.ParseForm(); err != nil {
					t.Errorf("ParseForm: %v", err)
				}
				mu.Lock()
				method, inURL, inBody = r.Method, r.URL.Query(), r.PostForm
				mu.Unlock()
				reply(w, http.StatusOK, answer(""))
			})
			if _, err := newClient(t, url, Config{}).Query(t.Context(), "sum(up)", evalTime); err != nil {
				t.Fatalf("Query: %v", err)
			}
			mu.Lock()
			defer mu.Unlock()
			got := inURL
			if method == http.MethodPost {
				got = inBody
				if len(inURL) != 0 {
					t.Errorf("POST URL carries %v, want every parameter in the body", inURL)
				}
			}
			if method != tt.want {
				t.Errorf("answered %s, want %s", method, tt.want)
			}
			for k, want := range map[string]string{"partial_response": "false", "deny_partial_response": "1", "query": "sum(up)", "time": "1767225900"} {
				if v := got[k]; len(v) != 1 || v[0] != want {
					t.Errorf("%s parameter %s = %q, want [%q]", method, k, v, want)
				}
			}
		})
	}
}

func TestQueryRetriesStopAtDeadline(t *testing.T) {
	t.Parallel()
	const timeout = time.Second
	tests := []struct {
		name       string
		delay      time.Duration // before each 503
		retryAfter string
		// wantErr is in the error: the last status when no retry was
		// begun that could not end in time.
		wantErr string
		minHits int32
	}{
		// 0-0.3s, wait 0.25s, 0.55-0.85s; the next wait (0.5s) would end
		// past the deadline: the 503 is returned at 0.85s.
		{name: "slow 503s with backoff", delay: 300 * time.Millisecond, wantErr: "server error: 503", minHits: 2},
		// Retry-After 0: retried at once until the deadline cuts an
		// attempt.
		{name: "503s with Retry-After 0", delay: 40 * time.Millisecond, retryAfter: "0", minHits: 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			hits := new(atomic.Int32)
			url := serve(t, "", func(w http.ResponseWriter, r *http.Request) {
				hits.Add(1)
				io.Copy(io.Discard, r.Body)
				select {
				case <-time.After(tt.delay):
				case <-r.Context().Done():
					return
				}
				if tt.retryAfter != "" {
					w.Header().Set("Retry-After", tt.retryAfter)
				}
				reply(w, http.StatusServiceUnavailable, `overloaded`)
			})
			start := time.Now()
			_, err := newClient(t, url, Config{Timeout: timeout, Retries: 100}).Query(t.Context(), "up", evalTime)
			elapsed := time.Since(start)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Query error = %v, want one containing %q", err, tt.wantErr)
			}
			if elapsed > timeout+150*time.Millisecond {
				t.Errorf("Query took %s with retries, want at most the %s timeout", elapsed, timeout)
			}
			if n := hits.Load(); n < tt.minHits {
				t.Errorf("%d requests, want at least %d (retries)", n, tt.minHits)
			}
		})
	}
}

// TestOversizedIsWellFormed checks the fake: an Oversized answer under the
// limit is one the client accepts, so that only its size is refused.
func TestOversizedIsWellFormed(t *testing.T) {
	t.Parallel()
	o := &promapitest.Oversized{Size: 100_000}
	srv := httptest.NewServer(o)
	t.Cleanup(srv.Close)
	got, err := newClient(t, srv.URL, Config{MaxResponseBytes: 100_000}).Query(t.Context(), "up", evalTime)
	if err != nil {
		t.Fatalf("Query: %v", err)
	}
	if len(got) < 900 {
		t.Errorf("Query = %d samples, want over 900", len(got))
	}
	srv.Close()
	if n, sent := o.Stats(); n != 1 || sent != 100_000 {
		t.Errorf("served %d requests, %d bytes; want 1 of 100000 bytes", n, sent)
	}
}
