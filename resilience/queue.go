package resilience

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/failsafe-go/failsafe-go/adaptivelimiter"
)

// waitQueue holds the requests waiting for a slot of the limiter, first come
// first served. It is Shoal's own rather than failsafe-go's (WithQueueing
// refuses by queue length relative to the limit, with a probability, so a
// closed loop of 128 callers over a limit of 4 would be refused although
// every caller could be served within its deadline): a request here waits
// while its own deadline allows, and the limiter decides at arrival whether
// it joins (Limiter.Acquire).
//
// Slots are failsafe-go's: a waiter is handed a permit acquired with
// TryAcquirePermit when one frees (handOff; Limiter.slot also applies the
// cap on requests in flight), so the limit and its learning stay the
// adaptive limiter's.
type waitQueue struct {
	mu         sync.Mutex
	head, tail *waiter
	n          atomic.Int64
}

// waiter is one request waiting for a slot. ch receives its permit.
type waiter struct {
	ch         chan adaptivelimiter.Permit
	prev, next *waiter
	queued     bool // false once handed a permit or gone
}

// len is the number of waiters; it takes no lock.
func (q *waitQueue) len() int { return int(q.n.Load()) }

func (q *waitQueue) push(w *waiter) {
	w.queued, w.prev, w.next = true, q.tail, nil
	if q.tail != nil {
		q.tail.next = w
	} else {
		q.head = w
	}
	q.tail = w
	q.n.Add(1)
}

func (q *waitQueue) remove(w *waiter) {
	if w.prev != nil {
		w.prev.next = w.next
	} else {
		q.head = w.next
	}
	if w.next != nil {
		w.next.prev = w.prev
	} else {
		q.tail = w.prev
	}
	w.queued, w.prev, w.next = false, nil, nil
	q.n.Add(-1)
}

// waitEnd is why a wait ended without a permit.
type waitEnd int

const (
	waitLate waitEnd = iota // its allowance ran out, or it was shed as overload began
	waitGone                // its caller gave up (ctx ended) first
)

// wait queues the caller until handOff gives it a permit, ctx ends or allow
// passes; ok is false in the last two cases (and when it is shed), and end
// says which. Before waiting it hands off free slots itself, so that a slot
// freed since the caller looked (or by a raised limit) is not left idle.
func (q *waitQueue) wait(ctx context.Context, l *Limiter, allow time.Duration) (p adaptivelimiter.Permit, ok bool, end waitEnd) {
	w := &waiter{ch: make(chan adaptivelimiter.Permit, 1)}
	q.mu.Lock()
	q.push(w)
	q.handOffLocked(l)
	q.mu.Unlock()

	timer := time.NewTimer(allow)
	defer timer.Stop()
	select {
	case p := <-w.ch:
		return p, p != nil, waitLate
	case <-ctx.Done():
		end = waitGone
	case <-timer.C:
		end = waitLate
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if !w.queued {
		p := <-w.ch // handed a permit (or shed) as it gave up: take it
		return p, p != nil, end
	}
	q.remove(w)
	return nil, false, end
}

// shed refuses every waiter but the keep oldest: each gets a nil permit.
func (q *waitQueue) shed(keep int) {
	if q.len() <= keep {
		return
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	for q.len() > keep {
		w := q.tail
		q.remove(w)
		w.ch <- nil
	}
}

// handOff gives free slots to waiters, oldest first. Call it whenever a slot
// may have freed. It reports whether anyone was waiting.
func (q *waitQueue) handOff(l *Limiter) bool {
	if q.n.Load() == 0 {
		return false
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	waiting := q.head != nil
	q.handOffLocked(l)
	return waiting
}

func (q *waitQueue) handOffLocked(l *Limiter) {
	for w := q.head; w != nil; w = q.head {
		p, ok := l.slot()
		if !ok {
			return
		}
		q.remove(w)
		w.ch <- p
	}
}
