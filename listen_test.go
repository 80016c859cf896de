//go:build unix

package shoal

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/handoff"
)

// inheritedFD returns the number of a descriptor of a new loopback socket
// that nothing in this process owns, as a child of `shoal up` finds it.
func inheritedFD(t *testing.T) (fd int, addr string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close() // the socket lives on through the duplicate
	f, err := ln.(*net.TCPListener).File()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if fd, err = syscall.Dup(int(f.Fd())); err != nil {
		t.Fatal(err)
	}
	return fd, ln.Addr().String()
}

// A service given a socket serves on it, whatever Addr says.
func TestRunServesOnInheritedSocket(t *testing.T) {
	fd, addr := inheritedFD(t)
	t.Setenv(handoff.EnvFD, strconv.Itoa(fd))
	// Addr cannot be listened on (TEST-NET-1 is no local address): only
	// the inherited socket can make this service ready.
	svc, _, _ := start(t, Config{Name: "inherit", Addr: "192.0.2.1:0"}, http.NotFoundHandler())
	if svc.Addr() != addr {
		t.Errorf("Addr() = %s, want the inherited socket's %s", svc.Addr(), addr)
	}
	resp, _ := get(t, http.DefaultClient, "http://"+addr+"/")
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET / = %d, want the handler's 404", resp.StatusCode)
	}
}

func TestRunRejectsBadInheritedSocket(t *testing.T) {
	t.Setenv(handoff.EnvFD, "stdin")
	svc, err := New(Config{Name: "inherit", Logger: slog.New(slog.DiscardHandler)}, http.NotFoundHandler())
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.Run(context.Background()); err == nil || !strings.Contains(err.Error(), handoff.EnvFD) {
		t.Fatalf("Run = %v, want an error naming %s", err, handoff.EnvFD)
	}
}

// A connection accepted before the drain whose request arrives after the
// listener has closed is still answered: http.Server.Shutdown alone would
// drop that request with no answer (EOF).
func TestDrainAnswersAcceptedConnections(t *testing.T) {
	svc, cancel, done := start(t, Config{Name: "drain", DrainTimeout: 5 * time.Second}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok")
	}))
	early, err := net.Dial("tcp", svc.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer early.Close()
	// Half a request: the connection waits in http.StateNew.
	if _, err := io.WriteString(early, "GET /x HTTP/1.1\r\n"); err != nil {
		t.Fatal(err)
	}
	// The server accepts in order: once a later connection has its answer,
	// the early one has been accepted.
	resp, err := (&http.Client{Transport: &http.Transport{DisableKeepAlives: true}}).Get("http://" + svc.Addr() + "/y")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()

	cancel()
	waitUntil(t, "the drain to reach the server", func() bool { return refuses(svc.Addr()) })
	if _, err := io.WriteString(early, "Host: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err = http.ReadResponse(bufio.NewReader(early), nil)
	if err != nil {
		t.Fatalf("the accepted connection's request got no answer: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || string(b) != "ok" {
		t.Errorf("answer %d %q, want 200 ok", resp.StatusCode, b)
	}
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
}

// A connection that sends nothing (a client's spare) is closed a moment
// into the drain, which then ends, instead of being waited for as long as
// http.Server.Shutdown waits for new connections (5 s) or the header
// timeout allows (a minute here).
func TestDrainClosesSpareConnections(t *testing.T) {
	svc, cancel, done := start(t, Config{Name: "drain", DrainTimeout: 30 * time.Second, ReadHeaderTimeout: time.Minute},
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	spare, err := net.Dial("tcp", svc.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer spare.Close()
	// The server accepts in order: once a later connection has its
	// answer, the spare has been accepted.
	resp, err := (&http.Client{Transport: &http.Transport{DisableKeepAlives: true}}).Get("http://" + svc.Addr() + "/y")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	begin := time.Now()
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
	if took := time.Since(begin); took > 4*time.Second {
		t.Errorf("drain took %v with a silent connection open, want about a second", took)
	}
	spare.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := spare.Read(make([]byte, 1)); err == nil {
		t.Errorf("the spare connection is open after the drain (read %d bytes)", n)
	}
}

// refuses reports whether nothing accepts connections at addr any more.
func refuses(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return true
	}
	c.Close()
	return false
}
