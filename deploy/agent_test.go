package deploy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/shoal-dev/shoal"
	"github.com/shoal-dev/shoal/client"
	"github.com/shoal-dev/shoal/discovery"
	"github.com/shoal-dev/shoal/discovery/discoverytest"
	"github.com/shoal-dev/shoal/handoff/handofftest"
	"github.com/shoal-dev/shoal/internal/syncbuf"
)

// envFakeProgram and envFakeSick configure fakeProgram (see TestMain).
const (
	envFakeProgram = "DEPLOY_TEST_FAKE_PROGRAM" // the loopback host to listen on
	envFakeSick    = "DEPLOY_TEST_FAKE_SICK"    // a file: while it exists, /healthz answers 500
)

// fakeProgram is an HTTP program that knows nothing of Shoal, like flix's
// trailers: it listens on host:$PORT, answers /healthz, /hello and /exit,
// and stops gracefully on SIGTERM, saying so on stdout.
func fakeProgram(host string) int {
	ln, err := net.Listen("tcp", net.JoinHostPort(host, os.Getenv("PORT")))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		if _, err := os.Stat(os.Getenv(envFakeSick)); err == nil {
			http.Error(w, "sick", http.StatusInternalServerError)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("/hello", func(w http.ResponseWriter, r *http.Request) {
		// What the program sees of its environment and of the request.
		fmt.Fprintf(w, "hello host=%s gossip_key=%q port=%s", r.Host, os.Getenv(envGossipKey), os.Getenv("PORT"))
	})
	mux.HandleFunc("/exit", func(w http.ResponseWriter, r *http.Request) { os.Exit(3) })
	srv := &http.Server{Handler: mux}
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM)
	fmt.Println("program: listening")
	go func() {
		<-term
		fmt.Println("program: stopping")
		_ = srv.Shutdown(context.Background())
	}()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println("program: stopped")
	return 0
}

// agentFixture is an agent running the fake program, joined to a gossip
// cluster whose first member watches the catalog.
type agentFixture struct {
	agent   *Agent
	watcher *discovery.Member
	out     *syncbuf.Buffer
	sick    string // touch it to make the program's health check fail
	admin   string // the agent's admin listener
	cancel  context.CancelFunc
	done    chan error // Run's result
}

func startAgent(t *testing.T, edit func(*agentFixture)) *agentFixture {
	t.Helper()
	cluster := discoverytest.NewCluster(t, 1, discoverytest.WithService("watcher"))
	watcher := cluster.Members()[0]
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	// The program's address: a random loopback address on ProgramPort,
	// as in a pod, where nothing else listens. No port is probed.
	host := fmt.Sprintf("127.%d.%d.%d", 1+rand.IntN(250), rand.IntN(256), 1+rand.IntN(250))
	f := &agentFixture{watcher: watcher, out: &syncbuf.Buffer{}, sick: t.TempDir() + "/sick", done: make(chan error, 1),
		admin: handofftest.Port(t).Addr().String()}
	f.agent = &Agent{
		Config: shoal.Config{
			Name: "trailers", Addr: "127.0.0.1:0", GossipAddr: "127.0.0.1:0", AdminAddr: f.admin,
			Seeds: []string{watcher.GossipAddr()}, DrainTimeout: 3 * time.Second,
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		},
		Command:        []string{exe, "-test.run=^$"},
		Health:         "/healthz",
		ProgramAddr:    net.JoinHostPort(host, strconv.Itoa(ProgramPort)),
		Env:            append(os.Environ(), envFakeProgram+"="+host, envFakeSick+"="+f.sick, envGossipKey+"=c2VjcmV0c2VjcmV0c2VjcmV0"),
		Stdout:         f.out,
		Stderr:         f.out,
		HealthInterval: 50 * time.Millisecond,
		UnhealthyAfter: 3,
	}
	if edit != nil {
		edit(f)
	}
	ctx, cancel := context.WithCancel(context.Background())
	f.cancel = cancel
	go func() { f.done <- f.agent.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-f.done:
		case <-time.After(30 * time.Second):
			t.Error("the agent did not stop")
		}
	})
	return f
}

// instance waits until the watcher's catalog lists the agent's instance
// in state st (or, with st empty, lists none) and returns it.
func (f *agentFixture) instance(t *testing.T, st discovery.State) discovery.Instance {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		insts := f.watcher.Catalog().Instances("trailers")
		switch {
		case st == "" && len(insts) == 0:
			return discovery.Instance{}
		case st != "" && len(insts) == 1 && insts[0].State == st:
			return insts[0]
		}
		if time.Now().After(deadline) {
			t.Fatalf("catalog lists %+v, want one trailers instance %q\nprogram output:\n%s", insts, st, f.out)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (f *agentFixture) wait(t *testing.T) error {
	t.Helper()
	select {
	case err := <-f.done:
		f.done <- err // for Cleanup
		return err
	case <-time.After(30 * time.Second):
		t.Fatalf("the agent did not stop\nprogram output:\n%s", f.out)
		return nil
	}
}

// The program is announced once healthy, at the agent's address, which
// forwards to it (Host kept, the gossip key not passed on); a stop drains
// the instance out of gossip before the program is stopped, gracefully.
func TestAgentServesProgram(t *testing.T) {
	f := startAgent(t, nil)
	inst := f.instance(t, discovery.StateServing)
	resp, err := http.Get("http://" + inst.Addr + "/hello")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if want := fmt.Sprintf(`hello host=%s gossip_key="" port=%d`, inst.Addr, ProgramPort); resp.StatusCode != 200 || string(body) != want {
		t.Fatalf("GET /hello: %s %q, want 200 %q", resp.Status, body, want)
	}
	// The SDK's admin listener is the agent's: readiness is the instance's.
	if resp, err := http.Get("http://" + f.admin + shoal.PathReady); err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET /readyz: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}

	f.cancel()
	if err := f.wait(t); err != nil {
		t.Fatalf("Run after a stop: %v", err)
	}
	f.instance(t, "") // left gossip
	if out := f.out.String(); !strings.Contains(out, "program: stopping") || !strings.Contains(out, "program: stopped") {
		t.Errorf("the program was not stopped gracefully; its output:\n%s", out)
	}
}

// A program that exits ends the instance: it leaves gossip and Run says
// how the program ended, so that the container restarts.
func TestAgentProgramExits(t *testing.T) {
	f := startAgent(t, nil)
	inst := f.instance(t, discovery.StateServing)
	if resp, err := http.Get("http://" + inst.Addr + "/exit"); err == nil {
		resp.Body.Close()
	}
	err := f.wait(t)
	if err == nil || !strings.Contains(err.Error(), "exit status 3") {
		t.Fatalf("Run: %v, want the program's exit status 3", err)
	}
	f.instance(t, "")
}

// A program that fails its health check UnhealthyAfter times in a row is
// drained out of gossip and stopped.
func TestAgentProgramUnhealthy(t *testing.T) {
	f := startAgent(t, nil)
	f.instance(t, discovery.StateServing)
	if err := os.WriteFile(f.sick, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	err := f.wait(t)
	if err == nil || !strings.Contains(err.Error(), "failed 3 health checks in a row") {
		t.Fatalf("Run: %v, want the failed health checks", err)
	}
	f.instance(t, "")
	if out := f.out.String(); !strings.Contains(out, "program: stopped") {
		t.Errorf("the program was not stopped; its output:\n%s", out)
	}
}

// A program never healthy is never announced, and is stopped after
// ReadyTimeout; one that cannot start is an error at once.
func TestAgentProgramNeverHealthy(t *testing.T) {
	f := startAgent(t, func(f *agentFixture) {
		f.agent.ReadyTimeout = 500 * time.Millisecond
		if err := os.WriteFile(f.sick, nil, 0o600); err != nil {
			t.Fatal(err)
		}
	})
	err := f.wait(t)
	if err == nil || !strings.Contains(err.Error(), "not healthy after 500ms") {
		t.Fatalf("Run: %v, want a timeout", err)
	}
	// Run returned, so the program has exited (a stop waits for it); it may
	// have died of the SIGTERM before it set up its handler.
	if insts := f.watcher.Catalog().Instances("trailers"); len(insts) != 0 {
		t.Errorf("announced while never healthy: %+v", insts)
	}

	// Asked to stop while waiting: not an error, never announced.
	h := startAgent(t, func(f *agentFixture) {
		if err := os.WriteFile(f.sick, nil, 0o600); err != nil {
			t.Fatal(err)
		}
	})
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(h.out.String(), "program: listening") {
		if time.Now().After(deadline) {
			t.Fatalf("the program did not start; its output:\n%s", h.out)
		}
		time.Sleep(5 * time.Millisecond)
	}
	h.cancel()
	if err := h.wait(t); err != nil {
		t.Fatalf("Run stopped while waiting: %v", err)
	}
	if insts := h.watcher.Catalog().Instances("trailers"); len(insts) != 0 {
		t.Errorf("announced while never healthy: %+v", insts)
	}

	g := startAgent(t, func(f *agentFixture) { f.agent.Command = []string{"/nonexistent/program"} })
	if err := g.wait(t); err == nil || !strings.Contains(err.Error(), "/nonexistent/program") {
		t.Fatalf("Run of a missing program: %v", err)
	}
}

// A request that cannot reach the program is refused as never processed:
// the caller may send it, a POST too, to another instance.
func TestProgramProxyRefusesWhenProgramIsDown(t *testing.T) {
	// Port 1 on loopback: nothing listens there, the dial is refused.
	proxy := newProgramProxy("127.0.0.1:1", slog.New(slog.NewTextHandler(io.Discard, nil)))
	defer proxy.Transport.(*http.Transport).CloseIdleConnections()
	req := httptest.NewRequest(http.MethodPost, "http://trailers/x", strings.NewReader("{}"))
	w := httptest.NewRecorder()
	proxy.ServeHTTP(w, req)
	if w.Code != http.StatusServiceUnavailable || w.Header().Get(client.RejectedHeader) == "" {
		t.Fatalf("got %d %v, want 503 with %s", w.Code, w.Header(), client.RejectedHeader)
	}
}
