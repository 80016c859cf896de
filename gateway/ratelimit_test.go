package gateway

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/shoal-dev/shoal"
)

// size is the number of l's per-client buckets.
func (l *rateLimiter) size() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.keys)
}

// hit calls l.allow with a fresh recorder and returns it with the verdict.
func hit(l *rateLimiter, key string) (bool, *httptest.ResponseRecorder) {
	w := httptest.NewRecorder()
	return l.allow(w, key), w
}

// rlHeaders is the rate-limit headers of a response, for comparison.
func rlHeaders(w *httptest.ResponseRecorder) string {
	h := w.Header()
	s := "limit=" + h.Get("RateLimit-Limit") + " remaining=" + h.Get("RateLimit-Remaining") +
		" reset=" + h.Get("RateLimit-Reset") + " policy=" + h.Get("RateLimit-Policy")
	if ra := h.Get("Retry-After"); ra != "" {
		s += " retry-after=" + ra
	}
	return s
}

func TestRateLimitBurstRefusalRefill(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newRateLimiter(RateLimit{Rate: 2, Burst: 3})
		type step struct {
			sleep   time.Duration
			allowed bool
			headers string
		}
		for i, s := range []step{
			{allowed: true, headers: "limit=3 remaining=2 reset=0 policy=3;w=2"},
			{allowed: true, headers: "limit=3 remaining=1 reset=0 policy=3;w=2"},
			{allowed: true, headers: "limit=3 remaining=0 reset=1 policy=3;w=2"},
			{allowed: false, headers: "limit=3 remaining=0 reset=1 policy=3;w=2 retry-after=1"},
			// Half a second brings one token (rate 2/s) ...
			{sleep: 499 * time.Millisecond, allowed: false, headers: "limit=3 remaining=0 reset=1 policy=3;w=2 retry-after=1"},
			{sleep: time.Millisecond, allowed: true, headers: "limit=3 remaining=0 reset=1 policy=3;w=2"},
			{allowed: false, headers: "limit=3 remaining=0 reset=1 policy=3;w=2 retry-after=1"},
			// ... and a long pause no more than the burst.
			{sleep: time.Hour, allowed: true, headers: "limit=3 remaining=2 reset=0 policy=3;w=2"},
		} {
			time.Sleep(s.sleep)
			ok, w := hit(l, "c")
			if ok != s.allowed || rlHeaders(w) != s.headers {
				t.Fatalf("step %d: allowed %v, %s; want %v, %s", i, ok, rlHeaders(w), s.allowed, s.headers)
			}
			if !ok {
				if w.Code != http.StatusTooManyRequests {
					t.Fatalf("step %d: status %d", i, w.Code)
				}
				var body shoal.ErrorBody
				if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil || body.Error.Code != "rate_limited" {
					t.Fatalf("step %d: body %s", i, w.Body)
				}
			} else if w.Body.Len() != 0 || w.Code != http.StatusOK {
				t.Fatalf("step %d: allow wrote a response", i)
			}
		}
	})
}

func TestRateLimitRetryAfter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// One request every 4 seconds.
		l := newRateLimiter(RateLimit{Rate: 0.25})
		if ok, w := hit(l, "c"); !ok || rlHeaders(w) != "limit=1 remaining=0 reset=4 policy=1;w=4" {
			t.Fatalf("first: %v %s", ok, rlHeaders(w))
		}
		for _, want := range []string{"4", "3", "2", "1"} {
			ok, w := hit(l, "c")
			if ok || w.Header().Get("Retry-After") != want || w.Header().Get("RateLimit-Reset") != want {
				t.Fatalf("refused: %v %s, want retry-after=%s", ok, rlHeaders(w), want)
			}
			time.Sleep(time.Second)
		}
		if ok, _ := hit(l, "c"); !ok {
			t.Fatal("refused after 4s")
		}
		// A fraction of a second still waits a whole second.
		time.Sleep(3900 * time.Millisecond)
		if ok, w := hit(l, "c"); ok || w.Header().Get("Retry-After") != "1" {
			t.Fatalf("0.1s short: %v %s", ok, rlHeaders(w))
		}
	})
}

func TestRateLimitPerClientAndPerRoute(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		for _, tc := range []struct {
			per        string
			bAfterA    bool // is b allowed once a has used the burst
			wantShared bool
		}{
			{per: "", bAfterA: true},
			{per: "client", bAfterA: true},
			{per: "route", bAfterA: false},
		} {
			l := newRateLimiter(RateLimit{Rate: 1, Burst: 2, Per: tc.per})
			for range 2 {
				if ok, _ := hit(l, "jwt:a"); !ok {
					t.Fatalf("per %q: a refused within burst", tc.per)
				}
			}
			if ok, _ := hit(l, "jwt:a"); ok {
				t.Fatalf("per %q: a allowed beyond burst", tc.per)
			}
			if ok, _ := hit(l, "jwt:b"); ok != tc.bAfterA {
				t.Fatalf("per %q: b allowed = %v, want %v", tc.per, ok, tc.bAfterA)
			}
		}
	})
}

func TestRateLimitDefaults(t *testing.T) {
	for _, tc := range []struct {
		rl            RateLimit
		limit, policy string
	}{
		{RateLimit{Rate: 2.5}, "3", "3;w=2"},
		{RateLimit{Rate: 0.1}, "1", "1;w=10"},
		{RateLimit{Rate: 100, Burst: 10}, "10", "10;w=1"},
		{RateLimit{Rate: 1, Burst: 60, Per: "route"}, "60", "60;w=60"},
	} {
		_, w := hit(newRateLimiter(tc.rl), "k")
		if w.Header().Get("RateLimit-Limit") != tc.limit || w.Header().Get("RateLimit-Policy") != tc.policy {
			t.Errorf("%+v: %s, want limit=%s policy=%s", tc.rl, rlHeaders(w), tc.limit, tc.policy)
		}
	}
	// The zero RateLimit is no limit: a nil limiter that allows everything
	// and sets no headers.
	l := newRateLimiter(RateLimit{})
	if l != nil {
		t.Fatal("zero RateLimit made a limiter")
	}
	for range 1000 {
		if ok, w := hit(l, "k"); !ok || len(w.Header()) != 0 {
			t.Fatal("nil limiter refused or set headers")
		}
	}
}

func TestRateLimitValidate(t *testing.T) {
	for _, tc := range []struct {
		rl   RateLimit
		want string
	}{
		{RateLimit{}, ""},
		{RateLimit{Rate: 10}, ""},
		{RateLimit{Rate: 0.01, Burst: 5, Per: "route"}, ""},
		{RateLimit{Rate: 1, Per: "client"}, ""},
		{RateLimit{Burst: 5}, "rate"},
		{RateLimit{Rate: -1}, "rate"},
		{RateLimit{Rate: 1, Burst: -1}, "burst"},
		{RateLimit{Rate: 1, Per: "ip"}, "per"},
	} {
		err := tc.rl.Validate()
		if (err == nil) != (tc.want == "") || err != nil && !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: Validate = %v, want %q", tc.rl, err, tc.want)
		}
	}
	rl := parseGateway(t, "gateway:\n  routes:\n    - {path: /a/, service: a, rate_limit: {rate: 2.5, burst: 10, per: route}}\n").Routes[0].RateLimit
	if *rl != (RateLimit{Rate: 2.5, Burst: 10, Per: "route"}) {
		t.Errorf("YAML: %+v", *rl)
	}
}

func TestRateLimitEviction(t *testing.T) {
	t.Run("bounded", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			// 200k distinct clients at once (none idle): the map stays
			// within the cap, and a client seen last still has its bucket.
			l := newRateLimiter(RateLimit{Rate: 1})
			w := httptest.NewRecorder()
			for i := range 2 * maxRateKeys {
				l.allow(w, strconv.Itoa(i))
			}
			if n := l.size(); n > maxRateKeys {
				t.Fatalf("%d keys, cap %d", n, maxRateKeys)
			}
			if ok, _ := hit(l, strconv.Itoa(2*maxRateKeys-1)); ok {
				t.Fatal("the latest client's bucket was dropped")
			}
		})
	})
	t.Run("idle dropped, busy kept", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			// Burst 100 at 1/s: a bucket refills in 100s; sweeps every 100s.
			l := newRateLimiter(RateLimit{Rate: 1, Burst: 100})
			hit(l, "idle")
			time.Sleep(100 * time.Second)
			for range 100 {
				hit(l, "busy")
			}
			hit(l, "new") // sweeps
			if n := l.size(); n != 2 {
				t.Fatalf("%d keys, want busy and new", n)
			}
			if ok, _ := hit(l, "busy"); ok {
				t.Fatal("busy's empty bucket was dropped")
			}
		})
	})
}

func TestRateLimitConcurrent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// Time stands still in the bubble while goroutines run, so exactly
		// the burst is allowed for the shared key, and per key for others.
		const burst, workers, calls = 50, 8, 100
		for _, per := range []string{"client", "route"} {
			l := newRateLimiter(RateLimit{Rate: 1, Burst: burst, Per: per})
			var shared, own atomic.Int64
			var wg sync.WaitGroup
			for g := range workers {
				wg.Go(func() {
					mine := "own-" + strconv.Itoa(g)
					for range calls {
						if ok, _ := hit(l, "shared"); ok {
							shared.Add(1)
						}
						if ok, _ := hit(l, mine); ok {
							own.Add(1)
						}
					}
				})
			}
			wg.Wait()
			if per == "route" {
				// Shared and own keys draw on the one bucket.
				if got := shared.Load() + own.Load(); got != burst {
					t.Fatalf("per route: %d allowed, want %d", got, burst)
				}
				continue
			}
			if shared.Load() != burst || own.Load() != workers*burst {
				t.Fatalf("per client: allowed shared %d, own %d; want %d, %d", shared.Load(), own.Load(), burst, workers*burst)
			}
		}
	})
}

// headerWriter is a ResponseWriter that keeps nothing but its headers, so
// that the benchmark measures allow alone.
type headerWriter struct{ h http.Header }

func (w headerWriter) Header() http.Header         { return w.h }
func (w headerWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w headerWriter) WriteHeader(int)             {}

func TestRateLimitNoAllocs(t *testing.T) {
	l := newRateLimiter(RateLimit{Rate: 1e9, Burst: 1000})
	w := headerWriter{http.Header{}}
	l.allow(w, "client")
	if n := testing.AllocsPerRun(1000, func() { l.allow(w, "client") }); n != 0 {
		t.Fatalf("allow allocates %v times for an existing key", n)
	}
}

func BenchmarkAllow(b *testing.B) {
	// A rate no benchmark can exhaust: every call takes the allowed path.
	l := newRateLimiter(RateLimit{Rate: 1e9, Burst: 1000})
	w := headerWriter{http.Header{}}
	l.allow(w, "client")
	b.ReportAllocs()
	for b.Loop() {
		l.allow(w, "client")
	}
}
