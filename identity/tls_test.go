package identity

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

var quietLog = log.New(io.Discard, "", 0)

// serve starts an HTTPS server on loopback with ServerConfig(src); the
// handler answers with the caller's SPIFFE ID and counts the requests it
// saw.
func serve(t *testing.T, src *Source) (srv *httptest.Server, hits *atomic.Int64) {
	t.Helper()
	hits = new(atomic.Int64)
	srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		id, err := PeerFromRequest(r)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		fmt.Fprint(w, id)
	}))
	srv.TLS = ServerConfig(src)
	srv.Config.ErrorLog = quietLog // refused handshakes are the point of these tests
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv, hits
}

// transportFor is the client's per-service transport: requests are https://
// to an instance address, and the dialer checks the service.
func transportFor(d *Dialer, service string) *http.Transport {
	return &http.Transport{DialTLSContext: d.ForService(service)}
}

func get(t *testing.T, rt http.RoundTripper, addr string) (string, error) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, "https://"+addr+"/", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := rt.RoundTrip(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("status %d: %s", resp.StatusCode, b)
	}
	return string(b), err
}

// TestMutualTLS makes real handshakes over loopback between a client that
// wants one service and a server that is some service, with various
// credentials on each side.
func TestMutualTLS(t *testing.T) {
	flix := newCA(t, "flix")
	next := newCA(t, "flix")
	other := newCA(t, "other")
	trustFlix := bundleOf(t, flix)
	overlap := bundleOf(t, flix, next)

	tests := []struct {
		name    string
		server  *Credentials
		client  *Credentials
		want    string // service the client asks for
		ok      bool
		wantErr string
	}{
		{"right service", credsOf(t, flix, "profiles", trustFlix), credsOf(t, flix, "api", trustFlix), "profiles", true, ""},
		// A forged or stale record that points the client at a catalog
		// instance when it asked for profiles: refused in the handshake,
		// before a request byte (a sign-in body, a token) is sent.
		{"catalog posing as profiles", credsOf(t, flix, "catalog", trustFlix), credsOf(t, flix, "api", trustFlix), "profiles", false, "not profiles"},
		{"server of another system", credsOf(t, other, "profiles", bundleOf(t, other)), credsOf(t, flix, "api", trustFlix), "profiles", false, "unknown authority"},
		{"client of another system", credsOf(t, flix, "profiles", trustFlix), credsOf(t, other, "api", bundleOf(t, other)), "profiles", false, ""},
		{"rotation: old server, new client", credsOf(t, flix, "profiles", overlap), credsOf(t, next, "api", overlap), "profiles", true, ""},
		{"rotation: new server, old client", credsOf(t, next, "profiles", overlap), credsOf(t, flix, "api", overlap), "profiles", true, ""},
		{"new CA not yet trusted by the client", credsOf(t, next, "profiles", overlap), credsOf(t, flix, "api", trustFlix), "profiles", false, "unknown authority"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, hits := serve(t, NewSource(tt.server))
			tr := transportFor(NewDialer(NewSource(tt.client), nil), tt.want)
			defer tr.CloseIdleConnections()
			got, err := get(t, tr, srv.Listener.Addr().String())
			if !tt.ok {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got %q, %v; want an error containing %q", got, err, tt.wantErr)
				}
				if n := hits.Load(); n != 0 {
					t.Fatalf("the handler ran %d times", n)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if want := tt.client.ID.String(); got != want {
				t.Errorf("server saw caller %q, want %q", got, want)
			}
		})
	}
}

// TestServerRequiresClientCert: a client with no certificate (it trusts the
// CA, so the server's side of the handshake is fine) is refused before the
// handler runs.
func TestServerRequiresClientCert(t *testing.T) {
	ca := newCA(t, "flix")
	b := bundleOf(t, ca)
	srv, hits := serve(t, NewSource(credsOf(t, ca, "profiles", b)))
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: b.pool, ServerName: "profiles"}}
	defer tr.CloseIdleConnections()
	_, err := get(t, tr, srv.Listener.Addr().String())
	if err == nil || !strings.Contains(err.Error(), "certificate required") {
		t.Fatalf("no client certificate: %v, want a TLS certificate-required alert", err)
	}
	if n := hits.Load(); n != 0 {
		t.Fatalf("the handler ran %d times", n)
	}
	// A plain-HTTP request to the TLS port fails too.
	resp, err := http.Get("http://" + srv.Listener.Addr().String() + "/")
	if err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Fatal("plain HTTP got 200")
		}
	}
	if n := hits.Load(); n != 0 {
		t.Fatalf("the handler ran %d times", n)
	}
}

// TestRenewalWithoutRestart: a server whose certificate files are renewed
// presents the new certificate on the next connection, and a client whose
// files are renewed presents its new one, with no restart of either.
func TestRenewalWithoutRestart(t *testing.T) {
	ca := newCA(t, "flix")
	b := bundleOf(t, ca)
	sf := writeFiles(t, t.TempDir(), issue(t, ca, "profiles"), b)
	cf := writeFiles(t, t.TempDir(), issue(t, ca, "api"), b)
	serverSrc, err := LoadSource(sf, nil)
	if err != nil {
		t.Fatal(err)
	}
	clientSrc, err := LoadSource(cf, nil)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var clientSerials []string
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		clientSerials = append(clientSerials, r.TLS.PeerCertificates[0].SerialNumber.String())
		mu.Unlock()
	}))
	srv.TLS = ServerConfig(serverSrc)
	srv.Config.ErrorLog = quietLog
	srv.StartTLS()
	defer srv.Close()

	var serverSerials []string
	call := func() {
		t.Helper()
		// A new Dialer each time, so that the second handshake is a full
		// one: a resumed session keeps the certificates of the handshake
		// that created it (Go refuses to resume once they have expired).
		d := NewDialer(clientSrc, nil)
		conn, err := d.DialService(t.Context(), "tcp", srv.Listener.Addr().String(), "profiles")
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		serverSerials = append(serverSerials, conn.ConnectionState().PeerCertificates[0].SerialNumber.String())
		tr := &http.Transport{DialTLSContext: func(context.Context, string, string) (net.Conn, error) { return conn, nil }}
		defer tr.CloseIdleConnections()
		if _, err := get(t, tr, srv.Listener.Addr().String()); err != nil {
			t.Fatal(err)
		}
	}
	call()
	if err := issue(t, ca, "profiles").WriteFiles(sf.Cert, sf.Key); err != nil {
		t.Fatal(err)
	}
	if err := issue(t, ca, "api").WriteFiles(cf.Cert, cf.Key); err != nil {
		t.Fatal(err)
	}
	for _, s := range []*Source{serverSrc, clientSrc} {
		if changed, err := s.Reload(); !changed || err != nil {
			t.Fatalf("Reload = %v, %v", changed, err)
		}
	}
	call()
	if serverSerials[0] == serverSerials[1] {
		t.Error("the server presented its old certificate after renewal")
	}
	mu.Lock()
	defer mu.Unlock()
	if len(clientSerials) != 2 || clientSerials[0] == clientSerials[1] {
		t.Errorf("client serials seen by the server: %v, want two different", clientSerials)
	}
}

// TestSessionResumption: a second connection to the same instance resumes
// the TLS session (no certificate signature or chain verification), a
// connection to another instance of the same service does not reuse the
// first one's ticket, and resumption still checks the service.
func TestSessionResumption(t *testing.T) {
	ca := newCA(t, "flix")
	b := bundleOf(t, ca)
	srv1, _ := serve(t, NewSource(credsOf(t, ca, "profiles", b)))
	srv2, _ := serve(t, NewSource(credsOf(t, ca, "profiles", b)))
	d := NewDialer(NewSource(credsOf(t, ca, "api", b)), nil)

	// roundTrip makes one request on a new connection and reports whether
	// the handshake resumed. The request makes the client read the session
	// ticket, which TLS 1.3 sends after the handshake.
	roundTrip := func(addr, service string) (bool, error) {
		t.Helper()
		var resumed bool
		tr := &http.Transport{DisableKeepAlives: true, DialTLSContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := d.DialService(ctx, network, addr, service)
			if err == nil {
				resumed = c.ConnectionState().DidResume
			}
			return c, err
		}}
		defer tr.CloseIdleConnections()
		_, err := get(t, tr, addr)
		return resumed, err
	}
	a1, a2 := srv1.Listener.Addr().String(), srv2.Listener.Addr().String()
	steps := []struct {
		addr, service string
		resumed, ok   bool
	}{
		{a1, "profiles", false, true},
		{a1, "profiles", true, true},
		{a2, "profiles", false, true}, // its own session, not srv1's ticket
		{a2, "profiles", true, true},
		{a1, "profiles", true, true}, // srv1's session was kept
		{a1, "catalog", false, false},
	}
	for i, s := range steps {
		resumed, err := roundTrip(s.addr, s.service)
		if (err == nil) != s.ok || resumed != s.resumed {
			t.Fatalf("step %d (%s at %s): resumed %v, err %v; want resumed %v, ok %v", i, s.service, s.addr, resumed, err, s.resumed, s.ok)
		}
	}
}
