package rollouts

import (
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/common/config"
	"go.yaml.in/yaml/v2"

	"github.com/phaseguard/phaseguard/internal/redact"
	"github.com/phaseguard/phaseguard/promapi"
)

// EnvConnectionsFile is the environment variable of the controller that
// names the connections file when the plugin's args give no
// --connections.
const EnvConnectionsFile = "PHASEGUARD_CONNECTIONS_FILE"

// maxConnectionsFile bounds the connections file, in bytes.
const maxConnectionsFile = 1 << 20

// Connection is a server the operator lets templates query, by name: its
// base URL and how to reach it, in the format of a Prometheus scrape
// config's HTTP settings (github.com/prometheus/common/config
// HTTPClientConfig, inline: authorization, basic_auth, oauth2,
// bearer_token_file, tls_config, proxy_url, proxy_connect_header,
// http_headers, follow_redirects, enable_http2). Relative file names are
// relative to the connections file's directory.
//
//	connections:
//	  - name: mimir
//	    url: https://mimir-gateway.monitoring.svc/prometheus
//	    namespaces: [shop]          # optional: AnalysisRun namespaces allowed
//	    authorization:
//	      credentials_file: /var/run/secrets/phaseguard/mimir-token
//	    tls_config:
//	      ca_file: /var/run/secrets/phaseguard/ca.crt
//	    http_headers:
//	      X-Scope-OrgID: {values: [shop]}
type Connection struct {
	// Name is what templates give as prometheus.connection: a DNS-1123
	// label, unique in the file.
	Name string `yaml:"name"`
	// URL is the server's base URL, with any path prefix; no user-info,
	// query or fragment.
	URL string `yaml:"url"`
	// Namespaces, when set, are the only namespaces whose AnalysisRuns may
	// use the connection.
	Namespaces []string `yaml:"namespaces,omitempty"`
	// HTTP is how to reach URL. It defaults as in Prometheus
	// (config.DefaultHTTPClientConfig: follow redirects, HTTP/2).
	HTTP config.HTTPClientConfig `yaml:",inline"`

	// secrets are the connection's credentials and, once a client uses
	// it, every header value the client sends: what a measurement through
	// the connection is redacted with.
	secrets *redact.Set
}

// UnmarshalYAML applies Prometheus' HTTP defaults before decoding, as
// prometheus/common's own configs embedding HTTPClientConfig do (an
// inline field's own UnmarshalYAML is not called).
func (c *Connection) UnmarshalYAML(unmarshal func(any) error) error {
	*c = Connection{HTTP: config.DefaultHTTPClientConfig}
	type plain Connection
	return unmarshal((*plain)(c))
}

// connectionsFile is the file's shape.
type connectionsFile struct {
	Connections []Connection `yaml:"connections"`
}

// ParseConnections decodes a connections file strictly (an unknown field
// is an error naming it), applies Prometheus' HTTP defaults, makes
// relative file names relative to dir, and validates every connection,
// building its client once (TLS files, proxy). Every credential a
// connection holds, inline or in the files it names, is added to the
// connection's own set (what its measurements are redacted with) and to
// secrets (what the plugin's log is redacted with).
//
// The error lists every problem, each naming its connection (by index,
// and by name once the name is valid) and field, and quotes no value of
// the file: a YAML error keeps its line and what was wanted, a URL error
// its field and reason. The file holds credentials, and its errors are
// logged.
func ParseConnections(data []byte, dir string, secrets *redact.Set) (map[string]*Connection, error) {
	var f connectionsFile
	if err := yaml.UnmarshalStrict(data, &f); err != nil {
		return nil, yamlError(err)
	}
	var errs []error
	byName := make(map[string]*Connection, len(f.Connections))
	for i := range f.Connections {
		c := &f.Connections[i]
		nameOK := connectionNameRE.MatchString(c.Name) && len(c.Name) <= 63
		at := fmt.Sprintf("connections[%d]", i)
		if nameOK {
			at = fmt.Sprintf("connections[%d] (%s)", i, c.Name)
		}
		bad := func(field string, err error) { errs = append(errs, fmt.Errorf("%s.%s: %w", at, field, err)) }
		switch {
		case c.Name == "":
			bad("name", errors.New("required"))
		case !nameOK:
			bad("name", errors.New("want a DNS-1123 label (lower-case letters, digits, '-'; at most 63)"))
		case byName[c.Name] != nil:
			bad("name", errors.New("defined twice"))
		}
		urlErr := promapi.CheckURL(c.URL)
		if urlErr != nil {
			// CheckURL quotes the URL's scheme, host and path.
			bad("url", errors.New(unquote(urlErr.Error())))
		}
		// proxy_url, oauth2.token_url and oauth2.proxy_url: no user-info,
		// query or fragment. Its errors begin with the field and quote
		// nothing.
		httpErr := promapi.CheckHTTPConfig(c.HTTP)
		for _, err := range unjoin(httpErr) {
			errs = append(errs, fmt.Errorf("%s.%w", at, err))
		}
		if u := c.HTTP.ProxyURL.URL; httpErr == nil && u != nil && u.Host == "" {
			bad("proxy_url", errors.New("host must be set"))
		}
		for j, ns := range c.Namespaces {
			if !connectionNameRE.MatchString(ns) || len(ns) > 63 {
				bad(fmt.Sprintf("namespaces[%d]", j), errors.New("not a namespace (want a DNS-1123 label)"))
			}
		}
		c.secrets = redact.New()
		c.HTTP.SetDirectory(dir)
		if err := c.HTTP.Validate(); err != nil {
			// prometheus/common's messages are fixed texts naming fields.
			errs = append(errs, fmt.Errorf("%s: %w", at, err))
		} else if urlErr == nil && httpErr == nil {
			// Building the client reads the TLS files and learns every
			// credential into the connection's set; the client itself is
			// not kept.
			if _, err := promapi.New(promapi.Config{URL: c.URL, HTTP: c.HTTP, Redact: c.secrets}); err != nil {
				errs = append(errs, fmt.Errorf("%s: %s", at, unquote(c.secrets.String(err.Error()))))
			}
		}
		learnOAuth2(c.secrets, c.HTTP.OAuth2)
		secrets.AddSet(c.secrets)
		if nameOK && byName[c.Name] == nil {
			byName[c.Name] = c
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return byName, nil
}

// learnOAuth2 adds the forms an OAuth2 client secret takes in a token
// request's Authorization header, which a token endpoint may quote back
// in the error the client then returns: golang.org/x/oauth2 sends
// Basic base64(QueryEscape(id):QueryEscape(secret)).
func learnOAuth2(secrets *redact.Set, o *config.OAuth2) {
	if o == nil {
		return
	}
	for _, secret := range []string{string(o.ClientSecret), redact.ReadFile(o.ClientSecretFile)} {
		secret = strings.TrimSpace(secret)
		secrets.AddBasicAuth(o.ClientID, secret)
		secrets.AddBasicAuth(url.QueryEscape(o.ClientID), url.QueryEscape(secret))
	}
}

// unjoin returns the errors errors.Join joined into err, or err alone.
func unjoin(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

// quotedRE matches what an error quotes: a Go-quoted string (url.Parse's
// `parse "http://u:password@h:bad port"`, CheckURL's scheme, host and
// path) or a backquoted one.
var quotedRE = regexp.MustCompile("\"(?:[^\"\\\\]|\\\\.)*\"|`[^`]*`")

// unquote replaces every quoted text of msg by "…".
func unquote(msg string) string { return quotedRE.ReplaceAllString(msg, `"…"`) }

// Problems go-yaml reports in a *yaml.TypeError, one per string.
var (
	yamlLineRE    = regexp.MustCompile(`^line (\d+): `)
	yamlFieldRE   = regexp.MustCompile(`^line (\d+): field (.+) (not found|already set) in type \S+$`)
	yamlCannotRE  = regexp.MustCompile(`^line (\d+): cannot unmarshal (!!\w+)(?s:.*) into (\S+)$`)
	maxYAMLKeyLen = 64
)

// yamlError rewrites an error of decoding the connections file so that it
// quotes no value. go-yaml quotes a value it cannot use in backquotes,
// whole up to 10 bytes (cannot unmarshal !!str `s3cr3t` into bool),
// and the value may itself hold backquotes or newlines; a type's own
// UnmarshalYAML returns its own error, which may quote the value in any
// way (url.Parse in double quotes, TLSVersion not at all). So the
// problem is rebuilt from what is known to hold no value: the line, the
// key, the YAML tag and the Go type wanted.
func yamlError(err error) error {
	var te *yaml.TypeError
	if errors.As(err, &te) {
		errs := make([]error, 0, len(te.Errors))
		for _, e := range te.Errors {
			errs = append(errs, errors.New(yamlProblem(e)))
		}
		return errors.Join(errs...)
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		return fmt.Errorf("a URL does not parse: %s (the URL is not shown)", unquote(ue.Err.Error()))
	}
	msg := err.Error()
	switch {
	case strings.HasPrefix(msg, "yaml: "):
		// The parser's own problems: a position and a fixed text (map
		// keys it cannot use are quoted, and unquoted here).
		return errors.New(unquote(msg))
	case strings.HasPrefix(msg, "unknown TLS version"):
		return fmt.Errorf("tls_config: unknown TLS version (want one of TLS10, TLS11, TLS12, TLS13; the value is not shown)")
	}
	return errors.New("a value does not decode (its decoder's message is not shown: it may quote the value)")
}

// yamlProblem rewrites one problem of a *yaml.TypeError without its value.
func yamlProblem(p string) string {
	if m := yamlFieldRE.FindStringSubmatch(p); m != nil {
		key := m[2]
		if len(key) > maxYAMLKeyLen {
			key = key[:maxYAMLKeyLen] + "…"
		}
		if m[3] == "not found" {
			return fmt.Sprintf("line %s: unknown field %q", m[1], key)
		}
		return fmt.Sprintf("line %s: field %q given twice", m[1], key)
	}
	if m := yamlCannotRE.FindStringSubmatch(p); m != nil {
		return fmt.Sprintf("line %s: cannot decode a %s into %s (the value is not shown)", m[1], m[2], m[3])
	}
	if m := yamlLineRE.FindStringSubmatch(p); m != nil {
		return fmt.Sprintf("line %s: a value does not decode (the value is not shown)", m[1])
	}
	return "a value does not decode (the value is not shown)"
}

// connections is the operator's connections file, read when first needed
// and again whenever its size or modification time changes (a mounted
// Secret or ConfigMap is updated in place). A file that no longer parses
// leaves the last good connections in use, and is logged.
type connections struct {
	path    string
	secrets *redact.Set
	log     hclog.Logger

	mu      sync.Mutex
	stamp   string // size and modification time of the file last read
	version string // stamp of the connections in use
	byName  map[string]*Connection
	err     error // why the file last read is not in use
}

func newConnections(path string, secrets *redact.Set, log hclog.Logger) *connections {
	return &connections{path: path, secrets: secrets, log: log}
}

// errNoConnectionsFile is a template naming a connection when the
// operator gave the plugin no connections file.
var errNoConnectionsFile = errors.New("the plugin has no connections file: the operator names it with args [\"--connections=FILE\"] in the plugin's entry of the argo-rollouts-config ConfigMap, or " + EnvConnectionsFile + " in the controller's environment")

// get returns connection name for an AnalysisRun of namespace, and a
// version that changes whenever the file does.
func (c *connections) get(name, namespace string) (*Connection, string, error) {
	if c == nil || c.path == "" {
		return nil, "", errNoConnectionsFile
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.refresh()
	if c.byName == nil {
		return nil, "", errors.New("the plugin's connections file could not be read (the reason is in the plugin's log)")
	}
	conn, ok := c.byName[name]
	if !ok {
		names := make([]string, 0, len(c.byName))
		for n := range c.byName {
			names = append(names, n)
		}
		slices.Sort(names)
		return nil, "", fmt.Errorf("not defined in the plugin's connections file (defined: %s)", strings.Join(names, ", "))
	}
	if len(conn.Namespaces) > 0 && !slices.Contains(conn.Namespaces, namespace) {
		return nil, "", fmt.Errorf("not for AnalysisRuns of namespace %q (the operator allows: %s)", namespace, strings.Join(conn.Namespaces, ", "))
	}
	return conn, c.version, nil
}

// load reads the file now, for InitPlugin: its result is logged.
func (c *connections) load() {
	if c == nil || c.path == "" {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.refresh()
}

// refresh rereads the file if it changed. Callers hold mu.
func (c *connections) refresh() {
	fi, err := os.Stat(c.path)
	if err != nil {
		if c.stamp != "missing" {
			c.stamp = "missing"
			c.err = fmt.Errorf("connections file: %w", err)
			c.log.Error("connections file unreadable; keeping the connections last read", "file", c.path, "error", err, "connections", len(c.byName))
		}
		return
	}
	stamp := fmt.Sprintf("%d.%d", fi.Size(), fi.ModTime().UnixNano())
	if stamp == c.stamp {
		return
	}
	c.stamp = stamp
	byName, err := c.read()
	if err != nil {
		c.err = err
		c.log.Error("connections file refused; keeping the connections last read", "file", c.path, "error", oneLine(err), "connections", len(c.byName))
		return
	}
	c.byName, c.version, c.err = byName, stamp, nil
	names := make([]string, 0, len(byName))
	for n := range byName {
		names = append(names, n)
	}
	slices.Sort(names)
	c.log.Info("connections loaded", "file", c.path, "connections", strings.Join(names, ", "))
}

func (c *connections) read() (map[string]*Connection, error) {
	f, err := os.Open(c.path)
	if err != nil {
		return nil, fmt.Errorf("connections file: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxConnectionsFile+1))
	if err != nil {
		return nil, fmt.Errorf("connections file %s: %w", c.path, err)
	}
	if len(data) > maxConnectionsFile {
		return nil, fmt.Errorf("connections file %s: larger than %d bytes", c.path, maxConnectionsFile)
	}
	byName, err := ParseConnections(data, filepath.Dir(c.path), c.secrets)
	if err != nil {
		return nil, fmt.Errorf("connections file %s: %w", c.path, err)
	}
	return byName, nil
}
