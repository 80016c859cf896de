package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
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

// kill kills p's process group and waits for p to exit.
func (p *proc) kill() {
	select {
	case <-p.exited:
	default:
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.exited
	}
}

// tail returns the last lines of p's log, for an error message.
func (p *proc) tail() string {
	b, err := os.ReadFile(p.log)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return strings.Join(lines[max(0, len(lines)-5):], "\n")
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

// reserve reserves a loopback address for a process to serve on (see
// start).
func reserve() (*handoff.Port, string, error) {
	p, err := handoff.Reserve("127.0.0.1:0")
	if err != nil {
		return nil, "", err
	}
	return p, p.Addr().String(), nil
}

// poll calls cond every 10 ms until it returns nil or ctx ends; the error
// then names what was awaited and cond's last error.
func poll(ctx context.Context, what string, cond func() error) error {
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

// probeClient checks readiness; it never reuses a connection, so that a
// proxy's every fresh connection path is exercised.
var probeClient = &http.Client{Timeout: time.Second, Transport: &http.Transport{DisableKeepAlives: true}}

// clockTicks is the kernel's USER_HZ, the unit of /proc/<pid>/stat times:
// 100 on every Linux architecture Go supports.
const clockTicks = 100

// cpuTimes is CPU time used, in user space and in the kernel.
type cpuTimes struct{ user, sys time.Duration }

func (c cpuTimes) sub(d cpuTimes) cpuTimes { return cpuTimes{c.user - d.user, c.sys - d.sys} }

// cpuTime returns the CPU time used so far by every process in p's process
// group (nginx's workers included), or zero when /proc cannot be read.
func (p *proc) cpuTime() cpuTimes {
	pgid := strconv.Itoa(p.cmd.Process.Pid)
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return cpuTimes{}
	}
	var user, sys int64
	for _, e := range entries {
		if e.Name()[0] < '0' || e.Name()[0] > '9' {
			continue
		}
		stat, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue // gone
		}
		// pid (comm) state ppid pgrp ... utime stime: fields 14 and 15,
		// counted after the command name, which may hold spaces.
		f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
		if len(f) < 13 || f[2] != pgid {
			continue
		}
		u, _ := strconv.ParseInt(f[11], 10, 64)
		s, _ := strconv.ParseInt(f[12], 10, 64)
		user += u
		sys += s
	}
	return cpuTimes{time.Duration(user) * time.Second / clockTicks, time.Duration(sys) * time.Second / clockTicks}
}

// cpuTime is the CPU time of all of a's processes.
func (a *arm) cpuTime() cpuTimes {
	var total cpuTimes
	for _, p := range a.procs {
		c := p.cpuTime()
		total.user += c.user
		total.sys += c.sys
	}
	return total
}
