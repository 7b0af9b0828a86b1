package promapi

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"

	"github.com/prometheus/common/config"

	"github.com/phaseguard/phaseguard/internal/redact"
	"github.com/phaseguard/phaseguard/internal/redirect"
)

// learnSecrets adds to set every credential c configures: inline values,
// and the contents of the files it names, read now. prometheus/common
// reads those files again at each request (so that rotated credentials
// work); what a request actually sends is learned again from the request
// itself (learnSent).
func learnSecrets(set *redact.Set, c config.HTTPClientConfig) {
	file := redact.ReadFile
	set.Add(string(c.BearerToken), file(c.BearerTokenFile))
	if a := c.Authorization; a != nil {
		set.Add(string(a.Credentials), file(a.CredentialsFile))
	}
	if b := c.BasicAuth; b != nil {
		user := b.Username
		if b.UsernameFile != "" {
			user = file(b.UsernameFile)
		}
		set.AddBasicAuth(user, string(b.Password))
		set.AddBasicAuth(user, file(b.PasswordFile))
	}
	if o := c.OAuth2; o != nil {
		set.Add(string(o.ClientSecret), file(o.ClientSecretFile),
			string(o.ClientCertificateKey), file(o.ClientCertificateKeyFile))
		// The token request's Authorization header: Basic of the
		// URL-escaped id and secret (RFC 6749, section 2.3.1).
		for _, secret := range []string{string(o.ClientSecret), file(o.ClientSecretFile)} {
			secret = strings.TrimSpace(secret)
			set.AddBasicAuth(o.ClientID, secret)
			set.AddBasicAuth(url.QueryEscape(o.ClientID), url.QueryEscape(secret))
		}
		if o.ProxyURL.URL != nil {
			learnURL(set, o.ProxyURL.URL)
		}
		set.Add(string(o.TLSConfig.Key), file(o.TLSConfig.KeyFile))
	}
	set.Add(string(c.TLSConfig.Key), file(c.TLSConfig.KeyFile))
	if c.ProxyURL.URL != nil {
		learnURL(set, c.ProxyURL.URL)
	}
	for _, vs := range c.ProxyConnectHeader {
		for _, v := range vs {
			set.Add(string(v))
		}
	}
	if c.HTTPHeaders != nil {
		for name, h := range c.HTTPHeaders.Headers {
			if !TenantHeaders[http.CanonicalHeaderKey(name)] {
				set.Add(h.Values...)
			}
			for _, s := range h.Secrets {
				set.Add(string(s))
			}
			for _, f := range h.Files {
				set.Add(file(f))
			}
		}
	}
}

// learnURL adds a URL's password, if it has one.
func learnURL(set *redact.Set, u *url.URL) {
	if u.User == nil {
		return
	}
	if p, ok := u.User.Password(); ok {
		set.AddBasicAuth(u.User.Username(), p)
	}
	set.Add(u.User.String())
}

// TenantHeaders are the request headers that select a tenant, by
// canonical name: identifiers, not credentials. Their plain values are
// neither learned as secrets nor redacted (a tenant "checkout" would mark
// every service="checkout"); a value given as a secret or a file still is.
//   - X-Scope-Orgid: Mimir, Cortex, Loki (X-Scope-OrgID);
//   - Thanos-Tenant: Thanos receive and query tenancy (THANOS-TENANT);
//   - Accountid, Projectid: VictoriaMetrics cluster and VictoriaLogs
//     multitenancy by headers (AccountID, ProjectID).
var TenantHeaders = map[string]bool{
	"X-Scope-Orgid": true,
	"Thanos-Tenant": true,
	"Accountid":     true,
	"Projectid":     true,
}

// plainHeaders are request headers that never carry a credential; every
// other header value a request sends is learned as a secret.
var plainHeaders = map[string]bool{
	"Accept":          true,
	"Accept-Encoding": true,
	"Content-Length":  true,
	"Content-Type":    true,
	"Referer":         true, // net/http's, on a redirect: the previous URL
	"User-Agent":      true,
}

// learnSent adds to set every header value req sent, but plainHeaders:
// the request as the transport saw it, with the Authorization header that
// prometheus/common's round trippers (bearer token, basic auth, OAuth2
// access token) and custom headers added. A server that quotes them back
// in an error body is then redacted whatever the credential's source.
func learnSent(set *redact.Set, req *http.Request) {
	for ; req != nil; req = reqOf(req.Response) {
		for name, vs := range req.Header {
			if plainHeaders[name] || TenantHeaders[name] {
				continue
			}
			for _, v := range vs {
				set.Add(v)
				if scheme, cred, ok := cutScheme(v); ok {
					set.Add(cred)
					if scheme == "Basic" {
						learnBasic(set, cred)
					}
				}
			}
		}
		if req.URL != nil {
			learnURL(set, req.URL)
		}
	}
}

func reqOf(r *http.Response) *http.Request {
	if r == nil {
		return nil
	}
	return r.Request
}

// cutScheme splits an Authorization value "Scheme credentials".
func cutScheme(v string) (scheme, cred string, ok bool) {
	scheme, cred, ok = strings.Cut(v, " ")
	return scheme, cred, ok && scheme != "" && cred != ""
}

// learnBasic adds the password inside a Basic credential.
func learnBasic(set *redact.Set, cred string) {
	req := &http.Request{Header: http.Header{"Authorization": {"Basic " + cred}}}
	if user, pass, ok := req.BasicAuth(); ok {
		set.AddBasicAuth(user, pass)
	}
}

// CheckHTTPConfig checks the URLs in c besides the server's own (see
// CheckURL): proxy_url, oauth2.token_url and oauth2.proxy_url must hold
// no user-info, query or fragment (give a proxy's credentials in
// proxy_connect_header, an OAuth2 client secret in client_secret). Its
// errors name the field and never quote the URL.
func CheckHTTPConfig(c config.HTTPClientConfig) error {
	var errs []error
	check := func(field string, u *url.URL) {
		switch {
		case u == nil:
		case u.User != nil:
			errs = append(errs, fmt.Errorf("%s: must not hold user-info (credentials go in the HTTP settings)", field))
		case u.RawQuery != "" || u.ForceQuery:
			errs = append(errs, fmt.Errorf("%s: must not have a query", field))
		case u.Fragment != "" || u.RawFragment != "":
			errs = append(errs, fmt.Errorf("%s: must not have a fragment", field))
		case u.Opaque != "":
			errs = append(errs, fmt.Errorf("%s: without // there is no host", field))
		}
	}
	check("proxy_url", c.ProxyURL.URL)
	if o := c.OAuth2; o != nil {
		if o.TokenURL != "" {
			u, err := url.Parse(o.TokenURL)
			if err != nil {
				errs = append(errs, errors.New("oauth2.token_url: not a URL"))
			} else {
				check("oauth2.token_url", u)
			}
		}
		check("oauth2.proxy_url", o.ProxyURL.URL)
	}
	return errors.Join(errs...)
}

// allowedAddrs returns the host:port addresses a client configured with
// base and c may dial: the server's, the OAuth2 token endpoint's, and the
// proxies', configured or from the environment.
func allowedAddrs(base string, c config.HTTPClientConfig) map[string]bool {
	out := map[string]bool{}
	add := func(u *url.URL) {
		if u == nil || u.Host == "" {
			return
		}
		// The address net/http dials: host and port, the scheme's default
		// port written out, an IPv6 host bracketed.
		o := redirect.Origin(u)
		out[net.JoinHostPort(u.Hostname(), o[strings.LastIndexByte(o, ':')+1:])] = true
	}
	targets := []string{base}
	if c.OAuth2 != nil {
		targets = append(targets, c.OAuth2.TokenURL)
		add(c.OAuth2.ProxyURL.URL)
	}
	add(c.ProxyURL.URL)
	for _, t := range targets {
		u, err := url.Parse(t)
		if err != nil {
			continue
		}
		add(u)
		if c.ProxyFromEnvironment || (c.OAuth2 != nil && c.OAuth2.ProxyFromEnvironment) {
			if p, err := http.ProxyFromEnvironment(&http.Request{URL: u}); err == nil {
				add(p)
			}
		}
	}
	return out
}

// ErrDialRefused is wrapped by the error of a connection to an address
// the client was not configured for: a redirect of the OAuth2 token
// request (prometheus/common follows those itself) to another host or
// port.
var ErrDialRefused = errors.New("connection refused by phaseguard")

// dialAllowed returns a dialer that connects only to the addresses in
// allowed, so that no request (a redirected token request carrying the
// client secret) reaches a server the configuration did not name.
func dialAllowed(allowed map[string]bool) config.DialContextFunc {
	var d net.Dialer
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		if !allowed[addr] {
			return nil, fmt.Errorf("%w: %s is not the server, token endpoint or proxy configured; credentials are sent only there", ErrDialRefused, addr)
		}
		return d.DialContext(ctx, network, addr)
	}
}
