package client

import (
	"bufio"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// upgradeEcho switches to the "echo" protocol by hand, as a WebSocket server
// does, and then echoes every byte until the client half-closes.
func upgradeEcho(t *testing.T) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") != "echo" {
			http.Error(w, "want Upgrade: echo", http.StatusBadRequest)
			return
		}
		if v := r.Header.Get(TimeoutHeader); v != "" {
			t.Errorf("upgrade request carries %s: %s; a stream must get no deadline", TimeoutHeader, v)
		}
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		defer conn.Close()
		brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
		if err := brw.Flush(); err != nil {
			t.Error(err)
			return
		}
		buf := make([]byte, 64)
		for {
			n, err := brw.Read(buf)
			if n > 0 {
				conn.Write(buf[:n])
			}
			if err != nil {
				return // EOF: the client half-closed; closing ends our side
			}
		}
	}
}

func upgradeRequest(t *testing.T) *http.Request {
	req, err := http.NewRequest(http.MethodGet, "http://svc/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "echo")
	return req
}

// TestUpgradePassesThrough switches protocols through the transport and
// talks both ways on the connection, for longer than Config.Timeout, then
// half-closes it: the body is an io.ReadWriteCloser (what
// httputil.ReverseProxy needs), the call's timeout bounded only the wait for
// the 101, and Close gives the call's place in the bulkhead back.
func TestUpgradePassesThrough(t *testing.T) {
	f := newFleet(t, upgradeEcho(t))
	// Time enough for the 101 on a loaded machine: its attempt gets a third.
	const timeout = time.Second
	tr := newTransport(t, f, Config{Timeout: timeout})
	resp, err := tr.RoundTrip(upgradeRequest(t))
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("status %d, want 101", resp.StatusCode)
	}
	conn, ok := resp.Body.(io.ReadWriteCloser)
	if !ok {
		t.Fatalf("101 body is a %T, not an io.ReadWriteCloser", resp.Body)
	}
	echo := func(msg string) {
		t.Helper()
		if _, err := io.WriteString(conn, msg); err != nil {
			t.Fatalf("write %q: %v", msg, err)
		}
		got := make([]byte, len(msg))
		if _, err := io.ReadFull(conn, got); err != nil {
			t.Fatalf("read echo of %q: %v", msg, err)
		}
		if string(got) != msg {
			t.Fatalf("echo %q, want %q", got, msg)
		}
	}
	echo("ping")
	if got := inFlight(tr); got != 1 {
		t.Errorf("in flight while upgraded = %d, want 1 (the connection holds its place)", got)
	}
	// Not synchronisation: time passing, to show the call's Timeout no
	// longer applies once the protocol switched.
	time.Sleep(3 * timeout)
	echo("still there")

	cw, ok := conn.(interface{ CloseWrite() error })
	if !ok {
		t.Fatalf("101 body %T cannot half-close", conn)
	}
	io.WriteString(conn, "bye")
	if err := cw.CloseWrite(); err != nil {
		t.Fatalf("CloseWrite: %v", err)
	}
	rest, err := io.ReadAll(conn) // the server echoes, sees EOF, closes
	if err != nil || string(rest) != "bye" {
		t.Fatalf("after half-close read %q, %v; want the echo of bye, then EOF", rest, err)
	}
	if err := conn.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if got := inFlight(tr); got != 0 {
		t.Errorf("in flight after Close = %d, want 0", got)
	}
	if f.hits[0].Load() != 1 {
		t.Errorf("instance hit %d times, want 1", f.hits[0].Load())
	}
}

// TestUpgradeNotRetriedOnceSent: an upgrade that reached an instance is never
// sent to another, even on a 503 that an idempotent GET would retry, nor
// hedged; one that never left (connection refused) fails over as usual.
func TestUpgradeNotRetriedOnceSent(t *testing.T) {
	f := newFleet(t, status(http.StatusServiceUnavailable), status(http.StatusServiceUnavailable))
	tr := newTransport(t, f, Config{})
	resp, err := tr.RoundTrip(upgradeRequest(t))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("status %d, want the instance's 503", resp.StatusCode)
	}
	if hits := f.hits[0].Load() + f.hits[1].Load(); hits != 1 {
		t.Errorf("instances hit %d times, want 1: an upgrade once sent is final", hits)
	}

	f = newFleet(t, nil, upgradeEcho(t)) // the first refuses connections
	tr = newTransport(t, f, Config{})
	for range 4 { // whichever instance the balancer picks first
		resp, err := tr.RoundTrip(upgradeRequest(t))
		if err != nil {
			t.Fatalf("upgrade with one dead instance: %v", err)
		}
		if resp.StatusCode != http.StatusSwitchingProtocols {
			t.Fatalf("status %d, want 101", resp.StatusCode)
		}
		resp.Body.Close()
	}
}

// TestEventStreamOutlivesTimeout: a server-sent event stream goes on past
// the call's Timeout (which bounded the wait for its headers) and past the
// per-try timeout, and its callee is given no deadline.
func TestEventStreamOutlivesTimeout(t *testing.T) {
	release := make(chan struct{})
	f := newFleet(t, func(w http.ResponseWriter, r *http.Request) {
		if v := r.Header.Get(TimeoutHeader); v != "" {
			t.Errorf("event-stream request carries %s: %s; a stream must get no deadline", TimeoutHeader, v)
		}
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "data: one\n\n")
		http.NewResponseController(w).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
			return
		}
		io.WriteString(w, "data: two\n\n")
	})
	// Time enough for the headers on a loaded machine.
	const timeout = time.Second
	tr := newTransport(t, f, Config{Timeout: timeout, PerTryTimeout: timeout / 2})
	req, err := http.NewRequest(http.MethodGet, "http://svc/events", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "text/event-stream")
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	lines := bufio.NewReader(resp.Body)
	event := func() string {
		t.Helper()
		line, err := lines.ReadString('\n')
		if err != nil {
			t.Fatalf("reading the stream: %v", err)
		}
		lines.ReadString('\n') // the blank line ending the event
		return strings.TrimSpace(line)
	}
	if got := event(); got != "data: one" {
		t.Fatalf("first event %q", got)
	}
	time.Sleep(3 * timeout) // time passing, past both timeouts
	close(release)
	if got := event(); got != "data: two" {
		t.Fatalf("second event %q", got)
	}
}

// TestTimeoutStillBoundsBodies: without a stream, Config.Timeout bounds the
// whole call, body included, and the error says it was the deadline.
func TestTimeoutStillBoundsBodies(t *testing.T) {
	f := newFleet(t, func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "partial")
		http.NewResponseController(w).Flush()
		<-r.Context().Done()
	})
	// One attempt, so that it has the whole Timeout for the headers: a
	// loaded machine may take more than a third of it.
	tr := newTransport(t, f, Config{Timeout: time.Second, MaxAttempts: 1})
	req, err := http.NewRequest(http.MethodGet, "http://svc/slow", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	done := make(chan error, 1)
	go func() {
		_, err := io.ReadAll(resp.Body)
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "deadline exceeded") {
			t.Fatalf("reading a body past Timeout: %v, want deadline exceeded", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("body read not ended by Timeout")
	}
}

func inFlight(tr *Transport) int {
	for _, d := range tr.Dependencies() {
		if d.Service == "svc" {
			return d.InFlight
		}
	}
	return -1
}
