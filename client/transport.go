package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/shoal-dev/shoal/balance"
	"github.com/shoal-dev/shoal/chaos"
	"github.com/shoal-dev/shoal/discovery"
	"github.com/shoal-dev/shoal/identity"
)

// Resolver lists the instances of a service. Instances is called on every
// request, from many goroutines at once: it must not block, and callers do
// not modify the slice it returns. *discovery.Catalog is one.
type Resolver interface {
	Instances(service string) []discovery.Instance
}

// Transport is an http.RoundTripper for http://<service>/path URLs. It is
// safe for concurrent use; create one per process and share it.
type Transport struct {
	resolver Resolver
	cfg      Config
	base     http.RoundTripper // Config.Base, or an *http.Transport
	services sync.Map          // service name → *dependency
	tracer   trace.Tracer      // nil: no spans (see trace.go)
	sampler  sdktrace.Sampler  // the tracer's, if known (see TracerProvider)
	// lag is the process's recent scheduling lag (processLag.Lag; a fake
	// in tests), read before a hedge is sent: see saturation.go.
	lag func(now time.Time) time.Duration
}

// New returns a Transport resolving names through r. Zero fields of cfg take
// DefaultConfig's values. It does no I/O.
func New(r Resolver, cfg Config) (*Transport, error) {
	if r == nil {
		return nil, errors.New("client: nil Resolver")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	var base http.RoundTripper = cfg.Base
	if base == nil {
		base = newBaseTransport()
	}
	t := &Transport{resolver: r, cfg: cfg.withDefaults(), base: base, lag: processLag.Lag}
	if cfg.TracerProvider != nil {
		t.tracer = cfg.TracerProvider.Tracer(tracerScope)
		if p, ok := cfg.TracerProvider.(*TracerProvider); ok {
			t.sampler = p.sampler
		}
	}
	return t, nil
}

func newBaseTransport() *http.Transport {
	return &http.Transport{
		DialContext: (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		// Many small calls to few instances: keep plenty of warm connections.
		MaxIdleConns:          1024,
		MaxIdleConnsPerHost:   256,
		IdleConnTimeout:       90 * time.Second,
		ExpectContinueTimeout: time.Second,
		// Loopback and LAN calls gain nothing from gzip but CPU.
		DisableCompression: true,
	}
}

// Client returns an *http.Client using t. It sets no Timeout of its own:
// the request context, or Config.Timeout, bounds each call.
func (t *Transport) Client() *http.Client { return &http.Client{Transport: t} }

// CloseIdleConnections closes idle connections to every instance.
func (t *Transport) CloseIdleConnections() {
	closeIdle(t.base)
	t.services.Range(func(_, v any) bool {
		if d := v.(*dependency); d.rt != t.base {
			closeIdle(d.rt)
		}
		return true
	})
}

func closeIdle(rt http.RoundTripper) {
	if c, ok := rt.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

// call is the state of one RoundTrip. It is allocated once per call and also
// serves as the response body wrapper, so that closing the body releases the
// call's contexts and its place in the bulkhead.
type call struct {
	body          io.ReadCloser
	cancelAttempt context.CancelCauseFunc
	cancelCall    context.CancelCauseFunc
	timeout       *time.Timer   // Config.Timeout, when the caller brought no deadline
	dep           *dependency   // nil once released
	stream        bool          // the request asks for a stream: see wantsStream
	failOver      bool          // an attempt that fails may be retried elsewhere
	maxAttempts   int           // the service's, or the caller's CallPolicy
	perTry        time.Duration // explicit per-try timeout; 0: none

	url    url.URL         // first attempt's URL, with the instance's address
	hdrVal timeoutSlot     // first attempt's TimeoutHeader value
	tp     traceparentSlot // first attempt's
	tried  [maxAttempts]string
	n      int // attempts made: tried[:n]
	failed []Attempt
	hedge  hedge
	watch  watch // the first attempt's
	trace  callTrace
	fault  *chaos.Set // the request-scoped faults the call carries; nil mostly
}

// RoundTrip sends req to one instance of the service named by req.URL's host,
// failing over to others as described in the package doc.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	service := req.URL.Hostname()
	instances := t.resolver.Instances(service)
	ctx := req.Context()
	if len(instances) == 0 {
		return t.refuse(ctx, req, service, ErrNoInstances)
	}
	if ctx.Err() != nil {
		return t.refuse(ctx, req, service, context.Cause(ctx))
	}
	dep := t.dependency(service)
	if err := dep.admit(); err != nil {
		return t.refuse(ctx, req, service, err)
	}
	c := &call{dep: dep, stream: wantsStream(req), fault: chaos.FromContext(ctx)}
	ctx = t.startSpan(ctx, c, req)
	cfg := &dep.cfg
	var hedgeOK bool
	c.maxAttempts, c.perTry, hedgeOK = callPolicy(ctx, cfg.MaxAttempts, cfg.PerTryTimeout)
	deadline, ok := ctx.Deadline()
	if !ok {
		// Config.Timeout bounds the call: a timer, not a context deadline,
		// so that wrap can stop it once a stream's headers are in.
		deadline = time.Now().Add(cfg.Timeout)
		ctx, c.cancelCall = context.WithCancelCause(ctx)
		c.timeout = time.AfterFunc(cfg.Timeout, c.expire)
	}
	h, err := dep.bal.Pick(instances, nil)
	if err != nil {
		cerr := &Error{Service: service, Method: req.Method, URL: req.URL.String(), Err: fmt.Errorf("%w: %w", ErrNoInstances, err)}
		c.trace.err = cerr
		c.release()
		closeBody(req)
		return nil, cerr
	}
	dep.budget.Request()
	// An upgrade is never retried or hedged once sent: the instance may
	// have switched protocols and begun a session.
	retryOK := idempotent(req) && !upgrade(req)
	replay := replayable(req)
	c.failOver = retryOK && replay && len(instances) > 1
	var hedgeAfter time.Duration
	if hedgeOK && retryOK && replay && c.maxAttempts > 1 && len(instances) > 1 {
		if hedgeAfter = dep.hedger.Delay(time.Now()); hedgeAfter > 0 {
			dep.hedger.Call()
		}
	}
	for {
		var resp *http.Response
		var f failure
		var a Attempt
		if c.n == 0 && hedgeAfter > 0 && hedgeAfter < time.Until(deadline) {
			resp, f, a = t.hedged(ctx, c, req, h, deadline, instances, hedgeAfter)
		} else {
			resp, f, a = t.attempt(ctx, c, dep, req, h, deadline, !retryOK, nil)
			t.observe(dep, a)
		}
		if f == noFailure {
			if resp.StatusCode >= 500 {
				dep.failures.Add(1) // final: a 500 is not tried elsewhere
			}
			dep.throttle.Record(resp.StatusCode != http.StatusTooManyRequests)
			return c.wrap(resp), nil
		}
		aerr := a.Err
		c.failed = append(c.failed, a)
		c.failedAttempt(f, &a, resp)

		// Another attempt only if the rule, the attempt count, the body, an
		// untried instance and the budget all allow it, in that order.
		var stop error
		var next *balance.Host
		switch {
		case f == callDone || !retryable(f, retryOK) || !replay:
			stop = aerr
		case c.n >= c.maxAttempts:
			stop = aerr
		case time.Until(deadline) <= 0 || ctx.Err() != nil:
			stop = context.DeadlineExceeded
			if ctx.Err() != nil {
				stop = context.Cause(ctx)
			}
		default:
			next, err = dep.bal.Pick(instances, c.tried[:c.n])
			if err != nil {
				next, stop = nil, aerr
			} else if !dep.budget.TryRetry() {
				next.Unpick()
				next, stop = nil, ErrBudgetExhausted
				dep.budgetOut.Add(1)
			}
		}
		if next != nil && req.GetBody != nil {
			body, err := req.GetBody()
			if err != nil {
				next.Unpick()
				next, stop = nil, fmt.Errorf("replaying body: %w", err)
			} else {
				req = req.Clone(req.Context())
				req.Body = body
			}
		}
		if next == nil {
			if f != callDone || errors.Is(stop, context.DeadlineExceeded) {
				// A call its caller canceled did not fail: the caller
				// stopped waiting (its own caller left, or it needs the
				// answer no more), with whatever cause (the gateway's
				// engine and errgroup give their own). Its deadline
				// passing is a failure, as outcomeOf says.
				dep.failures.Add(1)
			}
			if f != callDone {
				// The throttle counts calls, not attempts: a call that
				// failed over and succeeded was accepted.
				dep.throttle.Record(false)
			}
			if resp != nil {
				// The instance answered; the caller sees its answer as is.
				return c.wrap(resp), nil
			}
			cerr := &Error{Service: service, Method: req.Method, URL: req.URL.String(), Attempts: c.failed, Err: stop}
			c.trace.err = cerr
			c.release()
			closeBody(req)
			return nil, cerr
		}
		if resp != nil {
			drain(resp.Body)
		}
		if c.cancelAttempt != nil {
			c.cancelAttempt(nil)
		}
		dep.retries.Add(1)
		h = next
	}
}

// refuse ends a call that is not made: no instance known, the caller gone,
// throttled, bulkhead full.
func (t *Transport) refuse(ctx context.Context, req *http.Request, service string, err error) (*http.Response, error) {
	closeBody(req)
	cerr := &Error{Service: service, Method: req.Method, URL: req.URL.String(), Err: err}
	t.failedSpan(ctx, service, req, cerr)
	return nil, cerr
}

// observe tells the Observer, if any, of an attempt.
func (t *Transport) observe(dep *dependency, a Attempt) {
	if t.cfg.Observer != nil {
		t.cfg.Observer.ObserveAttempt(dep.name, a)
	}
}

// attempt makes the next try of the call on h. On failure it returns the
// kind of failure, with the error in the Attempt; a response comes back with
// a failure only for 502/503/504, its attempt context still live for the
// body. The attempt's cancel func, if it has a context of its own, is left
// in c.cancelAttempt, except for a hedge (hg != nil), which the hedge's own
// context bounds.
//
// The attempt may use the whole of the call's deadline: only an explicit
// per-try timeout (c.perTry) or a silent instance (see watch) ends it
// sooner, and both bound only the wait for response headers.
//
// With watchWrite, the attempt notes whether the request headers were
// written, so that a timeout or broken connection before that counts as
// never sent: the retry rule for non-idempotent requests depends on it, and
// only they pay for the trace.
func (t *Transport) attempt(ctx context.Context, c *call, dep *dependency, req *http.Request, h *balance.Host, deadline time.Time, watchWrite bool, hg *hedgeAttempt) (*http.Response, failure, Attempt) {
	inst := h.Instance()
	var n int
	var traced bool
	reason := ""
	if hg != nil {
		// On the hedge's goroutine: c's mutable fields are the call's;
		// c.hedge.traced was set before the hedge was armed.
		n, traced, reason = hg.n, c.hedge.traced, reasonHedge
	} else {
		n, traced = c.n, c.trace.span != nil
		c.tried[n] = inst.ID
		c.n++
	}
	start := h.Start() // one clock read serves the deadline header and the latency
	a := Attempt{Instance: inst.ID, Addr: inst.Addr, Start: start}
	wait := deadline.Sub(start) // what the caller waits for this attempt
	if c.perTry > 0 && c.perTry < wait {
		wait = c.perTry
	}
	check := c.failOver && n+1 < c.maxAttempts
	// An attempt needs a context of its own only if something may end it
	// before its answer: the hedge race, or its watch (a per-try timeout,
	// the silent-instance check, the first attempt's hedge delay).
	// Otherwise it runs in the call's context, 2 allocations fewer: a call
	// that cannot fail over (one instance, or a request that may not be
	// sent twice).
	actx, cancel := ctx, context.CancelCauseFunc(nil)
	if hg != nil || c.perTry > 0 || check || (n == 0 && c.hedge.delay > 0) {
		actx, cancel = context.WithCancelCause(ctx)
	}
	w := &c.watch
	if hg == nil && n == 0 {
		c.cancelAttempt = cancel
		c.hedge.arm(w, cancel, inst.ID, start)
	} else {
		// A hedge runs beside the first attempt, and a retry may start
		// while an ended attempt's watch is still checking its instance.
		w = new(watch)
		if hg == nil {
			c.cancelAttempt = cancel
		} else {
			hg.cancel = cancel
		}
	}
	scheme := req.URL.Scheme
	if dep.scheme != "" {
		scheme = dep.scheme
	}
	w.rt, w.host, w.scheme, w.cancel = dep.rt, h, scheme, cancel
	w.start(start, c.perTry, check)
	var wrote *atomic.Bool
	if watchWrite {
		// Per attempt: an abandoned attempt's writer may still report late.
		wrote = new(atomic.Bool)
		actx = httptrace.WithClientTrace(actx, &httptrace.ClientTrace{WroteHeaders: func() { wrote.Store(true) }})
	}
	actx, span := t.startAttempt(actx, dep, req.Method, n, traced)
	out := c.outgoing(actx, req, inst.Addr, scheme, wait, n)

	resp, err := c.send(dep.rt, out, dep.name)
	ended := w.end() // why the watch ended the attempt, if it did
	var f failure
	outcome := balance.Success
	switch {
	case ctx.Err() != nil:
		if err == nil {
			resp.Body.Close()
			resp = nil
		}
		f, outcome, a.Err = callDone, balance.Canceled, context.Cause(ctx)
		if a.Err == errHedgeLost {
			// A hedge the first attempt outran: no failure, and none of
			// this instance, asked later (Canceled leaves its record).
			f = hedgeLost
		}
	case context.Cause(actx) == errHedgeWon:
		// Slower than the hedge: the balancer learns it (Outrun).
		if err == nil {
			resp.Body.Close()
			resp = nil
		}
		f, outcome, a.Err = hedgeLost, balance.Outrun, errHedgeWon
	case ended != nil:
		if err == nil {
			resp.Body.Close()
			resp = nil
		}
		f, outcome, a.Err = timedOut, balance.TimedOut, fmt.Errorf("%w after %v", ended, time.Since(start).Round(time.Millisecond))
		if wrote != nil && !wrote.Load() {
			f = notSent // e.g. timed out waiting for a connection
		}
	case err != nil:
		f = classifyErr(err)
		if wrote != nil && !wrote.Load() {
			f = notSent
		}
		outcome, a.Err = balance.Failure, err
		if f == notSent {
			outcome = balance.ConnectFailure
		}
	default:
		if resp.StatusCode >= 500 {
			outcome = balance.Failure
		}
		if f = classifyStatus(resp.StatusCode); f != noFailure {
			a.Err = &StatusError{Code: resp.StatusCode}
			if resp.Header.Get(RejectedHeader) != "" {
				// Refused unprocessed by admission control: safe to send
				// elsewhere, and no sign of a broken instance. Counting it
				// as a failure would eject busy instances under overload
				// and waste their capacity; its instant answer must not
				// make the instance look idle either (see balance.Refused).
				f, outcome = notSent, balance.Refused
			}
		}
	}
	a.Duration = h.Finish(start, outcome)
	if f == hedgeLost {
		suspect(dep.rt, scheme, h)
	}
	if f == noFailure {
		dep.hedger.Observe(start, a.Duration)
	}
	if traced {
		c.endAttempt(span, dep.name, n, reason, h, &a, f, resp)
	}
	return resp, f, a
}

// outgoing builds the request for attempt n: same request, the instance's
// address and the scheme to reach it with, the attempt's context and, in
// TimeoutHeader, how long the caller waits for it: the call's remaining
// deadline, or the explicit per-try timeout if that is shorter; the trace
// context, baggage and request ID of the attempt's context (see inject);
// the user token of the request being served (identity.ForwardUser) unless
// the caller set one. The first attempt uses storage in c; later ones
// allocate, since the transport may still be reading an abandoned
// attempt's request.
func (c *call) outgoing(ctx context.Context, req *http.Request, addr, scheme string, wait time.Duration, n int) *http.Request {
	out := req.WithContext(ctx)
	var u *url.URL
	var hv []string
	if n == 0 {
		u, hv = &c.url, c.hdrVal.set(wait)
	} else {
		u, hv = new(url.URL), []string{FormatTimeout(wait)}
	}
	*u = *req.URL
	u.Host, u.Scheme = addr, scheme
	out.URL = u
	if out.Host == "" {
		out.Host = req.URL.Host // the service name, for the callee's logs
	}
	// Room for the timeout and traceparent. Not more: a hint above 8 costs
	// two more allocations than one of 8 (a table instead of one group).
	hdr := make(http.Header, len(req.Header)+2)
	for k, v := range req.Header {
		hdr[k] = v
	}
	if hdr[identity.UserTokenHeader] == nil {
		identity.ForwardUser(ctx, hdr)
	}
	if !c.stream {
		// A stream's callee gets no deadline: the call's timeout bounds
		// only the wait for its headers, here.
		hdr[TimeoutHeader] = hv
	}
	var tp *traceparentSlot
	if n == 0 {
		tp = &c.tp
	}
	inject(ctx, hdr, tp, c.trace.root)
	c.faultHeader(hdr)
	out.Header = hdr
	return out
}

// wrap hands resp to the caller with its body releasing the call's contexts
// on Close.
//
// A streaming response (101 Switching Protocols, text/event-stream) lives as
// long as its caller keeps it: Config.Timeout, like the per-try timeout,
// bounds only the wait for its headers. A deadline of the caller's own still
// bounds all of it.
func (c *call) wrap(resp *http.Response) *http.Response {
	c.trace.status = resp.StatusCode
	if c.timeout != nil && streaming(resp) {
		c.timeout.Stop()
	}
	if resp.Body == nil || resp.Body == http.NoBody {
		c.release()
		return resp
	}
	c.body = resp.Body
	if rw, ok := resp.Body.(io.ReadWriteCloser); ok {
		resp.Body = &rwBody{call: c, w: rw} // 101 Switching Protocols
	} else {
		resp.Body = c
	}
	return resp
}

func (c *call) Read(p []byte) (int, error) { return c.body.Read(p) }

func (c *call) Close() error {
	err := c.body.Close()
	c.release()
	return err
}

// expire ends a call that ran out of Config.Timeout.
func (c *call) expire() { c.cancelCall(context.DeadlineExceeded) }

// release cancels the call's contexts, gives its place in the bulkhead
// back and ends its span, once.
func (c *call) release() {
	if c.cancelAttempt != nil {
		c.cancelAttempt(nil)
	}
	if c.timeout != nil {
		c.timeout.Stop()
	}
	if c.cancelCall != nil {
		c.cancelCall(nil)
	}
	if c.dep != nil {
		c.endSpan(c.dep.name)
		c.dep.release()
		c.dep = nil
	}
}

// rwBody keeps an upgraded connection's body writable (httputil.ReverseProxy
// needs an io.ReadWriteCloser to pass an upgrade through). Close still
// releases the call.
type rwBody struct {
	*call
	w io.Writer
}

func (b *rwBody) Write(p []byte) (int, error) { return b.w.Write(p) }

// CloseWrite half-closes the connection, so that a proxy passes on one
// side's end of stream while the other still talks.
func (b *rwBody) CloseWrite() error {
	if cw, ok := b.w.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return http.ErrNotSupported
}

// upgrade reports whether req asks to switch protocols (WebSocket).
func upgrade(req *http.Request) bool { return req.Header.Get("Upgrade") != "" }

// wantsStream reports whether req asks for a response that lasts as long as
// the caller wants: an upgrade, or server-sent events (EventSource sends
// Accept: text/event-stream).
func wantsStream(req *http.Request) bool {
	return upgrade(req) || strings.Contains(req.Header.Get("Accept"), "text/event-stream")
}

// streaming reports whether resp is a stream: switched protocols or
// server-sent events.
func streaming(resp *http.Response) bool {
	if resp.StatusCode == http.StatusSwitchingProtocols {
		return true
	}
	mt, _, _ := strings.Cut(resp.Header.Get("Content-Type"), ";")
	return strings.EqualFold(strings.TrimSpace(mt), "text/event-stream")
}

// drain reads a little of a discarded body so its connection can be reused.
func drain(body io.ReadCloser) {
	_, _ = io.CopyN(io.Discard, body, 64<<10)
	body.Close()
}

func closeBody(req *http.Request) {
	if req.Body != nil {
		req.Body.Close()
	}
}
