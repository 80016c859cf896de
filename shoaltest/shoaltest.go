// Package shoaltest checks a system's resilience from go test, so that CI
// rehearses failure on every change: start the system of a manifest in
// the test's process (as shoal up does), or use the one shoal up already
// runs for it, then run an experiment (package chaos/experiment) or the
// chaos monkey (package chaos/monkey) against it and assert on the
// verdict.
//
//	func TestRatingsLatency(t *testing.T) {
//		sys := shoaltest.Start(t, "../shoal.yaml")
//		rep := sys.Experiment(t, "../experiments/ratings-latency.yaml")
//		shoaltest.RequireVerdict(t, rep, experiment.Held)
//	}
//
// Start builds and runs everything the manifest lists, with its .shoal
// state folder beside it; a shoal up already running for the same
// manifest makes it fail (use Attach then). It needs the go command for
// build: services, like shoal up.
package shoaltest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/chaos/experiment"
	"github.com/shoal-dev/shoal/chaos/monkey"
	"github.com/shoal-dev/shoal/manifest"
	"github.com/shoal-dev/shoal/supervisor"
)

// System is a running system a test acts on.
type System struct {
	// Dir is the manifest's folder (its .shoal folder holds the state,
	// the operator's key and the Prometheus targets).
	Dir string
	// Target is the supervisor, in this process (Start) or reached
	// through its control API (Attach).
	Target monkey.Target

	out *logBuffer // the supervisor's output, with Start
}

// options are Start's.
type options struct {
	configure func(*manifest.Manifest)
	ready     time.Duration
}

// Option changes how Start runs a system.
type Option func(*options)

// Configure changes the manifest before the system starts: fewer
// instances, other ports, a shorter drain timeout.
func Configure(f func(*manifest.Manifest)) Option { return func(o *options) { o.configure = f } }

// ReadyWithin bounds the wait for every instance to serve, builds
// included; default 5 minutes.
func ReadyWithin(d time.Duration) Option { return func(o *options) { o.ready = d } }

// Start runs the system of the manifest at path in this process, as shoal
// up does, and returns once every instance serves. The system is stopped,
// gracefully, when the test ends; if the test failed, the end of the
// supervisor's output (instances' logs included) is logged.
func Start(t testing.TB, path string, opts ...Option) *System {
	t.Helper()
	o := options{ready: 5 * time.Minute}
	for _, opt := range opts {
		opt(&o)
	}
	m, err := manifest.Load(path)
	if err != nil {
		t.Fatalf("shoaltest: %v", err)
	}
	if o.configure != nil {
		o.configure(m)
	}
	s := &System{Dir: m.Dir, out: &logBuffer{}}
	sup, err := supervisor.New(m, supervisor.Options{Out: s.out})
	if err != nil {
		t.Fatalf("shoaltest: %v", err)
	}
	s.Target = sup
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- sup.Run(ctx) }() // owned by the cleanup below: ends with cancel
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("shoaltest: the system stopped with %v", err)
			}
		case <-time.After(m.DrainTimeout + time.Minute):
			t.Errorf("shoaltest: the system did not stop within %v", m.DrainTimeout+time.Minute)
		}
		if t.Failed() {
			t.Logf("shoaltest: the last of the system's output:\n%s", s.out.tail(200))
		}
	})
	want := 0
	for _, svc := range m.Services {
		want += max(svc.Instances, 1)
	}
	if err := s.waitServing(ctx, want, o.ready, done); err != nil {
		t.Fatalf("shoaltest: %v\n%s", err, s.out.tail(50))
	}
	return s
}

// WaitServing waits until every instance of the system serves (after a
// monkey, say: killed instances restart), for at most within.
func (s *System) WaitServing(t testing.TB, within time.Duration) {
	t.Helper()
	if err := s.waitServing(t.Context(), 0, within, nil); err != nil {
		t.Fatalf("shoaltest: %v", err)
	}
}

// waitServing polls the instances until want of them (0: all listed)
// serve, within, or until stopped reports the system's end.
func (s *System) waitServing(ctx context.Context, want int, within time.Duration, stopped chan error) error {
	deadline := time.Now().Add(within)
	for {
		select {
		case err := <-stopped:
			stopped <- err
			return fmt.Errorf("the system stopped while starting: %v", err)
		default:
		}
		st, err := s.Target.PS(ctx)
		serving, all := 0, len(st)
		for _, in := range st {
			if in.State == supervisor.StateServing {
				serving++
			}
		}
		if want > 0 {
			all = want
		}
		if err == nil && serving == all {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d of %d instances serving after %v (%v)", serving, all, within, err)
		}
		time.Sleep(50 * time.Millisecond) // polling the instances' states
	}
}

// Attach returns the system shoal up runs for the manifest at path (or
// in the folder path names), and fails the test if none does.
func Attach(t testing.TB, path string) *System {
	t.Helper()
	dir := path
	if strings.HasSuffix(path, ".yaml") || strings.HasSuffix(path, ".yml") {
		dir = filepath.Dir(path)
	}
	r, err := supervisor.FindRunning(dir)
	if err != nil {
		t.Fatalf("shoaltest: %v", err)
	}
	return &System{Dir: r.Dir, Target: r}
}

// Experiment runs the experiment file at path against the system and
// returns its report; the progress and the report's table go to the
// test's log. It fails the test if the experiment cannot run (a mistake
// in the file, no gateway, a setup request that failed): a run that ends
// with a verdict, whichever, returns.
func (s *System) Experiment(t testing.TB, path string) *experiment.Report {
	t.Helper()
	e, err := experiment.Load(path)
	if err != nil {
		t.Fatalf("shoaltest: %v", err)
	}
	return s.Run(t, e)
}

// Run runs an experiment built in code (or loaded and changed) against the
// system, as Experiment does.
func (s *System) Run(t testing.TB, e *experiment.Experiment) *experiment.Report {
	t.Helper()
	log := &logBuffer{}
	rep, err := (&experiment.Runner{System: s.Target, Dir: s.Dir, Log: log}).Run(t.Context(), e)
	t.Logf("experiment %s:\n%s", e.Name, log.String())
	if err != nil {
		t.Fatalf("shoaltest: experiment %s could not run: %v", e.Name, err)
	}
	var table bytes.Buffer
	_ = rep.WriteTable(&table)
	t.Logf("%s", table.String())
	return rep
}

// RequireVerdict fails the test unless the report's verdict is one of
// want (experiment.Held, Failed, Aborted).
func RequireVerdict(t testing.TB, rep *experiment.Report, want ...string) {
	t.Helper()
	for _, w := range want {
		if rep.Verdict == w {
			return
		}
	}
	t.Fatalf("experiment %s: verdict %s (%s), want %s", rep.Experiment, rep.Verdict, rep.Reason, strings.Join(want, " or "))
}

// Monkey starts the chaos monkey against the system, and returns the
// function that stops it and returns what it did (stopped at the test's
// end at the latest). Each action is logged.
func (s *System) Monkey(t testing.TB, cfg monkey.Config) (stop func() []monkey.Result) {
	t.Helper()
	if err := cfg.Validate(nil); err != nil {
		t.Fatalf("shoaltest: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var results []monkey.Result
	var runErr error
	done := make(chan struct{})
	mk := &monkey.Monkey{Config: cfg, Target: s.Target, Report: func(r monkey.Result) {
		if r.Err == nil {
			t.Logf("monkey: %s", r.Done.Message)
		}
	}}
	go func() { // owned by stop: ends with cancel
		defer close(done)
		results, runErr = mk.Run(ctx)
	}()
	stop = sync.OnceValue(func() []monkey.Result {
		cancel()
		<-done
		if runErr != nil && !errors.Is(runErr, context.Canceled) {
			t.Errorf("shoaltest: the monkey stopped: %v", runErr)
		}
		return results
	})
	t.Cleanup(func() { stop() })
	return stop
}

// Gateways returns the base URLs of the serving instances of the service
// named gateway.
func (s *System) Gateways(t testing.TB) []string {
	t.Helper()
	st, err := s.Target.PS(t.Context())
	if err != nil {
		t.Fatalf("shoaltest: %v", err)
	}
	var out []string
	for _, in := range st {
		if in.Service == "gateway" && in.State == supervisor.StateServing {
			out = append(out, "http://"+in.Addr)
		}
	}
	return out
}

// logBuffer is an io.Writer safe for concurrent writes that keeps the
// last of what it was given.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// maxLog bounds what a logBuffer keeps.
const maxLog = 4 << 20

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.b.Len()+len(p) > maxLog {
		keep := l.b.Bytes()[l.b.Len()/2:]
		l.b = *bytes.NewBuffer(append([]byte(nil), keep...))
	}
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// tail returns the last n lines.
func (l *logBuffer) tail(n int) string {
	lines := strings.Split(strings.TrimRight(l.String(), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
