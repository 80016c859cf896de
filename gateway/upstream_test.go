package gateway_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/gateway"
)

// closingBackend answers the first request on a connection and then closes
// the connection without saying so (no Connection: close), telling closed:
// what a service does when its idle timeout ends a connection the caller
// is about to reuse. served counts the requests answered.
func closingBackend(t *testing.T, served *atomic.Int64, closed chan<- struct{}) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() { // ends when the listener closes
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { // ends with the connection
				defer func() { closed <- struct{}{} }()
				defer c.Close()
				req, err := http.ReadRequest(bufio.NewReader(c))
				if err != nil {
					return
				}
				io.Copy(io.Discard, req.Body)
				served.Add(1)
				io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
			}()
		}
	}()
	return ln.Addr().String()
}

// TestUpstreamReplaysOnStaleConnection: a request sent on a pooled
// connection the service has meanwhile closed is sent again on a new one
// when it is safe (idempotent, or replayable and never written), and fails
// otherwise, as net/http's transport does.
func TestUpstreamReplaysOnStaleConnection(t *testing.T) {
	var served atomic.Int64
	closed := make(chan struct{}, 16)
	addr := closingBackend(t, &served, closed)
	u := gateway.NewUpstream()
	t.Cleanup(u.CloseIdleConnections)
	do := func(method string, body io.Reader, idempotencyKey bool) (*http.Response, error) {
		req, _ := http.NewRequest(method, "http://"+addr+"/x", body)
		if idempotencyKey {
			req.Header.Set("Idempotency-Key", "k1")
		}
		resp, err := u.RoundTrip(req)
		if err == nil {
			io.ReadAll(resp.Body)
			resp.Body.Close()
		}
		return resp, err
	}
	wait := func() { <-closed } // the service has closed the connection now pooled
	if _, err := do(http.MethodGet, nil, false); err != nil {
		t.Fatal(err)
	}
	wait()
	if resp, err := do(http.MethodGet, nil, false); err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET on a stale connection: %v; want it replayed on a new one", err)
	}
	wait()
	if _, err := do(http.MethodPost, strings.NewReader("data"), true); err != nil {
		t.Fatalf("POST with an Idempotency-Key on a stale connection: %v; want it replayed", err)
	}
	wait()
	before := served.Load()
	if _, err := do(http.MethodPost, strings.NewReader("data"), false); err == nil {
		t.Error("a POST written on a stale connection was sent again: it may have been processed")
	} else if served.Load() != before {
		t.Errorf("the service served it")
	}
}

// TestUpstreamCancel: canceling a call interrupts the wait for the
// response, and the connection is not reused.
func TestUpstreamCancel(t *testing.T) {
	release := make(chan struct{})
	var conns atomic.Int64
	srv := serveWith(t, &conns, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			select {
			case <-release:
			case <-r.Context().Done():
			}
		}
		io.WriteString(w, "ok")
	}))
	defer close(release)
	u := gateway.NewUpstream()
	t.Cleanup(u.CloseIdleConnections)
	ctx, cancel := context.WithCancelCause(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+srv+"/slow", nil)
	cause := errors.New("caller gone")
	time.AfterFunc(50*time.Millisecond, func() { cancel(cause) })
	start := time.Now()
	_, err := u.RoundTrip(req)
	if !errors.Is(err, cause) {
		t.Errorf("error %v, want the cancel cause", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %v", d)
	}
	// The next call works, on a new connection.
	req, _ = http.NewRequest(http.MethodGet, "http://"+srv+"/fast", nil)
	resp, err := u.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	io.ReadAll(resp.Body)
	resp.Body.Close()
	if n := conns.Load(); n != 2 {
		t.Errorf("%d connections, want 2: the canceled one must not be reused", n)
	}
}

// serveWith serves h on loopback, counting new connections in conns.
func serveWith(t *testing.T, conns *atomic.Int64, h http.Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h, ConnState: func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}}
	go srv.Serve(ln) // ends with Close below
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}
