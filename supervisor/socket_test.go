package supervisor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/handoff/handofftest"
)

// hammer sends GET url through c, one new connection per request (c's
// transport keeps none), until stop; it returns how many requests
// succeeded and the failures.
func hammer(c *http.Client, url string) (stop func() (ok int, failed []error)) {
	var done atomic.Bool
	var wg sync.WaitGroup
	var n int
	var errs []error
	wg.Go(func() {
		for !done.Load() {
			resp, err := c.Get(url)
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					err = fmt.Errorf("GET %s: %s", url, resp.Status)
				}
			}
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", time.Now().Format("15:04:05.000"), err))
				continue
			}
			n++
		}
	})
	return func() (int, []error) {
		done.Store(true)
		wg.Wait()
		return n, errs
	}
}

// TestFixedPortRollingRestart: the replacement of an SDK instance on a
// fixed port is handed the old process's socket and serves before the old
// one drains, so the port never turns a connection away; a program that
// binds the port itself (instead of taking the socket) is stopped first.
func TestFixedPortRollingRestart(t *testing.T) {
	// Reserved for the test: the supervisor can bind them too (both sockets
	// allow address reuse and neither listens), no one else can.
	helloPort, webPort := handofftest.Port(t).Addr().Port, handofftest.Port(t).Addr().Port
	wd, _ := os.Getwd()
	m := &Manifest{Services: []*ServiceSpec{
		// hello until the test creates the file "broken", then a program
		// that takes the socket but never gets ready.
		{Name: "hello", Command: []string{"sh", "-c", `[ -f broken ] && exec sleep 60; exec "$0"`, helloBin},
			Register: RegisterSDK, Port: []int{helloPort}},
		{Name: "web", Command: []string{"python3", filepath.Join(wd, "testdata", "web.py")}, Port: []int{webPort}, Plaintext: true},
	}}
	r := startSupervisor(t, m)
	ctx := context.Background()
	hello := waitServing(t, r.remote, "hello", 1)[0]
	web := waitServing(t, r.remote, "web", 1)[0]
	if want := fmt.Sprintf("127.0.0.1:%d", helloPort); hello.Addr != want {
		t.Fatalf("hello/1 at %s, want its fixed %s", hello.Addr, want)
	}

	t.Run("sdk overlaps", func(t *testing.T) {
		// The load shows that no connection was refused or reset.
		stopLoad := hammer(r.caller(t, "hello"), "https://"+hello.Addr+"/hello")
		err := r.remote.Restart(ctx, "hello")
		ok, failed := stopLoad()
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%d requests answered during the restart", ok)
		if len(failed) > 0 {
			t.Errorf("%d requests failed during the restart of a fixed-port instance, first: %v\n%s", len(failed), failed[0], r.out)
		}
		if ok == 0 {
			t.Error("no request was answered during the restart")
		}
		now := psOf(t, r.remote, "hello")
		if len(now) != 1 || now[0].PID == hello.PID || now[0].Addr != hello.Addr || now[0].State != StateServing {
			t.Fatalf("after restart: %+v, want a new process at %s", now, hello.Addr)
		}
		// The SDK logs when it serves and when it starts draining.
		served := sdkLogTime(t, r.remote, "hello", now[0].ID, "serving")
		drained := sdkLogTime(t, r.remote, "hello", hello.ID, "draining")
		if !served.Before(drained) {
			t.Errorf("the replacement served at %v, after the old process began draining at %v", served, drained)
		}
		if err := gone(hello.PID); err != nil {
			t.Error(err)
		}
	})

	t.Run("replacement that never gets ready", func(t *testing.T) {
		// Its health probes reach the old process through the shared
		// socket, and answer 200: not enough to count as ready.
		before := waitServing(t, r.remote, "hello", 1)[0]
		writeFile(t, filepath.Join(m.Dir, "broken"), "")
		defer os.Remove(filepath.Join(m.Dir, "broken"))
		stopLoad := hammer(r.caller(t, "hello"), "https://"+before.Addr+"/hello")
		rctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		err := r.remote.Restart(rctx, "hello")
		cancel()
		if err == nil {
			t.Fatal("Restart succeeded with a replacement that never got ready")
		}
		now := waitServing(t, r.remote, "hello", 1)[0]
		ok, failed := stopLoad()
		if now.PID != before.PID {
			t.Errorf("hello/1 is pid %d, want the old %d kept", now.PID, before.PID)
		}
		if len(failed) > 0 || ok == 0 {
			t.Errorf("%d requests answered, %d failed (first: %v)", ok, len(failed), failed)
		}
	})

	t.Run("program that binds the port itself", func(t *testing.T) {
		if err := r.remote.Restart(ctx, "web"); err != nil {
			t.Fatal(err)
		}
		now := waitServing(t, r.remote, "web", 1)[0]
		if now.PID == web.PID || now.Addr != web.Addr {
			t.Errorf("after restart: %+v, want a new process at %s", now, web.Addr)
		}
		if err := getJSON(http.DefaultClient, "http://"+now.Addr+"/", new(any)); err != nil {
			t.Error(err)
		}
	})
}

// TestCrashedInstanceRefuses: the supervisor keeps no copy of the socket of
// an instance on a free port, so once its process has died its address
// refuses connections (callers fail over at once instead of waiting on a
// queue nobody reads), and the restarted process gets a socket of its own.
func TestCrashedInstanceRefuses(t *testing.T) {
	m := &Manifest{Services: []*ServiceSpec{{Name: "hello", Command: []string{helloBin}, Register: RegisterSDK}}}
	r := startSupervisor(t, m)
	before := waitServing(t, r.remote, "hello", 1)[0]
	if _, err := r.remote.Kill(context.Background(), "hello", 1, "KILL"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "hello/1 gone", func() error { return gone(before.PID) })
	c, err := net.DialTimeout("tcp", before.Addr, 5*time.Second)
	if err == nil {
		c.Close()
		if now := psOf(t, r.remote, "hello")[0]; now.Addr != before.Addr {
			t.Fatalf("%s accepted a connection after its process died", before.Addr)
		}
		t.Logf("the restarted process got the same port by chance; nothing to check")
	} else if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("dial %s after the process died: %v, want connection refused", before.Addr, err)
	}
	var after InstanceStatus
	eventually(t, 30*time.Second, "hello/1 restarted and serving", func() error {
		after = waitServing(t, r.remote, "hello", 1)[0]
		if after.PID == before.PID || after.PID == 0 {
			return fmt.Errorf("hello/1 = %+v", after)
		}
		return nil
	})
	if err := getJSON(r.caller(t, "hello"), "https://"+after.Addr+"/hello", new(any)); err != nil {
		t.Errorf("restarted hello/1: %v", err)
	}
}

// sdkLogTime returns the time of the first JSON log line with msg that SDK
// instance id wrote.
func sdkLogTime(t *testing.T, r *Remote, service, id, msg string) time.Time {
	t.Helper()
	var b strings.Builder
	if err := r.Logs(context.Background(), service, -1, false, &b); err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(b.String()) {
		_, text, _ := strings.Cut(line, " | ")
		var rec struct {
			Time     time.Time
			Msg      string
			Instance string
		}
		if json.Unmarshal([]byte(text), &rec) == nil && rec.Msg == msg && rec.Instance == id {
			return rec.Time
		}
	}
	t.Fatalf("no %q line of %s in the logs:\n%s", msg, id, b.String())
	return time.Time{}
}

// TestKilledFixedPortQueues: an instance on a fixed port that dies unasked
// keeps its address open: the supervisor holds the socket for the restart,
// so a connection made meanwhile waits in its queue and is served by the
// new process instead of being refused (a client of the front door has no
// other instance to go to). A crash loop's long backoff closes it.
func TestKilledFixedPortQueues(t *testing.T) {
	helloPort, loopPort := handofftest.Port(t).Addr().Port, handofftest.Port(t).Addr().Port
	m := &Manifest{Services: []*ServiceSpec{
		// Once the file "slow" exists, a start waits a second before it
		// listens: the request below is made in that window.
		{Name: "hello", Command: []string{"sh", "-c", `[ -f slow ] && sleep 1; exec "$0"`, helloBin},
			Register: RegisterSDK, Port: []int{helloPort}},
		// Listens on the socket it is handed, then fails: the socket
		// stays listening for as long as the supervisor keeps its copy.
		{Name: "flaky", Command: []string{"python3", "-c",
			`import os, socket; socket.socket(fileno=int(os.environ["SHOAL_LISTEN_FD"])).listen(); raise SystemExit(3)`},
			Port: []int{loopPort}, Plaintext: true},
	}}
	r := startSupervisor(t, m)
	ctx := context.Background()

	t.Run("killed", func(t *testing.T) {
		before := waitServing(t, r.remote, "hello", 1)[0]
		writeFile(t, filepath.Join(m.Dir, "slow"), "")
		if _, err := r.remote.Kill(ctx, "hello", 1, "KILL"); err != nil {
			t.Fatal(err)
		}
		eventually(t, 10*time.Second, "hello/1 gone", func() error { return gone(before.PID) })
		begin := time.Now()
		if err := getJSON(r.caller(t, "hello"), "https://"+before.Addr+"/hello", new(any)); err != nil {
			t.Fatalf("GET right after the kill: %v, want it held for the restarted process", err)
		}
		t.Logf("answered %v after the old process was gone", time.Since(begin).Round(time.Millisecond))
		if now := psOf(t, r.remote, "hello")[0]; now.PID == before.PID || now.Addr != before.Addr {
			t.Errorf("after the kill: %+v, want a new process at %s", now, before.Addr)
		}
	})

	t.Run("crash loop", func(t *testing.T) {
		// Five exits, each seen once its readiness probe, queued on the
		// kept socket with nobody to answer, gives up after a second:
		// some 10 s here, more on a loaded machine.
		eventually(t, 60*time.Second, "flaky/1 in a crash loop", func() error {
			if st := psOf(t, r.remote, "flaky")[0]; !strings.HasPrefix(st.LastExit, "crash loop") {
				return fmt.Errorf("flaky/1 = %+v", st)
			}
			return nil
		})
		// Retried every 10 s now: callers are refused meanwhile.
		addr := fmt.Sprintf("127.0.0.1:%d", loopPort)
		eventually(t, 5*time.Second, addr+" refusing", func() error {
			c, err := net.DialTimeout("tcp", addr, time.Second)
			if err == nil {
				c.Close()
				return errors.New("accepted a connection")
			}
			if !errors.Is(err, syscall.ECONNREFUSED) {
				return err
			}
			return nil
		})
	})
}
