package gateway

// The engine: the gateway's own HTTP/1.1 server, for the common case. It
// serves an http.Handler (the SDK service that wraps the gateway), so that
// everything above the wire — the policy, the forwarding, the SDK's admin
// paths, metrics and deadlines — is the same code whichever server read
// the request.

import (
	"context"
	"errors"
	"log"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Engine serves the plain-TCP connections of a listener with its own
// HTTP/1.1 implementation (gateway/internal/h1: strict parsing, one
// goroutine and one buffer pair per connection, no per-request goroutine)
// and gives net/http the connections and requests it leaves to it:
// HTTP/2 with prior knowledge (h2c), and at a request boundary HTTP/1.0,
// CONNECT, absolute- and asterisk-form targets and protocol upgrades
// (WebSocket), which need net/http's hijacking. TLS listeners are not for
// it: with a certificate, the SDK serves net/http alone (HTTP/2 by ALPN).
//
// It takes the handler and the limits (ReadHeaderTimeout, ReadTimeout,
// IdleTimeout, MaxHeaderBytes, ErrorLog) from the *http.Server it is given,
// so both servers behave alike. Differences from net/http, by design: no
// Content-Type sniffing (a proxy passes on what the service sent), bare LF,
// obs-fold, duplicate Content-Length and Content-Length with
// Transfer-Encoding refused with 400, and Hijack not offered (upgrades go
// to net/http before they reach the handler).
//
// An Engine serves one listener once; shoal.Config.Engine takes it.
type Engine struct {
	srv      *http.Server
	fallback *chanListener

	mu       sync.Mutex
	ln       net.Listener
	conns    map[*conn]struct{}
	shutdown atomic.Bool
	done     chan struct{} // closed when Serve's accept loop has returned
	wg       sync.WaitGroup
}

// NewEngine returns an Engine. It does no I/O.
func NewEngine() *Engine {
	return &Engine{conns: map[*conn]struct{}{}, done: make(chan struct{})}
}

// Serve accepts connections on ln until Shutdown, serving HTTP/1.1 itself
// and handing the rest to srv, which it runs on a listener of its own
// (fed with those connections) and shuts down with itself. It returns
// http.ErrServerClosed after Shutdown, like http.Server.Serve.
func (e *Engine) Serve(ln net.Listener, srv *http.Server) error {
	e.mu.Lock()
	if e.srv != nil {
		e.mu.Unlock()
		return errors.New("gateway: Engine.Serve called twice")
	}
	e.srv, e.ln = srv, ln
	e.fallback = newChanListener(ln.Addr())
	e.mu.Unlock()
	defer close(e.done)
	if e.shutdown.Load() {
		return http.ErrServerClosed
	}
	// net/http serves what the engine hands it until Shutdown closes it.
	e.wg.Go(func() { _ = srv.Serve(e.fallback) })
	var backoff time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			if e.shutdown.Load() {
				return http.ErrServerClosed
			}
			if errors.Is(err, net.ErrClosed) {
				return err
			}
			// Out of file descriptors and the like: wait and retry, as
			// net/http does.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			e.logf("gateway engine: accept error: %v; retrying in %v", err, backoff)
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		cn := e.newConn(c)
		if cn == nil {
			c.Close() // shutting down
			continue
		}
		go cn.serve() // owned by e: ends with the connection, which Shutdown ends
	}
}

// Shutdown stops accepting, closes idle connections, lets requests in
// flight finish (their connections are closed after their response) and
// shuts the net/http server down, all within ctx; then it closes what is
// left. It returns ctx's error if it had to.
func (e *Engine) Shutdown(ctx context.Context) error {
	e.shutdown.Store(true)
	e.mu.Lock()
	ln, srv := e.ln, e.srv
	for c := range e.conns {
		c.closeIfIdle()
	}
	e.mu.Unlock()
	if ln == nil {
		return nil
	}
	ln.Close()
	<-e.done
	srvErr := make(chan error, 1)
	go func() { srvErr <- srv.Shutdown(ctx) }() // ends within ctx
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	var err error
	for err == nil {
		e.mu.Lock()
		n := len(e.conns)
		for c := range e.conns {
			c.closeIfIdle()
		}
		e.mu.Unlock()
		if n == 0 {
			break
		}
		select {
		case <-ctx.Done():
			err = ctx.Err()
		case <-tick.C:
		}
	}
	if err != nil {
		e.closeAll()
		srv.Close()
	}
	if serr := <-srvErr; err == nil {
		err = serr
	}
	e.wg.Wait()
	return err
}

// Close closes the listener and every connection at once.
func (e *Engine) Close() error {
	e.shutdown.Store(true)
	e.mu.Lock()
	ln, srv := e.ln, e.srv
	e.mu.Unlock()
	if ln == nil {
		return nil
	}
	err := ln.Close()
	e.closeAll()
	srv.Close()
	return err
}

func (e *Engine) closeAll() {
	e.mu.Lock()
	defer e.mu.Unlock()
	for c := range e.conns {
		c.nc.Close()
	}
}

// newConn registers a new connection, or returns nil when shutting down.
func (e *Engine) newConn(nc net.Conn) *conn {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.shutdown.Load() {
		return nil
	}
	c := newConn(e, nc)
	e.conns[c] = struct{}{}
	return c
}

func (e *Engine) forget(c *conn) {
	e.mu.Lock()
	delete(e.conns, c)
	e.mu.Unlock()
}

// handOff gives net/http a connection, with the bytes the engine has read
// from it and not served put back in front.
func (e *Engine) handOff(c *conn, unread []byte) {
	e.forget(c)
	nc := net.Conn(c.nc)
	if len(unread) > 0 {
		nc = &prefixConn{Conn: nc, prefix: unread}
	}
	if !e.fallback.deliver(nc) {
		nc.Close() // shutting down
	}
}

func (e *Engine) logf(format string, args ...any) {
	if e.srv != nil && e.srv.ErrorLog != nil {
		e.srv.ErrorLog.Printf(format, args...)
		return
	}
	log.Printf(format, args...)
}

// prefixConn is a connection whose first reads return prefix.
type prefixConn struct {
	net.Conn
	prefix []byte
}

func (p *prefixConn) Read(b []byte) (int, error) {
	if len(p.prefix) > 0 {
		n := copy(b, p.prefix)
		p.prefix = p.prefix[n:]
		return n, nil
	}
	return p.Conn.Read(b)
}

// chanListener is the listener net/http serves: the connections the engine
// hands it.
type chanListener struct {
	addr   net.Addr
	conns  chan net.Conn
	closed chan struct{}
	once   sync.Once
}

func newChanListener(addr net.Addr) *chanListener {
	return &chanListener{addr: addr, conns: make(chan net.Conn), closed: make(chan struct{})}
}

// deliver hands c to Accept; false if the listener is closed.
func (l *chanListener) deliver(c net.Conn) bool {
	select {
	case l.conns <- c:
		return true
	case <-l.closed:
		return false
	}
}

func (l *chanListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

func (l *chanListener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return nil
}

func (l *chanListener) Addr() net.Addr { return l.addr }
