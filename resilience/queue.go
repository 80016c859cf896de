package resilience

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/failsafe-go/failsafe-go/adaptivelimiter"
)

// waitQueue holds the requests waiting for a slot of the limiter. It is
// Shoal's own rather than failsafe-go's (whose semaphore queues first come,
// first served with a per-waiter timeout) because it needs two orders: first
// come, first served normally, and newcomers first while the queue is
// overloaded (see overload.go), so that the backlog built before overload
// was detected does not make every request accepted after it slow.
//
// Slots are failsafe-go's: a waiter is handed a permit acquired with
// TryAcquirePermit when one frees (handOff; Limiter.slot also applies the
// overload cap), so the limit and its learning stay the adaptive limiter's.
type waitQueue struct {
	mu      sync.Mutex
	backlog waitList // first come, first served
	fresh   waitList // arrived while overloaded: served before the backlog
	n       atomic.Int64
}

// waiter is one request waiting for a slot. ch receives its permit.
type waiter struct {
	ch         chan adaptivelimiter.Permit
	prev, next *waiter
	list       *waitList // nil once handed a permit or gone
}

// waitList is a doubly linked list of waiters, oldest first.
type waitList struct {
	head, tail *waiter
	n          int
}

func (l *waitList) push(w *waiter) {
	l.n++
	w.list, w.prev, w.next = l, l.tail, nil
	if l.tail != nil {
		l.tail.next = w
	} else {
		l.head = w
	}
	l.tail = w
}

func (l *waitList) remove(w *waiter) {
	l.n--
	if w.prev != nil {
		w.prev.next = w.next
	} else {
		l.head = w.next
	}
	if w.next != nil {
		w.next.prev = w.prev
	} else {
		l.tail = w.prev
	}
	w.list, w.prev, w.next = nil, nil, nil
}

// len is the number of waiters; it takes no lock.
func (q *waitQueue) len() int { return int(q.n.Load()) }

// ahead is how many waiters a newcomer would be behind: all of them, or only
// the fresh ones while overloaded.
func (q *waitQueue) ahead(overloaded bool) int {
	q.mu.Lock()
	defer q.mu.Unlock()
	if overloaded {
		return q.fresh.n
	}
	return q.fresh.n + q.backlog.n
}

// wait queues the caller until handOff gives it a permit, ctx ends or
// allow passes; ok is false in the last two cases. Before waiting it tries
// to hand off free slots itself, so that a slot freed by a raised limit is
// not left idle.
func (q *waitQueue) wait(ctx context.Context, l *Limiter, allow time.Duration, overloaded bool) (adaptivelimiter.Permit, bool) {
	w := &waiter{ch: make(chan adaptivelimiter.Permit, 1)}
	q.mu.Lock()
	if overloaded {
		q.fresh.push(w)
	} else {
		q.backlog.push(w)
	}
	q.n.Add(1)
	q.handOffLocked(l)
	q.mu.Unlock()

	timer := time.NewTimer(allow)
	defer timer.Stop()
	select {
	case p := <-w.ch:
		return p, p != nil
	case <-ctx.Done():
	case <-timer.C:
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if w.list == nil {
		p := <-w.ch // handed a permit (or shed) as it gave up
		return p, p != nil
	}
	w.list.remove(w)
	q.n.Add(-1)
	return nil, false
}

// shed refuses every waiter of the backlog (they get a nil permit).
func (q *waitQueue) shed() {
	if q.n.Load() == 0 {
		return
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	for w := q.backlog.head; w != nil; w = q.backlog.head {
		q.backlog.remove(w)
		q.n.Add(-1)
		w.ch <- nil
	}
}

// handOff gives free slots to waiters: fresh ones first, then the backlog,
// oldest first in each. Call it whenever a slot may have freed.
func (q *waitQueue) handOff(l *Limiter) {
	if q.n.Load() == 0 {
		return
	}
	q.mu.Lock()
	q.handOffLocked(l)
	q.mu.Unlock()
}

func (q *waitQueue) handOffLocked(l *Limiter) {
	for {
		list := &q.fresh
		if list.head == nil {
			list = &q.backlog
		}
		w := list.head
		if w == nil {
			return
		}
		p, ok := l.slot()
		if !ok {
			return
		}
		list.remove(w)
		q.n.Add(-1)
		w.ch <- p
	}
}
