package resilience

import (
	"context"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// workerPool models a server whose handler holds one of a fixed number of
// worker slots for a fixed time (bench/scenario's replica): capacity is
// workers/work; an admitted request past that waits for a slot inside the
// handler.
type workerPool struct {
	slots chan struct{}
	work  time.Duration
}

func newWorkerPool(workers int, work time.Duration) *workerPool {
	return &workerPool{slots: make(chan struct{}, workers), work: work}
}

// serve runs one admitted request; it gives up waiting for a slot when ctx
// ends, as a handler that honours its context does.
func (w *workerPool) serve(ctx context.Context) bool {
	select {
	case w.slots <- struct{}{}:
	case <-ctx.Done():
		return false
	}
	time.Sleep(w.work)
	<-w.slots
	return true
}

// outcome is what one request saw.
type outcome struct {
	admitted bool
	served   bool          // admitted and answered within its deadline
	took     time.Duration // until refused, or until answered
}

// queueStats summarises outcomes.
type queueStats struct {
	offered, served, refused, lateRefusals int
	servedP99, refusedP99                  time.Duration
}

func summarise(os []outcome) queueStats {
	var s queueStats
	var served, refused []time.Duration
	for _, o := range os {
		s.offered++
		switch {
		case o.served:
			served = append(served, o.took)
		case !o.admitted:
			refused = append(refused, o.took)
			if o.took > OverloadTarget {
				s.lateRefusals++
			}
		}
	}
	s.served, s.refused = len(served), len(refused)
	s.servedP99, s.refusedP99 = p99(served), p99(refused)
	return s
}

func p99(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	slices.Sort(ds)
	return ds[min(len(ds)-1, len(ds)*99/100)]
}

// server serves one admitted request; false if it gave up when ctx ended.
type server interface {
	serve(ctx context.Context) bool
}

// request sends one request with deadline through l to srv.
func request(l *Limiter, srv server, deadline time.Duration) outcome {
	begin := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	p, ok := l.Acquire(ctx)
	if !ok {
		return outcome{took: time.Since(begin)}
	}
	served := srv.serve(ctx)
	p.Record()
	return outcome{admitted: true, served: served && ctx.Err() == nil, took: time.Since(begin)}
}

// openLoop offers rate requests per second for d, each with deadline, and
// returns what each saw. Run it inside a synctest bubble.
func openLoop(l *Limiter, srv *workerPool, rate int, d, deadline time.Duration) []outcome {
	var mu sync.Mutex
	var out []outcome
	var wg sync.WaitGroup
	every := time.Second / time.Duration(rate)
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(every) {
		wg.Go(func() {
			o := request(l, srv, deadline)
			mu.Lock()
			out = append(out, o)
			mu.Unlock()
		})
	}
	wg.Wait()
	return out
}

// closedLoop runs callers that each send a request with deadline as soon
// as their last one ends (after backoff if it was refused), for d. Run it
// inside a synctest bubble.
func closedLoop(l *Limiter, srv *workerPool, callers int, d, deadline, backoff time.Duration) []outcome {
	var mu sync.Mutex
	var out []outcome
	var wg sync.WaitGroup
	end := time.Now().Add(d)
	for range callers {
		wg.Go(func() {
			for time.Now().Before(end) {
				o := request(l, srv, deadline)
				mu.Lock()
				out = append(out, o)
				mu.Unlock()
				if !o.admitted {
					time.Sleep(backoff) // a refused caller comes back
				}
			}
		})
	}
	wg.Wait()
	return out
}

// The workers of bench/scenario's overload: 2 slots of 20 ms, 100/s.
const (
	poolWorkers = 2
	poolWork    = 20 * time.Millisecond
	poolRate    = 100
)

// A closed loop of callers that far outnumber the limit gets latency, not
// errors: every request waits its turn and is served within its deadline.
func TestLimiterQueueServesClosedLoop(t *testing.T) {
	for _, callers := range []int{8, 32, 64, 128} {
		synctest.Test(t, func(t *testing.T) {
			l := NewLimiter(LimiterConfig{})
			srv := newWorkerPool(poolWorkers, poolWork)
			s := summarise(closedLoop(l, srv, callers, 20*time.Second, 5*time.Second, time.Millisecond))
			t.Logf("%d callers: %+v, limiter %+v", callers, s, l.Stats())
			if s.refused != 0 || s.served != s.offered {
				t.Errorf("%d callers: %d of %d refused, %d served; want every request served", callers, s.refused, s.offered, s.served)
			}
		})
	}
}

// A closed loop that retries every refusal at once and outnumbers what the
// instance serves within the deadline: it is refused for lack of time, and
// its retries make arrivals exceed completions as an open-loop overload
// would. The instance still serves at its capacity.
func TestLimiterQueueServesThroughRetryStorm(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := NewLimiter(LimiterConfig{})
		srv := newWorkerPool(poolWorkers, poolWork)
		// 128 callers of 100/s with 1 s deadlines: a queue of 1.28 s does
		// not fit; each refusal comes back after 5 ms.
		s := summarise(closedLoop(l, srv, 128, 30*time.Second, time.Second, 5*time.Millisecond))
		t.Logf("%+v, limiter %+v", s, l.Stats())
		if goodput := float64(s.served) / 30; goodput < 0.9*poolRate {
			t.Errorf("served %.0f/s, want ≥ 90%% of %d/s", goodput, poolRate)
		}
	})
}

// Open-loop overload at twice the capacity: the queue stays short, so the
// requests served are served fast (p99 within 3× the unloaded latency),
// refusals are instant, and the capacity is still used.
func TestLimiterQueueUnderOverload(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := NewLimiter(LimiterConfig{})
		srv := newWorkerPool(poolWorkers, poolWork)
		// Half the capacity for a while: the limiter learns its latency.
		calm := summarise(openLoop(l, srv, poolRate/2, 10*time.Second, time.Second))
		over := summarise(openLoop(l, srv, 2*poolRate, 30*time.Second, time.Second))
		t.Logf("calm: %+v", calm)
		t.Logf("2× overload: %+v, limiter %+v", over, l.Stats())
		if goodput := float64(over.served) / 30; goodput < 0.9*poolRate {
			t.Errorf("goodput %.0f/s under overload, want ≥ 90%% of %d/s", goodput, poolRate)
		}
		if limit := 3 * calm.servedP99; over.servedP99 > limit {
			t.Errorf("served p99 %v under overload, want ≤ 3× the unloaded %v", over.servedP99, calm.servedP99)
		}
		if over.refusedP99 > OverloadTarget {
			t.Errorf("refusal p99 %v (%d of %d refusals late), want ≤ %v", over.refusedP99, over.lateRefusals, over.refused, OverloadTarget)
		}
	})
}

// Overloaded by waiting on something else (a dependency with flat latency,
// the limit at its maximum): fewer requests in flight would not make them
// faster, so the probes of the overload cap fail and the process keeps its
// concurrency and its throughput.
func TestLimiterOverloadKeepsConcurrencyWhenLatencyIsElsewhere(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const limit, latency = 20, 100 * time.Millisecond // capacity 200/s
		l := NewLimiter(LimiterConfig{MinLimit: 4, MaxLimit: limit, InitialLimit: limit})
		srv := newWorkerPool(1000, latency) // no queue inside: every request takes 100 ms
		over := summarise(openLoop(l, srv, 400, 30*time.Second, time.Second))
		t.Logf("2× overload: %+v, limiter %+v", over, l.Stats())
		if goodput := float64(over.served) / 30; goodput < 0.9*limit/latency.Seconds() {
			t.Errorf("goodput %.0f/s, want ≥ 90%% of %.0f/s", goodput, limit/latency.Seconds())
		}
		if over.refusedP99 > OverloadTarget {
			t.Errorf("refusal p99 %v, want ≤ %v", over.refusedP99, OverloadTarget)
		}
	})
}

// waitResult is what a waiter named name got from the queue.
type waitResult struct {
	name string
	p    Permit
	ok   bool
}

// waitAs queues a waiter named name that waits at most allow and sends
// what it gets to got; it returns once the waiter is queued. Run it inside
// a synctest bubble.
func waitAs(l *Limiter, name string, allow time.Duration, got chan<- waitResult) {
	go func() {
		p, ok, _ := l.waiting.wait(context.Background(), l, allow)
		r := waitResult{name: name, ok: ok}
		if ok {
			r.p = l.admit(p, time.Now())
		}
		got <- r
	}()
	synctest.Wait()
}

// Waiters are served first come, first served, and one whose allowance
// runs out leaves the queue without taking a slot.
func TestWaitQueueServesInOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := NewLimiter(LimiterConfig{MinLimit: 1, MaxLimit: 1})
		held, _ := l.Acquire(context.Background())
		got := make(chan waitResult, 3)
		waitAs(l, "first", time.Minute, got)
		waitAs(l, "impatient", time.Second, got)
		waitAs(l, "last", time.Minute, got)
		time.Sleep(2 * time.Second)
		if r := <-got; r.name != "impatient" || r.ok {
			t.Fatalf("after its allowance: %+v, want the impatient waiter gone without a slot", r)
		}
		for _, want := range []string{"first", "last"} {
			held.Record()
			r := <-got
			if r.name != want || !r.ok {
				t.Fatalf("next to get the slot: %+v, want %s", r, want)
			}
			held = r.p
		}
		held.Record()
		if n := l.waiting.len(); n != 0 || l.Stats().InFlight != 0 {
			t.Fatalf("%d still waiting, %+v", n, l.Stats())
		}
	})
}

// Shedding refuses at once every waiter but the oldest it keeps: they get
// no slot, and the one kept gets the next.
func TestWaitQueueShedKeepsTheOldest(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := NewLimiter(LimiterConfig{MinLimit: 1, MaxLimit: 1})
		held, _ := l.Acquire(context.Background())
		got := make(chan waitResult, 3)
		for _, name := range []string{"oldest", "second", "third"} {
			waitAs(l, name, time.Minute, got)
		}
		l.waiting.shed(1)
		for range 2 {
			if r := <-got; r.ok || r.name == "oldest" {
				t.Fatalf("shed: %+v, want the two newest refused", r)
			}
		}
		if n, in := l.waiting.len(), l.Stats().InFlight; n != 1 || in != 1 {
			t.Fatalf("%d waiting, %d in flight after shed; want 1 and 1", n, in)
		}
		held.Record()
		r := <-got
		if r.name != "oldest" || !r.ok {
			t.Fatalf("after shed: %+v, want the oldest served", r)
		}
		r.p.Record()
	})
}
