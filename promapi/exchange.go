package promapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"unicode/utf8"

	"github.com/prometheus/client_golang/api"

	"github.com/phaseguard/phaseguard/internal/redact"
)

var (
	// ErrIncomplete is wrapped by the error of a Query whose answer the
	// server marked incomplete: "isPartial": true, or warnings.
	ErrIncomplete = errors.New("incomplete answer")
	// ErrOtherTime is wrapped by the error of a Query whose answer holds a
	// sample for another evaluation time than the one requested.
	ErrOtherTime = errors.New("answer for another evaluation time")
	// ErrResponseTooLarge is wrapped by the error of a Query whose answer
	// exceeded Config.MaxResponseBytes.
	ErrResponseTooLarge = errors.New("response too large")
)

// completeParams ask for a complete answer or an error, never a partial
// answer, on every query:
//   - partial_response=false: Thanos Querier
//     (https://thanos.io/tip/components/query.md/#partial-response);
//   - deny_partial_response=1: VictoriaMetrics cluster's vmselect
//     (https://docs.victoriametrics.com/cluster-victoriametrics/#cluster-availability).
//
// Prometheus, Mimir and Cortex ignore them.
var completeParams = url.Values{
	"partial_response":      {"false"},
	"deny_partial_response": {"1"},
}

// exchanger is the api.Client that client_golang's v1 API sends its
// requests through. It adds completeParams to every request, reads at most
// limit bytes of an answer, and refuses a successful answer the server
// marked incomplete, so that v1 never decodes one.
type exchanger struct {
	api.Client // URL only: Do is exchanger's own.
	hc         *http.Client
	limit      int64
	secrets    *redact.Set // learns what each request sent
}

// Do sends req with ctx and returns the response and its body. The body of
// a successful (2xx) answer over e.limit bytes is an error wrapping
// ErrResponseTooLarge; that of an error answer is cut to e.limit bytes, so
// that client_golang still reports its status. A successful answer marked
// incomplete is an error wrapping ErrIncomplete.
func (e *exchanger) Do(ctx context.Context, req *http.Request) (*http.Response, []byte, error) {
	req, err := askComplete(req.Clone(ctx))
	if err != nil {
		return nil, nil, err
	}
	resp, err := e.hc.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	learnSent(e.secrets, resp.Request)
	ok := resp.StatusCode/100 == 2
	if ok && resp.ContentLength > e.limit {
		return resp, nil, fmt.Errorf("%w: %d bytes announced, over the limit of %s", ErrResponseTooLarge, resp.ContentLength, fmtBytes(e.limit))
	}
	body, err := readAtMost(resp.Body, resp.ContentLength, e.limit)
	switch {
	case ctx.Err() != nil:
		// The read failed because the deadline passed: say so, as
		// client_golang would.
		return resp, nil, ctx.Err()
	case errors.Is(err, errOverLimit) && ok:
		return resp, nil, fmt.Errorf("%w: more than %s", ErrResponseTooLarge, fmtBytes(e.limit))
	case errors.Is(err, errOverLimit):
		// An error answer: its status is what matters, and its body is
		// only kept in (*v1.Error).Detail.
	case err != nil:
		return resp, nil, err
	}
	if ok {
		if err := flagged(body); err != nil {
			err.secrets = e.secrets
			return resp, nil, err
		}
	}
	return resp, body, nil
}

// askComplete adds completeParams to req, which it may modify: to the URL
// of a GET, to the form body of a POST, as client_golang sends its
// parameters.
func askComplete(req *http.Request) (*http.Request, error) {
	switch req.Method {
	case http.MethodGet:
		q := req.URL.Query()
		for k, v := range completeParams {
			q[k] = v
		}
		req.URL.RawQuery = q.Encode()
	case http.MethodPost:
		ct, _, _ := mime.ParseMediaType(req.Header.Get("Content-Type"))
		if ct != "application/x-www-form-urlencoded" {
			return nil, fmt.Errorf("POST with content type %q, want a form", ct)
		}
		var form url.Values
		if req.Body != nil {
			b, err := io.ReadAll(req.Body)
			req.Body.Close()
			if err != nil {
				return nil, err
			}
			if form, err = url.ParseQuery(string(b)); err != nil {
				return nil, err
			}
		} else {
			form = url.Values{}
		}
		for k, v := range completeParams {
			form[k] = v
		}
		enc := form.Encode()
		req.Body = io.NopCloser(strings.NewReader(enc))
		req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader(enc)), nil }
		req.ContentLength = int64(len(enc))
	default:
		return nil, fmt.Errorf("method %s: want GET or POST", req.Method)
	}
	return req, nil
}

// errOverLimit is readAtMost's error for a body longer than its limit.
var errOverLimit = errors.New("over the limit")

// readAtMost reads r to its end and returns what it read, or, once more
// than limit bytes came, those limit bytes and errOverLimit. Its buffer
// never grows past limit+1 bytes. size is the announced length, or -1.
func readAtMost(r io.Reader, size, limit int64) ([]byte, error) {
	n := int64(64 << 10)
	if size >= 0 {
		n = size + 1 // room to see io.EOF without growing
	}
	buf := make([]byte, 0, min(n, limit+1))
	for {
		if len(buf) == cap(buf) { // len <= limit: grow, at most to limit+1
			grown := make([]byte, len(buf), min(max(2*int64(cap(buf)), 512), limit+1))
			copy(grown, buf)
			buf = grown
		}
		m, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+m]
		if int64(len(buf)) > limit {
			return buf[:limit], errOverLimit
		}
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return nil, err
		}
	}
}

// flagError is a successful answer the server marked incomplete.
type flagError struct {
	partial  string   // the isPartial value sent, if not false or null
	warnings []string // the warnings sent
	// secrets redacts each quoted text before it is cut, which could
	// leave a secret's head.
	secrets *redact.Set
}

// maxQuotedWarnings and maxQuotedLen bound what an error quotes of the
// server's warnings: how many, and how many bytes of each.
const (
	maxQuotedWarnings = 3
	maxQuotedLen      = 300
)

func (e *flagError) Error() string {
	var b strings.Builder
	b.WriteString(ErrIncomplete.Error())
	b.WriteString(": ")
	if e.partial != "" {
		fmt.Fprintf(&b, `partial response, the server marked it "isPartial": %s`, cut(e.secrets.String(e.partial)))
		if len(e.warnings) > 0 {
			b.WriteString("; ")
		}
	}
	if len(e.warnings) > 0 {
		fmt.Fprintf(&b, "server warnings: ")
		for i, w := range e.warnings[:min(len(e.warnings), maxQuotedWarnings)] {
			if i > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "%q", cut(e.secrets.String(w)))
		}
		if n := len(e.warnings) - maxQuotedWarnings; n > 0 {
			fmt.Fprintf(&b, " and %d more", n)
		}
	}
	return b.String()
}

func (e *flagError) Unwrap() error { return ErrIncomplete }

// cut shortens s to maxQuotedLen bytes at a rune boundary, marking the cut.
func cut(s string) string {
	if len(s) <= maxQuotedLen {
		return s
	}
	i := maxQuotedLen
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i] + "…"
}

// flagged returns a *flagError when body is a successful answer marked
// incomplete: "isPartial" other than false or null, or any warnings. A body
// that is not such an answer is left to client_golang to report.
func flagged(body []byte) *flagError {
	var a struct {
		Status    string          `json:"status"`
		IsPartial json.RawMessage `json:"isPartial"`
		Warnings  json.RawMessage `json:"warnings"`
	}
	if json.Unmarshal(body, &a) != nil || a.Status != "success" {
		return nil
	}
	e := &flagError{}
	if p := string(a.IsPartial); p != "" && p != "false" && p != "null" {
		e.partial = p
	}
	if len(a.Warnings) > 0 && string(a.Warnings) != "null" {
		if err := json.Unmarshal(a.Warnings, &e.warnings); err != nil {
			e.warnings = []string{string(a.Warnings)} // not a list of strings: quote it as sent
		}
	}
	if e.partial == "" && len(e.warnings) == 0 {
		return nil
	}
	return e
}

// fmtBytes shows n in MiB when it is a whole number of them, else in bytes.
func fmtBytes(n int64) string {
	if n >= 1<<20 && n%(1<<20) == 0 {
		return fmt.Sprintf("%d MiB", n>>20)
	}
	return fmt.Sprintf("%d bytes", n)
}
