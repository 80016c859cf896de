package handoff

import (
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func reserve(t *testing.T) *Port {
	t.Helper()
	p, err := Reserve("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// reserveListening returns the address of a reserved port listening in
// this process.
func reserveListening(t *testing.T) string {
	t.Helper()
	p := reserve(t)
	ln, err := p.Listen()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return p.Addr().String()
}

// accepts dials addr and accepts the connection on ln.
func accepts(t *testing.T, ln net.Listener, addr string) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ac, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	ac.Close()
}

func refused(t *testing.T, addr string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err == nil {
		c.Close()
		t.Fatalf("dial %s succeeded, want connection refused", addr)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("dial %s: %v, want connection refused", addr, err)
	}
}

func TestReserve(t *testing.T) {
	p := reserve(t)
	a := p.Addr()
	if !a.IP.Equal(net.IPv4(127, 0, 0, 1)) || a.Port == 0 {
		t.Fatalf("Addr() = %v, want 127.0.0.1 and the kernel's port", a)
	}
	refused(t, a.String())
	if p.Listening() {
		t.Error("Listening() before anyone listens")
	}
	// A program that binds the address itself, with SO_REUSEADDR (Go's
	// net.Listen sets it), may listen on it; only one may.
	ln, err := net.Listen("tcp", a.String())
	if err != nil {
		t.Fatalf("listen on the reserved address: %v", err)
	}
	if _, err := net.Listen("tcp", a.String()); err == nil {
		t.Error("a second listener on the reserved address was allowed")
	}
	c, err := net.Dial("tcp", a.String())
	if err != nil {
		t.Fatalf("dial while a program listens: %v", err)
	}
	c.Close()
	ln.Close()
	refused(t, a.String())
	// A socket without SO_REUSEADDR cannot bind it.
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(fd)
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Port: a.Port, Addr: [4]byte{127, 0, 0, 1}}); !errors.Is(err, syscall.EADDRINUSE) {
		t.Errorf("bind without SO_REUSEADDR = %v, want EADDRINUSE", err)
	}
	// Released by Close.
	p.Close()
	ln, err = net.Listen("tcp", a.String())
	if err != nil {
		t.Fatalf("listen after Close: %v", err)
	}
	ln.Close()
}

func TestReserveFixedAndIPv6(t *testing.T) {
	p := reserve(t)
	// The same port again, named: both hold it (a supervisor keeps one
	// reservation and hands a second socket to each process).
	q, err := Reserve(p.Addr().String())
	if err != nil {
		t.Fatalf("Reserve(%s) beside a reservation: %v", p.Addr(), err)
	}
	q.Close()
	if _, err := Reserve("localhost:0"); err == nil || !strings.Contains(err.Error(), "localhost:0") {
		t.Errorf("Reserve(localhost:0) = %v, want an error naming it", err)
	}
	if six, err := Reserve("[::1]:0"); err == nil {
		if six.Addr().Port == 0 || !six.Addr().IP.Equal(net.IPv6loopback) {
			t.Errorf("Addr() = %v", six.Addr())
		}
		refused(t, six.Addr().String())
		six.Close()
	} else {
		t.Logf("no IPv6 loopback here: %v", err)
	}
}

// TestPassToChild runs the real protocol: the child finds the socket by
// EnvFD, listens on it and serves at the reserved address.
func TestPassToChild(t *testing.T) {
	p := reserve(t)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envChild+"=1")
	cmd.Stderr = os.Stderr
	p.Pass(cmd)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	// Connecting before the child listens is refused: poll.
	deadline := time.Now().Add(30 * time.Second)
	var c net.Conn
	for {
		var err error
		if c, err = net.Dial("tcp", p.Addr().String()); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("child not serving at %s: %v", p.Addr(), err)
		}
		time.Sleep(10 * time.Millisecond) // polling interval
	}
	defer c.Close()
	if !p.Listening() {
		t.Error("Listening() = false while the child serves on the socket")
	}
	b, err := io.ReadAll(c)
	if err != nil {
		t.Fatal(err)
	}
	if want := p.Addr().String() + ` ""`; string(b) != want {
		t.Errorf("child said %q, want %q (its address, and %s unset)", b, want, EnvFD)
	}
	if err := cmd.Wait(); err != nil {
		t.Errorf("child: %v", err)
	}
}

// TestListenerSharedSocket: two holders of one listening socket accept
// from one queue; the socket lives until the last handle is closed.
func TestListenerSharedSocket(t *testing.T) {
	p := reserve(t)
	d, err := p.Dup()
	if err != nil {
		t.Fatal(err)
	}
	// Listener takes ownership of d's descriptor, as a child would of its
	// copy; d's os.File must not close it again.
	fd, err := syscall.Dup(int(d.f.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	d.Close()
	t.Setenv(EnvFD, strconv.Itoa(fd))
	ln, err := Listener()
	if err != nil {
		t.Fatal(err)
	}
	if os.Getenv(EnvFD) != "" {
		t.Errorf("%s still set after Listener", EnvFD)
	}
	if ln.Addr().String() != p.Addr().String() {
		t.Errorf("listener on %s, want %s", ln.Addr(), p.Addr())
	}
	if !p.Listening() {
		t.Error("Listening() = false after Listener")
	}
	accepts(t, ln, p.Addr().String())
	// The listener's handle closed, p's keeps the socket listening: a
	// connection now waits in the queue for whoever holds it next.
	ln.Close()
	queued, err := net.Dial("tcp", p.Addr().String())
	if err != nil {
		t.Fatalf("dial with p still holding the listening socket: %v", err)
	}
	queued.Close()
	p.Close()
	refused(t, p.Addr().String())
}

func TestListenerErrors(t *testing.T) {
	t.Run("unset", func(t *testing.T) {
		t.Setenv(EnvFD, "")
		if ln, err := Listener(); ln != nil || err != nil {
			t.Errorf("Listener() = %v, %v; want nil, nil", ln, err)
		}
	})
	for _, v := range []string{"x", "-1", "2"} {
		t.Run(v, func(t *testing.T) {
			t.Setenv(EnvFD, v)
			if _, err := Listener(); err == nil || !strings.Contains(err.Error(), EnvFD+`="`+v+`"`) {
				t.Errorf("Listener() with %s=%s: %v", EnvFD, v, err)
			}
		})
	}
	// Descriptors that are not a socket to listen on are left open: they
	// were not Listener's to close.
	file, err := os.Open(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	conn, err := net.Dial("tcp", reserveListening(t))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	connFile, err := conn.(*net.TCPConn).File()
	if err != nil {
		t.Fatal(err)
	}
	defer connFile.Close()
	for name, f := range map[string]*os.File{"file": file, "connected socket": connFile} {
		t.Run(name, func(t *testing.T) {
			t.Setenv(EnvFD, strconv.Itoa(int(f.Fd())))
			if _, err := Listener(); err == nil || !strings.Contains(err.Error(), "not an inherited socket to listen on") {
				t.Errorf("Listener() on a %s: %v", name, err)
			}
			if _, err := f.Stat(); err != nil {
				t.Errorf("the %s was closed: %v", name, err)
			}
		})
	}
}

// A reservation becomes a listener in this process: a seed, say, that a
// test lets appear at an address its peers already know.
func TestPortListen(t *testing.T) {
	p := reserve(t)
	refused(t, p.Addr().String())
	ln, err := p.Listen()
	if err != nil {
		t.Fatal(err)
	}
	if ln.Addr().String() != p.Addr().String() {
		t.Errorf("listening on %s, want %s", ln.Addr(), p.Addr())
	}
	accepts(t, ln, p.Addr().String())
	ln.Close()
	p.Close()
	refused(t, p.Addr().String())
}
