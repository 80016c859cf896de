package gateway_test

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/shoal-dev/shoal"
	"github.com/shoal-dev/shoal/gateway"
	"github.com/shoal-dev/shoal/internal/testcert"
)

// okBackend reads the body and answers 200 with the protocol it was called
// with.
var okBackend = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	io.Copy(io.Discard, r.Body)
	io.WriteString(w, r.Proto)
})

// TestSlowlorisIsCutOff: a client that trickles its request headers, a
// byte every 50 ms, is disconnected by the read-header timeout, while a
// normal request on another connection is served meanwhile.
//
// The normal request goes after the third byte, 150 ms in: a timeout of
// 300 ms left 150 ms for the test's ticks to fall behind, and on a loaded
// 2-core machine they did (the cut came first, 1 run in 9 of the package,
// three copies at once); with 1 s the slack is 850 ms.
func TestSlowlorisIsCutOff(t *testing.T) {
	for _, srv := range servers {
		t.Run(srv.name, func(t *testing.T) {
			const headerTimeout = time.Second
			e := startEdgeWith(t, shoal.Config{ReadHeaderTimeout: headerTimeout}, time.Second, srv.engine)
			e.backend(t, "api", okBackend)

			// Before the dial: the server's header timer starts once it
			// accepts, which may be before Dial returns.
			begin := time.Now()
			conn, err := net.Dial("tcp", e.addr)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			closed := make(chan time.Duration, 1)
			go func() { // ends when the server closes the connection (or the test does)
				io.Copy(io.Discard, conn)
				closed <- time.Since(begin)
			}()
			trickle := "GET /api/slow HTTP/1.1\r\nHost: edge\r\nX-Slow: " + strings.Repeat("s", 200) + "\r\n\r\n"
			tick := time.NewTicker(50 * time.Millisecond) // the attacker's pace
			defer tick.Stop()
			servedMeanwhile := false
			var servedAfter time.Duration
			for i := 0; ; i++ {
				select {
				case after := <-closed:
					if after > 5*time.Second || after < headerTimeout {
						t.Errorf("trickling client cut off after %v, want soon after %v", after, headerTimeout)
					}
					if !servedMeanwhile {
						t.Error("no normal request was served while the slow one trickled")
					}
					// Answered while the slow one still trickled, not held
					// until it was cut (the two ends may race by a few ms).
					if servedAfter > after-20*time.Millisecond {
						t.Errorf("normal request answered after %v, the slow one cut after %v: held until the cut", servedAfter, after)
					}
					return
				case <-tick.C:
				}
				if i >= len(trickle) {
					t.Fatalf("the whole request trickled in over %v without the connection being cut", time.Since(begin))
				}
				conn.Write([]byte{trickle[i]}) // fails once cut: the reader reports it
				if i == 2 {
					resp, err := http.Get("http://" + e.addr + "/api/fast")
					if err != nil {
						t.Fatalf("normal request while a slow one trickles: %v", err)
					}
					resp.Body.Close()
					servedAfter = time.Since(begin)
					servedMeanwhile = resp.StatusCode == http.StatusOK
					if !servedMeanwhile {
						t.Errorf("normal request while a slow one trickles: %s", resp.Status)
					}
				}
			}
		})
	}
}

// TestOversizeHeadersAre431: request headers over the service's
// MaxHeaderBytes are refused with 431 before the gateway sees them; headers
// within it go through.
func TestOversizeHeadersAre431(t *testing.T) {
	for _, srv := range servers {
		t.Run(srv.name, func(t *testing.T) {
			e := startEdgeWith(t, shoal.Config{MaxHeaderBytes: 4 << 10}, time.Second, srv.engine)
			e.backend(t, "api", okBackend)
			for _, tt := range []struct {
				size int
				want int
			}{
				{2 << 10, http.StatusOK},
				// net/http allows 4 KiB over MaxHeaderBytes for the request line
				// and its own bookkeeping; 16 KiB is well past both.
				{16 << 10, http.StatusRequestHeaderFieldsTooLarge},
			} {
				req, _ := http.NewRequest(http.MethodGet, "http://"+e.addr+"/api/x", nil)
				req.Header.Set("X-Big", strings.Repeat("h", tt.size))
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if resp.StatusCode != tt.want {
					t.Errorf("%d bytes of headers over a 4 KiB limit: %s, want %d", tt.size, resp.Status, tt.want)
				}
			}
		})
	}
}

// TestOversizeBodyIs413: a body over the gateway's max_body (the
// configuration's, or its route's) gets 413 with the JSON code too_large,
// whether its length is declared or not; one within the limit goes through.
func TestOversizeBodyIs413(t *testing.T) {
	for _, srv := range servers {
		t.Run(srv.name, func(t *testing.T) {
			e := startEdgeWith(t, shoal.Config{}, time.Second, srv.engine)
			e.backend(t, "api", okBackend)
			if err := e.gw.SetConfig(&gateway.Config{MaxBody: 1 << 10, Routes: []gateway.Route{
				{Path: "/tiny", Service: "api", MaxBody: 16},
			}}, ""); err != nil {
				t.Fatal(err)
			}
			hide := func(r io.Reader) io.Reader { return struct{ io.Reader }{r} } // no length: chunked
			for _, tt := range []struct {
				name string
				path string
				body io.Reader
				want int
			}{
				{"within max_body", "/api/up", strings.NewReader(strings.Repeat("b", 1<<10)), http.StatusOK},
				{"declared length over", "/api/up", strings.NewReader(strings.Repeat("b", 1<<10+1)), http.StatusRequestEntityTooLarge},
				{"chunked over", "/api/up", hide(strings.NewReader(strings.Repeat("b", 64<<10))), http.StatusRequestEntityTooLarge},
				{"within the route's", "/tiny", strings.NewReader("0123456789abcdef"), http.StatusOK},
				{"over the route's", "/tiny", strings.NewReader("0123456789abcdefg"), http.StatusRequestEntityTooLarge},
			} {
				t.Run(tt.name, func(t *testing.T) {
					resp, err := http.Post("http://"+e.addr+tt.path, "application/octet-stream", tt.body)
					if err != nil {
						t.Fatal(err)
					}
					defer resp.Body.Close()
					if resp.StatusCode != tt.want {
						t.Fatalf("status %s, want %d", resp.Status, tt.want)
					}
					if tt.want != http.StatusRequestEntityTooLarge {
						return
					}
					var body struct {
						Error struct{ Code, Message string } `json:"error"`
					}
					if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || body.Error.Code != "too_large" {
						t.Errorf("413 body: %+v, %v; want JSON error code too_large", body, err)
					}
				})
			}
		})
	}
}

// TestTLSH2ThroughGateway: a gateway serving TLS speaks HTTP/2 to its
// clients (ALPN) while calling services over HTTP/1.1, and streams
// server-sent events over HTTP/2 as they come.
func TestTLSH2ThroughGateway(t *testing.T) {
	certFile, keyFile, pool := testCert(t)
	e := startEdge(t, shoal.Config{TLSCertFile: certFile, TLSKeyFile: keyFile}, time.Second)
	release := make(chan struct{})
	e.backend(t, "api", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/events" {
			okBackend(w, r)
			return
		}
		twoEvents(w, r, release)
	}))
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true}
	t.Cleanup(tr.CloseIdleConnections)
	hc := &http.Client{Transport: tr}

	resp, err := hc.Get("https://" + e.addr + "/api/hello")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.ProtoMajor != 2 || string(body) != "HTTP/1.1" {
		t.Errorf("over TLS: %s %s, backend saw %q; want 200 over HTTP/2, HTTP/1.1 behind", resp.Proto, resp.Status, body)
	}

	req, _ := http.NewRequest(http.MethodGet, "https://"+e.addr+"/api/events", nil)
	req.Header.Set("Accept", "text/event-stream")
	resp, err = hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.ProtoMajor != 2 {
		t.Errorf("event stream over %s, want HTTP/2", resp.Proto)
	}
	events := readEvents(t, resp.Body)
	if ev := events.next(t); ev != "data: first" {
		t.Fatalf("first event %q", ev)
	}
	close(release)
	if ev := events.next(t); ev != "data: second" {
		t.Fatalf("second event %q", ev)
	}
}

// testCert writes a self-signed certificate for 127.0.0.1 and its key, and
// returns their files and a pool that trusts it.
func testCert(t *testing.T) (certFile, keyFile string, pool *x509.CertPool) {
	certFile, keyFile, cert := testcert.SelfSigned(t, t.TempDir(), "")
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}
