package gateway

// The engine's other half: HTTP/1.1 to the services, as the client
// transport's base round tripper (client.Config.Base), so that every call
// still goes through the client's balancing, budgets, failover and
// hedging.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"sync"
	"syscall"
	"time"

	"github.com/shoal-dev/shoal/gateway/internal/h1"
)

const (
	// upstreamReadBuffer holds a response head and a small body.
	upstreamReadBuffer = 4 << 10
	// inlineBody is the largest request body written in the same write as
	// its head; larger ones are written by a goroutine of their own while
	// the response is read, so that a service that answers before reading
	// everything (413, 401) cannot stall the call.
	inlineBody = 16 << 10
	// maxIdlePerHost, upstreamIdleTimeout: as the client's http.Transport.
	maxIdlePerHost      = 256
	upstreamIdleTimeout = 90 * time.Second
	dialTimeout         = 5 * time.Second
)

// Upstream is an http.RoundTripper for plain HTTP/1.1 calls to service
// instances: one goroutine per call (the caller's), a pool of idle
// connections per address, requests written in one write, responses read
// with gateway/internal/h1. What it does not implement — other schemes,
// protocol upgrades, Expect: 100-continue — it passes to Fallback. Give it
// to the client as client.Config.Base. It is safe for concurrent use.
type Upstream struct {
	// Fallback carries the calls Upstream leaves to net/http. Nil means a
	// transport like the client's default, created on first use.
	Fallback http.RoundTripper

	dialer   net.Dialer
	pools    sync.Map // address → *hostPool
	fallback sync.Once
}

// NewUpstream returns an Upstream. It does no I/O.
func NewUpstream() *Upstream {
	return &Upstream{dialer: net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second}}
}

// hostPool is the idle connections to one address, most recently used last.
type hostPool struct {
	mu   sync.Mutex
	idle []*upConn
}

// upConn is a connection to an instance.
type upConn struct {
	nc       net.Conn
	rd       *h1.Reader
	wbuf     []byte
	pool     *hostPool
	lastUsed time.Time
	reused   bool
}

// RoundTrip sends req to req.URL.Host and returns the response head, its
// body streaming from the connection, which goes back to the pool once the
// body is read to its end (or closed with little left).
func (u *Upstream) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Scheme != "http" || req.Header["Upgrade"] != nil || req.Header["Expect"] != nil {
		return u.fallbackRT().RoundTrip(req)
	}
	ctx := req.Context()
	for attempt := 0; ; attempt++ {
		pc, err := u.conn(ctx, req.URL.Host)
		if err != nil {
			closeReqBody(req)
			return nil, err
		}
		resp, err := pc.roundTrip(ctx, req)
		if err == nil {
			return resp, nil
		}
		var se *staleError
		if attempt == 0 && errors.As(err, &se) && pc.reused && replayableOnStale(req, se.written) {
			// The service closed an idle connection as it was reused: the
			// request never reached it. Once more, on a new connection.
			if req.Body != nil && req.Body != http.NoBody {
				body, gerr := req.GetBody()
				if gerr != nil {
					return nil, fmt.Errorf("replaying body: %w", gerr)
				}
				req = req.Clone(ctx)
				req.Body = body
			}
			continue
		}
		closeReqBody(req)
		if se != nil {
			return nil, se.err
		}
		return nil, err
	}
}

// replayableOnStale is net/http's rule for a request that failed on a
// reused connection before any response: resend it if nothing was
// written, or if it is idempotent; either way only if its body can be
// had again.
func replayableOnStale(req *http.Request, written bool) bool {
	if req.Body != nil && req.Body != http.NoBody && req.GetBody == nil {
		return false
	}
	if !written {
		return true
	}
	switch req.Method {
	case "", http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace, http.MethodPut, http.MethodDelete:
		return true
	}
	return req.Header["Idempotency-Key"] != nil
}

// staleError is a failure on a reused connection before any byte of the
// response; written says whether the request was sent.
type staleError struct {
	err     error
	written bool
}

func (e *staleError) Error() string { return e.err.Error() }
func (e *staleError) Unwrap() error { return e.err }

func (u *Upstream) fallbackRT() http.RoundTripper {
	u.fallback.Do(func() {
		if u.Fallback == nil {
			u.Fallback = &http.Transport{
				DialContext:           u.dialer.DialContext,
				MaxIdleConns:          1024,
				MaxIdleConnsPerHost:   maxIdlePerHost,
				IdleConnTimeout:       upstreamIdleTimeout,
				ExpectContinueTimeout: time.Second,
				DisableCompression:    true,
			}
		}
	})
	return u.Fallback
}

// CloseIdleConnections closes the idle connections, and the fallback's.
func (u *Upstream) CloseIdleConnections() {
	u.pools.Range(func(_, v any) bool {
		p := v.(*hostPool)
		p.mu.Lock()
		idle := p.idle
		p.idle = nil
		p.mu.Unlock()
		for _, c := range idle {
			c.nc.Close()
		}
		return true
	})
	if c, ok := u.Fallback.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

// conn returns an idle connection to addr, or a new one.
func (u *Upstream) conn(ctx context.Context, addr string) (*upConn, error) {
	v, ok := u.pools.Load(addr)
	if !ok {
		v, _ = u.pools.LoadOrStore(addr, &hostPool{})
	}
	p := v.(*hostPool)
	now := time.Now()
	p.mu.Lock()
	for len(p.idle) > 0 {
		c := p.idle[len(p.idle)-1]
		p.idle = p.idle[:len(p.idle)-1]
		if now.Sub(c.lastUsed) < upstreamIdleTimeout {
			p.mu.Unlock()
			c.reused = true
			return c, nil
		}
		c.nc.Close()
	}
	p.mu.Unlock()
	nc, err := u.dialer.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err // a *net.OpError "dial": the client knows it was never sent
	}
	return &upConn{nc: nc, rd: h1.NewReader(nc, upstreamReadBuffer), wbuf: make([]byte, 0, 1024), pool: p}, nil
}

// put returns c to its pool, or closes it when the pool is full.
func (c *upConn) put() {
	c.lastUsed = time.Now()
	p := c.pool
	p.mu.Lock()
	if len(p.idle) < maxIdlePerHost {
		p.idle = append(p.idle, c)
		p.mu.Unlock()
		return
	}
	p.mu.Unlock()
	c.nc.Close()
}

// roundTrip makes one exchange on c. On failure c is closed.
func (c *upConn) roundTrip(ctx context.Context, req *http.Request) (*http.Response, error) {
	trace := httptrace.ContextClientTrace(ctx)
	// Cancellation interrupts whatever read or write is under way; the
	// connection is then closed rather than reused.
	var stop func() bool
	if ctx.Done() != nil {
		stop = context.AfterFunc(ctx, func() { c.nc.SetDeadline(aLongTimeAgo) })
	}
	fail := func(err error) (*http.Response, error) {
		if stop != nil && !stop() {
			err = ctxErr(ctx)
		}
		c.nc.Close()
		return nil, err
	}

	hasBody := req.Body != nil && req.Body != http.NoBody
	chunked := hasBody && (req.ContentLength <= 0 || len(req.Trailer) > 0)
	b := c.wbuf[:0]
	b = append(b, req.Method...)
	b = append(b, ' ')
	b = append(b, req.URL.RequestURI()...)
	b = append(b, " HTTP/1.1\r\nHost: "...)
	host := req.Host
	if host == "" {
		host = req.URL.Host
	}
	b = append(b, host...)
	b = append(b, '\r', '\n')
	for k, vs := range req.Header {
		switch k {
		case "Host", "Content-Length", "Transfer-Encoding", "Trailer", "Connection":
			continue // framing and connection management are ours
		}
		b = h1.AppendField(b, k, vs)
	}
	switch {
	case chunked:
		b = append(b, "Transfer-Encoding: chunked\r\n"...)
		if len(req.Trailer) > 0 {
			b = append(b, "Trailer: "...)
			first := true
			for k := range req.Trailer {
				if !first {
					b = append(b, ", "...)
				}
				b, first = append(b, k...), false
			}
			b = append(b, '\r', '\n')
		}
	case hasBody:
		b = appendLength(b, req.ContentLength)
	case methodExpectsBody(req.Method):
		b = append(b, "Content-Length: 0\r\n"...)
	}
	if req.Close {
		b = append(b, "Connection: close\r\n"...)
	}
	b = append(b, '\r', '\n')

	var bodyErr chan error // the body writer's result, when it writes apart
	if hasBody && !chunked && req.ContentLength <= inlineBody {
		// The whole request in one write.
		n := len(b)
		b = append(b, make([]byte, req.ContentLength)...)
		if _, err := io.ReadFull(req.Body, b[n:]); err != nil {
			c.wbuf = b[:0]
			req.Body.Close()
			return fail(fmt.Errorf("reading the request body: %w", err))
		}
		req.Body.Close()
		hasBody = false
	}
	c.wbuf = b[:0]
	if _, err := c.nc.Write(b); err != nil {
		return fail(&staleError{err: err, written: false})
	}
	if trace != nil && trace.WroteHeaders != nil {
		trace.WroteHeaders()
	}
	if hasBody {
		bodyErr = make(chan error, 1)
		go func() { // owned by the call: ends when the body is written or the connection fails
			err := writeBody(c.nc, req, chunked)
			var re *bodyReadError
			if errors.As(err, &re) {
				// The caller's body failed (cut short, over a limit): the
				// request cannot be completed, and the service would wait
				// for the rest. Closing ends the response read at once.
				c.nc.Close()
			}
			bodyErr <- err
		}()
	}

	// The response: informational ones first.
	var resp *http.Response
	var kind h1.Body
	gotByte := false
	for {
		head, err := c.rd.ReadHead(1 << 20)
		if err != nil {
			if bodyErr != nil {
				if berr := <-bodyErr; berr != nil {
					return fail(berr)
				}
			}
			if !gotByte && c.rd.Buffered() == 0 && (errors.Is(err, io.EOF) || isReset(err)) {
				return fail(&staleError{err: fmt.Errorf("the service closed the connection before answering: %w", err), written: true})
			}
			return fail(fmt.Errorf("reading the response: %w", err))
		}
		gotByte = true
		if resp, kind, err = h1.ParseResponse(head, req.Method); err != nil {
			return fail(fmt.Errorf("malformed response: %w", err))
		}
		if resp.StatusCode >= 200 {
			break
		}
		if resp.StatusCode == http.StatusSwitchingProtocols {
			return fail(errors.New("101 Switching Protocols to a request without Upgrade"))
		}
		if trace != nil && trace.Got1xxResponse != nil {
			if err := trace.Got1xxResponse(resp.StatusCode, textproto.MIMEHeader(resp.Header)); err != nil {
				return fail(err)
			}
		}
	}
	resp.Request = req
	reuse := !resp.Close && !req.Close && kind != h1.UntilClose
	ub := &upBody{c: c, stop: stop, ctx: ctx, bodyErr: bodyErr, reuse: reuse}
	switch kind {
	case h1.NoBody:
		resp.Body = http.NoBody
		ub.end(true)
		return resp, nil
	case h1.Length:
		ub.src = &h1.LimitedBody{R: c.rd, N: resp.ContentLength}
	case h1.Chunked:
		ub.src = &h1.ChunkedBody{R: c.rd, Trailer: &resp.Trailer}
	case h1.UntilClose:
		ub.src = c.rd
	}
	resp.Body = ub
	return resp, nil
}

// methodExpectsBody: methods whose requests net/http sends with
// Content-Length: 0 when they have no body.
func methodExpectsBody(m string) bool {
	return m == http.MethodPost || m == http.MethodPut || m == http.MethodPatch
}

// writeBody writes a request body that did not fit in the head's write:
// with its length, or chunked with its trailers.
func writeBody(w io.Writer, req *http.Request, chunked bool) error {
	defer req.Body.Close()
	bp := copyBuffers.Get().(*[]byte)
	defer copyBuffers.Put(bp)
	buf := *bp
	if !chunked {
		n, err := io.CopyBuffer(w, readErrors{io.LimitReader(req.Body, req.ContentLength)}, buf)
		if err == nil && n < req.ContentLength {
			err = &bodyReadError{io.ErrUnexpectedEOF}
		}
		return err
	}
	const room = 32 // chunk header and CRLF around the data
	for {
		n, rerr := req.Body.Read(buf[room : len(buf)-2])
		if n > 0 {
			hdr := h1.AppendChunkHeader(nil, n)
			start := room - len(hdr)
			copy(buf[start:], hdr)
			end := room + n
			buf[end], buf[end+1] = '\r', '\n'
			if _, err := w.Write(buf[start : end+2]); err != nil {
				return err
			}
		}
		if rerr == io.EOF {
			_, err := w.Write(h1.AppendLastChunk(nil, req.Trailer))
			return err
		}
		if rerr != nil {
			return &bodyReadError{rerr}
		}
	}
}

// bodyReadError is a failure to read the request body (as opposed to
// writing it to the service).
type bodyReadError struct{ err error }

func (e *bodyReadError) Error() string { return "reading the request body: " + e.err.Error() }
func (e *bodyReadError) Unwrap() error { return e.err }

// readErrors marks the errors of a body's reads as bodyReadErrors.
type readErrors struct{ r io.Reader }

func (r readErrors) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if err != nil && err != io.EOF {
		err = &bodyReadError{err}
	}
	return n, err
}

// upBody is a response body streaming from its connection.
type upBody struct {
	c       *upConn
	src     io.Reader
	stop    func() bool // of the cancellation hook; nil without one
	ctx     context.Context
	bodyErr chan error
	reuse   bool
	mu      sync.Mutex // Read and Close may race (a caller closing from another goroutine)
	done    bool       // the connection is released
}

func (b *upBody) Read(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.done {
		return 0, http.ErrBodyReadAfterClose
	}
	n, err := b.src.Read(p)
	if err == io.EOF {
		b.end(b.reuse)
	} else if err != nil {
		if b.stop != nil && !b.stop() {
			err = ctxErr(b.ctx)
		}
		b.end(false)
	}
	return n, err
}

// Close releases the connection: to the pool if the body was read to its
// end, or closes it.
func (b *upBody) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.done {
		b.end(false)
	}
	return nil
}

// end releases the connection once: back to the pool if reuse and the
// request's body (if written apart) went out whole and the call was not
// canceled.
func (b *upBody) end(reuse bool) {
	b.done = true
	if b.stop != nil && !b.stop() {
		reuse = false // canceled: the deadline it set poisons the connection
	}
	if b.bodyErr != nil {
		select {
		case err := <-b.bodyErr:
			reuse = reuse && err == nil
		default:
			// The service answered before reading the whole body: the
			// connection cannot carry another request. Closing it ends
			// the writer.
			reuse = false
			b.c.nc.Close()
			<-b.bodyErr
		}
	}
	if reuse {
		b.c.put()
		return
	}
	b.c.nc.Close()
}

// ctxErr is why ctx ended.
func ctxErr(ctx context.Context) error {
	if err := context.Cause(ctx); err != nil {
		return err
	}
	return ctx.Err()
}

func isReset(err error) bool {
	return errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

func closeReqBody(req *http.Request) {
	if req.Body != nil {
		req.Body.Close()
	}
}
