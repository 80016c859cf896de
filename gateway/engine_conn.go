package gateway

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/shoal-dev/shoal/gateway/internal/h1"
)

const (
	// engineReadBuffer is a connection's input buffer: a request head and
	// a small body in one read.
	engineReadBuffer = 4 << 10
	// watchAfter is how long a request runs before its connection is
	// watched for the client going away (which cancels the request). A
	// watch costs a goroutine and a read; most requests end sooner.
	watchAfter = 25 * time.Millisecond
	// maxDrain is how much of a request body the handler left unread is
	// read and dropped to keep the connection, as net/http does.
	maxDrain = 256 << 10
	// defaultIdleTimeout bounds the wait for the next request when the
	// server sets neither IdleTimeout nor ReadTimeout.
	defaultIdleTimeout = 2 * time.Minute
)

// Connection states, for Shutdown: an idle connection is closed at once,
// an active one after its response.
const (
	stateActive int32 = iota
	stateIdle
	stateClosed
)

// conn is one client connection served by the engine.
type conn struct {
	e      *Engine
	nc     net.Conn
	rd     *h1.Reader
	w      response // reused by each request on the connection
	remote string
	ctx    context.Context // the connection's: ServerContextKey, LocalAddrContextKey
	state  atomic.Int32

	// The watch: watchAfter into a request whose body is read, a goroutine
	// reads the connection; an error there means the client left.
	watchTimer   *time.Timer
	watchDone    chan struct{}
	mu           sync.Mutex // guards the fields below
	inRequest    bool
	bodyDone     bool
	watchStarted bool // once per request; stopWatch waits for its end
	watching     bool
	stopping     bool
	cancel       context.CancelCauseFunc
}

// errClientGone cancels a request whose client closed its connection.
var errClientGone = errors.New("gateway: the client closed the connection")

func newConn(e *Engine, nc net.Conn) *conn {
	c := &conn{e: e, nc: nc, rd: h1.NewReader(nc, engineReadBuffer), remote: nc.RemoteAddr().String(),
		watchDone: make(chan struct{}, 1)}
	c.ctx = context.WithValue(context.WithValue(context.Background(), http.ServerContextKey, e.srv),
		http.LocalAddrContextKey, nc.LocalAddr())
	c.w.c = c
	c.watchTimer = time.AfterFunc(time.Hour, c.startWatch)
	c.watchTimer.Stop()
	c.state.Store(stateIdle)
	return c
}

// closeIfIdle closes the connection if no request is being read or served
// on it.
func (c *conn) closeIfIdle() {
	if c.state.CompareAndSwap(stateIdle, stateClosed) {
		c.nc.Close()
	}
}

// serve serves requests until the connection ends or is handed to
// net/http.
func (c *conn) serve() {
	handedOff := false
	defer func() {
		c.watchTimer.Stop()
		if !handedOff {
			c.nc.Close()
			c.e.forget(c)
		}
	}()
	srv := c.e.srv
	maxHead := srv.MaxHeaderBytes
	if maxHead <= 0 {
		maxHead = http.DefaultMaxHeaderBytes
	}
	maxHead += 4 << 10 // net/http's allowance for the request line and its own slack
	first := true
	for {
		if c.rd.Buffered() == 0 {
			if c.e.shutdown.Load() {
				return
			}
			wait := srv.IdleTimeout
			if wait <= 0 {
				wait = srv.ReadTimeout
			}
			if first && srv.ReadHeaderTimeout > 0 {
				wait = srv.ReadHeaderTimeout // from the accept, as net/http
			}
			if wait <= 0 {
				wait = defaultIdleTimeout
			}
			c.nc.SetReadDeadline(time.Now().Add(wait))
			if err := c.rd.Fill(); err != nil {
				return // closed, timed out or reset: nothing to answer
			}
		}
		if !c.state.CompareAndSwap(stateIdle, stateActive) {
			return // Shutdown closed it
		}
		if first && bytes.HasPrefix(c.rd.Peek(), h2Preface[:min(len(h2Preface), c.rd.Buffered())]) {
			// HTTP/2 with prior knowledge (h2c), or the start of it:
			// net/http's, whole.
			handedOff = true
			c.nc.SetReadDeadline(time.Time{})
			c.e.handOff(c, append([]byte(nil), c.rd.Peek()...))
			return
		}
		first = false
		t0 := time.Now()
		if srv.ReadHeaderTimeout > 0 && !bytes.Contains(c.rd.Peek(), crlfcrlf) {
			c.nc.SetReadDeadline(t0.Add(srv.ReadHeaderTimeout)) // slowloris: the head has a deadline
		}
		head, err := c.rd.ReadHead(maxHead)
		if err != nil {
			c.refuse(err)
			return
		}
		req, err := h1.ParseRequest(head)
		if err != nil {
			c.refuse(err)
			return
		}
		if netHTTPServes(req) {
			handedOff = true
			unread := append([]byte(head), c.rd.Peek()...)
			c.nc.SetReadDeadline(time.Time{})
			c.e.handOff(c, unread)
			return
		}
		if !c.serveRequest(req, t0) {
			return
		}
		c.state.Store(stateIdle)
	}
}

var (
	crlfcrlf  = []byte("\r\n\r\n")
	h2Preface = []byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
)

// netHTTPServes reports whether req (and the rest of its connection) is
// left to net/http: the rare forms the engine does not implement.
func netHTTPServes(r *http.Request) bool {
	return r.ProtoMinor == 0 || r.Method == http.MethodConnect || r.RequestURI[0] != '/' ||
		r.Header["Upgrade"] != nil
}

// refuse answers a request that could not be read, if it was a request
// at all, and the connection is then closed.
func (c *conn) refuse(err error) {
	var code int
	switch {
	case errors.Is(err, h1.ErrHeadTooLarge):
		code = http.StatusRequestHeaderFieldsTooLarge
	case errors.Is(err, h1.ErrUnsupportedTE):
		code = http.StatusNotImplemented
	case errors.Is(err, h1.ErrMalformed), errors.Is(err, h1.ErrBadContentLength), errors.Is(err, h1.ErrSmuggling),
		errors.Is(err, h1.ErrBadChunk):
		code = http.StatusBadRequest
	default:
		return // EOF, timeout, reset: the client is gone or too slow
	}
	msg := http.StatusText(code)
	c.nc.SetWriteDeadline(time.Now().Add(time.Second))
	fmt.Fprintf(c.nc, "HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s",
		code, msg, len(msg), msg)
}

// serveRequest runs the handler for req and finishes its response. It
// reports whether the connection may carry another request.
func (c *conn) serveRequest(req *http.Request, t0 time.Time) (keep bool) {
	req.RemoteAddr = c.remote
	ctx, cancel := context.WithCancelCause(c.ctx)
	defer cancel(nil)
	body := &c.w.body
	body.reset(c, req)
	switch {
	case req.ContentLength > 0:
		body.src = &h1.LimitedBody{R: c.rd, N: req.ContentLength}
		req.Body = body
	case req.ContentLength < 0:
		body.src = &h1.ChunkedBody{R: c.rd, Trailer: &req.Trailer}
		req.Body = body
	default:
		body.done = true
		req.Body = http.NoBody
	}
	if req.Body != http.NoBody && c.e.srv.ReadTimeout > 0 {
		c.nc.SetReadDeadline(t0.Add(c.e.srv.ReadTimeout))
	}
	req = req.WithContext(ctx)
	w := &c.w
	w.reset(req)

	c.mu.Lock()
	c.inRequest, c.bodyDone, c.cancel = true, body.done, cancel
	c.mu.Unlock()
	c.watchTimer.Reset(watchAfter)
	panicked := c.runHandler(w, req)
	c.stopWatch()
	if panicked {
		return false
	}
	if err := w.finish(); err != nil {
		return false
	}
	if w.closeAfter || req.Close || c.e.shutdown.Load() {
		return false
	}
	return body.finish()
}

// runHandler calls the handler, recovering a panic as net/http does: the
// connection is closed, and the panic logged unless it is
// http.ErrAbortHandler.
func (c *conn) runHandler(w *response, req *http.Request) (panicked bool) {
	defer func() {
		if p := recover(); p != nil {
			panicked = true
			if p != http.ErrAbortHandler {
				buf := make([]byte, 64<<10)
				buf = buf[:runtime.Stack(buf, false)]
				c.e.logf("gateway engine: panic serving %s: %v\n%s", c.remote, p, buf)
			}
		}
	}()
	c.e.srv.Handler.ServeHTTP(w, req)
	return false
}

// startWatch runs on the watch timer's goroutine: once the request's body
// is read, it reads the connection until the request ends (its read is
// then interrupted) or the client goes (the request is canceled).
func (c *conn) startWatch() {
	c.mu.Lock()
	if !c.inRequest || c.watchStarted {
		c.mu.Unlock()
		return
	}
	if !c.bodyDone || c.rd.Buffered() > 0 {
		// The handler reads the body (and sees a client that goes), or
		// the client has sent its next request already: nothing to
		// watch now.
		if !c.bodyDone {
			c.watchTimer.Reset(watchAfter)
		}
		c.mu.Unlock()
		return
	}
	c.watchStarted, c.watching = true, true
	// The deadline in force was the wait for this request's head: a
	// request may outlast it.
	c.nc.SetReadDeadline(time.Time{})
	c.mu.Unlock()
	err := c.rd.Fill()
	c.mu.Lock()
	if err != nil && !c.stopping {
		c.cancel(errClientGone)
	}
	c.watching = false
	c.mu.Unlock()
	c.watchDone <- struct{}{}
}

// stopWatch ends the request's watch, interrupting its read, and leaves
// the reader ready for the next request.
func (c *conn) stopWatch() {
	c.watchTimer.Stop()
	c.mu.Lock()
	c.inRequest = false
	started := c.watchStarted
	if c.watching {
		c.stopping = true
		c.nc.SetReadDeadline(aLongTimeAgo)
	}
	c.mu.Unlock()
	if !started {
		return
	}
	<-c.watchDone // the watch has ended: its fields are ours again
	c.watchStarted, c.stopping = false, false
	c.rd.ClearError() // the deadline's; a client that left is seen again by the next read
}

// aLongTimeAgo is a read deadline that interrupts a read at once.
var aLongTimeAgo = time.Unix(1, 0)

// reqBody is a request's body as the handler reads it: 100-continue sent
// on the first read, errors sticky, and what is left drained afterwards to
// keep the connection.
type reqBody struct {
	c      *conn
	src    io.Reader // *h1.LimitedBody or *h1.ChunkedBody
	expect bool      // Expect: 100-continue not answered yet
	mu     sync.Mutex
	done   bool // read to its end
	closed bool
	err    error
}

func (b *reqBody) reset(c *conn, req *http.Request) {
	*b = reqBody{c: c}
	if ex := req.Header["Expect"]; len(ex) == 1 && strings.EqualFold(ex[0], "100-continue") {
		b.expect = true
	}
}

func (b *reqBody) Read(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case b.closed:
		return 0, http.ErrBodyReadAfterClose
	case b.err != nil:
		return 0, b.err
	case b.done:
		return 0, io.EOF
	}
	if b.expect {
		b.expect = false
		if !b.c.w.sendContinue() {
			b.err = errors.New("gateway: cannot send 100 Continue")
			return 0, b.err
		}
	}
	n, err := b.src.Read(p)
	if err == io.EOF {
		b.done = true
		b.c.mu.Lock()
		b.c.bodyDone = true
		b.c.mu.Unlock()
	} else if err != nil {
		b.err = err
	}
	return n, err
}

func (b *reqBody) Close() error {
	b.mu.Lock()
	b.closed = true
	b.mu.Unlock()
	return nil
}

// finish reads what the handler left of the body, up to maxDrain, and
// reports whether the connection can carry the next request.
func (b *reqBody) finish() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case b.done:
		return true
	case b.err != nil, b.expect, b.src == nil:
		// Broken, or never asked for (the client may or may not send it).
		return b.src == nil
	}
	n, err := io.CopyN(io.Discard, b.src, maxDrain+1)
	return err == io.EOF && n <= maxDrain
}
