package promapi

import (
	"net/http"
	"net/url"
	"strings"

	"github.com/prometheus/common/config"

	"github.com/phaseguard/phaseguard/internal/redact"
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
		for _, h := range c.HTTPHeaders.Headers {
			set.Add(h.Values...)
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

// plainHeaders are request headers that never carry a credential; every
// other header value a request sends is learned as a secret.
var plainHeaders = map[string]bool{
	"Accept":          true,
	"Accept-Encoding": true,
	"Content-Length":  true,
	"Content-Type":    true,
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
			if plainHeaders[name] {
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
