package client

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/balance"
	"github.com/shoal-dev/shoal/discovery"
	"github.com/shoal-dev/shoal/resilience"
)

// frozenAddr returns the address of a listener that never accepts: the
// kernel completes connections and takes the bytes written, and nothing
// ever answers, which is what a SIGSTOPped process looks like to a caller.
func frozenAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln.Addr().String()
}

// attemptLog collects the attempts a Transport reports.
type attemptLog struct {
	mu sync.Mutex
	as []Attempt
}

func (l *attemptLog) ObserveAttempt(_ string, a Attempt) {
	l.mu.Lock()
	l.as = append(l.as, a)
	l.mu.Unlock()
}

func (l *attemptLog) all() []Attempt {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]Attempt(nil), l.as...)
}

// A slow answer is not a failure: a backend that answers in 40% or 70% of
// the caller's deadline answers the first attempt, and gets exactly one
// request, with the caller's whole remaining budget in TimeoutHeader. (An
// equal share per attempt abandoned both after a third of the deadline and
// sent the work to another instance.) 70%, not 90%: on a loaded 2-core
// machine a backend's timer fired up to 110 ms late (gateway's
// TestSlowBackendAnswersOnce, which failed so with 100 ms of slack).
func TestSlowAnswerUsesTheWholeDeadline(t *testing.T) {
	// 90% of the deadline, as issue 12 asks, with 300 ms to spare for
	// timers late on a loaded machine (see the gateway's test).
	const deadline = 3 * time.Second
	for _, share := range []float64{0.4, 0.9} {
		t.Run(fmt.Sprintf("%.0f%% of the deadline", 100*share), func(t *testing.T) {
			slow := time.Duration(share * float64(deadline))
			var requests atomic.Int64
			budgets := make(chan budget, 3)
			handler := func(w http.ResponseWriter, r *http.Request) {
				requests.Add(1)
				d, _ := ParseTimeout(r.Header.Get(TimeoutHeader))
				budgets <- budget{d, time.Now()}
				select {
				case <-time.After(slow):
					w.Write([]byte("done"))
				case <-r.Context().Done():
				}
			}
			f := newFleet(t, handler, handler, handler)
			log := &attemptLog{}
			tr := newTransport(t, f, Config{Observer: log})
			start := time.Now()
			ctx, cancel := context.WithTimeout(context.Background(), deadline)
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, "GET", "http://svc/report", nil)
			resp, err := tr.RoundTrip(req)
			if err != nil {
				t.Fatalf("answer in %v of a %v deadline: %v", slow, deadline, err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d", resp.StatusCode)
			}
			if n := requests.Load(); n != 1 {
				t.Errorf("backends got %d requests, want exactly 1", n)
			}
			if as := log.all(); len(as) != 1 || as[0].Err != nil {
				t.Errorf("attempts %+v, want one that succeeded", as)
			}
			// What the caller had left when the backend read the header,
			// rounded down to the millisecond, or more.
			b := <-budgets
			if least := deadline - b.at.Sub(start) - time.Millisecond; b.d < least || b.d > deadline {
				t.Errorf("the backend was given %v, want the caller's remaining budget (%v to %v)", b.d, least, deadline)
			}
		})
	}
}

// budget is the TimeoutHeader a backend was sent, and when it read it.
type budget struct {
	d  time.Duration
	at time.Time
}

// A frozen instance (it takes connections and answers nothing, not even
// OPTIONS *) is found by the silent-instance check: an attempt there ends
// within quietAfter + checkTimeout and the call succeeds elsewhere, well
// within its deadline, with no hedging (too few samples) and no per-try
// timeout.
func TestFrozenInstanceFailsOver(t *testing.T) {
	f := newFleet(t, ok, ok)
	frozen := discovery.Instance{ID: "svc-frozen", Service: "svc", Addr: frozenAddr(t), State: discovery.StateServing}
	instances := []discovery.Instance{frozen, f.instances[0], f.instances[1]}
	log := &attemptLog{}
	tr := newTransport(t, resolverFunc(func(string) []discovery.Instance { return instances }), Config{Observer: log})
	onFrozen := 0
	for i := range 10 {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		req, _ := http.NewRequestWithContext(ctx, "GET", "http://svc/x", nil)
		resp, err := tr.RoundTrip(req)
		cancel()
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		resp.Body.Close()
	}
	for _, a := range log.all() {
		if a.Instance != frozen.ID {
			continue
		}
		onFrozen++
		if !errors.Is(a.Err, ErrInstanceSilent) {
			t.Errorf("attempt on the frozen instance ended with %v, want ErrInstanceSilent", a.Err)
		}
		if limit := quietAfter + checkTimeout + 300*time.Millisecond; a.Duration > limit {
			t.Errorf("an attempt waited %v on the frozen instance, want ≤ %v", a.Duration, limit)
		}
	}
	if onFrozen == 0 {
		t.Fatal("the frozen instance was never tried; the test proves nothing")
	}
}

// A handler stuck on one request, in a process that is alive, is slow work
// as far as the caller can tell: the instance answers the liveness check, so
// the attempt is not abandoned, and the call ends with the caller's
// deadline after one attempt.
func TestStuckHandlerOfLiveInstanceIsNotAbandoned(t *testing.T) {
	f := newFleet(t, hang, hang)
	log := &attemptLog{}
	tr := newTransport(t, f, Config{Observer: log})
	const deadline = 1200 * time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://svc/x", nil)
	resp, err := tr.RoundTrip(req)
	if err == nil {
		resp.Body.Close()
	}
	as := log.all()
	if !errors.Is(err, context.DeadlineExceeded) || len(as) != 1 {
		t.Fatalf("err %v after attempts %+v, want the caller's deadline after 1", err, as)
	}
	if as[0].Duration < deadline-50*time.Millisecond {
		t.Errorf("the attempt ended after %v, before the deadline", as[0].Duration)
	}
	if got := f.hits[0].Load() + f.hits[1].Load(); got != 1 {
		t.Errorf("the instances got %d requests, want 1", got)
	}
}

// An explicit per-try timeout is a policy, per service or per call: it
// abandons a slow attempt and fails over.
func TestPerTryTimeoutIsAnExplicitPolicy(t *testing.T) {
	slowFirst := func() (*fleet, *atomic.Int64) {
		var n atomic.Int64
		slow := func(w http.ResponseWriter, r *http.Request) {
			if n.Add(1) == 1 {
				select {
				case <-time.After(time.Second):
				case <-r.Context().Done():
					return
				}
			}
			w.Write([]byte("ok"))
		}
		return newFleet(t, slow, slow), &n
	}
	for _, tt := range []struct {
		name string
		cfg  Config
		ctx  func(context.Context) context.Context
	}{
		{"Config.PerTryTimeout", Config{PerTryTimeout: 100 * time.Millisecond}, func(c context.Context) context.Context { return c }},
		{"Dependencies", Config{Dependencies: map[string]Config{"svc": {PerTryTimeout: 100 * time.Millisecond}}}, func(c context.Context) context.Context { return c }},
		{"CallPolicy", Config{}, func(c context.Context) context.Context {
			return WithPolicy(c, CallPolicy{PerTryTimeout: 100 * time.Millisecond})
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f, n := slowFirst()
			log := &attemptLog{}
			tt.cfg.Observer = log
			tr := newTransport(t, f, tt.cfg)
			ctx, cancel := context.WithTimeout(tt.ctx(context.Background()), 3*time.Second)
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, "GET", "http://svc/x", nil)
			start := time.Now()
			roundTrip(t, tr, req)
			as := log.all()
			if len(as) != 2 || !errors.Is(as[0].Err, ErrAttemptTimeout) || n.Load() != 2 {
				t.Fatalf("attempts %+v (%d requests), want a timed-out one then a success", as, n.Load())
			}
			if took := time.Since(start); took > 900*time.Millisecond {
				t.Errorf("call took %v with a 100ms per-try timeout", took)
			}
		})
	}
}

// Hedges must not hide a dead instance. Once a partition cuts one off, each
// attempt on it is outrun by a hedge within the hedge delay, long before it
// could be quiet and checked, so without more it would stay in rotation
// (Outrun is no failure) and cost a hedge, or once the hedge budget is
// spent a quiet period and a check, every time it is picked. An outrun
// attempt on an instance that has answered nothing for quietAfter has it
// checked, and the failed check ejects it.
func TestHedgesDoNotHideABlackholedInstance(t *testing.T) {
	f := newFleet(t, ok, ok)
	victim := f.instances[0]
	hn := &holeNet{victims: map[string]bool{victim.Addr: true}}
	base := newBaseTransport()
	base.DialContext = hn.dial
	tr := newTransport(t, f, Config{Base: base, Hedge: resilience.HedgeConfig{MaxExtra: 1, MinSamples: 1}})
	t.Cleanup(base.CloseIdleConnections)
	tr.lag = func(time.Time) time.Duration { return 0 } // hedge however loaded the machine is
	c := tr.Client()
	call := func() {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, "GET", "http://svc/x", nil)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	waitUntil := func(within time.Duration, what string, cond func() bool) {
		t.Helper()
		for start := time.Now(); !cond(); call() {
			if time.Since(start) > within {
				t.Fatalf("not %s within %v", what, within)
			}
		}
	}
	victimStats := func() balance.HostStats {
		for _, d := range tr.Dependencies() {
			for _, h := range d.Hosts {
				if h.ID == victim.ID {
					return h
				}
			}
		}
		return balance.HostStats{}
	}
	waitUntil(5*time.Second, "every instance answering", func() bool { return f.hits[0].Load() > 0 && f.hits[1].Load() > 0 })
	hn.cut.Store(true)
	// The partition has lasted quietAfter: what the victim answered last
	// is that old (time passing, not an event to poll for).
	time.Sleep(quietAfter)
	waitUntil(5*time.Second, "the blackholed instance ejected", func() bool { return victimStats().Ejections > 0 })
}
