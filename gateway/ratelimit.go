package gateway

import (
	"fmt"
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/shoal-dev/shoal"
	"github.com/shoal-dev/shoal/manifest"
)

// maxRateKeys caps the per-client buckets of one route, so that a flood of
// distinct client addresses cannot grow memory without bound (about 150
// bytes a bucket).
const maxRateKeys = 100_000

// rateLimiter enforces a RateLimit. It is safe for concurrent use. A nil
// *rateLimiter allows everything, so that routes without a limit need no
// special case.
type rateLimiter struct {
	limit rate.Limit
	burst int
	// sweepEvery is how often making a bucket also drops idle ones: no
	// more often than an empty bucket takes to refill, since only full
	// buckets are dropped.
	sweepEvery time.Duration

	// Header values that never change, shared by all responses (see
	// headerInt for why sharing is safe).
	limitHdr, policyHdr []string

	route *rate.Limiter // per route; nil per client

	mu        sync.Mutex
	keys      map[string]*rate.Limiter // per client
	maxKeys   int
	lastSweep time.Time
}

// newRateLimiter returns the limiter for rl, which must be valid; nil (no
// limit) for the zero RateLimit. It starts no goroutines: idle buckets are
// dropped as new ones are made.
func newRateLimiter(rl RateLimit) *rateLimiter {
	if rl == (RateLimit{}) {
		return nil
	}
	burst := rl.Burst
	if burst == 0 {
		burst = max(1, int(math.Ceil(rl.Rate)))
	}
	refillSecs := float64(burst) / rl.Rate
	l := &rateLimiter{
		limit:     rate.Limit(rl.Rate),
		burst:     burst,
		limitHdr:  []string{strconv.Itoa(burst)},
		policyHdr: []string{strconv.Itoa(burst) + ";w=" + strconv.FormatInt(ceilSeconds(refillSecs), 10)},
		maxKeys:   maxRateKeys,
	}
	// Sweeping scans every bucket, so not too often.
	l.sweepEvery = max(time.Duration(ceilSeconds(refillSecs))*time.Second, time.Minute)
	if rl.Per == manifest.PerRoute {
		l.route = rate.NewLimiter(l.limit, l.burst)
	} else {
		l.keys = make(map[string]*rate.Limiter)
	}
	return l
}

// allow takes a token from key's bucket (the route's, when per route) and
// reports whether there was one. Either way it sets the RateLimit-Limit,
// -Remaining, -Reset and -Policy headers (draft-ietf-httpapi-ratelimit-headers);
// when it reports false it has also answered 429 with Retry-After, and the
// caller must not write to w again.
//
// Remaining is the whole tokens left; Reset is the seconds until the next
// token, 0 while tokens remain. For an existing key allow does not allocate.
// It reads time.Now, so tests can run it in a synctest bubble.
func (l *rateLimiter) allow(w http.ResponseWriter, key string) bool {
	if l == nil {
		return true
	}
	now := time.Now()
	lim := l.route
	if lim == nil {
		lim = l.bucket(key, now)
	}
	ok := lim.AllowN(now, 1)
	tokens := lim.TokensAt(now)

	var reset int64
	if tokens < 1 {
		// Less a hair, so float error cannot add a second; at least 1.
		reset = max(1, ceilSeconds((1-tokens)/float64(l.limit)-1e-9))
	}
	h := w.Header()
	h["Ratelimit-Limit"] = l.limitHdr
	h["Ratelimit-Remaining"] = headerInt(int64(max(0, math.Floor(tokens))))
	h["Ratelimit-Reset"] = headerInt(reset)
	h["Ratelimit-Policy"] = l.policyHdr
	if ok {
		return true
	}
	h["Retry-After"] = headerInt(reset)
	shoal.WriteError(w, http.StatusTooManyRequests, "rate_limited",
		fmt.Sprintf("rate limit exceeded: retry in %d s", reset))
	return false
}

// bucket returns key's limiter, making it (and perhaps dropping others) if
// there is none.
//
// A sweep may drop a full bucket just as a request for its key took it from
// the map; that request's token is then taken from the dropped bucket, and
// the next request gets a new, full one: one extra request for that client,
// once, which is not worth holding the lock through AllowN for.
func (l *rateLimiter) bucket(key string, now time.Time) *rate.Limiter {
	l.mu.Lock()
	defer l.mu.Unlock()
	lim, ok := l.keys[key]
	if ok {
		return lim
	}
	if len(l.keys) >= l.maxKeys || now.Sub(l.lastSweep) >= l.sweepEvery {
		l.sweep(now)
	}
	lim = rate.NewLimiter(l.limit, l.burst)
	l.keys[key] = lim
	return lim
}

// sweep drops full buckets: a bucket idle for its refill time is full, and
// a full bucket is exactly what rate.NewLimiter makes, so dropping it loses
// nothing. If that leaves the map
// above 90% of maxKeys, all keys being busy, it drops arbitrary buckets
// down to 90%, which resets those clients' limits: under a flood of
// distinct clients the alternatives are unbounded memory or refusing new
// clients outright. Freeing at least a tenth each time keeps the cost of
// sweeping, amortised over the inserts that filled the map, constant.
// l.mu is held.
func (l *rateLimiter) sweep(now time.Time) {
	l.lastSweep = now
	full := float64(l.burst)
	for k, lim := range l.keys {
		if lim.TokensAt(now) >= full {
			delete(l.keys, k)
		}
	}
	target := l.maxKeys - l.maxKeys/10
	for k := range l.keys {
		if len(l.keys) <= target {
			break
		}
		delete(l.keys, k)
	}
}

// smallInts are header values for 0..1023, one-element slices of a shared
// array with capacity 1. Handing them to many responses is safe because
// nothing writes into a header's slice: Set and Del replace or drop it, and
// Add's append must copy at capacity 1. That keeps allow allocation-free.
var smallInts = func() [][]string {
	strs := make([]string, 1024)
	out := make([][]string, len(strs))
	for i := range strs {
		strs[i] = strconv.Itoa(i)
		out[i] = strs[i : i+1 : i+1]
	}
	return out
}()

// headerInt is n as a header value.
func headerInt(n int64) []string {
	if n >= 0 && n < int64(len(smallInts)) {
		return smallInts[n]
	}
	return []string{strconv.FormatInt(n, 10)}
}

// ceilSeconds rounds s up to whole seconds, at least 1 for positive s, and
// clamps absurd values (rates of one request a century) instead of
// overflowing.
func ceilSeconds(s float64) int64 {
	const maxSecs = 100 * 365 * 24 * 3600
	switch {
	case !(s > 0):
		return 0
	case s > maxSecs:
		return maxSecs
	}
	return int64(math.Ceil(s))
}
