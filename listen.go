package shoal

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"sync"
	"sync/atomic"

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
	return &listener{Listener: ln, fresh: map[net.Conn]struct{}{}, changed: make(chan struct{})}, nil
}

// listener is the socket Run serves on, and the connections accepted from
// it that have not sent a byte yet. http.Server.Shutdown answers nothing to
// a request it reads after it was called: a connection accepted just
// before, whose request was still on its way, would see EOF. So the drain
// (shutdown) first stops accepting, then waits for those requests, then
// calls Shutdown. On a socket shared with a replacement (a rolling restart
// on a fixed port), connections not accepted yet go to the replacement.
type listener struct {
	net.Listener
	closeOnce sync.Once
	closeErr  error

	mu      sync.Mutex
	pending int                   // accepted, not yet seen by track
	fresh   map[net.Conn]struct{} // in http.StateNew
	nfresh  atomic.Int64          // len(fresh), read without mu on the hot path
	changed chan struct{}         // closed and replaced when pending or fresh shrink
}

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
		l.fresh[c] = struct{}{}
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
// already accepted has sent its request or closed, then shuts srv down:
// in-flight requests finish, idle connections close.
func (l *listener) shutdown(ctx context.Context, srv *http.Server) error {
	l.Close()
	for {
		l.mu.Lock()
		waiting, changed := l.pending+len(l.fresh), l.changed
		l.mu.Unlock()
		if waiting == 0 {
			break
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return srv.Shutdown(ctx) // returns at once: ctx is done
		}
	}
	return srv.Shutdown(ctx)
}
