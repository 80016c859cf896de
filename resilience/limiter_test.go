package resilience

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

func TestLimiterConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  LimiterConfig
		want string // substring of the error; "" means valid
	}{
		{"zero", LimiterConfig{}, ""},
		{"default", DefaultLimiterConfig(), ""},
		{"disabled", LimiterConfig{Disabled: true}, ""},
		{"small max alone", LimiterConfig{MaxLimit: 2}, ""},
		{"large min alone", LimiterConfig{MinLimit: 2000}, ""},
		{"initial alone", LimiterConfig{InitialLimit: 2}, ""},
		{"fixed", LimiterConfig{MinLimit: 8, MaxLimit: 8, InitialLimit: 8}, ""},
		{"long wait", LimiterConfig{MaxWait: time.Minute}, ""},
		{"no queue", LimiterConfig{NoQueue: true}, ""},
		{"max under min", LimiterConfig{MinLimit: 4, MaxLimit: 3}, "resilience: limiter.max_limit 3 is less than min_limit 4"},
		{"initial over max", LimiterConfig{MaxLimit: 10, InitialLimit: 11}, "limiter.initial_limit 11 is outside [min_limit 4, max_limit 10]"},
		{"initial under min", LimiterConfig{MinLimit: 10, InitialLimit: 5}, "limiter.initial_limit 5 is outside [min_limit 10, max_limit 1000]"},
		{"negative min", LimiterConfig{MinLimit: -1}, "limiter.min_limit -1 must not be negative"},
		{"negative max", LimiterConfig{MaxLimit: -5}, "limiter.max_limit -5"},
		{"negative initial", LimiterConfig{InitialLimit: -2}, "limiter.initial_limit -2"},
		{"negative wait", LimiterConfig{MaxWait: -time.Millisecond}, "limiter.max_wait -1ms must not be negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { checkValidate(t, tt.cfg.Validate(), tt.want) })
	}
}

func TestLimiterConfigDefaults(t *testing.T) {
	tests := []struct {
		name string
		cfg  LimiterConfig
		want LimiterConfig
	}{
		{"zero", LimiterConfig{}, DefaultLimiterConfig()},
		{"small max", LimiterConfig{MaxLimit: 10}, LimiterConfig{MinLimit: 4, MaxLimit: 10, InitialLimit: 10, MaxWait: DefaultMaxWait}},
		{"tiny max", LimiterConfig{MaxLimit: 2}, LimiterConfig{MinLimit: 2, MaxLimit: 2, InitialLimit: 2, MaxWait: DefaultMaxWait}},
		{"large min", LimiterConfig{MinLimit: 2000}, LimiterConfig{MinLimit: 2000, MaxLimit: 2000, InitialLimit: 2000, MaxWait: DefaultMaxWait}},
		{"small initial", LimiterConfig{InitialLimit: 2}, LimiterConfig{MinLimit: 2, MaxLimit: 1000, InitialLimit: 2, MaxWait: DefaultMaxWait}},
		{"wait kept", LimiterConfig{MaxWait: time.Millisecond}, LimiterConfig{MinLimit: 4, MaxLimit: 1000, InitialLimit: 20, MaxWait: time.Millisecond}},
	}
	for _, tt := range tests {
		if got := tt.cfg.withDefaults(); got != tt.want {
			t.Errorf("%s: withDefaults() = %+v, want %+v", tt.name, got, tt.want)
		}
	}
}

func TestNewLimiterPanicsOnBadConfig(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("NewLimiter accepted max_limit < min_limit")
		}
	}()
	NewLimiter(LimiterConfig{MinLimit: 5, MaxLimit: 1})
}

// TestLimiterRejectsOverLimit fills a fixed limit and checks that the next
// request is refused, counted, and admitted again once a slot frees.
func TestLimiterRejectsOverLimit(t *testing.T) {
	l := NewLimiter(LimiterConfig{MinLimit: 3, MaxLimit: 3, InitialLimit: 3, NoQueue: true})
	permits := acquireAll(t, l, 3)
	if _, ok := l.Acquire(context.Background()); ok {
		t.Fatal("admitted over the limit")
	}
	want := LimiterStats{Limit: 3, InFlight: 3, Admitted: 3, Rejected: 1}
	if got := l.Stats(); got != want {
		t.Fatalf("Stats() = %+v, want %+v", got, want)
	}
	permits[0].Drop()
	permits[0].Drop() // a second end must not free a second slot
	permits[1].Record()
	permits[1].Record()
	if got := l.Stats(); got.InFlight != 1 {
		t.Fatalf("in flight %d after ending 2 of 3 permits (twice each), want 1", got.InFlight)
	}
	for i := range 2 {
		if _, ok := l.Acquire(context.Background()); !ok {
			t.Fatalf("acquire %d rejected with a free slot", i)
		}
	}
	if _, ok := l.Acquire(context.Background()); ok {
		t.Fatal("double Record/Drop freed extra slots")
	}
	var zero Permit
	zero.Record() // a rejected request's zero Permit is harmless
	zero.Drop()
}

func TestLimiterMaxWait(t *testing.T) {
	const wait = 5 * time.Millisecond
	for _, tc := range []struct {
		name string
		cfg  LimiterConfig
		took time.Duration // how long the rejection takes
		late uint64        // refused after waiting
	}{
		{"rejects after MaxWait", LimiterConfig{MinLimit: 1, MaxLimit: 1, MaxWait: wait}, wait, 1},
		{"no queue rejects at once", LimiterConfig{MinLimit: 1, MaxLimit: 1, NoQueue: true}, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				l := NewLimiter(tc.cfg)
				held, _ := l.Acquire(context.Background())
				defer held.Record()
				begin := time.Now()
				if _, ok := l.Acquire(context.Background()); ok {
					t.Fatal("admitted over the limit")
				}
				if took := time.Since(begin); took != tc.took {
					t.Fatalf("rejection took %v, want exactly %v", took, tc.took)
				}
				if s := l.Stats(); s.Late != tc.late || s.Abandoned != 0 {
					t.Fatalf("Stats() = %+v, want Late %d and Abandoned 0", s, tc.late)
				}
			})
		})
	}
	t.Run("admitted when a slot frees in time", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			l := NewLimiter(LimiterConfig{MinLimit: 1, MaxLimit: 1, MaxWait: wait})
			held, _ := l.Acquire(context.Background())
			go func() {
				time.Sleep(2 * time.Millisecond)
				held.Record()
			}()
			begin := time.Now()
			p, ok := l.Acquire(context.Background())
			if !ok {
				t.Fatal("rejected although a slot freed within MaxWait")
			}
			p.Record()
			if took := time.Since(begin); took != 2*time.Millisecond {
				t.Fatalf("admitted after %v, want 2ms", took)
			}
		})
	})
	t.Run("caller gone stops the wait", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			l := NewLimiter(LimiterConfig{MinLimit: 1, MaxLimit: 1, MaxWait: wait})
			held, _ := l.Acquire(context.Background())
			defer held.Record()
			ctx, cancel := context.WithCancel(context.Background())
			time.AfterFunc(time.Millisecond, cancel)
			begin := time.Now()
			if _, ok := l.Acquire(ctx); ok {
				t.Fatal("admitted over the limit")
			}
			if took := time.Since(begin); took != time.Millisecond {
				t.Fatalf("rejection took %v, want 1ms (when the caller gave up)", took)
			}
			// Its caller gave up: abandoned, not refused late.
			if s := l.Stats(); s.Rejected != 1 || s.InFlight != 1 || s.Abandoned != 1 || s.Late != 0 {
				t.Fatalf("Stats() = %+v, want 1 rejected, abandoned, not late", s)
			}
		})
	})
}

func TestLimiterDisabledAdmitsAll(t *testing.T) {
	l := NewLimiter(LimiterConfig{Disabled: true, MaxLimit: 1})
	permits := acquireAll(t, l, 1000)
	if got, want := l.Stats(), (LimiterStats{Limit: 0, InFlight: 1000, Admitted: 1000}); got != want {
		t.Fatalf("Stats() = %+v, want %+v", got, want)
	}
	for i := range permits {
		permits[i].Record()
	}
	if got := l.Stats().InFlight; got != 0 {
		t.Fatalf("in flight %d after every permit ended", got)
	}
}

// cpuServer models a process with a fixed number of cores shared by the
// requests it runs (processor sharing): a request needs work of CPU time, so
// with n in flight it takes work × max(1, n/cores). Up to cores requests
// latency is flat; past it every extra request only adds queueing.
type cpuServer struct {
	cores int
	work  time.Duration
}

func (s cpuServer) latency(inFlight int) time.Duration {
	if inFlight <= s.cores {
		return s.work
	}
	return s.work * time.Duration(inFlight) / time.Duration(s.cores)
}

// limiterLoad runs callers closed-loop clients against l and srv for d: each sends a
// request, waits for it, and sends the next; a rejected caller backs off
// backoff before it tries again (as a client failing over would). It reports
// how many requests were admitted and rejected. Run it inside a synctest
// bubble.
func limiterLoad(l *Limiter, srv cpuServer, callers int, d, backoff time.Duration) (admitted, rejected int) {
	return limiterLoadEnding(l, srv, callers, d, backoff, (*Permit).Record)
}

// limiterLoadEnding is limiterLoad with each permit ended by end.
func limiterLoadEnding(l *Limiter, srv cpuServer, callers int, d, backoff time.Duration, end func(*Permit)) (admitted, rejected int) {
	until := time.Now().Add(d)
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range callers {
		wg.Go(func() {
			var a, r int
			for time.Now().Before(until) {
				p, ok := l.Acquire(context.Background())
				if !ok {
					r++
					time.Sleep(backoff)
					continue
				}
				a++
				time.Sleep(srv.latency(l.Stats().InFlight))
				end(&p)
			}
			mu.Lock()
			admitted += a
			rejected += r
			mu.Unlock()
		})
	}
	wg.Wait()
	return admitted, rejected
}

func TestLimiterGrowsWhileLatencyHolds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := NewLimiter(LimiterConfig{MinLimit: 4, MaxLimit: 200, InitialLimit: 10, NoQueue: true})
		// Latency never moves: the process has room for every caller.
		_, rejected := limiterLoad(l, cpuServer{cores: 1000, work: 20 * time.Millisecond}, 40, time.Minute, 20*time.Millisecond)
		s := l.Stats()
		t.Logf("after a minute of flat latency: %+v", s)
		if s.Limit < 40 {
			t.Fatalf("limit %d after a minute of flat latency with 40 callers, want it grown to at least 40 from 10", s.Limit)
		}
		if rejected == 0 {
			t.Fatal("no rejections while the limit (10) was below the callers (40): the limit was not enforced")
		}
		// Once grown, nobody is turned away.
		before := l.Stats().Rejected
		limiterLoad(l, cpuServer{cores: 1000, work: 20 * time.Millisecond}, 40, 10*time.Second, 20*time.Millisecond)
		if after := l.Stats().Rejected; after != before {
			t.Fatalf("%d rejections at a steady, flat-latency load the limit had grown to", after-before)
		}
	})
}

func TestLimiterFallsWhenLatencyClimbs(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := cpuServer{cores: 8, work: 10 * time.Millisecond}
		l := NewLimiter(LimiterConfig{MinLimit: 4, MaxLimit: 1000, InitialLimit: 50, NoQueue: true})
		// A light load the process handles at its base latency sets the
		// baseline: no rejections.
		if _, rejected := limiterLoad(l, srv, 8, 30*time.Second, 10*time.Millisecond); rejected != 0 {
			t.Fatalf("%d rejections under a light load", rejected)
		}
		calm := l.Stats().Limit
		// Then many more callers than cores: unlimited, each request
		// would take 200/8 × 10 ms = 250 ms.
		_, rejected := limiterLoad(l, srv, 200, time.Minute, 50*time.Millisecond)
		s := l.Stats()
		t.Logf("limit %d when calm, %+v after a minute of overload", calm, s)
		if s.Limit >= calm || s.Limit > 30 {
			t.Fatalf("limit %d after a minute of overload (calm: %d), want it fallen to 30 or less", s.Limit, calm)
		}
		if rejected == 0 {
			t.Fatal("no request rejected under overload")
		}
		// The admitted requests are served close to the process's capacity,
		// not queued: latency at the limit stays a few times the base.
		if lat := srv.latency(s.Limit); lat > 4*srv.work {
			t.Fatalf("admitted requests take %v at limit %d, over 4× the base %v", lat, s.Limit, srv.work)
		}
	})
}

// TestLimiterDropLeavesLimit checks that dropped permits (requests the client
// abandoned) teach the limit nothing: the same overload that pulls the limit
// down when recorded leaves it where it was when dropped.
func TestLimiterDropLeavesLimit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := cpuServer{cores: 8, work: 10 * time.Millisecond}
		l := NewLimiter(LimiterConfig{MinLimit: 4, MaxLimit: 1000, InitialLimit: 50, NoQueue: true})
		limiterLoad(l, srv, 8, 30*time.Second, 10*time.Millisecond)
		calm := l.Stats().Limit
		limiterLoadEnding(l, srv, 200, time.Minute, 50*time.Millisecond, (*Permit).Drop)
		if s := l.Stats(); s.Limit != calm || s.InFlight != 0 {
			t.Fatalf("after a minute of dropped overload: %+v, want limit %d as before and nothing in flight", s, calm)
		}
	})
}

func BenchmarkLimiterAcquireRecord(b *testing.B) {
	for _, bc := range []struct {
		name string
		cfg  LimiterConfig
	}{
		{"default", LimiterConfig{}},
		{"max_wait", LimiterConfig{MaxWait: time.Millisecond}},
		{"disabled", LimiterConfig{Disabled: true}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			l := NewLimiter(bc.cfg)
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				p, ok := l.Acquire(ctx)
				if !ok {
					b.Fatal("rejected with nothing in flight")
				}
				p.Record()
			}
		})
	}
}

func BenchmarkLimiterAcquireRecordParallel(b *testing.B) {
	l := NewLimiter(LimiterConfig{MaxLimit: 1000, InitialLimit: 1000})
	ctx := context.Background()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if p, ok := l.Acquire(ctx); ok {
				p.Record()
			}
		}
	})
}

func ExampleLimiter() {
	l := NewLimiter(LimiterConfig{MaxLimit: 1}) // one request at a time
	first, _ := l.Acquire(context.Background())
	go func() {
		time.Sleep(10 * time.Millisecond)
		first.Record() // finished: its latency feeds the limit
	}()
	// Over the limit, a request with time to spare waits for the slot.
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	second, ok := l.Acquire(ctx)
	fmt.Println("second admitted:", ok)
	// One whose deadline leaves no time to wait is refused at once.
	short, cancelShort := context.WithTimeout(context.Background(), 0)
	defer cancelShort()
	_, ok = l.Acquire(short)
	fmt.Println("third admitted:", ok)
	second.Drop() // abandoned by its caller: says nothing about load
	fmt.Printf("%+v\n", l.Stats())
	// Output:
	// second admitted: true
	// third admitted: false
	// {Limit:1 InFlight:0 Admitted:2 Rejected:1 Queued:0 Waited:1 Late:0 Abandoned:0 Overloaded:false Cap:0 Overloads:0}
}
