package supervisor

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/shoal-dev/shoal"
	"github.com/shoal-dev/shoal/chaos"
	"github.com/shoal-dev/shoal/manifest"
)

// Chaos actions on instances: what the monkey and experiments do (package
// chaos/monkey, chaos/experiment), through Supervisor.Chaos or
// Remote.Chaos. Unlike `shoal kill`, every action is an event of its own
// (EventChaos) naming who asked, the "last serving instance" rule is
// checked where the instances are, and the timed ones (stop, slow) are
// undone by the supervisor itself when their time is up, or at once when
// the instance stops, whatever happens to whoever asked: a frozen instance
// must not outlive a monkey that was killed.

// Chaos actions, as the manifest's monkey names them.
const (
	ActionKill = manifest.MonkeyKill // SIGKILL: a crash; the supervisor restarts it
	ActionStop = manifest.MonkeyStop // SIGSTOP for a while, then SIGCONT: a frozen process
	// ActionSlow freezes the process for a share of every 100 ms for a
	// while (SIGSTOP, SIGCONT): a slow machine, not a dead one.
	ActionSlow = manifest.MonkeySlow
)

// Defaults of the timed actions.
const (
	DefaultStopFor = 5 * time.Second
	DefaultSlowFor = 10 * time.Second
	DefaultPause   = 0.5
	slowPeriod     = 100 * time.Millisecond
	maxChaosFor    = time.Hour
)

// ChaosAction asks for one chaos action on an instance.
type ChaosAction struct {
	Service string `json:"service"`
	Index   int    `json:"index"`  // from 1; -1 for a random running instance
	Action  string `json:"action"` // ActionKill, ActionStop or ActionSlow
	// For is how long stop and slow last (DefaultStopFor, DefaultSlowFor).
	For time.Duration `json:"for,omitempty"`
	// Pause is slow's share of time frozen, in (0, 1); DefaultPause.
	Pause float64 `json:"pause,omitempty"`
	// DryRun picks the instance and records the event, and does nothing.
	DryRun bool `json:"dry_run,omitempty"`
	// KeepServing refuses the action (409 last_serving) when no other
	// instance of the service would be left serving.
	KeepServing bool `json:"keep_serving,omitempty"`
	// By names who asks, for the event ("monkey", "experiment NAME").
	By string `json:"by,omitempty"`
}

// ChaosResult is what a chaos action did.
type ChaosResult struct {
	Instance InstanceStatus `json:"instance"` // as it was when acted on
	Message  string         `json:"message"`  // the event's text
}

// chaosState is the supervisor's timed chaos actions in progress.
type chaosState struct {
	mu     sync.Mutex
	active map[*instance]time.Time // instance → when its stop or slow ends
}

// loadFaultKey reads (or makes) the operator's key in the state folder;
// its public half goes to every instance (SHOAL_FAULT_KEY).
func (s *Supervisor) loadFaultKey(secrets string) error {
	path := filepath.Join(secrets, filepath.Base(chaos.KeyFile("")))
	if len(s.host.join) > 0 {
		if err := joinKeys(secrets, os.Getenv); err != nil {
			return err
		}
	}
	key, err := chaos.LoadOrCreateKey(path)
	if err != nil {
		return fmt.Errorf("supervisor: %w", err)
	}
	s.faultKey, s.faultKeyFile = chaos.PublicKey(key), path
	return nil
}

// OperatorKeyFile is where the operator's private key is for the system
// whose manifest is in dir: where the running supervisor keeps it (shoal up
// --secrets moves it), or chaos.KeyFile(dir). The CLI signs fault,
// experiment and profile tokens with it.
func OperatorKeyFile(dir string) string {
	if st, err := readState(dir); err == nil && st.OperatorKey != "" {
		return st.OperatorKey
	}
	return chaos.KeyFile(dir)
}

// PS lists every instance, as `shoal ps` does (and Remote.PS, whose
// signature it shares).
func (s *Supervisor) PS(context.Context) ([]InstanceStatus, error) { return s.ps(), nil }

// Chaos does one chaos action, records it in the event feed and returns
// when it has begun; stop and slow end on their own. See HTTPStatus for
// its errors.
func (s *Supervisor) Chaos(_ context.Context, a ChaosAction) (ChaosResult, error) {
	svc, err := s.lookup(a.Service)
	if err != nil {
		return ChaosResult{}, err
	}
	if err := a.check(); err != nil {
		return ChaosResult{}, err
	}
	if err := s.checkLaunched(); err != nil {
		return ChaosResult{}, err
	}
	s.mu.Lock()
	closing := s.closing
	s.mu.Unlock()
	if closing {
		// Instances are draining: a kill now would lose their requests.
		return ChaosResult{}, &opError{http.StatusServiceUnavailable, "stopping", "shoal up is stopping every instance"}
	}
	in, err := s.chaosTarget(svc, a)
	if err != nil {
		return ChaosResult{}, err
	}
	in.mu.Lock()
	proc := in.proc
	in.mu.Unlock()
	st := in.status()
	if proc == nil {
		return ChaosResult{}, &opError{http.StatusConflict, "not_running", in.name() + " has no running process"}
	}
	by := cmp.Or(a.By, "chaos")
	msg := chaosMessage(by, a, in.name(), proc.Pid)
	if a.DryRun {
		s.event(EventChaos, "info", svc.name, in.name(), "%s", msg)
		return ChaosResult{Instance: st, Message: msg}, nil
	}
	switch a.Action {
	case ActionKill:
		err = s.signal(in, proc, syscall.SIGKILL)
	default:
		err = s.startTimed(in, proc, a, by)
	}
	if err != nil {
		return ChaosResult{Instance: st}, err
	}
	s.say(msg)
	s.event(EventChaos, "warn", svc.name, in.name(), "%s", msg)
	return ChaosResult{Instance: st, Message: msg}, nil
}

// chaosMessage is the event's text for the action a, asked for by by, on
// the instance name (process pid): "monkey froze catalog/1 (pid 7) for 5s",
// or for a dry run "monkey (dry run) would have frozen catalog/1 (pid 7)
// for 5s".
func chaosMessage(by string, a ChaosAction, name string, pid int) string {
	var past, participle, rest string
	switch a.Action {
	case ActionKill:
		past, participle = "killed", "killed"
	case ActionStop:
		past, participle, rest = "froze", "frozen", fmt.Sprintf(" for %v", a.For)
	case ActionSlow:
		past, participle, rest = "slowed", "slowed", fmt.Sprintf(" for %v, frozen %.0f%% of the time", a.For, 100*a.Pause)
	}
	if a.DryRun {
		return fmt.Sprintf("%s (dry run) would have %s %s (pid %d)%s", by, participle, name, pid, rest)
	}
	return fmt.Sprintf("%s %s %s (pid %d)%s", by, past, name, pid, rest)
}

// check validates a and fills in its defaults.
func (a *ChaosAction) check() error {
	switch a.Action {
	case ActionKill:
	case ActionStop:
		a.For = cmp.Or(a.For, DefaultStopFor)
	case ActionSlow:
		a.For, a.Pause = cmp.Or(a.For, DefaultSlowFor), cmp.Or(a.Pause, DefaultPause)
		if !(a.Pause > 0 && a.Pause < 1) {
			return badRequest("pause %v: want a share of time in (0, 1), e.g. 0.5", a.Pause)
		}
	default:
		return badRequest("action %q: want %s, %s or %s", a.Action, ActionKill, ActionStop, ActionSlow)
	}
	if a.For < 0 || a.For > maxChaosFor {
		return badRequest("for %v: want a duration up to %v", a.For, maxChaosFor)
	}
	if a.Index == 0 || a.Index < -1 {
		return badRequest("index %d: instances are numbered from 1 (or -1 for a random one)", a.Index)
	}
	return nil
}

// chaosTarget picks the instance a acts on, and applies KeepServing.
func (s *Supervisor) chaosTarget(svc *service, a ChaosAction) (*instance, error) {
	var candidates []*instance
	serving := 0
	for _, in := range s.active(svc) {
		st := in.status()
		if st.State == StateServing && !s.chaosBusy(in) {
			serving++
		}
		if st.PID > 0 && (a.Index == -1 || in.index == a.Index) {
			candidates = append(candidates, in)
		}
	}
	if len(candidates) == 0 {
		if a.Index == -1 {
			return nil, &opError{http.StatusConflict, "not_running", fmt.Sprintf("no instance of %s is running", svc.name)}
		}
		return nil, &opError{http.StatusConflict, "not_running", fmt.Sprintf("%s/%d has no running process (see shoal ps)", svc.name, a.Index)}
	}
	in := candidates[rand.IntN(len(candidates))]
	if a.KeepServing {
		left := serving
		if st := in.status(); st.State == StateServing && !s.chaosBusy(in) {
			left--
		}
		if left < 1 {
			return nil, &opError{http.StatusConflict, "last_serving",
				fmt.Sprintf("%s is the last serving instance of %s: %s would take the service down", in.name(), svc.name, a.Action)}
		}
	}
	return in, nil
}

// chaosBusy reports whether a stop or slow is under way on in.
func (s *Supervisor) chaosBusy(in *instance) bool {
	s.chaos.mu.Lock()
	defer s.chaos.mu.Unlock()
	_, busy := s.chaos.active[in]
	return busy
}

// signal sends sig to proc if it still is in's process.
func (s *Supervisor) signal(in *instance, proc *os.Process, sig syscall.Signal) error {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.proc != proc {
		return &opError{http.StatusConflict, "not_running", in.name() + " exited before the signal reached it"}
	}
	if err := proc.Signal(sig); err != nil {
		if errors.Is(err, os.ErrProcessDone) || errors.Is(err, syscall.ESRCH) {
			return &opError{http.StatusConflict, "not_running", in.name() + " exited before the signal reached it"}
		}
		return fmt.Errorf("signal %s (pid %d): %w", in.name(), proc.Pid, err)
	}
	return nil
}

// startTimed begins a stop or a slow on in, undone by a goroutine of its
// own (counted in s.wg, like the instances) when a.For has passed or the
// instance is asked to stop (scale down, restart, shutdown), whichever
// comes first; it ends early if the process exits.
func (s *Supervisor) startTimed(in *instance, proc *os.Process, a ChaosAction, by string) error {
	end := time.Now().Add(a.For)
	s.chaos.mu.Lock()
	if _, busy := s.chaos.active[in]; busy {
		s.chaos.mu.Unlock()
		return &opError{http.StatusConflict, "busy", in.name() + " is already stopped or slowed"}
	}
	if s.chaos.active == nil {
		s.chaos.active = map[*instance]time.Time{}
	}
	s.chaos.active[in] = end
	s.chaos.mu.Unlock()
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		s.chaosDone(in)
		return errors.New("supervisor: shutting down")
	}
	s.wg.Add(1)
	s.mu.Unlock()
	if err := s.signal(in, proc, syscall.SIGSTOP); err != nil {
		s.wg.Done()
		s.chaosDone(in)
		return err
	}
	go func() { // owned by s.wg: ends by end, or at in.stop
		defer s.wg.Done()
		defer s.chaosDone(in)
		if a.Action == ActionSlow {
			s.slow(in, proc, end, a.Pause)
		} else {
			t := time.NewTimer(time.Until(end))
			select {
			case <-t.C:
			case <-in.stop:
				t.Stop()
			}
		}
		if s.signal(in, proc, syscall.SIGCONT) == nil {
			s.event(EventChaos, "info", in.svc.name, in.name(), "%s resumed (%s %s it for %v)", in.name(), by, map[string]string{ActionStop: "froze", ActionSlow: "slowed"}[a.Action], a.For)
		}
	}()
	return nil
}

// slow alternates SIGSTOP and SIGCONT on proc, frozen for pause of every
// slowPeriod, until end, in's stop, or the process is gone. It returns
// with proc stopped (the caller continues it).
func (s *Supervisor) slow(in *instance, proc *os.Process, end time.Time, pause float64) {
	frozen := time.Duration(pause * float64(slowPeriod))
	t := time.NewTimer(frozen)
	defer t.Stop()
	for running := false; time.Now().Before(end); running = !running {
		select {
		case <-t.C:
		case <-in.stop:
			return
		}
		sig, next := syscall.SIGCONT, slowPeriod-frozen
		if running {
			sig, next = syscall.SIGSTOP, frozen
		}
		if s.signal(in, proc, sig) != nil {
			return
		}
		t.Reset(next)
	}
}

func (s *Supervisor) chaosDone(in *instance) {
	s.chaos.mu.Lock()
	delete(s.chaos.active, in)
	s.chaos.mu.Unlock()
}

// serveChaos is the control API's POST /v1/chaos.
func (s *Supervisor) serveChaos(w http.ResponseWriter, r *http.Request) {
	var a ChaosAction
	if !readJSON(w, r, &a) {
		return
	}
	res, err := s.Chaos(r.Context(), a)
	if err != nil {
		writeError(w, err)
		return
	}
	shoal.WriteJSON(w, http.StatusOK, res)
}

// Chaos asks the supervisor for one chaos action (see Supervisor.Chaos)
// and returns what it did.
func (r *Remote) Chaos(ctx context.Context, a ChaosAction) (ChaosResult, error) {
	var res ChaosResult
	err := r.bounded(ctx, callTimeout, func(ctx context.Context) error {
		return r.call(ctx, http.MethodPost, pathChaos, a, &res)
	})
	return res, err
}
