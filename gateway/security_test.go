package gateway_test

// The edge's part of issue 13: what a caller sends never speaks for the
// gateway (credentials, identity headers in any spelling, upgrades other
// than WebSocket), the gateway vouches for the users it verified with a
// user token, its own admin endpoints are not routed, a slow reader does
// not hold a call past the request's time, only trusted proxies say who
// the client is, and development credentials need an explicit opt-in. The
// HTTP cases run on both servers.

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shoal-dev/shoal"
	"github.com/shoal-dev/shoal/client"
	"github.com/shoal-dev/shoal/gateway"
	"github.com/shoal-dev/shoal/identity"
	"github.com/shoal-dev/shoal/identity/identitytest"
	"github.com/shoal-dev/shoal/internal/syncbuf"
)

// forgedFields are fields a caller sends that must never reach a service:
// credentials and the gateway's identity headers, in the spellings servers
// and frameworks behind read as the same name.
var forgedFields = []string{
	"Authorization: Bearer stolen",
	"X-API-Key: s3cret",
	"X_Api_Key: s3cret",
	"Shoal-Subject: p0001",
	"Shoal_Subject: p0001",
	"SHOAL_SUBJECT: p0001",
	"shoal-auth: jwt",
	"Shoal_Auth: jwt",
	"Shoal-User-Token: forged",
	"Shoal_User_Token: forged",
	"SHOAL-USER-TOKEN: forged",
	"HTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA",
}

// normalized is a field name as CGI-style servers read it: lower case, '_'
// as '-'.
func normalized(k string) string { return strings.ReplaceAll(strings.ToLower(k), "_", "-") }

// forgedReached returns the fields of h that a caller must not have set:
// the gateway's own Shoal-Subject, Shoal-Auth and Shoal-User-Token (given
// in mine, canonical) aside.
func forgedReached(h http.Header, mine http.Header) []string {
	var bad []string
	for k, vs := range h {
		switch normalized(k) {
		case "authorization", "x-api-key", "http2-settings":
		case "shoal-subject", "shoal-auth", "shoal-user-token":
			if want, ok := mine[k]; ok && len(vs) == 1 && vs[0] == want[0] {
				continue
			}
		default:
			continue
		}
		bad = append(bad, k+": "+strings.Join(vs, ", "))
	}
	return bad
}

// securedEdge runs a gateway service (engine or net/http) whose route
// /vault/ requires the API key "s3cret" (named mobile) and goes to the
// service vault, behind a service's Guard; api is reached by default
// routes. Both services are the conformance backend, vault behind a Guard
// that verifies the gateway's user tokens.
func securedEdge(t *testing.T, engine bool, users *identitytest.Users) *edge {
	t.Helper()
	e := startEdgeWith(t, shoal.Config{}, 10*time.Second, engine)
	e.gw.Tokens = users.Issuer
	if err := e.gw.SetConfig(&gateway.Config{
		Auth:   gateway.AuthConfig{APIKeys: []gateway.APIKey{{Name: "mobile", SHA256: sha("s3cret")}}},
		Routes: []gateway.Route{{Path: "/vault/", Service: "vault", Strip: true, Auth: gateway.AuthAPIKey}},
	}, t.TempDir()); err != nil {
		t.Fatal(err)
	}
	hits := new(atomic.Int64)
	e.backend(t, "api", conformanceBackend(hits))
	e.backend(t, "vault", users.Guard("vault").Wrap(conformanceBackend(hits)))
	return e
}

func newUsers(t *testing.T) *identitytest.Users {
	t.Helper()
	u, err := identitytest.NewUsers("flix", "gateway")
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// Credentials and identity headers from the caller never reach a service
// (findings 4 and 12), in headers or trailers; on a route with auth, the
// service gets the gateway's word instead: Shoal-Subject, Shoal-Auth and a
// user token it verifies.
func TestCallerCannotSpeakForTheGateway(t *testing.T) {
	users := newUsers(t)
	for _, srv := range servers {
		t.Run(srv.name, func(t *testing.T) {
			e := securedEdge(t, srv.engine, users)
			forged := strings.Join(forgedFields, "\r\n") + "\r\n"
			t.Run("default route", func(t *testing.T) {
				r := exchange(t, e.addr, "GET /api/echo/x HTTP/1.1\r\nHost: gw\r\n"+forged+"X-Keep: 1\r\n\r\n", 1)[0]
				got := decodeEcho(t, r)
				if bad := forgedReached(got.Header, nil); len(bad) > 0 {
					t.Errorf("the service got %q", bad)
				}
				if got.Header.Get("X-Keep") != "1" {
					t.Errorf("an ordinary field was dropped: %v", got.Header)
				}
			})
			t.Run("route with auth", func(t *testing.T) {
				// The route's credential, and the forged fields that would
				// not stop the gateway from reading it.
				head := "GET /vault/echo/x HTTP/1.1\r\nHost: gw\r\nX-API-Key: s3cret\r\n"
				for _, f := range forgedFields {
					if k := normalized(f[:strings.IndexByte(f, ':')]); k != "authorization" && k != "x-api-key" {
						head += f + "\r\n"
					}
				}
				r := exchange(t, e.addr, head+"\r\n", 1)[0]
				if r.StatusCode != 200 {
					t.Fatalf("%s %s", r.Status, bodyOf(r))
				}
				got := decodeEcho(t, r)
				tok := got.Header.Get(identity.UserTokenHeader)
				u, err := users.Verifier.Verify(tok)
				if err != nil || u.Subject != "mobile" || u.Auth != "api_key:mobile" || u.Issuer != users.Gateway {
					t.Errorf("user token %q: %+v, %v; want mobile by api_key:mobile from %s", tok, u, err, users.Gateway)
				}
				mine := http.Header{"Shoal-Subject": {"mobile"}, "Shoal-Auth": {"api_key:mobile"}, "Shoal-User-Token": {tok}}
				if bad := forgedReached(got.Header, mine); len(bad) > 0 {
					t.Errorf("the service got %q", bad)
				}
			})
			t.Run("trailers", func(t *testing.T) {
				r := exchange(t, e.addr, "POST /api/echo/x HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: chunked\r\n"+
					"Trailer: Shoal-Subject, Shoal-User-Token, X-Sum\r\n\r\n5\r\nhello\r\n0\r\n"+
					"Shoal-Subject: p0001\r\nShoal-User-Token: forged\r\nShoal_Subject: p0001\r\nX-Sum: 42\r\n\r\n", 1)[0]
				got := decodeEcho(t, r)
				if got.Body != "hello" || got.Trailer.Get("X-Sum") != "42" {
					t.Fatalf("%s: body %q, trailers %v", r.Status, got.Body, got.Trailer)
				}
				if bad := forgedReached(got.Trailer, nil); len(bad) > 0 {
					t.Errorf("the service got trailers %q", bad)
				}
			})
		})
	}
}

// Only WebSocket upgrades are passed on (finding 12): an h2c upgrade would
// make the connection to the service an HTTP/2 tunnel that no route, auth
// or limit sees into. The request is answered as a plain one.
func TestOnlyWebSocketUpgradesForwarded(t *testing.T) {
	for _, srv := range servers {
		t.Run(srv.name, func(t *testing.T) {
			e, _ := conformanceEdge(t, srv.engine, shoal.Config{})
			for _, up := range []string{
				"Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n",
				"Connection: Upgrade\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n",
				"Connection: upgrade\r\nUpgrade: TLS/1.2\r\n",
			} {
				r := exchange(t, e.addr, "GET /api/echo/x HTTP/1.1\r\nHost: gw\r\n"+up+"\r\n", 1)[0]
				got := decodeEcho(t, r)
				if r.StatusCode != 200 {
					t.Errorf("%q: %s", up, r.Status)
				}
				for _, k := range []string{"Upgrade", "Http2-Settings", "Connection"} {
					if v, ok := got.Header[k]; ok {
						t.Errorf("%q: the service got %s: %v", up, k, v)
					}
				}
			}
		})
	}
}

// The gateway's own /metrics and /infoz say how it runs (finding 6): on
// the public side they are refused in every spelling, never routed to a
// service that happens to be called metrics or infoz.
func TestGatewayAdminPathsNotRouted(t *testing.T) {
	f := newRouted(t, nil)
	hits := func() int64 { return f.hits["metrics"].Load() + f.hits["infoz"].Load() }
	for _, p := range []string{"/metrics", "/infoz", "/METRICS", "/metrics/", "//metrics", "/x/../metrics", "/%6detrics", "/Infoz/", "/./infoz"} {
		resp, body := f.do(t, call{path: p})
		if resp.StatusCode != http.StatusNotFound || !strings.Contains(string(body), "admin endpoint of the gateway") {
			t.Errorf("GET %s: %d %s; want 404", p, resp.StatusCode, body)
		}
	}
	if n := hits(); n != 0 {
		t.Errorf("%d requests reached the services", n)
	}
	// Below them, a service's paths are routed as ever.
	if resp, body := f.do(t, call{path: "/metrics/series"}); resp.StatusCode != 200 || hits() != 1 {
		t.Errorf("GET /metrics/series: %d %s, %d hits; want 200 from service metrics", resp.StatusCode, body, hits())
	}
}

// A caller that stops reading a response must not keep the call open, and
// with it a place in the service's bulkhead, beyond the request's time
// (finding 7): with room for one call, a second caller gets through once
// the first one's time is up.
func TestSlowReaderReleasesBulkhead(t *testing.T) {
	const timeout = time.Second
	for _, srv := range servers {
		t.Run(srv.name, func(t *testing.T) {
			e := startEdgeClient(t, shoal.Config{}, client.Config{MaxInFlight: 1, Hedge: hedgeOff}, timeout, srv.engine)
			chunk := bytes.Repeat([]byte("x"), 64<<10)
			e.backend(t, "big", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == "/small" {
					io.WriteString(w, "ok")
					return
				}
				w.Header().Set("Content-Length", fmt.Sprint(1<<30))
				for {
					if _, err := w.Write(chunk); err != nil {
						return
					}
				}
			}))
			slow, err := net.Dial("tcp", e.addr)
			if err != nil {
				t.Fatal(err)
			}
			defer slow.Close()
			// Asks for a gigabyte and reads only the head.
			io.WriteString(slow, "GET /big/large HTTP/1.1\r\nHost: gw\r\n\r\n")
			slow.SetReadDeadline(time.Now().Add(10 * time.Second))
			if _, err := bufio.NewReaderSize(slow, 1024).ReadSlice('\n'); err != nil {
				t.Fatalf("no response to the slow reader: %v", err)
			}
			start := time.Now()
			var last string
			for time.Since(start) < 15*time.Second {
				resp, err := http.Get("http://" + e.addr + "/big/small")
				if err != nil {
					t.Fatal(err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode == 200 {
					t.Logf("the second caller got through after %v", time.Since(start).Round(time.Millisecond))
					return
				}
				last = fmt.Sprintf("%s %s", resp.Status, body)
				time.Sleep(50 * time.Millisecond) // polling the gateway, as a client retrying would
			}
			t.Fatalf("the slow reader still holds the only place after 15s (%v timeout): %s", timeout, last)
		})
	}
}

// Only a trusted proxy says who the client is (finding 13): through one,
// each client address in X-Forwarded-For gets its own rate-limit bucket
// and is the X-Forwarded-For the service sees; from anyone else the field
// is ignored, so that a client cannot pick a fresh bucket per request.
func TestTrustedProxiesNameTheClient(t *testing.T) {
	limited := gateway.Route{Path: "/limited/", Service: "api", Strip: true, RateLimit: &gateway.RateLimit{Rate: 0.001, Burst: 1}}
	for _, srv := range servers {
		t.Run(srv.name, func(t *testing.T) {
			e, _ := conformanceEdge(t, srv.engine, shoal.Config{})
			get := func(xff string) (int, echoed) {
				r := exchange(t, e.addr, "GET /limited/echo/x HTTP/1.1\r\nHost: gw\r\nX-Forwarded-For: "+xff+"\r\n\r\n", 1)[0]
				var got echoed
				if r.StatusCode == 200 {
					got = decodeEcho(t, r)
				}
				return r.StatusCode, got
			}
			// Untrusted: every request is the peer's, whatever it says.
			if err := e.gw.SetConfig(&gateway.Config{Routes: []gateway.Route{limited}}, t.TempDir()); err != nil {
				t.Fatal(err)
			}
			if code, got := get("192.0.2.1"); code != 200 || got.Header.Get("X-Forwarded-For") != "127.0.0.1" {
				t.Fatalf("untrusted peer: %d, service saw X-Forwarded-For %q; want 200 and 127.0.0.1", code, got.Header.Get("X-Forwarded-For"))
			}
			if code, _ := get("192.0.2.2"); code != 429 {
				t.Errorf("untrusted peer, another claimed address: %d; want 429 (the same client)", code)
			}
			// Trusted: the nearest untrusted hop is the client. The
			// reload keeps the route's buckets, so the loopback one is
			// empty, and each claimed client has a full one.
			cfg := &gateway.Config{TrustedProxies: []string{"127.0.0.0/8", "10.0.0.0/8"}, Routes: []gateway.Route{limited}}
			if err := e.gw.SetConfig(cfg, t.TempDir()); err != nil {
				t.Fatal(err)
			}
			for _, tt := range []struct{ xff, client string }{
				{"192.0.2.1", "192.0.2.1"},
				{"203.0.113.9, 192.0.2.2, 10.1.2.3", "192.0.2.2"}, // the leftmost is the client's own claim
				{"[2001:db8::7]:443", "2001:db8::7"},
			} {
				code, got := get(tt.xff)
				if code != 200 || got.Header.Get("X-Forwarded-For") != tt.client {
					t.Errorf("via a trusted proxy, X-Forwarded-For %q: %d, service saw %q; want 200 and %s", tt.xff, code, got.Header.Get("X-Forwarded-For"), tt.client)
				}
				if code, _ := get(tt.xff); code != 429 {
					t.Errorf("X-Forwarded-For %q again: %d; want 429", tt.xff, code)
				}
			}
		})
	}
}

// Credentials marked dev are refused unless the gateway allows them, and
// loudly logged when it does (finding 3).
func TestDevCredentialsNeedOptIn(t *testing.T) {
	cfg := &gateway.Config{
		Auth:   gateway.AuthConfig{APIKeys: []gateway.APIKey{{Name: "ops", SHA256: sha("k")}, {Name: "dev-admin", SHA256: sha("d"), Dev: true}}},
		Routes: []gateway.Route{{Path: "/ops/", Service: "a", Auth: gateway.AuthAPIKey}},
	}
	f := newRouted(t, nil)
	var logs syncbuf.Buffer
	f.gw.Logger = slog.New(slog.NewJSONHandler(&logs, nil))
	err := f.gw.SetConfig(cfg, t.TempDir())
	if err == nil || !strings.Contains(err.Error(), "auth.api_keys[1]") || !strings.Contains(err.Error(), shoal.EnvDev+"=1") {
		t.Fatalf("SetConfig with a dev key: %v; want it refused, naming the key and %s", err, shoal.EnvDev)
	}
	if resp, _ := f.do(t, call{path: "/ops/x", header: map[string]string{"X-API-Key": "d"}}); resp.StatusCode == 200 {
		t.Errorf("the refused configuration serves")
	}
	f.gw.AllowDev = true
	if err := f.gw.SetConfig(cfg, t.TempDir()); err != nil {
		t.Fatal(err)
	}
	if resp, body := f.do(t, call{path: "/ops/x", header: map[string]string{"X-API-Key": "d"}}); resp.StatusCode != 200 {
		t.Errorf("dev key allowed: %d %s", resp.StatusCode, body)
	}
	var line struct {
		Level, Msg  string
		Credentials []string
	}
	json.Unmarshal([]byte(logs.String()), &line)
	if line.Level != "WARN" || !strings.Contains(line.Msg, "DEVELOPMENT CREDENTIALS") || len(line.Credentials) != 1 || line.Credentials[0] != "auth.api_keys[1]" {
		t.Errorf("log %s; want a warning naming auth.api_keys[1]", logs.String())
	}
}
