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

// yamlQuoteRE matches what go-yaml quotes of a value in an error
// ("cannot unmarshal !!str `hunter2...`"): part of a secret, maybe.
var yamlQuoteRE = regexp.MustCompile("`[^`]*`")

// ParseConnections decodes a connections file strictly (an unknown field
// is an error naming it), applies Prometheus' HTTP defaults, makes
// relative file names relative to dir, and validates every connection,
// building its client once (TLS files, proxy). Every credential the
// connections hold, inline or in the files they name, is added to
// secrets. The error lists every problem, each naming its connection
// and field, and quotes no value of the file.
func ParseConnections(data []byte, dir string, secrets *redact.Set) (map[string]*Connection, error) {
	var f connectionsFile
	if err := yaml.UnmarshalStrict(data, &f); err != nil {
		return nil, errors.New(yamlQuoteRE.ReplaceAllString(err.Error(), "`…`"))
	}
	var errs []error
	byName := make(map[string]*Connection, len(f.Connections))
	for i := range f.Connections {
		c := &f.Connections[i]
		at := fmt.Sprintf("connections[%d]", i)
		if c.Name != "" {
			at = fmt.Sprintf("connections[%d] (%s)", i, c.Name)
		}
		bad := func(field string, err error) { errs = append(errs, fmt.Errorf("%s.%s: %w", at, field, err)) }
		switch {
		case c.Name == "":
			bad("name", errors.New("required"))
		case !connectionNameRE.MatchString(c.Name) || len(c.Name) > 63:
			bad("name", fmt.Errorf("%q: want a DNS-1123 label (lower-case letters, digits, '-')", c.Name))
		case byName[c.Name] != nil:
			bad("name", fmt.Errorf("%q: defined twice", c.Name))
		}
		urlErr := promapi.CheckURL(c.URL)
		if urlErr != nil {
			bad("url", urlErr)
		}
		if u := c.HTTP.ProxyURL.URL; u != nil {
			if err := checkProxyURL(u); err != nil {
				bad("proxy_url", err)
			}
		}
		for j, ns := range c.Namespaces {
			if !connectionNameRE.MatchString(ns) || len(ns) > 63 {
				bad(fmt.Sprintf("namespaces[%d]", j), fmt.Errorf("%q: not a namespace", ns))
			}
		}
		c.HTTP.SetDirectory(dir)
		if err := c.HTTP.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", at, err))
		} else if urlErr == nil {
			// Building the client reads the TLS files and learns every
			// credential into secrets; the client itself is not kept.
			if _, err := promapi.New(promapi.Config{URL: c.URL, HTTP: c.HTTP, Redact: secrets}); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", at, secrets.Error(err)))
			}
		}
		learnOAuth2(secrets, c.HTTP.OAuth2)
		if c.Name != "" && byName[c.Name] == nil {
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

// checkProxyURL refuses a proxy URL with user-info, a query or a
// fragment, without quoting them: the proxy's credentials go in
// proxy_connect_header.
func checkProxyURL(u *url.URL) error {
	shown := url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path}
	switch {
	case u.User != nil:
		return fmt.Errorf("%q: must not hold user-info (use proxy_connect_header)", shown.String())
	case u.RawQuery != "" || u.ForceQuery:
		return fmt.Errorf("%q: must not have a query", shown.String())
	case u.Fragment != "":
		return fmt.Errorf("%q: must not have a fragment", shown.String())
	case u.Host == "":
		return fmt.Errorf("%q: host must be set", shown.String())
	}
	return nil
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
