package chaos

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"syscall"
)

// Link faults misbehave the network between a caller and a service, in the
// caller's process: tc netem would need root and a kernel module, and
// would hit every program on the machine. The SDK's client transport
// applies a request's link faults (api>ratings:reset) to each attempt it
// sends; Link applies fixed ones, for tests.

// RoundTrip sends req through base with the faults of one link hop drawn
// for it (see Draw): after any delay, an error status comes back without
// the request being sent; a reset fails it as a connection reset before
// it is sent (a net.OpError with Op "dial"); an abort sends it and loses
// the answer (io.ErrUnexpectedEOF); a blackhole holds it until its context
// ends. An answer a fault delayed or made carries InjectedHeader.
func RoundTrip(base http.RoundTripper, req *http.Request, faults []Fault) (*http.Response, error) {
	p := Draw(faults)
	if len(p.Applied) == 0 {
		return base.RoundTrip(req)
	}
	ctx := req.Context()
	if err := Wait(ctx, p.Delay); err != nil {
		closeBody(req)
		return nil, err
	}
	if p.End == nil {
		resp, err := base.RoundTrip(req)
		if err == nil {
			resp.Header.Set(InjectedHeader, Format(p.Applied))
		}
		return resp, err
	}
	f := *p.End
	switch f.Action {
	case Error:
		closeBody(req)
		return errorResponse(req, f, Format(p.Applied)), nil
	case Reset:
		closeBody(req)
		return nil, fmt.Errorf("chaos: %s: %w", f, &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNRESET})
	case Abort:
		resp, err := base.RoundTrip(req)
		if err != nil {
			return nil, err
		}
		resp.Body.Close()
		return nil, fmt.Errorf("chaos: %s: connection lost before the answer: %w", f, io.ErrUnexpectedEOF)
	default: // Blackhole
		closeBody(req)
		<-ctx.Done()
		return nil, fmt.Errorf("chaos: %s: %w", f, context.Cause(ctx))
	}
}

// errorResponse is the answer of an Error fault: the status, as a JSON
// error body like the SDK's.
func errorResponse(req *http.Request, f Fault, applied string) *http.Response {
	body, _ := json.Marshal(map[string]any{"error": map[string]string{
		"code": "fault_injected", "message": "fault injected by a rehearsal: " + f.String()}})
	h := http.Header{"Content-Type": {"application/json"}, InjectedHeader: {applied},
		"Content-Length": {strconv.Itoa(len(body))}}
	if f.Status == http.StatusServiceUnavailable || f.Status == http.StatusTooManyRequests {
		h.Set("Retry-After", "1")
	}
	return &http.Response{
		Status: strconv.Itoa(f.Status) + " " + http.StatusText(f.Status), StatusCode: f.Status,
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1, Header: h,
		Body: io.NopCloser(bytes.NewReader(body)), ContentLength: int64(len(body)), Request: req,
	}
}

func closeBody(req *http.Request) {
	if req.Body != nil {
		req.Body.Close()
	}
}

// Link is an http.RoundTripper that applies fixed link faults to what it
// sends: a misbehaving network for a test, as the base of a shoal client
// (client.Config.Base). A fault applies to the requests for its Service,
// which the client transport names in each attempt's Host; its Caller is
// not checked (the Link is the caller's). The zero Link sends everything
// through http.DefaultTransport unchanged.
type Link struct {
	Base   http.RoundTripper
	Faults []Fault
}

// RoundTrip implements http.RoundTripper.
func (l *Link) RoundTrip(req *http.Request) (*http.Response, error) {
	base := l.Base
	if base == nil {
		base = http.DefaultTransport
	}
	var mine []Fault
	for _, f := range l.Faults {
		if f.Service == req.Host {
			mine = append(mine, f)
		}
	}
	return RoundTrip(base, req, mine)
}
