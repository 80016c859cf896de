package proc

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A child runs in its own process group, its output in its log; Signal
// reaches it and Kill ends it; KillAll ends every one still running.
func TestProc(t *testing.T) {
	dir := t.TempDir()
	p, err := Start("sleeper", filepath.Join(dir, "sleeper.log"), "/bin/sh",
		[]string{"-c", `echo "one $GREETING"; echo two; trap 'echo got TERM' TERM; while :; do sleep 0.01; done`}, []string{"GREETING=hello"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := Poll(ctx, "its output", func() error {
		if tail := p.Tail(); tail != "one hello\ntwo" {
			return errors.New(tail)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	p.Signal(syscall.SIGTERM)
	if err := Poll(ctx, "the trapped signal", func() error {
		if !strings.HasSuffix(p.Tail(), "got TERM") {
			return errors.New(p.Tail())
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if c := p.CPU(); c.User < 0 || c.Sys < 0 {
		t.Errorf("CPU %+v", c)
	}
	q, err := Start("other", filepath.Join(dir, "other.log"), "/bin/sleep", []string{"60"}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	KillAll()
	for _, x := range []*Proc{p, q} {
		select {
		case <-x.Exited():
		default:
			t.Errorf("%s still runs after KillAll", x.Name)
		}
	}
	p.Kill() // again: a no-op once exited
}

func TestStartFails(t *testing.T) {
	if _, err := Start("nothing", filepath.Join(t.TempDir(), "log"), "/no/such/binary", nil, nil, nil); err == nil {
		t.Fatal("no error")
	}
}

// A reserved address is bound but refuses connections until a child
// serves on it, and no two reservations share a port.
func TestReserve(t *testing.T) {
	seen := map[string]bool{}
	for range 3 {
		sock, addr, err := Reserve()
		if err != nil {
			t.Fatal(err)
		}
		defer sock.Close()
		if !strings.HasPrefix(addr, "127.0.0.1:") || seen[addr] {
			t.Fatalf("address %q, seen %v", addr, seen)
		}
		seen[addr] = true
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			t.Fatalf("%s accepted a connection before any child served on it", addr)
		}
	}
}

func TestPollReady(t *testing.T) {
	ready := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-ready:
		default:
			http.Error(w, "starting", http.StatusServiceUnavailable)
			close(ready) // ready from the next probe on
		}
	}))
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := PollReady(ctx, srv.URL); err != nil {
		t.Fatal(err)
	}
	done, stop := context.WithCancel(context.Background())
	stop()
	err := PollReady(done, srv.URL+"/x") // answered 200 too: polled once
	if err != nil {
		t.Fatalf("a ready URL: %v", err)
	}
	err = Poll(done, "nothing", func() error { return errors.New("not yet") })
	if err == nil || !strings.Contains(err.Error(), "waiting for nothing") || !strings.Contains(err.Error(), "not yet") {
		t.Fatalf("Poll after its context ended: %v", err)
	}
}
