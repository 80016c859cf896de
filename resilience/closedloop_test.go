package resilience

import (
	"context"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// stallingPool is a workerPool whose work slows now and then (a database
// checkpoint, another writer holding the file's lock): every period, for
// stall, each request it serves takes slow longer. Completions then come
// in waves, as bench/startup saw at playback (three instances writing one
// SQLite file).
type stallingPool struct {
	*workerPool
	begin         time.Time
	period, stall time.Duration
	slow          time.Duration
}

// serve serves one admitted request, slow longer during a stall.
func (s *stallingPool) serve(ctx context.Context) bool {
	ok := s.workerPool.serve(ctx)
	if into := time.Since(s.begin) % s.period; into < s.stall {
		time.Sleep(s.slow)
	}
	return ok
}

// A closed loop whose callers spend time elsewhere between requests (a
// journey's other steps), against an instance whose completions come in
// waves: its queue grows during each stall and drains after it, with
// arrivals no higher than completions. That is no open-loop excess, and no
// request is refused.
func TestLimiterClosedLoopThroughStalls(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := NewLimiter(LimiterConfig{})
		srv := &stallingPool{workerPool: newWorkerPool(8, 5*time.Millisecond), begin: time.Now(), period: 700 * time.Millisecond, stall: 400 * time.Millisecond, slow: 100 * time.Millisecond}
		var mu sync.Mutex
		var out []outcome
		var wg sync.WaitGroup
		end := time.Now().Add(20 * time.Second)
		for i := range 128 {
			wg.Go(func() {
				think := 200*time.Millisecond + time.Duration(i)*3*time.Millisecond
				for time.Now().Before(end) {
					time.Sleep(think)
					o := request(l, srv, 5*time.Second)
					mu.Lock()
					out = append(out, o)
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		s := summarise(out)
		t.Logf("%+v, limiter %+v", s, l.Stats())
		if st := l.Stats(); st.Overloads != 0 || s.refused != 0 {
			t.Errorf("%d overload episodes, %d of %d refused; want none", st.Overloads, s.refused, s.offered)
		}
	})
}
