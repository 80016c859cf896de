package deploy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/shoal-dev/shoal"
	"github.com/shoal-dev/shoal/client"
)

// Defaults of Agent.
const (
	defaultReadyTimeout   = time.Minute
	defaultHealthInterval = time.Second
	defaultUnhealthyAfter = 10
	healthTimeout         = time.Second
	readyPoll             = 50 * time.Millisecond
	// programStopGrace bounds the program's own shutdown, which comes
	// after the instance drained: no request is left for it to finish.
	programStopGrace = 3 * time.Second
)

// Agent runs a program that does not use the SDK (a command: service, such
// as flix's Python trailers) as an instance of a Shoal service, inside its
// own container: `shoal agent -- COMMAND...`. It is what the supervisor
// does for such programs under shoal up, for a pod, without a sidecar.
//
// The agent is an SDK service of the program's name whose handler forwards
// every request to the program on loopback. So the instance joins gossip
// at the pod's address only once the program's health check passes, has
// the SDK's admin endpoints (the pod's probes and metrics), admission
// control, and its drain: on SIGTERM the instance is announced draining,
// in-flight requests finish, it leaves gossip, and only then is the
// program stopped. The program may listen on loopback only, as trailers
// does; it is given its port as PORT.
//
// If the program exits, or fails UnhealthyAfter health checks in a row,
// the agent drains the instance, stops the program and returns an error:
// the container ends and Kubernetes restarts it.
type Agent struct {
	// Config is the instance's SDK configuration (shoal.Config.FromEnv
	// reads it from the pod's SHOAL_* variables); Name is the service's.
	Config shoal.Config
	// Command is the program and its arguments.
	Command []string
	// Health is the path of the program's health check, answered 200 when
	// it serves; default "/".
	Health string
	// ProgramAddr is the loopback host:port the program listens on;
	// default 127.0.0.1:ProgramPort. The program gets the port as PORT.
	ProgramAddr string
	// Env is the program's environment; nil means this process's. The
	// system's keys (the gossip key, the identity files) are removed
	// from it: the program has no use for them.
	Env []string
	// Stdout and Stderr receive the program's output; nil means the
	// agent's own.
	Stdout, Stderr io.Writer
	// ReadyTimeout bounds the wait for the program's first good health
	// check; default 1m.
	ReadyTimeout time.Duration
	// HealthInterval is the time between health checks once it serves;
	// default 1s.
	HealthInterval time.Duration
	// UnhealthyAfter is the number of failed checks in a row that end the
	// instance; default 10.
	UnhealthyAfter int
}

// Run starts the program, waits until it is healthy, serves it as an
// instance until ctx ends, then drains the instance and stops the
// program. It returns nil after a stop asked for through ctx, and an error
// when the program or the instance ended on its own.
func (a *Agent) Run(ctx context.Context) error {
	if len(a.Command) == 0 {
		return errors.New("deploy: agent: no program to run; give it after --, e.g. shoal agent -- python3 app.py")
	}
	log := a.Config.Logger
	if log == nil {
		log = slog.New(slog.NewJSONHandler(os.Stderr, nil))
		a.Config.Logger = log
	}
	addr := a.ProgramAddr
	if addr == "" {
		addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(ProgramPort))
	}
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("deploy: agent: program address %q: %w", addr, err)
	}
	proxy := newProgramProxy(addr, log)
	defer proxy.Transport.(*http.Transport).CloseIdleConnections()
	svc, err := shoal.New(a.Config, proxy)
	if err != nil {
		return fmt.Errorf("deploy: agent: %w", err)
	}

	p, err := a.start(port)
	if err != nil {
		return err
	}
	health := &prober{url: "http://" + addr + orDefault(a.Health, "/")}
	defer health.client.CloseIdleConnections()
	if err := a.waitHealthy(ctx, p, health); err != nil || ctx.Err() != nil {
		p.stop(log)
		return err // nil when asked to stop before the program was healthy: never announced
	}

	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	runDone := make(chan error, 1)
	go func() { runDone <- svc.Run(runCtx) }() // owned by Run: it always receives from runDone
	every := a.HealthInterval
	if every <= 0 {
		every = defaultHealthInterval
	}
	limit := a.UnhealthyAfter
	if limit <= 0 {
		limit = defaultUnhealthyAfter
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
	fails := 0
	for {
		select {
		case err := <-runDone:
			// Asked to stop (ctx), drained; or the instance failed.
			p.stop(log)
			return err
		case <-p.exited:
			log.Error("program exited; draining the instance", "program", a.Command[0], "exit", p.exit())
			cancel()
			<-runDone
			return fmt.Errorf("deploy: agent: %s exited: %s", a.Command[0], p.exit())
		case <-tick.C:
			if health.ok(runCtx) {
				fails = 0
				continue
			}
			if runCtx.Err() != nil {
				continue // stopping: runDone follows
			}
			if fails++; fails < limit {
				log.Warn("program health check failed", "url", health.url, "in_a_row", fails)
				continue
			}
			log.Error("program unhealthy; draining the instance and stopping it", "url", health.url, "in_a_row", fails)
			cancel()
			<-runDone
			p.stop(log)
			return fmt.Errorf("deploy: agent: %s failed %d health checks in a row (GET %s)", a.Command[0], fails, health.url)
		}
	}
}

// waitHealthy polls the program's health check until it answers 200, or
// ctx ends (nil: the caller checks ctx).
func (a *Agent) waitHealthy(ctx context.Context, p *program, health *prober) error {
	d := a.ReadyTimeout
	if d <= 0 {
		d = defaultReadyTimeout
	}
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	tick := time.NewTicker(readyPoll)
	defer tick.Stop()
	for !health.ok(ctx) {
		select {
		case <-ctx.Done():
			return nil // asked to stop: not an error
		case <-p.exited:
			return fmt.Errorf("deploy: agent: %s exited before its health check passed: %s", a.Command[0], p.exit())
		case <-deadline.C:
			return fmt.Errorf("deploy: agent: %s not healthy after %v (GET %s)", a.Command[0], d, health.url)
		case <-tick.C:
		}
	}
	return nil
}

// program is the running program.
type program struct {
	cmd     *exec.Cmd
	exited  chan struct{} // closed once Wait returned
	waitErr error         // set before exited is closed
}

// start starts the program in its own process group (so that a stop
// reaches what it starts), with PORT set to port.
func (a *Agent) start(port string) (*program, error) {
	cmd := exec.Command(a.Command[0], a.Command[1:]...)
	env := a.Env
	if env == nil {
		env = os.Environ()
	}
	cmd.Env = append(slices.DeleteFunc(slices.Clone(env), func(kv string) bool {
		k, _, _ := strings.Cut(kv, "=")
		return k == envProgramPort || slices.Contains(agentSecretEnv, k)
	}), envProgramPort+"="+port)
	cmd.Stdout, cmd.Stderr = a.Stdout, a.Stderr
	if cmd.Stdout == nil {
		cmd.Stdout = os.Stdout
	}
	if cmd.Stderr == nil {
		cmd.Stderr = os.Stderr
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.WaitDelay = time.Second // grandchildren holding the pipes must not block Wait
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("deploy: agent: %w", err)
	}
	p := &program{cmd: cmd, exited: make(chan struct{})}
	go func() { // owned by the program: ends when the process does; stop waits for it
		p.waitErr = cmd.Wait()
		close(p.exited)
	}()
	return p, nil
}

// exit describes how the program ended; call it once exited is closed.
func (p *program) exit() string {
	var ee *exec.ExitError
	switch {
	case errors.As(p.waitErr, &ee):
		return ee.ProcessState.String()
	case p.waitErr != nil:
		return p.waitErr.Error()
	}
	return "exit status 0"
}

// stop asks the program's process group to end (SIGTERM), kills it after
// programStopGrace, and waits for it.
func (p *program) stop(log *slog.Logger) {
	pid := p.cmd.Process.Pid
	_ = syscall.Kill(-pid, syscall.SIGTERM)
	t := time.NewTimer(programStopGrace)
	defer t.Stop()
	select {
	case <-p.exited:
	case <-t.C:
		log.Warn("program did not stop in time; killing it", "grace", programStopGrace.String())
	}
	_ = syscall.Kill(-pid, syscall.SIGKILL) // and whatever it left behind
	<-p.exited
}

// prober checks the program's health path.
type prober struct {
	url    string
	client http.Client
}

// ok reports whether the health path answers 200 within healthTimeout.
func (h *prober) ok(ctx context.Context) bool {
	ctx, cancel := context.WithTimeout(ctx, healthTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, h.url, nil)
	if err != nil {
		return false
	}
	resp, err := h.client.Do(req)
	if err != nil {
		return false
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// newProgramProxy forwards requests to the program at addr, keeping the
// caller's Host and headers. A request that could not reach the program
// (nothing listens: it is restarting or gone) is answered 503 marked as
// refused (client.RejectedHeader), so that the caller sends it, even a
// POST, to another instance.
func newProgramProxy(addr string, log *slog.Logger) *httputil.ReverseProxy {
	target := &url.URL{Scheme: "http", Host: addr}
	return &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(target)
			r.Out.Host = r.In.Host
		},
		Transport: &http.Transport{
			DialContext:         (&net.Dialer{Timeout: 2 * time.Second}).DialContext,
			MaxIdleConnsPerHost: 256, // one host: the program
			IdleConnTimeout:     90 * time.Second,
		},
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			var op *net.OpError
			if errors.As(err, &op) && op.Op == "dial" {
				w.Header().Set(client.RejectedHeader, "unavailable")
				w.Header().Set("Retry-After", "1")
				shoal.WriteError(w, http.StatusServiceUnavailable, "unavailable", "the program of this instance is not accepting connections; retry on another instance")
				return
			}
			if r.Context().Err() != nil {
				return // the caller left
			}
			log.Warn("program did not answer", "path", r.URL.Path, "err", err)
			shoal.WriteError(w, http.StatusBadGateway, "bad_gateway", "the program of this instance did not answer")
		},
	}
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
