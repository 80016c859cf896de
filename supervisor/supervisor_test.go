package supervisor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/discovery"
	"github.com/shoal-dev/shoal/handoff/handofftest"
	"github.com/shoal-dev/shoal/internal/syncbuf"
)

// TestSystem drives one supervisor through the CLI's whole repertoire, in
// order: starting up is the slow part, so the steps share it.
func TestSystem(t *testing.T) {
	m := testManifest(t.TempDir(), helloBin)
	r := startSupervisor(t, m)
	ctx := context.Background()
	rem := r.remote

	hello := waitServing(t, rem, "hello", 2)
	web := waitServing(t, rem, "web", 1)

	t.Run("ps", func(t *testing.T) {
		id := regexp.MustCompile(`^hello-[12]-[0-9a-f]{4}$`)
		for i, s := range hello {
			if s.Index != i+1 || !id.MatchString(s.ID) || s.PID <= 0 || !strings.HasPrefix(s.Addr, "127.0.0.1:") {
				t.Errorf("hello status %d = %+v", i, s)
			}
		}
		// The console is written from its own queue: the table may follow
		// the instances' readiness by a moment.
		eventually(t, 5*time.Second, "the startup table on the console", func() error {
			out := r.out.String()
			for _, want := range []string{"starting 3 instances", "SERVICE", "hello-1-", "serving"} {
				if !strings.Contains(out, want) {
					return fmt.Errorf("Out lacks %q:\n%s", want, out)
				}
			}
			return nil
		})
	})

	t.Run("second supervisor refuses", func(t *testing.T) {
		sup, err := New(&Manifest{Dir: m.Dir}, Options{})
		if err != nil {
			t.Fatal(err)
		}
		err = sup.Run(ctx)
		if err == nil || !strings.Contains(err.Error(), "already running") {
			t.Fatalf("second Run = %v, want already running", err)
		}
		if _, err := FindRunning(m.Dir); err != nil {
			t.Fatalf("the first supervisor's state file was damaged: %v", err)
		}
	})

	t.Run("non-SDK program is registered in discovery", func(t *testing.T) {
		obs := observer(t, ctx, r)
		eventually(t, 15*time.Second, "web and hello in the catalog", func() error {
			ws := obs.Catalog().Instances("web")
			if len(ws) != 1 || ws[0].Addr != web[0].Addr || ws[0].ID != web[0].ID {
				return fmt.Errorf("web instances %+v, want %s at %s", ws, web[0].ID, web[0].Addr)
			}
			if hs := obs.Catalog().Instances("hello"); len(hs) != 2 {
				return fmt.Errorf("hello instances %+v", hs)
			}
			return nil
		})
		// An SDK service sees the Python one as well.
		eventually(t, 15*time.Second, "hello/1 sees web", func() error {
			var info struct {
				Services map[string]int `json:"services"`
			}
			if err := getJSON(http.DefaultClient, "http://"+hello[0].Admin+"/infoz", &info); err != nil {
				return err
			}
			if info.Services["web"] != 1 {
				return fmt.Errorf("hello/1 sees %v", info.Services)
			}
			return nil
		})
	})

	t.Run("kill KILL restarts with a new pid", func(t *testing.T) {
		st, err := rem.Kill(ctx, "hello", 1, "KILL")
		if err != nil {
			t.Fatal(err)
		}
		if st.PID != hello[0].PID {
			t.Fatalf("Kill reported pid %d, want %d", st.PID, hello[0].PID)
		}
		eventually(t, 15*time.Second, "hello/1 restarted", func() error {
			now := waitServing(t, rem, "hello", 2)
			if now[0].PID == st.PID || now[0].Restarts != 1 || now[0].LastExit != "signal: killed" {
				return fmt.Errorf("hello/1 = %+v", now[0])
			}
			if now[0].ID == st.ID {
				return fmt.Errorf("restarted with the same instance ID %s", st.ID)
			}
			return gone(st.PID)
		})
	})

	t.Run("kill random, STOP and CONT", func(t *testing.T) {
		st, err := rem.Kill(ctx, "web", -1, "STOP")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := rem.Kill(ctx, "web", st.Index, "cont"); err != nil {
			t.Fatal(err)
		}
		if err := getJSON(http.DefaultClient, "http://"+st.Addr+"/", new(any)); err != nil {
			t.Fatalf("web after CONT: %v", err)
		}
	})

	t.Run("a frozen program turns unhealthy and draining, then back", func(t *testing.T) {
		obs := observer(t, ctx, r)
		st, err := rem.Kill(ctx, "web", 1, "STOP")
		if err != nil {
			t.Fatal(err)
		}
		both := func(ps, gossip string) func() error {
			return func() error {
				if got := psOf(t, rem, "web")[0].State; got != ps {
					return fmt.Errorf("ps says %s, want %s", got, ps)
				}
				ws := obs.Catalog().Instances("web")
				if len(ws) != 1 || string(ws[0].State) != gossip {
					return fmt.Errorf("discovery says %+v, want %s", ws, gossip)
				}
				return nil
			}
		}
		eventually(t, 15*time.Second, "web/1 unhealthy and draining", both(StateUnhealthy, "draining"))
		if _, err := rem.Kill(ctx, "web", st.Index, "CONT"); err != nil {
			t.Fatal(err)
		}
		eventually(t, 15*time.Second, "web/1 serving again", both(StateServing, "serving"))
		if now := psOf(t, rem, "web")[0]; now.PID != st.PID {
			t.Fatalf("an unhealthy instance was restarted (pid %d → %d); it should be left alone", st.PID, now.PID)
		}
	})

	t.Run("scale up and down", func(t *testing.T) {
		if err := rem.Scale(ctx, "hello", 4); err != nil {
			t.Fatal(err)
		}
		st := psOf(t, rem, "hello")
		if len(st) != 4 {
			t.Fatalf("after scale to 4: %+v", st)
		}
		for _, s := range st {
			if s.State != StateServing {
				t.Errorf("Scale returned with %s/%d %s", s.Service, s.Index, s.State)
			}
		}
		if err := rem.Scale(ctx, "hello", 2); err != nil {
			t.Fatal(err)
		}
		after := psOf(t, rem, "hello")
		if len(after) != 2 || after[0].Index != 1 || after[1].Index != 2 {
			t.Fatalf("after scale to 2: %+v", after)
		}
		for _, s := range st[2:] {
			if err := gone(s.PID); err != nil {
				t.Error(err)
			}
		}
	})

	t.Run("rolling restart keeps every instance serving", func(t *testing.T) {
		before := psOf(t, rem, "hello")
		pctx, stop := context.WithCancel(ctx)
		var wg sync.WaitGroup
		minServing, polls := 99, 0
		wg.Go(func() {
			for pctx.Err() == nil {
				time.Sleep(5 * time.Millisecond) // polling interval
				st, err := rem.PS(pctx)
				if err != nil {
					continue
				}
				n := 0
				for _, s := range st {
					if s.Service == "hello" && s.State == StateServing {
						n++
					}
				}
				minServing, polls = min(minServing, n), polls+1
			}
		})
		err := rem.Restart(ctx, "hello")
		stop()
		wg.Wait()
		if err != nil {
			t.Fatal(err)
		}
		if minServing < 2 {
			t.Errorf("only %d hello instances were serving at some point during the restart (%d polls)", minServing, polls)
		}
		after := psOf(t, rem, "hello")
		if len(after) != 2 {
			t.Fatalf("after restart: %+v", after)
		}
		for i := range after {
			if after[i].PID == before[i].PID || after[i].ID == before[i].ID || after[i].State != StateServing {
				t.Errorf("hello/%d not replaced: before %+v after %+v", i+1, before[i], after[i])
			}
		}
	})

	t.Run("logs", func(t *testing.T) {
		var b strings.Builder
		if err := rem.Logs(ctx, "web", -1, false, &b); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(b.String(), "web/1 | web listening on") {
			t.Errorf("web logs:\n%s", b.String())
		}
		b.Reset()
		if err := rem.Logs(ctx, "", -1, false, &b); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(b.String(), "hello/2 | ") || !strings.Contains(b.String(), "web/1 | ") {
			t.Errorf("all logs:\n%s", b.String())
		}
		// Follow: a new instance's first line arrives while following.
		fctx, stop := context.WithCancel(ctx)
		w := &signalWriter{want: "web/2 | web listening", found: make(chan struct{})}
		done := make(chan error, 1)
		go func() { done <- rem.Logs(fctx, "web", 2, true, w) }()
		if err := rem.Scale(ctx, "web", 2); err != nil {
			t.Fatal(err)
		}
		select {
		case <-w.found:
		case <-time.After(10 * time.Second):
			t.Errorf("followed logs lack %q", w.want)
		}
		stop()
		if err := <-done; err != nil {
			t.Errorf("Logs follow: %v", err)
		}
	})

	t.Run("errors", func(t *testing.T) {
		for _, tc := range []struct {
			name   string
			call   func() error
			status int
			msg    string
		}{
			{"unknown service", func() error { return rem.Scale(ctx, "nope", 1) }, 404, `no service "nope"`},
			{"known services listed", func() error { return rem.Restart(ctx, "nope") }, 404, "services: hello, web"},
			{"misspelled service", func() error { _, err := rem.Kill(ctx, "hellp", 1, "TERM"); return err }, 404, "did you mean hello?"},
			{"nearest service named", func() error { return rem.Scale(ctx, "wbe", 1) }, 404, "did you mean web?; services: hello, web"},
			{"negative scale", func() error { return rem.Scale(ctx, "hello", -1) }, 400, "instances -1"},
			{"bad signal", func() error { _, err := rem.Kill(ctx, "hello", 1, "BOOM"); return err }, 400, `signal "BOOM"`},
			{"bad index", func() error { _, err := rem.Kill(ctx, "hello", 0, "TERM"); return err }, 400, "index 0"},
			{"missing index", func() error { _, err := rem.Kill(ctx, "hello", 9, "TERM"); return err }, 404, "no instance 9"},
			{"logs of unknown", func() error { return rem.Logs(ctx, "nope", -1, false, new(strings.Builder)) }, 404, `no service "nope"`},
		} {
			t.Run(tc.name, func(t *testing.T) {
				var e *Error
				if err := tc.call(); !errors.As(err, &e) || e.Status != tc.status || !strings.Contains(e.Message, tc.msg) {
					t.Errorf("error = %v, want status %d with %q", err, tc.status, tc.msg)
				}
			})
		}
	})

	t.Run("down stops every process", func(t *testing.T) {
		var pids []int
		for _, s := range psOrFail(t, rem) {
			pids = append(pids, s.PID)
		}
		dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		if err := rem.Down(dctx); err != nil {
			t.Fatal(err)
		}
		if err := <-r.done; err != nil {
			t.Errorf("Run after down: %v", err)
		}
		r.done <- nil
		for _, pid := range pids {
			if err := gone(pid); err != nil {
				t.Error(err)
			}
		}
		if _, err := os.Stat(statePath(m.Dir)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("state file after down: %v", err)
		}
		if _, err := FindRunning(m.Dir); !errors.Is(err, ErrNotRunning) {
			t.Errorf("FindRunning after down = %v, want ErrNotRunning", err)
		}
	})
}

// TestUpRightAfterDown: once Down returns, a new Run in the same folder
// starts (the old one released its lock before removing its state file).
func TestUpRightAfterDown(t *testing.T) {
	dir := t.TempDir()
	first := startSupervisor(t, &Manifest{Dir: dir})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// A peer makes the first supervisor's gossip leave take a moment.
	observer(t, ctx, first)
	eventually(t, 10*time.Second, "observer joined", func() error {
		if n := len(first.sup.seed.Catalog().Instances("observer")); n != 1 {
			return fmt.Errorf("%d observers in the catalog", n)
		}
		return nil
	})
	if err := first.remote.Down(ctx); err != nil {
		t.Fatal(err)
	}
	second := startSupervisor(t, &Manifest{Dir: dir})
	if second.remote.PID != os.Getpid() || second.remote.Control == first.remote.Control {
		t.Errorf("second supervisor %+v, first %+v", second.remote, first.remote)
	}
}

// TestStalledOutput: while nobody reads Out (a pager, Ctrl-S), instances
// keep running, crashed ones are restarted and logs keeps every line.
func TestStalledOutput(t *testing.T) {
	w := newGateWriter()
	t.Cleanup(func() { close(w.open) }) // after the supervisor has stopped
	m := &Manifest{Dir: t.TempDir(), Services: []*ServiceSpec{{Name: "hello", Command: []string{helloBin}, Register: RegisterSDK}}}
	m.Path = filepath.Join(m.Dir, "shoal.yaml")
	m.DrainTimeout = 2 * time.Second
	sup, err := New(m, Options{Out: w})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- sup.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Errorf("Run did not return 30s after cancel with a stalled Out")
		}
	})
	var rem *Remote
	eventually(t, 30*time.Second, "control API answers", func() error {
		rem, err = FindRunning(m.Dir)
		return err
	})
	<-w.entered // Out is stuck
	before := waitServing(t, rem, "hello", 1)[0]
	if _, err := rem.Kill(ctx, "hello", 1, "KILL"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "hello/1 restarted", func() error {
		now := waitServing(t, rem, "hello", 1)[0]
		if now.PID == before.PID {
			return fmt.Errorf("hello/1 still pid %d", now.PID)
		}
		return nil
	})
	var b strings.Builder
	if err := rem.Logs(ctx, "hello", 1, false, &b); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(b.String(), "hello/1 | "); n < 2 {
		t.Errorf("logs kept %d lines of two processes:\n%s", n, b.String())
	}
}

// TestUnhealthyAtStart: an instance that turns unhealthy while others are
// still starting does not hold back the status table.
func TestUnhealthyAtStart(t *testing.T) {
	wd, _ := os.Getwd()
	m := &Manifest{Services: []*ServiceSpec{
		{Name: "hello", Command: []string{helloBin}, Register: RegisterSDK},
		// Ready only once the test creates the file "go".
		{Name: "slow", Command: []string{"sh", "-c", `while [ ! -f go ]; do sleep 0.05; done; exec python3 "$1"`, "sh", filepath.Join(wd, "testdata", "web.py")}, Plaintext: true},
	}}
	r := startSupervisor(t, m)
	ctx := context.Background()
	st := waitServing(t, r.remote, "hello", 1)[0]
	if _, err := r.remote.Kill(ctx, "hello", 1, "STOP"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = syscall.Kill(st.PID, syscall.SIGCONT) })
	eventually(t, 20*time.Second, "hello/1 unhealthy", func() error {
		if got := psOf(t, r.remote, "hello")[0].State; got != StateUnhealthy {
			return fmt.Errorf("hello/1 is %s", got)
		}
		return nil
	})
	writeFile(t, filepath.Join(m.Dir, "go"), "")
	eventually(t, 20*time.Second, "status table printed", func() error {
		if out := r.out.String(); !strings.Contains(out, "instances serving in") {
			return fmt.Errorf("no table yet:\n%s", out)
		}
		return nil
	})
}

func TestCrashLoop(t *testing.T) {
	m := &Manifest{Services: []*ServiceSpec{
		{Name: "flaky", Command: []string{"sh", "-c", "echo about to fail; exit 3"}},
	}}
	r := startSupervisor(t, m)
	eventually(t, 20*time.Second, "crash loop reported", func() error {
		st := psOrFail(t, r.remote)
		if len(st) != 1 || st[0].State != StateCrashed || !strings.HasPrefix(st[0].LastExit, "crash loop: 5 exits") || st[0].Restarts < 4 {
			return fmt.Errorf("ps = %+v", st)
		}
		return nil
	})
	out := r.out.String()
	if !strings.Contains(out, "flaky/1 is in a crash loop") || !strings.Contains(out, "exit status 3") {
		t.Errorf("Out lacks the crash loop report:\n%s", out)
	}
	// At the cap it stays put rather than spinning.
	before := psOrFail(t, r.remote)[0].Restarts
	time.Sleep(time.Second) // observing that nothing happens needs a fixed window
	if now := psOrFail(t, r.remote)[0].Restarts; now != before {
		t.Errorf("restarts went from %d to %d within 1s of a crash loop", before, now)
	}
	var b strings.Builder
	if err := r.remote.Logs(context.Background(), "flaky", 1, false, &b); err != nil || !strings.Contains(b.String(), "flaky/1 | about to fail") {
		t.Errorf("logs = %q, %v", b.String(), err)
	}
}

func TestBuild(t *testing.T) {
	dir := t.TempDir()
	copyDir(t, "testdata/buildok", dir)
	// app is no SDK program: plain HTTP, registered by the supervisor.
	m := &Manifest{Dir: dir, Services: []*ServiceSpec{
		{Name: "app", Build: "./app", Args: []string{"hi"}, Instances: 2, Register: RegisterSupervisor, Plaintext: true},
		{Name: "app2", Build: "./app", Register: RegisterSupervisor, Plaintext: true},
	}}
	r := startSupervisor(t, m)
	st := waitServing(t, r.remote, "app", 2)
	waitServing(t, r.remote, "app2", 1)
	if _, err := os.Stat(filepath.Join(dir, ".shoal", "bin", "app")); err != nil {
		t.Error(err)
	}
	if n := strings.Count(r.out.String(), "building "); n != 1 {
		t.Errorf("%d builds for one package:\n%s", n, r.out)
	}
	resp, err := http.Get("http://" + st[0].Addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b strings.Builder
	_, _ = fmt.Fprint(&b, resp.Status)
	if resp.StatusCode != 200 {
		t.Errorf("app answered %s", b.String())
	}
}

func TestBuildFailure(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "go.mod"), "module example.com/broken\n\ngo 1.22\n")
	writeFile(t, filepath.Join(dir, "bad", "main.go"), "package main\n\nfunc main() { undefinedThing() }\n")
	sup, err := New(&Manifest{Dir: dir, Services: []*ServiceSpec{{Name: "bad", Build: "./bad"}}}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	err = sup.Run(ctx)
	if err == nil || !strings.Contains(err.Error(), "undefinedThing") || !strings.Contains(err.Error(), "build bad") {
		t.Fatalf("Run = %v, want the build error with go's output", err)
	}
	if _, err := os.Stat(statePath(dir)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("state file left after a failed start: %v", err)
	}
}

func TestFindRunningNone(t *testing.T) {
	dir := t.TempDir()
	_, err := FindRunning(dir)
	if !errors.Is(err, ErrNotRunning) || !strings.Contains(err.Error(), "`shoal up`") || !strings.Contains(err.Error(), dir) {
		t.Fatalf("FindRunning = %v", err)
	}
	// A state file left by a dead supervisor is removed.
	if err := os.MkdirAll(filepath.Join(dir, ".shoal"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := writeState(dir, stateFile{PID: 1 << 30, Control: "127.0.0.1:1"}); err != nil {
		t.Fatal(err)
	}
	if _, err := FindRunning(dir); !errors.Is(err, ErrNotRunning) {
		t.Fatalf("FindRunning with a stale file = %v", err)
	}
	if _, err := os.Stat(statePath(dir)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stale state file kept: %v", err)
	}
	// So is one whose pid lives on (reused, or a supervisor past closing
	// its control API) while its control address refuses connections.
	if err := writeState(dir, stateFile{PID: os.Getpid(), Control: handofftest.Refused(t)}); err != nil {
		t.Fatal(err)
	}
	var na *NoAnswerError
	if _, err := FindRunning(dir); !errors.Is(err, ErrNotRunning) || errors.As(err, &na) {
		t.Fatalf("FindRunning with a live pid and a refusing address = %v, want ErrNotRunning", err)
	}
	if _, err := os.Stat(statePath(dir)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("state file of a refusing address kept: %v", err)
	}
}

func TestNewRejects(t *testing.T) {
	for _, tc := range []struct {
		name string
		m    *Manifest
		want string
	}{
		{"nil", nil, "nil manifest"},
		{"no dir", &Manifest{}, "no Dir"},
		{"both", &Manifest{Dir: "x", Services: []*ServiceSpec{{Name: "a", Build: "./a", Command: []string{"a"}}}}, "exactly one"},
		{"neither", &Manifest{Dir: "x", Services: []*ServiceSpec{{Name: "a"}}}, "exactly one"},
		{"twice", &Manifest{Dir: "x", Services: []*ServiceSpec{{Name: "a", Build: "./a"}, {Name: "a", Build: "./a"}}}, "twice"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := New(tc.m, Options{}); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("New = %v, want %q", err, tc.want)
			}
		})
	}
}

func psOrFail(t *testing.T, r *Remote) []InstanceStatus {
	t.Helper()
	st, err := r.PS(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func psOf(t *testing.T, r *Remote, service string) []InstanceStatus {
	t.Helper()
	return slices.DeleteFunc(psOrFail(t, r), func(s InstanceStatus) bool { return s.Service != service })
}

// get sends GET url with c, fails t if no answer comes, and returns the
// answer, its body closed.
func get(t *testing.T, c *http.Client, url string) *http.Response {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}

func getJSON(c *http.Client, url string, v any) error {
	resp, err := c.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

// signalWriter closes found once want has been written.
type signalWriter struct {
	syncbuf.Buffer
	want  string
	found chan struct{}
	once  sync.Once
}

func (w *signalWriter) Write(p []byte) (int, error) {
	w.Buffer.Write(p)
	if strings.Contains(w.String(), w.want) {
		w.once.Do(func() { close(w.found) })
	}
	return len(p), nil
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func copyDir(t *testing.T, from, to string) {
	t.Helper()
	if err := os.CopyFS(to, os.DirFS(from)); err != nil {
		t.Fatal(err)
	}
}

// TestKilledSupervisorLeavesNoProcess SIGKILLs a shoal up (this test binary
// in its up-helper role): its instances die with it, and the state file it
// left is recognised as stale.
func TestKilledSupervisorLeavesNoProcess(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envUpHelper+"="+dir, "SUPERVISOR_TEST_HELLO="+helloBin)
	out := &syncbuf.Buffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() { _ = cmd.Process.Kill(); <-exited })

	var rem *Remote
	eventually(t, 30*time.Second, "helper supervisor answers", func() error {
		var err error
		rem, err = FindRunning(dir)
		return err
	})
	waitServing(t, rem, "hello", 2)
	waitServing(t, rem, "web", 1)
	st := psOrFail(t, rem)
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-exited
	for _, s := range st {
		eventually(t, 10*time.Second, fmt.Sprintf("%s/%d (pid %d) gone", s.Service, s.Index, s.PID), func() error { return gone(s.PID) })
	}
	if _, err := FindRunning(dir); !errors.Is(err, ErrNotRunning) {
		t.Errorf("FindRunning after SIGKILL = %v", err)
	}
	if _, err := os.Stat(statePath(dir)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stale state file kept: %v", err)
	}
	if t.Failed() {
		t.Logf("helper output:\n%s", out)
	}
}

// observer joins the supervisor's gossip, with the system's key, as a
// bystander for the rest of the test and returns its member, whose catalog
// shows what callers would see.
func observer(t *testing.T, ctx context.Context, r *running) *discovery.Member {
	t.Helper()
	cfg := discovery.LocalConfig()
	cfg.Seeds = []string{r.remote.Gossip}
	cfg.Keys = r.sup.keys.gossip
	cfg.Logger = slog.New(slog.DiscardHandler)
	obs, err := discovery.New(cfg, discovery.Instance{ID: "observer-" + randomHex(3), Service: "observer", Addr: "127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	octx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- obs.Run(octx) }()
	t.Cleanup(func() { stop(); <-done })
	return obs
}

// TestExitedProcessLeavesPS: once a process has exited, ps no longer shows
// its pid as serving, even while its gossip agent is still leaving.
func TestExitedProcessLeavesPS(t *testing.T) {
	wd, _ := os.Getwd()
	m := &Manifest{Services: []*ServiceSpec{{Name: "web", Command: []string{"python3", filepath.Join(wd, "testdata", "web.py")}, Plaintext: true}}}
	r := startSupervisor(t, m)
	ctx := context.Background()
	obs := observer(t, ctx, r) // a peer makes the agent's leave take a moment
	st := waitServing(t, r.remote, "web", 1)[0]
	eventually(t, 15*time.Second, "the observer sees web/1", func() error {
		if _, ok := obs.Catalog().Snapshot().Lookup(st.ID); !ok {
			return fmt.Errorf("%s not in the observer's catalog", st.ID)
		}
		return nil
	})
	if _, err := r.remote.Kill(ctx, "web", 1, "KILL"); err != nil {
		t.Fatal(err)
	}
	// The agent leaves once the process has been reaped; ps must have
	// dropped the pid by then, not only once the leave is done.
	eventually(t, 15*time.Second, "web/1's agent gone from the observer's catalog", func() error {
		if _, ok := obs.Catalog().Snapshot().Lookup(st.ID); ok {
			return fmt.Errorf("%s still in the observer's catalog", st.ID)
		}
		return nil
	})
	if cur := psOf(t, r.remote, "web")[0]; cur.PID == st.PID {
		t.Fatalf("ps still shows the exited pid %d after its agent left: %+v", st.PID, cur)
	}
}
