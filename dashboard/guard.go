package dashboard

import (
	"crypto/subtle"
	"net"
	"net/http"
	"net/url"
	"strings"

	"github.com/shoal-dev/shoal/internal/bearer"
)

// The dashboard controls processes (kill, scale), so a request is served
// only when all of these hold:
//
//   - Host names this machine by a loopback literal or "localhost": a page
//     of another site that rebinds its own name to 127.0.0.1 (DNS
//     rebinding) sends its own name as Host and is refused.
//   - It carries the token: the shoal_dashboard_<port> cookie, set when
//     the URL shoal up printed (…/?token=…) is opened, or an
//     Authorization: Bearer header (scripts), or ?token= itself. Another
//     site cannot read the cookie, and SameSite=Strict keeps the browser
//     from sending it with requests other sites start.
//   - An Origin header, if sent, is this dashboard's own origin.
//   - A state-changing request (POST) authenticated by the cookie comes
//     from the dashboard's own page: Origin present and same-origin, and
//     a JSON body (a cross-site form cannot send one without a CORS
//     preflight, which is never granted).

// tokenParam is the query parameter of the printed URL.
const tokenParam = "token"

// cookieName is per port: cookies are shared by every port of a host, and
// two shoal up may run at once.
func cookieName(r *http.Request) string {
	_, port, _ := net.SplitHostPort(r.Host)
	return "shoal_dashboard_" + port
}

// loopbackHost reports whether host (a Host header) names a loopback
// address literally or as localhost.
func loopbackHost(host string) bool {
	h, _, err := net.SplitHostPort(host)
	if err != nil {
		h = host
	}
	h = strings.TrimSuffix(strings.TrimPrefix(h, "["), "]")
	if strings.EqualFold(h, "localhost") {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// refusal says why a request is refused, "" if it may be served. via is
// how it authenticated: "cookie", "bearer" or "query".
func (s *Server) refusal(r *http.Request) (why string, via string) {
	if !loopbackHost(r.Host) {
		return "Host " + r.Host + " is not this machine's loopback address (DNS rebinding?)", ""
	}
	origin := r.Header.Get("Origin")
	if origin != "" && !sameOrigin(origin, r.Host) {
		return "cross-origin request from " + origin, ""
	}
	switch {
	case s.validToken(bearer.Token(r)):
		via = "bearer"
	case s.cookieOK(r):
		via = "cookie"
	case r.Method == http.MethodGet && s.validToken(r.URL.Query().Get(tokenParam)):
		via = "query"
	default:
		return "missing or wrong token: open the URL `shoal up` printed (`shoal dashboard` prints it again)", ""
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead && via == "cookie" {
		if origin == "" {
			return "a state-changing request from a browser must carry Origin", via
		}
		if site := r.Header.Get("Sec-Fetch-Site"); site != "" && site != "same-origin" {
			return "Sec-Fetch-Site " + site, via
		}
	}
	return "", via
}

func sameOrigin(origin, host string) bool {
	u, err := url.Parse(origin)
	return err == nil && u.Scheme == "http" && strings.EqualFold(u.Host, host)
}

func (s *Server) validToken(tok string) bool {
	return tok != "" && subtle.ConstantTimeCompare([]byte(tok), []byte(s.token)) == 1
}

func (s *Server) cookieOK(r *http.Request) bool {
	c, err := r.Cookie(cookieName(r))
	return err == nil && s.validToken(c.Value)
}

// setCookie gives the browser the token for the next requests.
func (s *Server) setCookie(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{
		Name: cookieName(r), Value: s.token, Path: "/",
		HttpOnly: true, SameSite: http.SameSiteStrictMode,
	})
}
