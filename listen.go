package shoal

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/shoal-dev/shoal/handoff"
)

// listen returns the listener Run serves on: the socket the process was
// given (handoff.EnvFD, set by `shoal up` for every instance), else a new
// one on Config.Addr. A given socket wins over Addr: the supervisor opened
// it at the address it announces for this instance, before starting it.
func (s *Service) listen() (*listener, error) {
	ln, err := handoff.Listener()
	if err != nil {
		return nil, fmt.Errorf("shoal: %w", err)
	}
	if ln == nil {
		if ln, err = net.Listen("tcp", s.cfg.Addr); err != nil {
			return nil, fmt.Errorf("shoal: listen on %s: %w", s.cfg.Addr, err)
		}
	}
	return &listener{Listener: ln, fresh: map[net.Conn]time.Time{}, changed: make(chan struct{})}, nil
}

// listener is the socket Run serves on, and the connections accepted from
// it that have not sent a byte yet. http.Server.Shutdown answers nothing to
// a request it reads after it was called: a connection accepted just
// before, whose request was still on its way, would see EOF. So the drain
// (shutdown) first stops accepting, then waits for those requests, then
// calls Shutdown. On a socket shared with a replacement (a rolling restart
// on a fixed port), connections not accepted yet go to the replacement.
//
// A connection still silent freshGrace into the drain is not carrying a
// request: it is a spare (an HTTP client dialed it, then sent its request
// on another one that freed up; a browser's preconnect). The drain closes
// it rather than wait the 5 s Shutdown gives such connections: its client
// finds it closed with nothing sent, which HTTP clients retry on a new
// connection, and callers were told of the drain before.
type listener struct {
	net.Listener
	closeOnce sync.Once
	closeErr  error

	mu      sync.Mutex
	pending int                    // accepted, not yet seen by track
	fresh   map[net.Conn]time.Time // in http.StateNew, since
	nfresh  atomic.Int64           // len(fresh), read without mu on the hot path
	changed chan struct{}          // closed and replaced when pending or fresh shrink
}

// freshGrace is how long into the drain a connection may stay silent before
// the drain takes it for a spare (see listener).
const freshGrace = time.Second

// Accept counts the connection as pending until the server reports it new
// (track), so that none is missed between the two.
func (l *listener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.mu.Lock()
		l.pending++
		l.mu.Unlock()
	}
	return c, err
}

// Close closes the socket once; Shutdown closes it again after shutdown did.
func (l *listener) Close() error {
	l.closeOnce.Do(func() { l.closeErr = l.Listener.Close() })
	return l.closeErr
}

// track is the server's ConnState hook. Every accepted connection is
// reported new (with the server's own wrapper, a TLS one for HTTPS), then
// leaves StateNew once: when the first bytes of a request are read, or when
// it closes unread.
func (l *listener) track(c net.Conn, st http.ConnState) {
	if st != http.StateNew && l.nfresh.Load() == 0 {
		return // the common case: no connection waits for its first request
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if st == http.StateNew {
		l.pending--
		l.fresh[c] = time.Now()
		l.nfresh.Add(1)
		return
	}
	if _, ok := l.fresh[c]; ok {
		delete(l.fresh, c)
		l.nfresh.Add(-1)
		close(l.changed)
		l.changed = make(chan struct{})
	}
}

// shutdown stops accepting, waits (within ctx) until every connection
// already accepted has sent its request, closed, or proved a spare (closed
// then), and shuts srv down: in-flight requests finish, idle connections
// close.
func (l *listener) shutdown(ctx context.Context, srv *http.Server) error {
	l.Close()
	begin := time.Now()
	for {
		waiting, next, changed := l.closeSpares(begin, time.Now())
		if waiting == 0 {
			break
		}
		t := time.NewTimer(next)
		select {
		case <-changed:
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return srv.Shutdown(ctx) // returns at once: ctx is done
		}
		t.Stop()
	}
	return srv.Shutdown(ctx)
}

// closeSpares closes the fresh connections silent for freshGrace at now,
// counted from the drain's begin at the earliest, and returns how many
// connections are still awaited, how long until the next of them turns
// spare, and the channel closed on the next change.
func (l *listener) closeSpares(begin, now time.Time) (waiting int, next time.Duration, changed <-chan struct{}) {
	var spares []net.Conn
	l.mu.Lock()
	next = freshGrace
	for c, since := range l.fresh {
		if since.Before(begin) {
			since = begin
		}
		if left := freshGrace - now.Sub(since); left > 0 {
			next = min(next, left)
		} else {
			spares = append(spares, c)
		}
	}
	waiting, changed = l.pending+len(l.fresh), l.changed
	l.mu.Unlock()
	for _, c := range spares {
		c.Close() // the server then reports it closed (track), which signals changed
	}
	return waiting, next, changed
}
