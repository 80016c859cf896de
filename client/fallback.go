package client

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"runtime/debug"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/trace"
)

// Fallback calls fn with ctx bounded by budget and returns its result. If
// fn fails, or runs out of its budget, Fallback returns fallback(err)
// instead, with degraded true: "if this call fails or runs out of time, use
// this instead". A nil fallback stands for the zero T.
//
// The budget is cut so that the fallback's answer still reaches the caller
// before ctx's own deadline: a tenth of what is left of it, at least 5 ms,
// stays for that.
//
// When ctx's span is recorded, a fallback used is a span of its own
// under it, named "fallback", from the start of fn to the fallback, with
// its cause in the shoal.fallback attribute (the service called and why
// the call failed, when fn's error is a call's).
func Fallback[T any](ctx context.Context, budget time.Duration, fn func(context.Context) (T, error), fallback func(error) T) (v T, degraded bool) {
	var began time.Time
	if trace.SpanFromContext(ctx).IsRecording() {
		began = time.Now()
	}
	fctx, cancel := context.WithTimeout(ctx, leaveRoom(ctx, budget))
	defer cancel()
	v, err := fn(fctx)
	if err == nil {
		return v, false
	}
	if !began.IsZero() {
		fellBack(ctx, began, err)
	}
	var zero T
	if fallback == nil {
		return zero, true
	}
	return fallback(err), true
}

// Async starts Fallback on its own goroutine, so that several calls run at
// once, and returns a function that waits for its result; call it once. The
// goroutine ends when fn returns, at the latest when the budget is up if fn
// honours its context.
//
// A panic on that goroutine does not end the process: a panic in fn is
// recovered as a *PanicError, which goes to fallback as fn's error; a
// panic in fallback leaves the zero T. Either way the result is degraded,
// the panic is logged with its stack (slog.Default) and counted
// (AsyncPanics).
func Async[T any](ctx context.Context, budget time.Duration, fn func(context.Context) (T, error), fallback func(error) T) (wait func() (T, bool)) {
	type result struct {
		v        T
		degraded bool
	}
	ch := make(chan result, 1)
	safe := func(ctx context.Context) (v T, err error) {
		defer func() {
			if p := recover(); p != nil {
				err = asyncPanicked(p)
			}
		}()
		return fn(ctx)
	}
	go func() {
		r := result{degraded: true} // if fallback panics
		defer func() {
			if p := recover(); p != nil {
				asyncPanicked(p)
			}
			ch <- r
		}()
		r.v, r.degraded = Fallback(ctx, budget, safe, fallback)
	}()
	return func() (T, bool) {
		r := <-ch
		return r.v, r.degraded
	}
}

// PanicError is a panic recovered on a goroutine that Async started, as
// an error.
type PanicError struct {
	Value any    // what was passed to panic
	Stack []byte // the panicking goroutine's stack, as runtime/debug.Stack gives it
}

func (e *PanicError) Error() string { return fmt.Sprintf("panic: %v", e.Value) }

// asyncPanics counts the panics Async recovered, in the whole process:
// Async belongs to no Transport.
var asyncPanics atomic.Uint64

// AsyncPanics returns how many panics Async recovered in this process
// (telemetry exports it as shoal_client_async_panics_total). Any
// goroutine may call it.
func AsyncPanics() uint64 { return asyncPanics.Load() }

// asyncPanicked counts, logs and returns a panic recovered by Async; call
// it from the deferred function that recovered, so the stack is the
// panic's.
func asyncPanicked(p any) *PanicError {
	asyncPanics.Add(1)
	e := &PanicError{Value: p, Stack: debug.Stack()}
	slog.Error("client: Async recovered a panic", "panic", fmt.Sprint(p), "stack", string(e.Stack))
	return e
}

// fellBack records, under ctx's span, a fallback used after fn, begun at
// began, failed with err.
func fellBack(ctx context.Context, began time.Time, err error) {
	parent := trace.SpanFromContext(ctx)
	_, span := parent.TracerProvider().Tracer(tracerScope).Start(ctx, "fallback", trace.WithTimestamp(began))
	// Not an error: the failed call's span is one already, and the
	// fallback is the caller coping with it.
	span.SetAttributes(attrFallback.String(fallbackCause(err)))
	span.End()
}

// leaveRoom shortens d so that an answer without what it bounds still
// reaches the caller before ctx's deadline.
func leaveRoom(ctx context.Context, d time.Duration) time.Duration {
	if dl, ok := ctx.Deadline(); ok {
		left := time.Until(dl)
		d = min(d, left-max(left/10, 5*time.Millisecond))
	}
	return d
}

// GetJSON GETs url with c and decodes a 200 answer's JSON body, at most
// maxBody bytes of it, into v. Any other status is a *StatusError.
//
// It reads the body to its end (up to 64 KiB past what it decoded) before
// closing it: net/http reuses a connection only if its body was read to
// EOF, and a decoder stops at the end of the value, before the newline
// that usually follows and, when the answer is chunked, before the last
// chunk. Closed instead, the connection would be dialed again on the next
// call, at the cost of a TLS handshake.
func GetJSON(ctx context.Context, c *http.Client, url string, maxBody int64, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer drain(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return &StatusError{Code: resp.StatusCode}
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxBody)).Decode(v); err != nil {
		return fmt.Errorf("decoding %s: %w", url, err)
	}
	return nil
}
