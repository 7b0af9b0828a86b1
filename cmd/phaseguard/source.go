package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/common/config"
	"github.com/prometheus/common/model"
	"golang.org/x/net/http/httpguts"

	"github.com/phaseguard/phaseguard/analysis"
	"github.com/phaseguard/phaseguard/internal/redact"
	"github.com/phaseguard/phaseguard/internal/regularfile"
	"github.com/phaseguard/phaseguard/policies"
	"github.com/phaseguard/phaseguard/promapi"
	"github.com/phaseguard/phaseguard/replay"
	"github.com/phaseguard/phaseguard/report"
	"github.com/phaseguard/phaseguard/scenarios"
)

// targetFlags are the flags every evaluating command takes: the policy,
// the stage, the three values that select the canary and its baseline, and
// where the data comes from.
type targetFlags struct {
	policy, stage                      string
	service, namespace, canary, stable string
	prometheus, replay                 string
	httpConfig, bearerTokenFile        string
	headers                            headerFlag
	since                              string
	sinceTime                          time.Time // parsed since; zero when unknown
	timeout                            time.Duration
	output                             string
}

func (t *targetFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&t.policy, "policy", "phase-default", "policy: a built-in preset name (see 'phaseguard presets') or a file")
	fs.StringVar(&t.stage, "stage", "", "stage of the policy being judged, named in the verdict (the tests are anytime-valid and do not depend on it)")
	fs.StringVar(&t.service, "service", "", "service name (value of the service label)")
	fs.StringVar(&t.namespace, "namespace", "", "namespace, for policies that select by namespace")
	fs.StringVar(&t.canary, "canary-hash", "", "pod template hash of the canary (Argo's rollouts-pod-template-hash)")
	fs.StringVar(&t.stable, "stable-hash", "", "pod template hash of the stable version; enables the baseline comparison")
	fs.StringVar(&t.prometheus, "prometheus", "", "Prometheus-compatible API base URL (Prometheus, Thanos, Mimir, Cortex, VictoriaMetrics)")
	fs.StringVar(&t.replay, "replay", "", "OpenMetrics file with timestamps to evaluate in process, or a bundled scenario name (see 'phaseguard demo')")
	fs.StringVar(&t.httpConfig, "http-config", "", "YAML file with Prometheus HTTP client settings (authorization, basic_auth, tls_config, http_headers, proxy)")
	fs.StringVar(&t.bearerTokenFile, "bearer-token-file", "", "file holding a bearer token for --prometheus")
	fs.Var(&t.headers, "header", "extra HTTP header 'Name: value' for --prometheus, repeatable (e.g. 'X-Scope-OrgID: tenant-1')")
	fs.StringVar(&t.since, "since", "", "when the canary started serving (its first stage's start, not this stage's), RFC 3339 or Unix seconds: windows reaching before it are cut to it, for canary and stable alike, and the counts since it are evidence for pass and fail (at most 7 days before the look; with a bundled scenario, default its stage start)")
	fs.DurationVar(&t.timeout, "timeout", 30*time.Second, "deadline for one evaluation, retries included")
	fs.StringVar(&t.output, "output", "text", "output format: text or json")
}

// headerFlag collects repeated --header flags. A value without a colon
// is kept as a problem reported by open: the flag package's own error
// would quote the value, which may be a credential.
type headerFlag struct {
	lines []string
	bad   int // values without a colon
}

// String shows the header names only.
func (h *headerFlag) String() string {
	names := make([]string, 0, len(h.lines))
	for _, l := range h.lines {
		name, _, _ := strings.Cut(l, ":")
		names = append(names, name)
	}
	return strings.Join(names, ", ")
}

func (h *headerFlag) Set(v string) error {
	name, value, ok := strings.Cut(v, ":")
	// A name that is no HTTP token ("X A") or a value with a control
	// character (CR, LF would split the header on the wire; a tab is
	// allowed) fails every request: refused with the malformed, never
	// quoted (the value may be a secret).
	if !ok || !httpguts.ValidHeaderFieldName(strings.TrimSpace(name)) || !httpguts.ValidHeaderFieldValue(strings.TrimSpace(value)) {
		h.bad++
		return nil
	}
	h.lines = append(h.lines, v)
	return nil
}

// source is an opened data source and, for a bundled scenario, its truth.
type source struct {
	querier   analysis.Querier
	store     *replay.Store // nil for a live Prometheus
	truth     *scenarios.Truth
	closeFunc func()
}

// checkSince refuses a --since more than analysis.MaxSinceAge before the
// look at, naming the flag.
func (t *targetFlags) checkSince(at time.Time) error {
	if !t.sinceTime.IsZero() && at.Sub(t.sinceTime) > analysis.MaxSinceAge {
		return fmt.Errorf("--since %s is more than %s before the look at %s: give the canary's start (its first stage's); an older one costs the tests their power",
			t.sinceTime.Format(time.RFC3339), model.Duration(analysis.MaxSinceAge), at.Format(time.RFC3339))
	}
	return nil
}

// checkReplayTime refuses a time outside replayed data, naming the flag
// that gave it: a look after the data's end would read as an exporter
// gone quiet (no data, every SLI held), one before its start as nothing
// yet. A live Prometheus has no such range: nil.
func (s *source) checkReplayTime(flag string, t time.Time) error {
	if s.store == nil {
		return nil
	}
	first, last := s.store.Range()
	if t.Before(first) || t.After(last) {
		return fmt.Errorf("--%s %s: the replayed data runs from %s to %s", flag, t.Format(time.RFC3339Nano), first.Format(time.RFC3339), last.Format(time.RFC3339))
	}
	return nil
}

func (s *source) Close() {
	if s.closeFunc != nil {
		s.closeFunc()
	}
}

// open validates the flags and opens the data source and the policy. A
// Prometheus client adds its credentials, and what it sends, to secrets.
func (t *targetFlags) open(e env) (*source, *policies.Policy, error) {
	s, p, err := t.openSource(e.secrets)
	if err == nil {
		lintNotice(e, p)
	}
	return s, p, err
}

// maxLintNotices bounds what lintNotice writes.
const maxLintNotices = 3

// lintNotice writes to stderr what phaseguard lint finds in a policy that
// loads (policies.Policy.Warnings: a ratio counted with rate(), an le
// spelling one server version lacks), which a hold or a pass may owe to
// it: the first maxLintNotices findings and a count of the rest.
func lintNotice(e env, p *policies.Policy) {
	ws := p.Warnings()
	for i, w := range ws {
		if i == maxLintNotices {
			fmt.Fprintf(e.stderr, "  and %d more: run phaseguard lint on the policy\n", len(ws)-i)
			break
		}
		for _, l := range report.Wrap(fmt.Sprintf("phaseguard: policy %s: lint finds: %v", p.Metadata.Name, w), report.Width, "", "    ") {
			fmt.Fprintln(e.stderr, l)
		}
	}
}

func (t *targetFlags) openSource(secrets *redact.Set) (*source, *policies.Policy, error) {
	if t.output != "text" && t.output != "json" {
		return nil, nil, fmt.Errorf("--output %q: want text or json", t.output)
	}
	if (t.prometheus == "") == (t.replay == "") {
		return nil, nil, errors.New("give exactly one of --prometheus URL and --replay FILE")
	}
	if t.timeout <= 0 {
		return nil, nil, fmt.Errorf("--timeout %s: must be positive", t.timeout)
	}
	var err error
	if t.since != "" {
		if t.sinceTime, err = parseTime("since", t.since, time.Time{}); err != nil {
			return nil, nil, err
		}
		if t.sinceTime.IsZero() {
			return nil, nil, fmt.Errorf("--since %q: want the canary's start, RFC 3339 or Unix seconds", t.since)
		}
	}
	if t.replay != "" {
		if t.httpConfig != "" || t.bearerTokenFile != "" || len(t.headers.lines) > 0 || t.headers.bad > 0 {
			return nil, nil, errors.New("--http-config, --bearer-token-file and --header apply to --prometheus, not --replay")
		}
		s, err := openReplay(t.replay)
		if err != nil {
			return nil, nil, err
		}
		// A bundled scenario knows its own targets: flags left empty take them.
		if s.truth != nil {
			t.service = cmpOr(t.service, s.truth.Service)
			t.namespace = cmpOr(t.namespace, s.truth.Namespace)
			t.canary = cmpOr(t.canary, s.truth.CanaryHash)
			t.stable = cmpOr(t.stable, s.truth.StableHash)
			if t.since == "" {
				t.sinceTime = s.truth.StageStart
			}
		}
		p, err := policies.Resolve(t.policy)
		if err != nil {
			s.Close()
			return nil, nil, err
		}
		return s, p, nil
	}
	if err := promapi.CheckURL(t.prometheus); err != nil {
		return nil, nil, fmt.Errorf("--prometheus: %w", err)
	}
	cfg := config.DefaultHTTPClientConfig
	if t.httpConfig != "" {
		c, err := loadHTTPConfig(t.httpConfig)
		if err != nil {
			return nil, nil, err
		}
		cfg = *c
	}
	if t.bearerTokenFile != "" {
		// Read again at each request by prometheus/common; checked here
		// so that a named pipe or /dev/zero is refused, not waited on.
		if _, err := regularfile.Read(t.bearerTokenFile, maxCredentialFile); err != nil {
			return nil, nil, fmt.Errorf("--bearer-token-file %s: %w", t.bearerTokenFile, err)
		}
		cfg.Authorization = &config.Authorization{Type: "Bearer", CredentialsFile: t.bearerTokenFile}
	}
	if t.headers.bad > 0 {
		// The value may be a credential: never repeat it.
		return nil, nil, fmt.Errorf("--header: %d value(s) without a colon, with a name that is no HTTP token, or with a control character (CR, LF): want 'Name: value' on one line", t.headers.bad)
	}
	if len(t.headers.lines) > 0 {
		if cfg.HTTPHeaders == nil {
			cfg.HTTPHeaders = &config.Headers{Headers: map[string]config.Header{}}
		}
		for _, h := range t.headers.lines {
			name, value, _ := strings.Cut(h, ":")
			name = strings.TrimSpace(name)
			hv := cfg.HTTPHeaders.Headers[name]
			hv.Values = append(hv.Values, strings.TrimSpace(value))
			cfg.HTTPHeaders.Headers[name] = hv
		}
	}
	if err := cfg.Validate(); err != nil {
		return nil, nil, fmt.Errorf("prometheus http settings: %w", err)
	}
	if err := promapi.CheckHTTPConfig(cfg); err != nil {
		return nil, nil, fmt.Errorf("--http-config %s: %w", t.httpConfig, err)
	}
	c, err := promapi.New(promapi.Config{URL: t.prometheus, HTTP: cfg, Timeout: t.timeout, Redact: secrets})
	if err != nil {
		return nil, nil, fmt.Errorf("--prometheus: %w", err)
	}
	// The policy is read once the credentials are in secrets: a
	// credential file given as --policy by mistake would otherwise be
	// quoted by the YAML error ("want a mapping, got <token>").
	p, err := policies.Resolve(t.policy)
	if err != nil {
		return nil, nil, err
	}
	return &source{querier: c}, p, nil
}

// Bounds of the files the HTTP settings come from.
const (
	maxHTTPConfigFile = 1 << 20
	maxCredentialFile = 64 << 10
)

// quoted is a value quoted in an error: in backquotes by YAML, from the
// first to the last of a line (the value may hold backquotes itself), and
// in double quotes by url.Parse (`parse "http://u:password@h:bad port"`).
var quoted = regexp.MustCompile("`.*`|\"(?:[^\"\\\\]|\\\\.)*\"")

// loadHTTPConfig reads Prometheus HTTP client settings from a regular file
// of at most 1 MiB (a named pipe would hang, /dev/zero fill memory), with
// file names relative to its directory, as LoadHTTPConfigFile does. Its
// errors quote no value of the file: it holds credentials.
func loadHTTPConfig(path string) (*config.HTTPClientConfig, error) {
	data, err := regularfile.Read(path, maxHTTPConfigFile)
	if err != nil {
		return nil, fmt.Errorf("--http-config %s: %w", path, err)
	}
	c, err := config.LoadHTTPConfig(string(data))
	if err != nil {
		return nil, fmt.Errorf("--http-config %s: %s", path, quoted.ReplaceAllString(err.Error(), "…"))
	}
	c.SetDirectory(filepath.Dir(path))
	return c, nil
}

// openReplay loads an OpenMetrics file, or a bundled scenario by name.
func openReplay(ref string) (*source, error) {
	if b, ok := scenarios.Lookup(ref); ok {
		st, err := replay.Load(bytes.NewReader(b.OpenMetrics))
		if err != nil {
			return nil, fmt.Errorf("scenario %s: %w", ref, err)
		}
		truth := b.Truth
		return &source{querier: st, store: st, truth: &truth, closeFunc: func() { st.Close() }}, nil
	}
	if _, err := os.Stat(ref); err != nil {
		return nil, fmt.Errorf("--replay %s: not a file and not a bundled scenario (%s)", ref, strings.Join(scenarioNames(), ", "))
	}
	st, err := replay.LoadFile(ref)
	if err != nil {
		return nil, fmt.Errorf("--replay %s: %w", ref, err)
	}
	return &source{querier: st, store: st, closeFunc: func() { st.Close() }}, nil
}

func scenarioNames() []string {
	var out []string
	for _, b := range scenarios.Demo() {
		out = append(out, b.Name)
	}
	return out
}

func (t *targetFlags) request(p *policies.Policy, at time.Time) analysis.Request {
	return analysis.Request{Policy: p, Stage: t.stage, At: at, Service: t.service, Namespace: t.namespace, CanaryHash: t.canary, StableHash: t.stable, Since: t.sinceTime}
}

// Time flags (--at, --since, --from, --to) take times from the Unix epoch
// to the end of year 9999, the range RFC 3339 writes.
var (
	minFlagTime = time.Unix(0, 0).UTC()
	maxFlagTime = time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC)
)

// parseTime accepts RFC 3339, Unix seconds, or "now" (which gives now).
// NaN, infinities and times outside minFlagTime..maxFlagTime are errors
// naming the flag: a time flag is checked before anything is queried.
func parseTime(flagName, v string, now time.Time) (time.Time, error) {
	if v == "" || v == "now" {
		return now, nil
	}
	bad := func(format string, args ...any) error {
		return fmt.Errorf("--%s %q: %s", flagName, v, fmt.Sprintf(format, args...))
	}
	var t time.Time
	if rt, err := time.Parse(time.RFC3339, v); err == nil {
		t = rt
	} else if f, err := strconv.ParseFloat(v, 64); err == nil || errors.Is(err, strconv.ErrRange) {
		maxSec := float64(maxFlagTime.Unix())
		switch {
		case math.IsNaN(f) || (math.IsInf(f, 0) && err == nil):
			return time.Time{}, bad("not a time: want RFC 3339 (2026-01-02T15:04:05Z), Unix seconds or now")
		case f < 0 || f > maxSec:
			msg := fmt.Sprintf("out of range: Unix seconds from 0 to %.0f (year 1970 to 9999)", maxSec)
			if f/1000 >= 0 && f/1000 <= maxSec {
				msg += fmt.Sprintf("; %s looks like milliseconds, which is %s", v, time.UnixMilli(int64(f)).UTC().Format(time.RFC3339))
			}
			return time.Time{}, bad("%s", msg)
		}
		sec, frac := math.Modf(f)
		t = time.Unix(int64(sec), int64(math.Round(frac*1e9))).UTC()
	} else {
		return time.Time{}, bad("want RFC 3339 (2026-01-02T15:04:05Z), Unix seconds or now")
	}
	if t.Before(minFlagTime) || t.After(maxFlagTime) {
		return time.Time{}, bad("out of range: year 1970 to 9999")
	}
	return t, nil
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
