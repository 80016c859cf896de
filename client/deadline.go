package client

import (
	"context"
	"fmt"
	"strconv"
	"time"
	"unsafe"
)

// TimeoutHeader carries the caller's remaining time budget, in whole
// milliseconds, to the callee (like gRPC's grpc-timeout).
const TimeoutHeader = "Shoal-Timeout-Ms"

// RejectedHeader on a 503 says the instance refused the request before
// doing any work (its admission control was at its limit), so that any
// request, idempotent or not, may go to another instance.
const RejectedHeader = "Shoal-Rejected"

// maxTimeout bounds what a peer may ask for, so a bogus header cannot keep a
// handler alive for days.
const maxTimeout = 24 * time.Hour

// ParseTimeout parses a TimeoutHeader value.
func ParseTimeout(v string) (time.Duration, error) {
	if v == "" || len(v) > 9 {
		return 0, fmt.Errorf("%s %q: want 1 to 9 digits of milliseconds", TimeoutHeader, v)
	}
	ms, err := strconv.ParseUint(v, 10, 32)
	if err != nil {
		return 0, fmt.Errorf("%s %q: want milliseconds as a whole number", TimeoutHeader, v)
	}
	d := time.Duration(ms) * time.Millisecond
	return min(d, maxTimeout), nil
}

// FormatTimeout formats d for TimeoutHeader, rounding down, never below 1 ms:
// a request that is sent at all gets at least that.
func FormatTimeout(d time.Duration) string { return strconv.FormatInt(timeoutMs(d), 10) }

func timeoutMs(d time.Duration) int64 { return max(int64(d/time.Millisecond), 1) }

// timeoutSlot holds a TimeoutHeader value in storage of its own, so that
// the first attempt of a call sends it without allocating.
type timeoutSlot struct {
	val [1]string
	buf [20]byte // the digits of an int64
}

// set formats d as FormatTimeout does into s and returns it as a header
// value, as traceparentSlot.set does. Called once per slot: the value's
// string points into s.buf.
func (s *timeoutSlot) set(d time.Duration) []string {
	b := strconv.AppendInt(s.buf[:0], timeoutMs(d), 10)
	s.val[0] = unsafe.String(&b[0], len(b))
	return s.val[:]
}

// WithTimeoutHeader returns ctx bounded by the TimeoutHeader value v, if v is
// valid; otherwise ctx unchanged. The returned cancel must be called.
func WithTimeoutHeader(ctx context.Context, v string) (context.Context, context.CancelFunc) {
	if v == "" {
		return ctx, func() {}
	}
	d, err := ParseTimeout(v)
	if err != nil {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, d)
}
