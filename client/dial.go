package client

import (
	"context"
	"net"
	"sync"
	"time"
)

// maxHandshakes bounds the TLS handshakes in flight to one instance.
//
// http.Transport dials a connection for every request that finds none
// idle, and hands a waiting request whichever connection is ready first:
// an idle one that frees up, or its own dial's (a dial that is not used
// goes to the pool). Over plain TCP a dial costs the kernel's handshake,
// so a burst of requests to a cold pool (a new instance, a caller just
// started) opens as many connections as it has requests, harmlessly. A
// mutual-TLS handshake costs each side about a millisecond of CPU (key
// exchange, a signature, a chain verification; a resumed one about 0.6
// ms): hundreds at once take the CPU the first requests need, their
// deadlines pass, their connections are closed and dialed again. Bounded,
// the first connections are ready within a few handshakes' time and the
// requests waiting share them; more are opened, a few at a time, as long
// as requests keep waiting.
const maxHandshakes = 4

// dialTimeout bounds a dial, the wait for a slot and the TLS handshake
// included. http.Transport gives a DialTLSContext no deadline of its own
// (its TLSHandshakeTimeout is for the TLS it does itself): without one, a
// handshake with a frozen process, whose kernel accepted the connection,
// would wait as long as the process is frozen.
const dialTimeout = 5 * time.Second

// dialLimiter makes at most n dials at once to each address, others
// waiting for a slot, each within dialTimeout. Entries exist only while
// dials to the address are made or wait. Safe for concurrent use.
type dialLimiter struct {
	n    int
	dial func(ctx context.Context, network, addr string) (net.Conn, error)

	mu    sync.Mutex
	slots map[string]*dialSlots
}

type dialSlots struct {
	sem   chan struct{}
	users int // dials holding or waiting for a slot; guarded by dialLimiter.mu
}

func limitDials(n int, dial func(ctx context.Context, network, addr string) (net.Conn, error)) *dialLimiter {
	return &dialLimiter{n: n, dial: dial, slots: map[string]*dialSlots{}}
}

// DialContext dials addr once a slot is free, or returns ctx's error.
func (l *dialLimiter) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel() // a connection outlives its dial's context
	l.mu.Lock()
	s := l.slots[addr]
	if s == nil {
		s = &dialSlots{sem: make(chan struct{}, l.n)}
		l.slots[addr] = s
	}
	s.users++
	l.mu.Unlock()
	defer func() {
		l.mu.Lock()
		if s.users--; s.users == 0 {
			delete(l.slots, addr)
		}
		l.mu.Unlock()
	}()
	select {
	case s.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, &net.OpError{Op: "dial", Net: network, Err: ctx.Err()}
	}
	defer func() { <-s.sem }()
	return l.dial(ctx, network, addr)
}
