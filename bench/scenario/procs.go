package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"

	"github.com/shoal-dev/shoal/handoff"
)

// proc is a child process in its own process group, so that it and anything
// it starts can be signalled at once.
type proc struct {
	name   string
	cmd    *exec.Cmd
	log    string        // file with its stdout and stderr
	exited chan struct{} // closed once waited for
}

// running is every child not yet waited for, so that Ctrl-C (and any exit
// path of main) can kill them all.
var running struct {
	sync.Mutex
	procs map[*proc]bool
}

// start runs bin with args and env added to ours; its output goes to logFile.
// sock, if not nil, is the address it serves on: it is handed over (a Shoal
// program serves on it; another binds the address itself, which its
// SO_REUSEADDR allows) and stays reserved as long as the process runs.
// start closes sock.
func start(name, logFile, bin string, args, env []string, sock *handoff.Port) (*proc, error) {
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
	p := &proc{name: name, cmd: cmd, log: logFile, exited: make(chan struct{})}
	running.Lock()
	if running.procs == nil {
		running.procs = map[*proc]bool{}
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

// signal sends sig to p's process group, if it still runs.
func (p *proc) signal(sig syscall.Signal) {
	select {
	case <-p.exited:
	default:
		_ = syscall.Kill(-p.cmd.Process.Pid, sig)
	}
}

// kill kills p's process group and waits for p to exit.
func (p *proc) kill() {
	p.signal(syscall.SIGKILL)
	<-p.exited
}

// killAll kills every running child; main calls it on the way out and on
// Ctrl-C.
func killAll() {
	running.Lock()
	procs := make([]*proc, 0, len(running.procs))
	for p := range running.procs {
		procs = append(procs, p)
	}
	running.Unlock()
	for _, p := range procs {
		p.kill()
	}
}

// pollHTTP polls url until it answers 200 or ctx ends.
func pollHTTP(ctx context.Context, url string) error {
	c := &http.Client{Timeout: 500 * time.Millisecond}
	return poll(ctx, "GET "+url, func() bool {
		resp, err := c.Get(url)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
}

// poll calls cond every 5 ms until it holds or ctx ends.
func poll(ctx context.Context, what string, cond func() bool) error {
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w", what, context.Cause(ctx))
		case <-t.C:
		}
	}
	return nil
}
