package supervisor

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/shoal-dev/shoal/discovery"
	"github.com/shoal-dev/shoal/handoff"
	"github.com/shoal-dev/shoal/identity"
)

// Instance states, as ps shows them.
const (
	StateStarting = "starting" // process started, not ready yet
	StateServing  = "serving"  // ready: its health check answered 200
	// StateUnhealthy: was serving, but its health check has failed
	// unhealthyAfter times in a row (hung, frozen, overloaded). It is not
	// restarted for that; a program the supervisor registered is shown as
	// draining in discovery until its health check passes again.
	StateUnhealthy = "unhealthy"
	StateDraining  = "draining" // asked to stop, finishing its requests
	StateCrashed   = "crashed"  // exited unasked (or never got ready); restarting after a backoff
	StateStopped   = "stopped"  // stopped on purpose
)

// States are the states above, in the order of an instance's life: what
// ps may show. A new state belongs here too.
var States = []string{StateStarting, StateServing, StateUnhealthy, StateDraining, StateCrashed, StateStopped}

// Restart policy. The backoff doubles from minBackoff to maxBackoff and is
// reset once an instance has served for resetAfter; crashLoopCount exits
// within crashLoopWindow is reported as a crash loop, retried at maxBackoff.
const (
	minBackoff      = 100 * time.Millisecond
	maxBackoff      = 10 * time.Second
	resetAfter      = 30 * time.Second
	crashLoopCount  = 5
	crashLoopWindow = 60 * time.Second
	readyTimeout    = 30 * time.Second
	readyPoll       = 20 * time.Millisecond
	healthEvery     = time.Second // health checks of a ready instance
	healthTimeout   = time.Second
	unhealthyAfter  = 3               // failed checks in a row: a loaded 2-core machine misses one or two
	killGrace       = 2 * time.Second // after the drain timeout, before SIGKILL
	// keepFor: a fixed-port process that exits unasked leaves its socket
	// open for its replacement when that starts within keepFor, so that
	// callers' connections wait in the socket's queue for the restart
	// instead of being refused; a longer backoff (a crash loop) closes it,
	// and callers are refused at once and can go elsewhere.
	keepFor = time.Second
)

// instance is one slot (service, index) and the processes that fill it over
// time. Its goroutine, run, is started by Supervisor.addInstance and owned by
// the Supervisor (counted in Supervisor.wg); it exits after requestStop, once
// no process of the slot is left.
//
// Every process is given its listening socket (handoff): the supervisor
// binds it before the start, so the address is known and can be taken by no
// one else. A process on a free port gets a new port each time and holds
// the only copy of its socket: when it dies, callers are refused at once
// and fail over. On a fixed port the supervisor keeps a copy while the
// process runs, so that a rolling replacement can accept from the same
// socket before the old process drains (see Supervisor.restart), and, when
// the process dies unasked, for its restart (see keepFor): a fixed port is
// usually the system's front door, whose clients have no other instance to
// go to, so a connection waits for the restart rather than being refused.
type instance struct {
	sup   *Supervisor
	svc   *service
	index int
	fixed bool          // port is from the manifest's port list
	next  *handoff.Port // socket of the next process to start, if already bound; used by run only

	stop     chan struct{} // closed by requestStop
	stopOnce sync.Once
	done     chan struct{} // closed when run returns

	mu       sync.Mutex     // guards the fields below
	port     int            // of the current (or last) process's socket; written by run only
	admin    string         // the current (or last) SDK process's admin listener; written by run only
	files    identity.Files // the running process's identity; zero when none runs
	sock     *handoff.Port  // fixed port: the supervisor's copy of the running process's socket
	spare    *handoff.Port  // fixed port: the socket of a process that exited unasked, kept for its restart (see run)
	id       string
	proc     *os.Process
	state    string
	restarts int
	started  time.Time // start of the current process
	lastExit string
	crashes  []time.Time // exits within crashLoopWindow
	looping  bool        // in a crash loop (until it serves again)
	attempts int         // processes that ended before getting ready
	shown    uint64      // last log line shown by showLast; used by run only
	retiring bool        // being removed (scale down, replaced by a restart); guarded by sup.mu, not mu
}

func (in *instance) name() string { return in.svc.name + "/" + strconv.Itoa(in.index) }

func (in *instance) requestStop() { in.stopOnce.Do(func() { close(in.stop) }) }

func (in *instance) status() InstanceStatus {
	in.mu.Lock()
	defer in.mu.Unlock()
	st := InstanceStatus{
		Host: in.sup.host.hostName(), Service: in.svc.name, Index: in.index, ID: in.id, Addr: in.sup.host.addr(in.port), Admin: in.admin,
		State: in.state, Restarts: in.restarts, LastExit: in.lastExit,
	}
	if in.proc != nil {
		st.PID = in.proc.Pid
		st.Uptime = time.Since(in.started).Round(time.Millisecond)
	}
	return st
}

func (in *instance) set(f func()) {
	in.mu.Lock()
	from, exited := in.state, in.exitedAt()
	f()
	to, exit := in.state, in.exitedAt() != exited
	in.mu.Unlock()
	if from != to || exit {
		in.sup.stateChanged(in, from, to, exit)
	}
	in.sup.notify()
}

// run starts processes for the slot until requestStop, restarting the ones
// that exit unasked with exponential backoff.
func (in *instance) run() {
	defer in.sup.wg.Done()
	defer close(in.done)
	defer func() { // stopped before a process took it
		if in.next != nil {
			in.next.Close()
		}
		if sock := in.takeSpare(); sock != nil {
			sock.Close()
		}
	}()
	backoff := minBackoff
	for {
		served, exit, stopped := in.once()
		if stopped {
			in.set(func() { in.state, in.proc = StateStopped, nil })
			return
		}
		if served >= resetAfter {
			backoff = minBackoff
		}
		now := time.Now()
		delay := backoff
		var msg string
		in.set(func() {
			recent := in.crashes[:0]
			for _, t := range in.crashes {
				if now.Sub(t) < crashLoopWindow {
					recent = append(recent, t)
				}
			}
			in.crashes = append(recent, now)
			in.state, in.proc, in.lastExit = StateCrashed, nil, exit
			if served == 0 {
				in.attempts++
			}
			if len(in.crashes) >= crashLoopCount {
				delay, in.looping = maxBackoff, true
				in.lastExit = fmt.Sprintf("crash loop: %d exits in %.0fs, last: %s", len(in.crashes), crashLoopWindow.Seconds(), exit)
				msg = fmt.Sprintf("%s is in a crash loop (%d exits in %.0fs, last: %s); retrying every %v", in.name(), len(in.crashes), crashLoopWindow.Seconds(), exit, maxBackoff)
			} else {
				msg = fmt.Sprintf("%s exited (%s); restarting in %v", in.name(), exit, delay)
			}
		})
		if sock := in.takeSpare(); sock != nil {
			if delay <= keepFor && in.next == nil {
				in.next = sock // connections queue for the restart
			} else {
				sock.Close() // refused meanwhile: callers go elsewhere
			}
		}
		if !in.sup.streaming.Load() {
			in.sup.showLast(in, 5) // before the table, instance output is not shown: show why it died
		}
		in.sup.say(msg)
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-in.stop:
			t.Stop()
			in.set(func() { in.state = StateStopped })
			return
		}
		in.set(func() { in.restarts++ })
		backoff = min(2*backoff, maxBackoff)
	}
}

// once runs one process of the slot: start, wait until ready, serve until
// it exits or a stop is requested. served is how long it was ready (0 if
// never), exit describes an unasked exit, stopped reports a requested stop.
func (in *instance) once() (served time.Duration, exit string, stopped bool) {
	select {
	case <-in.stop:
		return 0, "", true
	default:
	}
	s, svc := in.sup, in.svc
	id := fmt.Sprintf("%s-%d-%s", svc.name, in.index, randomHex(2))
	sock := in.next
	in.next = nil
	if sock == nil {
		var err error
		if sock, err = in.reserve(); err != nil {
			return 0, err.Error(), false
		}
	}
	port := sock.Addr().Port
	files, err := s.keys.instanceFiles(svc, id)
	if err != nil {
		sock.Close()
		return 0, err.Error(), false
	}
	defer func() { // the process has ended: its certificate goes with it
		in.mu.Lock()
		in.files = identity.Files{}
		in.mu.Unlock()
		removeFiles(files)
	}()
	// An SDK program's admin listener: on a port reserved, like its own,
	// until the process ends, so that the probes reach this process and no
	// other, also while a replacement shares the service's socket.
	target, admin := s.host.local(port), ""
	if svc.register == RegisterSDK {
		adm, err := handoff.Reserve("127.0.0.1:0")
		if err != nil {
			sock.Close()
			return 0, err.Error(), false
		}
		defer adm.Close()
		target, admin = adm.Addr().String(), adm.Addr().String()
	}
	in.set(func() { in.port, in.admin, in.files = port, admin, files })
	cmd := exec.Command(svc.path, svc.args...)
	cmd.Dir = s.m.Dir
	cmd.Env = s.env(svc, port, id, files, admin)
	sock.Pass(cmd)
	out := &lineWriter{emit: func(text string) { s.logLine(svc, in.index, text) }}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = sysProcAttr()
	cmd.WaitDelay = time.Second // grandchildren holding the pipes open must not block Wait
	if err := cmd.Start(); err != nil {
		sock.Close()
		return 0, "start: " + err.Error(), false
	}
	if in.fixed {
		in.set(func() { in.sock = sock })
	} else {
		sock.Close() // the process holds the only copy now
	}
	exited := make(chan struct{})
	var waitErr error
	go func() { // owned by once: it waits on exited before returning
		waitErr = cmd.Wait()
		in.keepSpare()
		// No dead pid in ps, and kill answers not_running, from now on,
		// not only once the agent has left gossip.
		in.set(func() {
			if in.proc == cmd.Process {
				in.proc = nil
			}
		})
		out.flush()
		close(exited)
	}()
	pid := cmd.Process.Pid
	in.set(func() { in.id, in.proc, in.state, in.started = id, cmd.Process, StateStarting, time.Now() })
	s.log.Debug("started", "instance", in.name(), "id", id, "pid", pid, "port", port)

	switch in.waitReady(exited, func() bool { return in.probe(target) }) {
	case readyStop:
		in.terminate(pid, exited, nil)
		return 0, "", true
	case readyExited:
		killGroup(pid)
		return 0, exitString(waitErr), false
	case readyTimedOut:
		killGroup(pid)
		<-exited
		return 0, fmt.Sprintf("not ready after %v (GET %s)", readyTimeout, svc.health), false
	}

	var ag *agent
	if svc.register == RegisterSupervisor {
		var err error
		ag, err = startAgent(s, discovery.Instance{ID: id, Service: svc.name, Addr: s.host.addr(port)})
		if err != nil {
			s.say(fmt.Sprintf("%s: cannot register in discovery: %v", in.name(), err))
		}
	}
	readyAt := time.Now()
	in.set(func() { in.state, in.looping = StateServing, false })
	in.watchHealth(exited, ag, target)
	select {
	case <-exited:
		in.set(func() { in.state = StateCrashed }) // not serving while the agent leaves
		ag.leave()
		killGroup(pid) // whatever it left behind
		return time.Since(readyAt), exitString(waitErr), false
	case <-in.stop:
		in.terminate(pid, exited, ag)
		return time.Since(readyAt), "", true
	}
}

// watchHealth checks a ready instance every healthEvery until it exits or a
// stop is requested, moving it between serving and unhealthy (and its
// agent, if any, between serving and draining in discovery). A check runs
// on its own goroutine so that an exit or a stop is acted on at once; the
// last one may outlive watchHealth by up to healthTimeout.
func (in *instance) watchHealth(exited <-chan struct{}, ag *agent, target string) {
	tick := time.NewTicker(healthEvery)
	defer tick.Stop()
	results := make(chan bool, 1)
	probing, fails := false, 0
	for {
		select {
		case <-exited:
			return
		case <-in.stop:
			return
		case <-tick.C:
			if !probing {
				probing = true
				go func() { results <- in.probe(target) }()
			}
		case ok := <-results:
			probing = false
			switch {
			case ok && fails >= unhealthyAfter:
				in.set(func() { in.state = StateServing })
				ag.setState(discovery.StateServing)
				in.sup.say(in.name() + " is healthy again")
				fails = 0
			case ok:
				fails = 0
			case fails+1 == unhealthyAfter:
				fails++
				in.set(func() { in.state = StateUnhealthy })
				ag.setState(discovery.StateDraining)
				in.sup.say(fmt.Sprintf("%s failed %d health checks in a row (GET %s)", in.name(), fails, in.svc.health))
			default:
				fails++
			}
		}
	}
}

// probe reports whether the health path at target (an SDK program's admin
// listener, another program's own address) answers 200 within
// healthTimeout.
func (in *instance) probe(target string) bool {
	ctx, cancel := context.WithTimeout(context.Background(), healthTimeout)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, in.svc.probeVia+"://"+target+in.svc.health, nil)
	resp, err := in.svc.probe.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

type readiness int

const (
	readyOK readiness = iota
	readyExited
	readyStop
	readyTimedOut
)

// waitReady polls ready (the health path answers 200) until it is true.
func (in *instance) waitReady(exited <-chan struct{}, ready func() bool) readiness {
	deadline := time.NewTimer(readyTimeout)
	defer deadline.Stop()
	tick := time.NewTicker(readyPoll)
	defer tick.Stop()
	for {
		if ready() {
			return readyOK
		}
		select {
		case <-tick.C:
		case <-exited:
			return readyExited
		case <-in.stop:
			return readyStop
		case <-deadline.C:
			return readyTimedOut
		}
	}
}

// terminate stops the process gracefully: deregister (draining first), TERM
// (and CONT, in case it was stopped), wait the drain timeout plus killGrace,
// then KILL the whole process group.
func (in *instance) terminate(pid int, exited <-chan struct{}, ag *agent) {
	s := in.sup
	in.set(func() { in.state = StateDraining })
	// A replacement, if any, has its own copy by now. Without ours, the
	// address refuses connections once the process stops listening,
	// instead of queueing them for nobody.
	in.release()
	ag.drain(s.drain)
	_ = syscall.Kill(-pid, syscall.SIGTERM)
	_ = syscall.Kill(-pid, syscall.SIGCONT)
	t := time.NewTimer(s.drain + killGrace)
	select {
	case <-exited:
		t.Stop()
	case <-t.C:
		s.say(fmt.Sprintf("%s did not stop within %v; killing it", in.name(), s.drain+killGrace))
	}
	killGroup(pid)
	<-exited
	ag.leave()
}

// reserve binds the socket for the slot's next process: its fixed port, or
// one the kernel picks.
func (in *instance) reserve() (*handoff.Port, error) {
	addr := in.sup.host.listen(0)
	if in.fixed {
		addr = in.sup.host.listen(in.svc.spec.Port[in.index-1])
	}
	p, err := handoff.Reserve(addr)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", in.name(), err)
	}
	return p, nil
}

// release closes the supervisor's copy of a fixed-port process's socket.
func (in *instance) release() {
	in.mu.Lock()
	sock := in.sock
	in.sock = nil
	in.mu.Unlock()
	if sock != nil {
		sock.Close()
	}
}

// keepSpare keeps the supervisor's copy of the socket of a fixed-port
// process that has exited, for run to hand to its restart or close. A
// process stopped on purpose has none left: terminate released it.
func (in *instance) keepSpare() {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.sock != nil {
		if in.spare != nil {
			in.spare.Close()
		}
		in.spare, in.sock = in.sock, nil
	}
}

// takeSpare returns the socket keepSpare kept, if any, and forgets it.
func (in *instance) takeSpare() *handoff.Port {
	in.mu.Lock()
	defer in.mu.Unlock()
	sock := in.spare
	in.spare = nil
	return sock
}

// handover returns a copy of the socket the running process of a
// fixed-port slot listens on, for a replacement to accept from the same
// queue while this one drains; nil if there is none: no process runs, it
// bound the port itself rather than taking the socket (a replacement could
// then not listen before it stops), or it is not an SDK program (only its
// entry in discovery tells the replacement's readiness from its own).
func (in *instance) handover() *handoff.Port {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.svc.register != RegisterSDK || in.sock == nil || !in.sock.Listening() {
		return nil
	}
	d, err := in.sock.Dup()
	if err != nil {
		return nil
	}
	return d
}

// killGroup SIGKILLs what is left of the process group led by pid.
func killGroup(pid int) { _ = syscall.Kill(-pid, syscall.SIGKILL) }

func exitString(err error) string {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ProcessState.String() // "exit status 1", "signal: killed"
	}
	if err != nil {
		return err.Error()
	}
	return "exit status 0"
}

// agent is the gossip member the supervisor runs on behalf of a program that
// does not use the SDK. A nil *agent is valid and does nothing.
type agent struct {
	m      *discovery.Member
	cancel context.CancelFunc
	done   chan struct{}
}

func startAgent(s *Supervisor, self discovery.Instance) (*agent, error) {
	m, err := discovery.New(s.gossipConfig([]string{s.seed.GossipAddr()}), self)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	a := &agent{m: m, cancel: cancel, done: make(chan struct{})}
	runErr := make(chan error, 1)
	go func() { // owned by the agent: exits when leave cancels ctx
		defer close(a.done)
		runErr <- m.Run(ctx)
	}()
	select {
	case <-m.Ready():
		return a, nil
	case err := <-runErr:
		cancel()
		return nil, err
	}
}

// drain advertises the instance as draining and gives callers a moment to
// see it before the program is stopped.
func (a *agent) drain(timeout time.Duration) {
	if a == nil {
		return
	}
	_ = a.m.Drain(context.Background(), timeout)
}

// setState announces the program's state in discovery, bounded in time.
func (a *agent) setState(st discovery.State) {
	if a == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	_ = a.m.SetState(ctx, st)
	cancel()
}

// leave ends the member (a graceful leave) and waits for it.
func (a *agent) leave() {
	if a == nil {
		return
	}
	a.cancel()
	<-a.done
}
