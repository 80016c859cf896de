package client

import (
	"context"
	"errors"
	"net"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// At most n dials to one address are in flight; others wait for a slot,
// give up with their context, or with dialTimeout; other addresses are not
// held up; nothing is kept once no dial is made or waits.
func TestLimitDials(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		var mu sync.Mutex
		inFlight, most := map[string]int{}, map[string]int{}
		l := limitDials(2, func(ctx context.Context, _, addr string) (net.Conn, error) {
			mu.Lock()
			inFlight[addr]++
			most[addr] = max(most[addr], inFlight[addr])
			mu.Unlock()
			defer func() {
				mu.Lock()
				inFlight[addr]--
				mu.Unlock()
			}()
			select {
			case <-release:
				c1, c2 := net.Pipe()
				c2.Close()
				return c1, nil
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		})
		var wg sync.WaitGroup
		errs := make(chan error, 8)
		for range 5 {
			wg.Go(func() {
				c, err := l.DialContext(context.Background(), "tcp", "a:1")
				if err == nil {
					c.Close()
				}
				errs <- err
			})
		}
		wg.Go(func() { // another address has slots of its own
			c, err := l.DialContext(context.Background(), "tcp", "b:1")
			if err == nil {
				c.Close()
			}
			errs <- err
		})
		synctest.Wait() // two dials to a:1 hold the slots, three wait
		canceled, cancel := context.WithCancel(context.Background())
		wg.Go(func() {
			_, err := l.DialContext(canceled, "tcp", "a:1")
			errs <- err
		})
		synctest.Wait()
		mu.Lock()
		if inFlight["a:1"] != 2 || inFlight["b:1"] != 1 {
			t.Errorf("dials in flight: %v, want 2 to a:1 (the limit) and 1 to b:1", inFlight)
		}
		mu.Unlock()
		cancel()
		synctest.Wait()
		var op *net.OpError
		if err := <-errs; !errors.As(err, &op) || op.Op != "dial" || !errors.Is(err, context.Canceled) {
			t.Errorf("a dial whose context ends while it waits: %v, want a dial error (never sent) with context.Canceled", err)
		}
		close(release)
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Errorf("dial: %v", err)
			}
		}
		if most["a:1"] != 2 {
			t.Errorf("at most %d dials at once to a:1, want 2", most["a:1"])
		}

		// A dial that never completes (a frozen process) ends at dialTimeout.
		stuck := limitDials(1, func(ctx context.Context, _, _ string) (net.Conn, error) {
			<-ctx.Done()
			return nil, ctx.Err()
		})
		start := time.Now()
		if _, err := stuck.DialContext(context.Background(), "tcp", "c:1"); !errors.Is(err, context.DeadlineExceeded) || time.Since(start) != dialTimeout {
			t.Errorf("stuck dial: %v after %v, want the deadline after %v", err, time.Since(start), dialTimeout)
		}
		if n := len(l.slots) + len(stuck.slots); n != 0 {
			t.Errorf("%d addresses still have slots after every dial ended", n)
		}
	})
}
