// Package promapi runs PromQL instant queries against a live server that
// speaks the Prometheus HTTP API: Prometheus itself, Thanos, Mimir, Cortex or
// VictoriaMetrics.
//
// It follows the instant query endpoint described at
// https://prometheus.io/docs/prometheus/latest/querying/api/#instant-queries
// through client_golang's api/prometheus/v1 client, with authentication, TLS
// and extra headers configured as in a Prometheus scrape config
// (github.com/prometheus/common/config), and retries of transient failures
// bounded by the caller's deadline.
//
// An answer is used only when it is whole and answers the question asked:
// every query asks for complete data (Thanos' partial_response=false,
// VictoriaMetrics' deny_partial_response=1); an answer the server still
// marks incomplete (warnings, "isPartial": true), whose samples carry
// another evaluation time than the one requested, or whose body exceeds
// Config.MaxResponseBytes is an error, never a result.
package promapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/hashicorp/go-retryablehttp"
	"github.com/prometheus/client_golang/api"
	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/config"
	"github.com/prometheus/common/model"

	"github.com/phaseguard/phaseguard/internal/redact"
	"github.com/phaseguard/phaseguard/internal/redirect"
)

const (
	// DefaultTimeout bounds one Query call, retries included, when
	// Config.Timeout is zero.
	DefaultTimeout = 10 * time.Second
	// DefaultRetries is the number of retries after the first attempt when
	// Config.Retries is zero.
	DefaultRetries = 2
	// DefaultMaxResponseBytes bounds the body of one answer when
	// Config.MaxResponseBytes is zero: 4 MiB. phaseguard's batched SLI
	// answers are a few KB (one sample per SLI part and window); an answer
	// a thousand times larger selects series the query did not mean to.
	DefaultMaxResponseBytes = 4 << 20

	// retryWaitMin and retryWaitMax bound the exponential backoff between
	// attempts. A Retry-After header (429, 503) takes precedence, and a
	// retry that would end past the deadline is not made.
	retryWaitMin = 250 * time.Millisecond
	retryWaitMax = 2 * time.Second
)

// Config configures a Client.
type Config struct {
	// URL is the base URL of the server, with any path prefix it is served
	// under: "http://prometheus:9090", "https://mimir.example.com/prometheus".
	URL string
	// HTTP configures authentication (bearer token or token file, basic
	// auth, OAuth2), TLS, proxy and extra headers such as X-Scope-OrgID
	// (http_headers), exactly as in a Prometheus scrape config. Redirects are
	// followed only when HTTP.FollowRedirects is set: start from
	// config.DefaultHTTPClientConfig (or decode YAML, which does) to get
	// Prometheus' defaults.
	HTTP config.HTTPClientConfig
	// Timeout bounds one Query call, retries included. Zero means
	// DefaultTimeout. A shorter deadline on the caller's context wins.
	Timeout time.Duration
	// Retries is the number of retries after a failed first attempt, for
	// connection errors, 429 and 5xx other than 501. Zero means
	// DefaultRetries; a negative value disables retries.
	Retries int
	// MaxResponseBytes bounds the body of one answer, in bytes, after any
	// Content-Encoding is undone. A larger successful answer is an error
	// wrapping ErrResponseTooLarge, found without reading more than this
	// many bytes; a larger error answer is cut to this many bytes. Zero
	// means DefaultMaxResponseBytes; negative is invalid: answers are
	// always bounded.
	MaxResponseBytes int64
	// Redact receives every credential the client is configured with
	// (inline, and the contents of credential files, read at New) and
	// every header value it sends (learned from each request as sent, so
	// an OAuth2 access token or a rotated file too), and redacts every
	// error Query returns. Give the set the caller redacts its own output
	// with; nil means a set of the client's own (Client.Secrets).
	Redact *redact.Set
}

// validate reports every problem with c at once, each naming its field.
func (c Config) validate() error {
	var errs []error
	errs = append(errs, CheckURL(c.URL))
	if c.Timeout < 0 {
		errs = append(errs, fmt.Errorf("timeout %s: must not be negative", c.Timeout))
	}
	if c.MaxResponseBytes < 0 {
		errs = append(errs, fmt.Errorf("max response bytes %d: must not be negative", c.MaxResponseBytes))
	}
	return errors.Join(errs...)
}

// CheckURL checks a server's base URL: http or https, a host, and no
// user-info, query or fragment, which would carry credentials or
// parameters into every request and every error that quotes a URL
// (credentials go in Config.HTTP). Its errors begin "url" and never quote
// the user-info, query or fragment; a front end prefixes its own field
// name (--prometheus, prometheus.address, prometheus-url).
func CheckURL(raw string) error {
	if raw == "" {
		return errors.New("url: must be set")
	}
	if strings.ContainsFunc(raw, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) {
		return errors.New("url: must not hold spaces or control characters")
	}
	u, err := url.Parse(raw)
	if err != nil {
		// url's errors quote the whole URL, query and all.
		return errors.New("url: not a URL")
	}
	shown := url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path}
	if !strings.Contains(u.Opaque, "@") { // http:user:password@host
		shown.Opaque = u.Opaque
	}
	switch {
	// A URL that is not http(s) with a host quotes nothing: what it holds
	// is no address, and may be a credential ("a:///:token@").
	case u.Scheme != "http" && u.Scheme != "https":
		return errors.New("url: scheme must be http or https")
	case u.Host == "":
		return errors.New("url: host must be set")
	case u.User != nil:
		return fmt.Errorf("url %q: must not hold user-info (credentials go in the HTTP settings: authorization, basic auth)", shown.String())
	case u.RawQuery != "" || u.ForceQuery:
		return fmt.Errorf("url %q: must not have a query (credentials go in the HTTP settings; phaseguard adds the query parameters)", shown.String())
	case u.Fragment != "" || strings.Contains(raw, "#"):
		return fmt.Errorf("url %q: must not have a fragment", shown.String())
	}
	if port := u.Port(); port != "" {
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("url %q: port must be 1 to 65535", shown.String())
		}
	}
	return nil
}

// Client runs instant queries against one server. It is safe for concurrent
// use.
type Client struct {
	api     queryAPI
	timeout time.Duration
	secrets *redact.Set
}

// Secrets returns the set the client's errors are redacted with:
// Config.Redact, or the client's own.
func (c *Client) Secrets() *redact.Set { return c.secrets }

// queryAPI is the part of client_golang's v1.API that Client uses.
type queryAPI interface {
	Query(ctx context.Context, query string, ts time.Time, opts ...v1.Option) (model.Value, v1.Warnings, v1.Infos, error)
}

// New returns a Client for cfg after validating it.
func New(cfg Config) (*Client, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	// Validate defaults Authorization.Type through the pointer: on a copy,
	// so that clients built at once from one config (the plugin's
	// connections, a table of tests) do not write to the caller's.
	httpCfg := cfg.HTTP
	if a := httpCfg.Authorization; a != nil {
		cp := *a
		httpCfg.Authorization = &cp
	}
	if err := httpCfg.Validate(); err != nil {
		return nil, fmt.Errorf("http: %w", err)
	}
	if err := CheckHTTPConfig(httpCfg); err != nil {
		return nil, fmt.Errorf("http: %w", err)
	}
	rt, err := config.NewRoundTripperFromConfig(httpCfg, "phaseguard",
		config.WithDialContextFunc(dialAllowed(allowedAddrs(cfg.URL, httpCfg))))
	if err != nil {
		return nil, fmt.Errorf("http: %w", err)
	}
	if httpCfg.OAuth2 != nil {
		rt = &serialRoundTripper{rt: rt}
	}
	retries := cfg.Retries
	switch {
	case retries == 0:
		retries = DefaultRetries
	case retries < 0:
		retries = 0
	}
	timeout := cfg.Timeout
	if timeout == 0 {
		timeout = DefaultTimeout
	}
	limit := cfg.MaxResponseBytes
	if limit == 0 {
		limit = DefaultMaxResponseBytes
	}
	secrets := cfg.Redact
	if secrets == nil {
		secrets = redact.New()
	}
	learnSecrets(secrets, httpCfg)

	retrying := &retryablehttp.Client{
		HTTPClient: &http.Client{
			Transport: rt,
			// Redirects are followed, or not, by the outer client below, so
			// that each hop is retried on its own.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		Logger:       nil, // Errors are returned, never logged.
		RetryWaitMin: retryWaitMin,
		RetryWaitMax: retryWaitMax,
		RetryMax:     retries,
		CheckRetry:   checkRetry,
		Backoff:      retryablehttp.DefaultBackoff,
		// Hand the last response or error to client_golang, which turns a
		// status into a typed *v1.Error, instead of retryablehttp's
		// "giving up after N attempts" that drops the status.
		ErrorHandler: retryablehttp.PassthroughErrorHandler,
	}
	hc := &http.Client{Transport: &retryablehttp.RoundTripper{Client: retrying}, CheckRedirect: redirect.SameOrigin}
	if !httpCfg.FollowRedirects {
		hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	}
	ac, err := api.NewClient(api.Config{Address: cfg.URL, Client: hc})
	if err != nil {
		return nil, fmt.Errorf("url: %w", err)
	}
	return &Client{api: v1.NewAPI(&exchanger{Client: ac, hc: hc, limit: limit, secrets: secrets}), timeout: timeout, secrets: secrets}, nil
}

// Query runs query as an instant query at ts and returns the resulting
// vector, which may be empty, and whose samples may be NaN: what that means is
// the caller's decision. ts is sent to the millisecond, the precision of the
// API's timestamps.
//
// An answer is an error, never a result, when
//   - its type is not a vector (scalar, matrix, string): the error names
//     the type;
//   - the server marked it incomplete: "isPartial": true (a VictoriaMetrics
//     cluster with a storage node down) or any warnings (Thanos and Mimir on
//     a partial response; PromQL on a suspect result): the error wraps
//     ErrIncomplete and quotes the flag or the warnings. Infos are not
//     warnings and are ignored;
//   - a sample carries another timestamp than ts (a cache or proxy
//     answering for another evaluation time): the error wraps ErrOtherTime
//     and names both times. With a zero ts (the server's now) there is no
//     time to check;
//   - its body exceeds Config.MaxResponseBytes: the error wraps
//     ErrResponseTooLarge.
//
// Every error names the query and keeps its cause: a *v1.Error from the
// server is available through errors.As, a deadline through
// errors.Is(err, context.DeadlineExceeded). The response body of a failed
// request is kept in (*v1.Error).Detail and never printed, as it may echo
// request headers; the error's own text is redacted with Config.Redact,
// since a server's error message may quote them too.
func (c *Client) Query(ctx context.Context, query string, ts time.Time) (model.Vector, error) {
	v, err := c.query(ctx, query, ts)
	if err != nil {
		// Redacted whole: a server's message, its warnings and the labels
		// of its samples are all the server's text.
		return nil, c.secrets.Error(err)
	}
	return v, nil
}

func (c *Client) query(ctx context.Context, query string, ts time.Time) (model.Vector, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	attempts := new(atomic.Int32)
	ctx = context.WithValue(ctx, attemptsKey{}, attempts)

	var opts []v1.Option
	if d, ok := serverTimeout(ctx); ok {
		opts = append(opts, v1.WithTimeout(d))
	}
	if !ts.IsZero() {
		ts = time.UnixMilli(ts.UnixMilli()).UTC()
	}
	v, warnings, _, err := c.api.Query(ctx, query, ts, opts...)
	if err == nil && len(warnings) > 0 {
		// exchanger already refuses a successful answer with warnings;
		// this catches any other way client_golang comes to return them.
		err = &flagError{warnings: warnings, secrets: c.secrets}
	}
	if err != nil {
		err = &boundedError{c.secrets.Error(err)} // redacted before it is cut
		if n := attempts.Load(); n > 1 {
			return nil, fmt.Errorf("query %q (%d attempts): %w", query, n, err)
		}
		return nil, fmt.Errorf("query %q: %w", query, err)
	}
	switch v := v.(type) {
	case model.Vector:
		if v == nil {
			v = model.Vector{}
		}
		if err := checkTime(v, ts); err != nil {
			// It quotes a sample's labels, the server's text too.
			return nil, fmt.Errorf("query %q: %w", query, &boundedError{c.secrets.Error(err)})
		}
		return v, nil
	case nil:
		return nil, fmt.Errorf("query %q: response has no result", query)
	default:
		return nil, fmt.Errorf("query %q: result type %s, want vector", query, v.Type())
	}
}

// maxErrorText bounds the text of an error a server sends (its error
// message, a body quoted by client_golang): it ends up in reasons,
// measurement messages and job summaries, which have limits of their own.
const maxErrorText = 1024

// boundedError shows at most maxErrorText bytes of its error's text.
type boundedError struct{ err error }

func (e *boundedError) Error() string {
	msg := e.err.Error()
	if len(msg) <= maxErrorText {
		return msg
	}
	cut := maxErrorText
	for cut > 0 && !utf8.RuneStart(msg[cut]) {
		cut--
	}
	return fmt.Sprintf("%s… (%d more bytes)", msg[:cut], len(msg)-cut)
}

func (e *boundedError) Unwrap() error { return e.err }

// checkTime returns an error wrapping ErrOtherTime for the first sample of
// v whose timestamp is not ts, unless ts is zero.
func checkTime(v model.Vector, ts time.Time) error {
	if ts.IsZero() {
		return nil
	}
	want := model.TimeFromUnixNano(ts.UnixNano())
	for _, s := range v {
		if s.Timestamp != want {
			return fmt.Errorf("%w: sample %s is at %s, requested %s", ErrOtherTime,
				s.Metric, fmtTime(s.Timestamp), fmtTime(want))
		}
	}
	return nil
}

// fmtTime shows t in RFC 3339, UTC, with milliseconds only when it has
// them.
func fmtTime(t model.Time) string {
	return t.Time().UTC().Format("2006-01-02T15:04:05.999Z07:00")
}

// serverTimeout returns the time left before ctx's deadline, rounded down
// to a value the server's duration parser accepts ("9s", "750ms"; Go's
// "9.5s" is rejected by Prometheus), so the server stops evaluating a query
// nobody waits for.
func serverTimeout(ctx context.Context) (time.Duration, bool) {
	dl, ok := ctx.Deadline()
	if !ok {
		return 0, false
	}
	d := time.Until(dl)
	if d >= time.Second {
		d = d.Truncate(time.Second)
	} else {
		d = d.Truncate(time.Millisecond)
	}
	return d, d > 0
}

// attemptsKey keys the per-Query attempt counter in the request context.
type attemptsKey struct{}

// checkRetry is retryablehttp's DefaultRetryPolicy (connection errors, 429,
// 5xx but 501; never after the context is done) that also refuses a retry
// whose backoff would end past the context's deadline: the last real
// failure is then returned instead of a bare "context deadline exceeded".
func checkRetry(ctx context.Context, resp *http.Response, err error) (bool, error) {
	attempt := 0
	if n, ok := ctx.Value(attemptsKey{}).(*atomic.Int32); ok {
		attempt = int(n.Add(1)) - 1
	}
	retry, perr := retryablehttp.DefaultRetryPolicy(ctx, resp, err)
	if !retry || perr != nil {
		return false, perr
	}
	wait := retryablehttp.DefaultBackoff(retryWaitMin, retryWaitMax, attempt, resp)
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) <= wait {
		return false, nil
	}
	return true, nil
}

// serialRoundTripper sends one request at a time through rt. It guards
// prometheus/common's OAuth2 round tripper (v0.72.1), which, on its first
// request or after its client secret changes, replaces the token source
// under its lock while a concurrent request's oauth2.Transport reads it
// without one: a data race the race detector found when an evaluation's
// queries went out in parallel (rollouts TestSecretsNeverShown). Only a
// request's headers wait; bodies are read after.
type serialRoundTripper struct {
	mu sync.Mutex
	rt http.RoundTripper
}

func (s *serialRoundTripper) RoundTrip(req *http.Request) (*http.Response, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rt.RoundTrip(req)
}

// CloseIdleConnections passes on to the wrapped round tripper, as
// http.Client.CloseIdleConnections asks of a transport.
func (s *serialRoundTripper) CloseIdleConnections() {
	if c, ok := s.rt.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}
