package supervisor

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/shoal-dev/shoal/discovery"
	"github.com/shoal-dev/shoal/handoff"
	"github.com/shoal-dev/shoal/manifest"
)

// InstanceStatus is one row of ps.
type InstanceStatus struct {
	// Host is the address of the host the instance runs on when the
	// system spans several hosts; "" on one machine.
	Host     string        `json:"host,omitempty"`
	Service  string        `json:"service"`
	Index    int           `json:"index"` // from 1
	ID       string        `json:"id"`    // SHOAL_INSTANCE of the current (or last) process
	PID      int           `json:"pid"`   // 0 while no process runs
	Addr     string        `json:"addr"`
	Admin    string        `json:"admin,omitempty"` // an SDK program's admin listener: health, metrics, pprof
	State    string        `json:"state"`           // one of the State constants: starting, serving, unhealthy...
	Restarts int           `json:"restarts"`
	Uptime   time.Duration `json:"uptime"` // of the current process, in nanoseconds in JSON
	LastExit string        `json:"last_exit,omitempty"`
}

// WriteTable writes statuses as the aligned table shown by shoal up and ps,
// with a HOST column when they come from several hosts.
func WriteTable(w io.Writer, st []InstanceStatus) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	hosts := slices.ContainsFunc(st, func(s InstanceStatus) bool { return s.Host != "" })
	if hosts {
		fmt.Fprint(tw, "HOST\t")
	}
	fmt.Fprintln(tw, "SERVICE\tINDEX\tINSTANCE\tPID\tADDRESS\tADMIN\tSTATE\tRESTARTS\tUPTIME\tLAST EXIT")
	for _, s := range st {
		pid, up, admin := "-", "-", "-"
		if s.PID > 0 {
			pid, up = strconv.Itoa(s.PID), s.Uptime.Round(time.Second).String()
		}
		if s.Admin != "" {
			admin = s.Admin
		}
		if hosts {
			fmt.Fprintf(tw, "%s\t", cmp.Or(s.Host, "-"))
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\n", s.Service, s.Index, s.ID, pid, s.Addr, admin, s.State, s.Restarts, up, s.LastExit)
	}
	return tw.Flush()
}

// opError is an error of a control request, with its HTTP status and code.
type opError struct {
	status int
	code   string
	msg    string
}

func (e *opError) Error() string { return e.msg }

func badRequest(format string, args ...any) error {
	return &opError{http.StatusBadRequest, "bad_request", fmt.Sprintf(format, args...)}
}

// lookup finds a service, or explains which ones exist.
func (s *Supervisor) lookup(name string) (*service, error) {
	if svc := s.byName[name]; svc != nil {
		return svc, nil
	}
	if slices.ContainsFunc(s.m.Services, func(spec *ServiceSpec) bool { return spec.Name == name }) {
		return nil, &opError{http.StatusNotFound, "unknown_service",
			fmt.Sprintf("service %q runs on other hosts, not on this one (shoal up --only): run the command there", name)}
	}
	names := s.serviceNames()
	msg := fmt.Sprintf("no service %q in %s", name, s.manifestName())
	if near := manifest.Suggest(name, names); near != "" {
		msg += fmt.Sprintf("; did you mean %s?", near)
	}
	return nil, &opError{http.StatusNotFound, "unknown_service", msg + "; services: " + strings.Join(names, ", ")}
}

func (s *Supervisor) manifestName() string {
	if s.m.Path != "" {
		return s.m.Path
	}
	return "the manifest"
}

// ps lists every instance, services in manifest order, then by index.
func (s *Supervisor) ps() []InstanceStatus {
	s.mu.Lock()
	all := s.instances()
	s.mu.Unlock()
	out := make([]InstanceStatus, len(all))
	for i, in := range all {
		out[i] = in.status()
	}
	return out
}

// checkLaunched refuses changes while shoal up is still building.
func (s *Supervisor) checkLaunched() error {
	if !s.launched.Load() {
		return &opError{http.StatusServiceUnavailable, "starting", "shoal up is still building and starting the system; try again when it prints the status table"}
	}
	return nil
}

// active returns svc's instances that are not being removed, by index.
func (s *Supervisor) active(svc *service) []*instance {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*instance
	for _, in := range svc.insts {
		if !in.retiring {
			out = append(out, in)
		}
	}
	return out
}

// scale sets the number of instances of a service; it returns once new
// instances serve and removed ones have stopped.
func (s *Supervisor) scale(ctx context.Context, name string, n int) (err error) {
	svc, err := s.lookup(name)
	if err != nil {
		return err
	}
	if n < 0 || n > manifest.MaxInstances {
		return badRequest("instances %d: want a number from 0 to %d", n, manifest.MaxInstances)
	}
	if err := s.checkLaunched(); err != nil {
		return err
	}
	svc.op.Lock()
	defer svc.op.Unlock()
	cur := s.active(svc)
	if n != len(cur) {
		s.event(EventScale, "info", name, "", "scaling %s from %d to %d instances", name, len(cur), n)
		defer func() { s.opEvent(EventScale, name, err, "%s scaled to %d instances", name, n) }()
	}
	if n < len(cur) {
		return s.retire(ctx, retireOrder(cur)[:len(cur)-n])
	}
	have := map[int]bool{}
	for _, in := range cur {
		have[in.index] = true
	}
	var added []*instance
	for i := 1; len(cur)+len(added) < n; i++ {
		if have[i] {
			continue
		}
		in, err := s.newInstance(svc, i, nil)
		if err != nil {
			return err
		}
		added = append(added, in)
	}
	for _, in := range added {
		if err := s.waitServing(ctx, in); err != nil {
			return err
		}
	}
	return nil
}

// retireOrder returns ins in the order scale-down removes them: the ones
// not serving (crashed, starting, unhealthy) first, so the service keeps as
// many ready instances as it can; then the highest index first.
func retireOrder(ins []*instance) []*instance {
	type ranked struct {
		in      *instance
		serving bool
	}
	rs := make([]ranked, len(ins))
	for i, in := range ins {
		in.mu.Lock()
		rs[i] = ranked{in, in.state == StateServing}
		in.mu.Unlock()
	}
	slices.SortStableFunc(rs, func(a, b ranked) int {
		if a.serving != b.serving {
			if a.serving {
				return 1
			}
			return -1
		}
		return b.in.index - a.in.index
	})
	out := make([]*instance, len(rs))
	for i, r := range rs {
		out[i] = r.in
	}
	return out
}

// retire stops instances gracefully (all at once) and removes them.
func (s *Supervisor) retire(ctx context.Context, ins []*instance) error {
	s.mu.Lock()
	for _, in := range ins {
		in.retiring = true
	}
	s.mu.Unlock()
	for _, in := range ins {
		in.requestStop()
	}
	for _, in := range ins {
		select {
		case <-in.done:
			s.remove(in)
		case <-ctx.Done():
			// The caller gave up waiting; the instances still stop (within
			// the drain timeout plus killGrace) and are removed then.
			for _, in := range ins {
				go func() { // ends when the instance has stopped
					<-in.done
					s.remove(in)
				}()
			}
			return context.Cause(ctx)
		}
	}
	return nil
}

// waitServing waits until in serves, fails if it is crash looping or stops.
func (s *Supervisor) waitServing(ctx context.Context, in *instance) error {
	var failed error
	err := s.waitFor(ctx, func() bool {
		in.mu.Lock()
		defer in.mu.Unlock()
		switch {
		case in.state == StateServing:
			return true
		case in.looping:
			failed = &opError{http.StatusConflict, "crash_loop", fmt.Sprintf("%s does not get ready: %s", in.name(), in.lastExit)}
			return true
		case in.state == StateStopped:
			failed = &opError{http.StatusConflict, "stopped", in.name() + " was stopped before it got ready"}
			return true
		}
		return false
	})
	if err != nil {
		return fmt.Errorf("waiting for %s to get ready: %w", in.name(), err)
	}
	if failed != nil {
		return failed
	}
	s.waitDiscoverable(ctx, in)
	return nil
}

// discoverWait bounds how long scale and restart wait for a new instance to
// show up in the supervisor's catalog.
const discoverWait = 5 * time.Second

// waitDiscoverable waits until the supervisor's own catalog lists in as
// serving: every instance joins through the supervisor's member, so callers
// learn of it within a gossip round or two. Stopping an old instance only
// after that keeps the number of instances callers can pick from steady.
// A program that is not in discovery at all (it may not use the SDK and be
// registered by nobody) is waited for at most discoverWait.
func (s *Supervisor) waitDiscoverable(ctx context.Context, in *instance) {
	ctx, cancel := context.WithTimeout(ctx, discoverWait)
	defer cancel()
	id := in.status().ID
	snaps := s.seed.Catalog().Watch(ctx)
	for snap := range snaps {
		for _, inst := range snap.Instances(in.svc.name) {
			if inst.ID == id && inst.State == discovery.StateServing {
				cancel()
				for range snaps { // Watch closes the channel once ctx ends
				}
				return
			}
		}
	}
	s.log.Warn("instance ready but not seen in discovery", "instance", in.name(), "id", id, "waited", discoverWait)
}

// restart replaces every instance of a service, one at a time: the
// replacement must serve before the old one stops, so the service never has
// fewer ready instances. On a fixed port the replacement is handed the old
// process's listening socket, and both accept from it until the old one has
// drained; only a program that bound the port itself, rather than taking
// the socket, has to stop before its replacement starts (the service's
// other instances keep serving).
func (s *Supervisor) restart(ctx context.Context, name string) (err error) {
	svc, err := s.lookup(name)
	if err != nil {
		return err
	}
	if err := s.checkLaunched(); err != nil {
		return err
	}
	svc.op.Lock()
	defer svc.op.Unlock()
	s.event(EventRestart, "info", name, "", "rolling restart of %s begins", name)
	defer func() { s.opEvent(EventRestart, name, err, "rolling restart of %s done", name) }()
	for _, old := range s.active(svc) {
		var handed *handoff.Port
		if old.fixed {
			handed = old.handover()
		}
		overlap := !old.fixed || handed != nil
		if !overlap {
			if err := s.retire(ctx, []*instance{old}); err != nil {
				return err
			}
		}
		in, err := s.newInstance(svc, old.index, handed)
		if err != nil {
			return err
		}
		if err := s.waitServing(ctx, in); err != nil {
			if overlap {
				_ = s.retire(context.WithoutCancel(ctx), []*instance{in}) // keep the old one
			}
			return err
		}
		if overlap {
			if err := s.retire(ctx, []*instance{old}); err != nil {
				return err
			}
		}
	}
	return nil
}

// signals are the names kill accepts.
var signals = map[string]syscall.Signal{
	"KILL": syscall.SIGKILL, "TERM": syscall.SIGTERM, "STOP": syscall.SIGSTOP,
	"CONT": syscall.SIGCONT, "INT": syscall.SIGINT, "HUP": syscall.SIGHUP,
}

func parseSignal(name string) (syscall.Signal, string, error) {
	n := strings.TrimPrefix(strings.ToUpper(name), "SIG")
	if n == "" {
		n = "KILL"
	}
	if sig, ok := signals[n]; ok {
		return sig, n, nil
	}
	return 0, "", badRequest("signal %q: want KILL, TERM, STOP, CONT, INT or HUP", name)
}

// checkIndex refuses an index svc has no instance at (kill, logs), naming
// the ones it has.
func (s *Supervisor) checkIndex(svc *service, index int) error {
	var indexes []string
	for _, in := range s.active(svc) {
		if in.index == index {
			return nil
		}
		indexes = append(indexes, strconv.Itoa(in.index))
	}
	return &opError{http.StatusNotFound, "unknown_instance",
		fmt.Sprintf("%s has no instance %d (instances: %s)", svc.name, index, cmp.Or(strings.Join(indexes, ", "), "none"))}
}

// kill sends a signal to one instance's process (not its group: STOP freezes
// just it). index -1 picks a random running instance.
func (s *Supervisor) kill(name string, index int, signal string) (InstanceStatus, error) {
	svc, err := s.lookup(name)
	if err != nil {
		return InstanceStatus{}, err
	}
	sig, sigName, err := parseSignal(signal)
	if err != nil {
		return InstanceStatus{}, err
	}
	if index == 0 || index < -1 {
		return InstanceStatus{}, badRequest("index %d: instances are numbered from 1 (or -1 for a random one)", index)
	}
	if index != -1 {
		if err := s.checkIndex(svc, index); err != nil {
			return InstanceStatus{}, err
		}
	}
	var running []*instance
	for _, in := range s.active(svc) {
		if st := in.status(); st.PID > 0 && (index == -1 || in.index == index) {
			running = append(running, in)
		}
	}
	if len(running) == 0 {
		if index == -1 {
			return InstanceStatus{}, &opError{http.StatusConflict, "not_running", fmt.Sprintf("no instance of %s is running", name)}
		}
		return InstanceStatus{}, &opError{http.StatusConflict, "not_running", fmt.Sprintf("%s/%d has no running process (see shoal ps)", name, index)}
	}
	in := running[rand.IntN(len(running))]
	in.mu.Lock()
	proc := in.proc
	in.mu.Unlock()
	if proc == nil {
		return InstanceStatus{}, &opError{http.StatusConflict, "not_running", in.name() + " has no running process"}
	}
	st := in.status()
	if err := proc.Signal(sig); err != nil {
		if errors.Is(err, os.ErrProcessDone) || errors.Is(err, syscall.ESRCH) {
			// It exited between the lookup and the signal.
			return st, &opError{http.StatusConflict, "not_running",
				fmt.Sprintf("%s (pid %d) exited before SIG%s reached it; the supervisor restarts it (see shoal ps)", in.name(), proc.Pid, sigName)}
		}
		return st, fmt.Errorf("signal %s/%d (pid %d): %w", name, in.index, proc.Pid, err)
	}
	s.say(fmt.Sprintf("sent SIG%s to %s (pid %d)", sigName, in.name(), proc.Pid))
	s.event(EventSignal, "warn", name, in.name(), "sent SIG%s to %s (pid %d)", sigName, in.name(), proc.Pid)
	return st, nil
}

// requestDown asks Run to stop everything.
func (s *Supervisor) requestDown() { s.downOnce.Do(func() { close(s.down) }) }
