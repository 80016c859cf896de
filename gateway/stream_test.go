package gateway_test

import (
	"bufio"
	"context"
	"crypto/sha1"
	"encoding/base64"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/shoal-dev/shoal"
	"github.com/shoal-dev/shoal/client"
	"github.com/shoal-dev/shoal/discovery"
	"github.com/shoal-dev/shoal/gateway"
)

// edge is a gateway run as the SDK service it is in production (so that
// the service's server, metrics and admission control sit in the path), in
// front of backends registered in a catalog by hand.
type edge struct {
	gw   *gateway.Gateway
	svc  *shoal.Service
	addr string // the gateway's listen address
	cat  *discovery.Catalog
}

// servers are the two ways the gateway service serves HTTP/1.1: its own
// engine (with Upstream calling the services), as shoal gateway runs it, and
// net/http alone (shoal gateway --engine=false). Tests of HTTP behaviour run
// against both.
var servers = []struct {
	name   string
	engine bool
}{{"engine", true}, {"net-http", false}}

// startEdge runs a gateway service with cfg (Name and Logger are set here)
// whose gateway times requests out after timeout and whose client resolves
// service names in the returned catalog, served by the engine as in
// production.
func startEdge(t *testing.T, cfg shoal.Config, timeout time.Duration) *edge {
	t.Helper()
	return startEdgeWith(t, cfg, timeout, true)
}

// startEdgeWith is startEdge, served by the engine or by net/http alone.
func startEdgeWith(t *testing.T, cfg shoal.Config, timeout time.Duration, engine bool) *edge {
	t.Helper()
	return startEdgeClient(t, cfg, client.Config{}, timeout, engine)
}

// startEdgeClient is startEdgeWith with the client policy ccfg.
func startEdgeClient(t *testing.T, cfg shoal.Config, ccfg client.Config, timeout time.Duration, engine bool) *edge {
	t.Helper()
	e := &edge{cat: discovery.NewCatalog()}
	ccfg.TracerProvider = cfg.TracerProvider // as the SDK's own transport
	if engine {
		ccfg.Base = gateway.NewUpstream()
		cfg.Engine = gateway.NewEngine()
	}
	e.gw = newGateway(t, e.cat, ccfg)
	e.gw.Timeout = timeout
	cfg.Name = "gateway"
	e.svc = runService(t, cfg, e.gw)
	e.addr = e.svc.Addr()
	return e
}

// runService runs an SDK service with cfg (its Logger discarded) and h until
// the test ends, and returns it once ready.
func runService(t testing.TB, cfg shoal.Config, h http.Handler) *shoal.Service {
	t.Helper()
	cfg.Logger = slog.New(slog.DiscardHandler)
	svc, err := shoal.New(cfg, h)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			t.Errorf("service %s did not stop", cfg.Name)
		}
	})
	select {
	case <-svc.Ready():
	case err := <-done:
		t.Fatalf("service %s: %v", cfg.Name, err)
	case <-time.After(10 * time.Second):
		t.Fatalf("service %s not ready after 10s", cfg.Name)
	}
	return svc
}

// backend serves h as the one instance of service.
func (e *edge) backend(t *testing.T, service string, h http.Handler) {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	e.cat.Upsert(discovery.Instance{ID: service + "-1", Service: service, Addr: srv.Listener.Addr().String(), State: discovery.StateServing})
}

// wsAccept is the Sec-WebSocket-Accept for key (RFC 6455 §4.2.2).
func wsAccept(key string) string {
	h := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	return base64.StdEncoding.EncodeToString(h[:])
}

// wsEchoBackend does a WebSocket handshake by hand, greets, echoes what it
// reads, and reports on closed when the client's end of the stream arrives.
func wsEchoBackend(t *testing.T, closed chan<- struct{}) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
			http.Error(w, "want a WebSocket upgrade", http.StatusBadRequest)
			return
		}
		if v := r.Header.Get(client.TimeoutHeader); v != "" {
			t.Errorf("upgrade reached the backend with %s: %s; a stream must get no deadline", client.TimeoutHeader, v)
		}
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		defer conn.Close()
		brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
			"Sec-WebSocket-Accept: " + wsAccept(r.Header.Get("Sec-WebSocket-Key")) + "\r\n\r\nwelcome\n")
		if err := brw.Flush(); err != nil {
			t.Error(err)
			return
		}
		for {
			line, err := brw.ReadString('\n')
			if err != nil {
				close(closed) // the client went away: the gateway passed it on
				return
			}
			if _, err := conn.Write([]byte("echo " + line)); err != nil {
				return
			}
		}
	}
}

// TestWebSocketThroughGateway: a WebSocket handshake goes through the
// gateway to the backend, messages go both ways (for longer than the
// gateway's timeout, which bounds only the wait for the 101), and closing
// the client's side reaches the backend.
func TestWebSocketThroughGateway(t *testing.T) {
	for _, srv := range servers {
		t.Run(srv.name, func(t *testing.T) {
			const timeout = time.Second // time enough for the headers on a loaded machine
			e := startEdgeWith(t, shoal.Config{}, timeout, srv.engine)
			closed := make(chan struct{})
			e.backend(t, "chat", wsEchoBackend(t, closed))

			conn := dial(t, e.addr, 10*time.Second)
			defer conn.Close()
			const key = "dGhlIHNhbXBsZSBub25jZQ=="
			io.WriteString(conn, "GET /chat/socket HTTP/1.1\r\nHost: edge\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"+
				"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: "+key+"\r\n\r\n")
			br := bufio.NewReader(conn)
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatalf("handshake: %v", err)
			}
			if resp.StatusCode != http.StatusSwitchingProtocols || resp.Header.Get("Sec-WebSocket-Accept") != wsAccept(key) {
				t.Fatalf("handshake answered %s with accept %q", resp.Status, resp.Header.Get("Sec-WebSocket-Accept"))
			}
			readLine := func(want string) {
				t.Helper()
				line, err := br.ReadString('\n')
				if err != nil || line != want+"\n" {
					t.Fatalf("read %q, %v; want %q", line, err, want)
				}
			}
			readLine("welcome") // backend to client
			io.WriteString(conn, "hello\n")
			readLine("echo hello") // and back
			// Not synchronisation: time passing, past the gateway's timeout.
			time.Sleep(3 * timeout)
			io.WriteString(conn, "still here\n")
			readLine("echo still here")

			conn.(*net.TCPConn).CloseWrite()
			select {
			case <-closed:
			case <-time.After(5 * time.Second):
				t.Fatal("the client's close did not reach the backend")
			}
			if rest, err := io.ReadAll(br); err != nil || len(rest) != 0 {
				t.Errorf("after close: read %q, %v; want EOF", rest, err)
			}
		})
	}
}

// TestSSEThroughGateway: server-sent events go through the gateway as they
// are written: the first arrives while the backend still holds the
// stream open (no buffering), the second once it goes on, after more than
// the gateway's timeout.
func TestSSEThroughGateway(t *testing.T) {
	for _, srv := range servers {
		t.Run(srv.name, func(t *testing.T) {
			const timeout = time.Second // time enough for the headers on a loaded machine
			e := startEdgeWith(t, shoal.Config{}, timeout, srv.engine)
			release := make(chan struct{})
			e.backend(t, "news", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if v := r.Header.Get(client.TimeoutHeader); v != "" {
					t.Errorf("event stream reached the backend with %s: %s; a stream must get no deadline", client.TimeoutHeader, v)
				}
				twoEvents(w, r, release)
			}))

			req, err := http.NewRequest(http.MethodGet, "http://"+e.addr+"/news/events", nil)
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Accept", "text/event-stream")
			tr := &http.Transport{}
			t.Cleanup(tr.CloseIdleConnections)
			resp, err := (&http.Client{Transport: tr}).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if ct := resp.Header.Get("Content-Type"); resp.StatusCode != http.StatusOK || ct != "text/event-stream" {
				t.Fatalf("answered %s, Content-Type %q", resp.Status, ct)
			}
			events := readEvents(t, resp.Body)
			if ev := events.next(t); ev != "data: first" {
				t.Fatalf("first event %q", ev)
			}
			time.Sleep(3 * timeout) // time passing, past the gateway's timeout
			close(release)
			if ev := events.next(t); ev != "data: second" {
				t.Fatalf("second event %q", ev)
			}
			if ev, ok := <-events.c; ok {
				t.Fatalf("after the last event: %q, want the end of the stream", ev)
			}
		})
	}
}

// eventReader hands over the non-empty lines of an event stream as they
// arrive.
type eventReader struct{ c <-chan string }

// readEvents reads body on a goroutine that ends with the body, or with the
// test.
func readEvents(t *testing.T, body io.Reader) eventReader {
	c := make(chan string)
	done := make(chan struct{})
	t.Cleanup(func() { close(done) })
	go func() {
		defer close(c)
		sc := bufio.NewScanner(body)
		for sc.Scan() {
			if sc.Text() == "" {
				continue
			}
			select {
			case c <- sc.Text():
			case <-done:
				return
			}
		}
	}()
	return eventReader{c}
}

func (r eventReader) next(t *testing.T) string {
	t.Helper()
	select {
	case ev, ok := <-r.c:
		if !ok {
			t.Fatal("the stream ended early")
		}
		return ev
	case <-time.After(5 * time.Second):
		t.Fatal("no event within 5s: the gateway holds it back")
		return ""
	}
}

// twoEvents answers an event stream: "first" at once, then "second" once
// release is closed, unless the request ends before.
func twoEvents(w http.ResponseWriter, r *http.Request, release <-chan struct{}) {
	w.Header().Set("Content-Type", "text/event-stream")
	io.WriteString(w, "data: first\n\n")
	http.NewResponseController(w).Flush()
	select {
	case <-release:
	case <-r.Context().Done():
		return
	}
	io.WriteString(w, "data: second\n\n")
}
