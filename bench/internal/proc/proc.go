// Package proc runs the benchmarks' child processes (the proxies, replicas
// and backends of bench/gateway and bench/scenario): each in a process
// group of its own, so that it and whatever it starts are signalled at
// once, with its output in a file, and tracked until it exits, so that
// KillAll ends them all on the way out and on Ctrl-C. It is Linux-only, as
// the benchmarks are (process groups, parent-death signal, /proc).
package proc

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/shoal-dev/shoal/handoff"
)

// Proc is a child process in its own process group.
type Proc struct {
	Name   string
	Cmd    *exec.Cmd
	Log    string // file with its stdout and stderr
	exited chan struct{}
}

// running is every child not yet waited for.
var running struct {
	sync.Mutex
	procs map[*Proc]bool
}

// Start runs bin with args, and env added to ours; its output goes to
// logFile. It dies with this process (parent-death signal). sock, if not
// nil, is the address it serves on (see Reserve): it is handed over (a
// Shoal program serves on it; another binds the address itself, which its
// SO_REUSEADDR allows). Start closes sock.
func Start(name, logFile, bin string, args, env []string, sock *handoff.Port) (*Proc, error) {
	if sock != nil {
		defer sock.Close() // the child has its own copy
	}
	out, err := os.Create(logFile)
	if err != nil {
		return nil, err
	}
	defer out.Close() // the child has its own descriptor
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if sock != nil {
		sock.Pass(cmd)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &Proc{Name: name, Cmd: cmd, Log: logFile, exited: make(chan struct{})}
	running.Lock()
	if running.procs == nil {
		running.procs = map[*Proc]bool{}
	}
	running.procs[p] = true
	running.Unlock()
	go func() { // owned by p: ends when the process does
		_ = cmd.Wait()
		running.Lock()
		delete(running.procs, p)
		running.Unlock()
		close(p.exited)
	}()
	return p, nil
}

// Exited is closed once the process has exited and been waited for.
func (p *Proc) Exited() <-chan struct{} { return p.exited }

// Signal sends sig to p's process group, if it still runs.
func (p *Proc) Signal(sig syscall.Signal) {
	select {
	case <-p.exited:
	default:
		_ = syscall.Kill(-p.Cmd.Process.Pid, sig)
	}
}

// Kill kills p's process group and waits for p to exit.
func (p *Proc) Kill() {
	p.Signal(syscall.SIGKILL)
	<-p.exited
}

// Tail returns the last lines of p's log, for an error message.
func (p *Proc) Tail() string {
	b, err := os.ReadFile(p.Log)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return strings.Join(lines[max(0, len(lines)-5):], "\n")
}

// KillAll kills every child still running; a benchmark's main calls it on
// the way out and on Ctrl-C.
func KillAll() {
	running.Lock()
	procs := make([]*Proc, 0, len(running.procs))
	for p := range running.procs {
		procs = append(procs, p)
	}
	running.Unlock()
	for _, p := range procs {
		p.Kill()
	}
}

// Reserve reserves a loopback address for a child to serve on: the port
// is bound (not listening) until Start hands it over, so nothing else can
// take it in between.
func Reserve() (*handoff.Port, string, error) {
	p, err := handoff.Reserve("127.0.0.1:0")
	if err != nil {
		return nil, "", err
	}
	return p, p.Addr().String(), nil
}

// Poll calls cond every 10 ms until it returns nil or ctx ends; the error
// then names what was awaited and cond's last error.
func Poll(ctx context.Context, what string, cond func() error) error {
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for {
		err := cond()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w (last: %v)", what, context.Cause(ctx), err)
		case <-t.C:
		}
	}
}

// Probe is the client of readiness checks; it never reuses a connection,
// so that a proxy's every fresh connection path is exercised.
var Probe = &http.Client{Timeout: time.Second, Transport: &http.Transport{DisableKeepAlives: true}}

// PollReady polls url with Probe until it answers 200 or ctx ends.
func PollReady(ctx context.Context, url string) error {
	return Poll(ctx, "GET "+url, func() error {
		resp, err := Probe.Get(url)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s", resp.Status)
		}
		return nil
	})
}
