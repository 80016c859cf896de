package gateway

// Forwarding: one request, as the policy decided it, through the client
// transport to the service, and its answer back, whichever server (engine
// or net/http) read the request. HTTP semantics live here (hop-by-hop
// headers, 1xx, trailers, streaming, upgrades); what is allowed and which
// headers the service sees is the policy's (policy.go).

import (
	"context"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"net/url"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/http/httpguts"

	"github.com/shoal-dev/shoal"
	"github.com/shoal-dev/shoal/internal/statuswriter"
	"github.com/shoal-dev/shoal/telemetry"
)

// isHopHeader reports whether k (canonical) is hop-by-hop by name: the
// fields of RFC 9110 §7.6.1, plus the non-standard ones clients still send.
// Fields named in Connection are hop-by-hop too (copyEndToEnd).
func isHopHeader(k string) bool {
	switch k {
	case "Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization",
		"Te", "Trailer", "Transfer-Encoding", "Upgrade":
		return true
	}
	return false
}

// copyEndToEnd copies src's end-to-end fields to dst: not the hop-by-hop
// ones, nor those src's Connection names. Value slices are shared, not
// copied: neither side appends to them in place.
func copyEndToEnd(dst, src http.Header) {
	conn := src["Connection"]
	for k, vs := range src {
		if isHopHeader(k) || len(conn) > 0 && connectionNames(conn, k) {
			continue
		}
		dst[k] = vs
	}
}

// connectionNames reports whether the Connection values name k.
func connectionNames(conn []string, k string) bool {
	for _, v := range conn {
		for name := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(textproto.TrimString(name), k) {
				return true
			}
		}
	}
	return false
}

// upgradeType is the protocol a message's Upgrade asks for, if its
// Connection says upgrade; "" otherwise.
func upgradeType(h http.Header) string {
	if !httpguts.HeaderValuesContainsToken(h["Connection"], "Upgrade") {
		return ""
	}
	return headerValue(h, "Upgrade")
}

// forward sends r, as st describes it, to its service and writes the
// answer to w. ctx bounds the call.
func (g *Gateway) forward(ctx context.Context, w http.ResponseWriter, r *http.Request, st *request) {
	out := g.outgoing(ctx, w, r, st)
	resp, err := g.transport.RoundTrip(out)
	if err != nil {
		g.proxyError(w, r.WithContext(ctx), st, err)
		return
	}
	if st.headerTimer != nil && streaming(resp) {
		st.headerTimer.Stop() // the stream is on: it lasts as long as the caller wants
	}
	if resp.StatusCode == http.StatusSwitchingProtocols {
		g.switchProtocols(w, r, out, resp, st)
		return
	}
	defer resp.Body.Close()
	if !streaming(resp) {
		// The caller must take the answer within the request's time: a
		// reader that stalls would otherwise hold the call, and its place
		// in the service's bulkhead, for as long as it likes. Cleared
		// after, as neither server resets it for the connection's next
		// request.
		rc := http.NewResponseController(w)
		if rc.SetWriteDeadline(writeDeadline(ctx, st)) == nil {
			defer rc.SetWriteDeadline(time.Time{})
		}
	}
	h := w.Header()
	copyEndToEnd(h, resp.Header)
	// The gateway has set its own request ID (the same, unless the
	// caller's was not sane); two would be one too many.
	h[requestIDKey] = st.idv[:]
	if len(resp.Trailer) > 0 {
		names := make([]string, 0, len(resp.Trailer))
		for k := range resp.Trailer {
			names = append(names, k)
		}
		h["Trailer"] = []string{strings.Join(names, ", ")}
	}
	w.WriteHeader(resp.StatusCode)
	if resp.StatusCode >= 500 {
		// The service answered it, and says why in its own log: one line
		// per failure, not one at every hop (and none per shed request at
		// the edge under overload).
		statuswriter.MarkLogged(w)
	}
	if err := copyBody(w, resp, st); err != nil {
		if ctx.Err() == nil {
			g.logger().WarnContext(ctx, "proxy: response body cut short", "upstream", st.service, "route", st.label,
				"request_id", st.id, "err", err)
			statuswriter.MarkLogged(w)
		}
		// The caller must see the response as broken, not as complete:
		// net/http and the engine both close the connection for this.
		panic(http.ErrAbortHandler)
	}
	if len(resp.Trailer) > 0 {
		for k, vs := range resp.Trailer {
			h[k] = vs // announced above
		}
	}
}

// writeDeadline is when a response that is not a stream must be written
// by: the request's deadline, which its call to the service had as well;
// the timeout from now when a request that asked for a stream got none.
func writeDeadline(ctx context.Context, st *request) time.Time {
	if dl, ok := ctx.Deadline(); ok {
		return dl
	}
	return time.Now().Add(st.timeout)
}

// outgoing builds the request to the service: the caller's end-to-end
// headers, then the policy's header rules, the service's URL, and the body
// (replayable when buffered).
func (g *Gateway) outgoing(ctx context.Context, w http.ResponseWriter, r *http.Request, st *request) *http.Request {
	h := make(http.Header, len(r.Header)+6)
	copyEndToEnd(h, r.Header)
	if httpguts.HeaderValuesContainsToken(r.Header["Te"], "trailers") {
		h["Te"] = []string{"trailers"}
	}
	if up := forwardedUpgrade(r.Header); up != "" {
		h["Connection"] = []string{"Upgrade"}
		h["Upgrade"] = []string{up}
	}
	g.outgoingHeaders(h, r, st)
	u := &url.URL{Scheme: "http", Host: st.service, Path: st.path, RawQuery: r.URL.RawQuery}
	if st.rawPath != "" && st.rawPath != st.path {
		u.RawPath = st.rawPath
	}
	out := &http.Request{
		Method: r.Method, URL: u, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: h, Body: r.Body, GetBody: r.GetBody, ContentLength: r.ContentLength, Trailer: r.Trailer,
	}
	if r.ContentLength == 0 && (r.Body == nil || r.Body == http.NoBody) {
		out.Body = nil
	}
	// 1xx answers (103 Early Hints) go to the caller as they come, with
	// their own fields only; 100 Continue is not one of them: the server
	// in front has answered the caller's Expect itself.
	ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{Got1xxResponse: func(code int, header textproto.MIMEHeader) error {
		if code == http.StatusContinue {
			return nil
		}
		wh := w.Header()
		final := maps.Clone(wh) // what the policy set for the final response (CORS, rate limits)
		clear(wh)
		copyEndToEnd(wh, http.Header(header))
		w.WriteHeader(code)
		clear(wh)
		maps.Copy(wh, final)
		return nil
	}})
	return out.WithContext(ctx)
}

// streamFlush reports whether a response is passed on as it arrives, each
// read flushed: server-sent events, and bodies of unknown length (chunked
// streams), as httputil.ReverseProxy does.
func streamFlush(resp *http.Response) bool {
	if resp.ContentLength == -1 {
		return true
	}
	return eventStream(resp.Header)
}

// copyBody copies the response body to w through a pooled buffer,
// flushing each read when the response streams. It returns a read error
// (the service's answer cut short) or a write error.
func copyBody(w http.ResponseWriter, resp *http.Response, st *request) error {
	if resp.Body == http.NoBody {
		return nil
	}
	flush := streamFlush(resp)
	var flusher http.Flusher
	if flush {
		flusher, _ = w.(http.Flusher)
		if flusher == nil {
			rc := http.NewResponseController(w)
			flusher = flushFunc(func() { _ = rc.Flush() })
		}
		flusher.Flush() // the head now, even if the first event takes long
	}
	bp := copyBuffers.Get().(*[]byte)
	defer copyBuffers.Put(bp)
	buf := *bp
	for {
		n, rerr := resp.Body.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return werr
			}
			if flush {
				flusher.Flush()
			}
		}
		if rerr == io.EOF {
			return nil
		}
		if rerr != nil {
			return rerr
		}
	}
}

type flushFunc func()

func (f flushFunc) Flush() { f() }

// switchProtocols completes an upgrade (WebSocket): the service's 101 goes
// to the caller on the hijacked connection, then bytes flow both ways
// until one side ends; each side's end of stream is passed on as a
// half-close. Only net/http serves upgrades (the engine hands them over).
func (g *Gateway) switchProtocols(w http.ResponseWriter, r, out *http.Request, resp *http.Response, st *request) {
	want, got := upgradeType(out.Header), upgradeType(resp.Header)
	back, ok := resp.Body.(io.ReadWriteCloser)
	switch {
	case want == "" || !strings.EqualFold(want, got) || !ok:
		resp.Body.Close()
		g.proxyError(w, r, st, fmt.Errorf("the service switched to protocol %q when %q was asked for", got, want))
		return
	}
	// Closed once: when the exchange ends, or earlier when the request is
	// canceled (the gateway shutting down, a caller's own deadline).
	closeBack := sync.OnceFunc(func() { back.Close() })
	defer closeBack()
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		g.proxyError(w, r, st, fmt.Errorf("switching protocols: %w", err))
		return
	}
	defer conn.Close()
	stop := context.AfterFunc(r.Context(), closeBack)
	defer stop()
	if rec, ok := w.(*recorder); ok && rec.Code == 0 {
		rec.Code = http.StatusSwitchingProtocols
	}
	h := make(http.Header, len(resp.Header))
	copyEndToEnd(h, resp.Header)
	h["Connection"] = []string{"Upgrade"}
	h["Upgrade"] = []string{got}
	resp.Header, resp.Body = h, nil
	if err := resp.Write(brw); err != nil {
		return
	}
	if err := brw.Flush(); err != nil {
		return
	}
	var wg sync.WaitGroup
	pipe := func(dst io.Writer, src io.Reader) { // owned by this call: ends when src ends or the other side closes
		_, _ = io.Copy(dst, src)
		if cw, ok := dst.(interface{ CloseWrite() error }); ok {
			_ = cw.CloseWrite()
		}
	}
	wg.Go(func() { pipe(back, brw) })
	pipe(conn, back)
	wg.Wait()
}

// proxyError answers a request that got no response from any instance. The
// client sees the service name and the kind of failure, never instance
// addresses; the log gets the whole error.
func (g *Gateway) proxyError(w http.ResponseWriter, r *http.Request, st *request, err error) {
	if st.tooLarge.Load() || tooLarge(err) {
		writeTooLarge(w, st.limit)
		return
	}
	if berr := st.bodyErr.Load(); berr != nil {
		// The caller's body broke off or broke the syntax (a bad chunk):
		// the service got an incomplete request, and the connection's
		// framing cannot be trusted any more.
		w.Header().Set("Connection", "close")
		shoal.WriteError(w, http.StatusBadRequest, "bad_request", "reading the request body: "+(*berr).Error())
		return
	}
	if telemetry.CallerGone(r) {
		// The caller went away: nobody reads this answer, and it is no
		// error of the route's (5xx) in its metrics and access log; an
		// experiment's cohort counts it failed, as its caller gave up.
		w.WriteHeader(telemetry.StatusClientClosed)
		return
	}
	code, status, msg := classify(st.service, err)
	g.logger().WarnContext(r.Context(), "proxy failed", "upstream", st.service, "route", st.label, "method", r.Method, "path", st.path,
		"status", status, "request_id", st.id, "err", err)
	statuswriter.MarkLogged(w)
	if status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "1")
	}
	shoal.WriteError(w, status, code, msg)
}
