// Package redirect keeps credentials on the server they were configured
// for when an HTTP client follows redirects.
//
// phaseguard's clients add credentials in their transports:
// prometheus/common's round trippers (bearer token, basic auth, OAuth2,
// custom headers), go-github's WithAuthToken, client-go's bearer and exec
// round trippers. net/http strips Authorization on a redirect to another
// domain only when the header was set on the request itself, never when a
// transport adds it to every hop; and it keeps the header across ports of
// one host. A client whose CheckRedirect is SameOrigin follows only
// redirects to the same scheme, host and port.
package redirect

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
)

// MaxHops is how many redirects SameOrigin follows, as net/http's default.
const MaxHops = 10

// Origin returns u's scheme, host and port, with the scheme's default port
// written out: "https://mimir.example:443".
func Origin(u *url.URL) string {
	port := u.Port()
	if port == "" {
		switch u.Scheme {
		case "https":
			port = "443"
		case "http":
			port = "80"
		}
	}
	return u.Scheme + "://" + u.Hostname() + ":" + port
}

// SameOrigin is an http.Client CheckRedirect that refuses a redirect to
// another origin than the first request's, and more than MaxHops
// redirects. Its error names both origins, never a path or query.
func SameOrigin(req *http.Request, via []*http.Request) error {
	if len(via) >= MaxHops {
		return fmt.Errorf("stopped after %d redirects", MaxHops)
	}
	if len(via) == 0 {
		return errors.New("redirect without a first request")
	}
	if from, to := Origin(via[0].URL), Origin(req.URL); from != to {
		return fmt.Errorf("redirect to %s refused: credentials are sent only to %s", to, from)
	}
	return nil
}

// Client returns a copy of c (a new client when c is nil) whose
// CheckRedirect is SameOrigin.
func Client(c *http.Client) *http.Client {
	out := &http.Client{}
	if c != nil {
		*out = *c
	}
	out.CheckRedirect = SameOrigin
	return out
}
