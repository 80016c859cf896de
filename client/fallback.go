package client

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"
)

// Fallback calls fn with ctx bounded by budget and returns its result. If
// fn fails, or runs out of its budget, Fallback returns fallback(err)
// instead, with degraded true: "if this call fails or runs out of time, use
// this instead". A nil fallback stands for the zero T.
//
// The budget is cut so that the fallback's answer still reaches the caller
// before ctx's own deadline: a tenth of what is left of it, at least 5 ms,
// stays for that.
func Fallback[T any](ctx context.Context, budget time.Duration, fn func(context.Context) (T, error), fallback func(error) T) (v T, degraded bool) {
	ctx, cancel := context.WithTimeout(ctx, leaveRoom(ctx, budget))
	defer cancel()
	v, err := fn(ctx)
	if err == nil {
		return v, false
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
func Async[T any](ctx context.Context, budget time.Duration, fn func(context.Context) (T, error), fallback func(error) T) (wait func() (T, bool)) {
	type result struct {
		v        T
		degraded bool
	}
	ch := make(chan result, 1)
	go func() {
		v, degraded := Fallback(ctx, budget, fn, fallback)
		ch <- result{v, degraded}
	}()
	return func() (T, bool) {
		r := <-ch
		return r.v, r.degraded
	}
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
func GetJSON(ctx context.Context, c *http.Client, url string, maxBody int64, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return &StatusError{Code: resp.StatusCode}
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxBody)).Decode(v); err != nil {
		return fmt.Errorf("decoding %s: %w", url, err)
	}
	return nil
}
