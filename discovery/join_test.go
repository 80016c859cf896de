package discovery

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/hashicorp/memberlist"
)

// TestRejoinerBackoff checks the retry schedule in a synctest bubble, where
// time is virtual: waits double from JoinRetry to JoinRetryMax (±20 %
// jitter), reset after a success, and a member that is no longer alone is
// only rechecked every JoinRetryMax.
func TestRejoinerBackoff(t *testing.T) {
	const ms = time.Millisecond
	tests := []struct {
		name      string
		fails     int // join attempts that fail before one succeeds
		wantWaits []time.Duration
	}{
		{"first try joins", 0, nil},
		{"seed late", 3, []time.Duration{100 * ms, 200 * ms, 400 * ms}},
		{"capped", 6, []time.Duration{100 * ms, 200 * ms, 400 * ms, 800 * ms, 800 * ms, 800 * ms}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var attempts []time.Time
				var joined atomic.Bool
				r := rejoiner{
					seeds: []string{"seed:1"},
					join: func([]string) (int, error) {
						attempts = append(attempts, time.Now())
						if len(attempts) <= tt.fails {
							return 0, errors.New("connection refused")
						}
						joined.Store(true)
						return 1, nil
					},
					alone:   func() bool { return !joined.Load() },
					initial: 100 * ms,
					max:     800 * ms,
					log:     slog.New(slog.NewTextHandler(io.Discard, nil)),
				}
				// Long enough for every retry, then several "still joined?" checks.
				runRejoiner(t, &r)(10 * time.Second)

				if len(attempts) != tt.fails+1 {
					t.Fatalf("%d join attempts, want %d (no joins once a peer is known)", len(attempts), tt.fails+1)
				}
				for i, want := range tt.wantWaits {
					got := attempts[i+1].Sub(attempts[i])
					if lo, hi := want*8/10, want*12/10; got < lo || got > hi {
						t.Errorf("wait %d = %v, want %v ±20%%", i, got, want)
					}
				}
			})
		})
	}
}

// A member that loses every peer goes back to trying its seeds.
func TestRejoinerRejoinsWhenAlone(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var alone atomic.Bool
		var joins atomic.Int32
		r := rejoiner{
			seeds:   []string{"seed:1"},
			join:    func([]string) (int, error) { joins.Add(1); alone.Store(false); return 1, nil },
			alone:   alone.Load,
			initial: 100 * time.Millisecond,
			max:     time.Second,
			log:     slog.New(slog.NewTextHandler(io.Discard, nil)),
		}
		alone.Store(true)
		stop := runRejoiner(t, &r)
		time.Sleep(5 * time.Second)
		if n := joins.Load(); n != 1 {
			t.Fatalf("%d joins while connected, want 1", n)
		}
		alone.Store(true) // every peer died
		time.Sleep(1500 * time.Millisecond)
		if n := joins.Load(); n != 2 {
			t.Fatalf("%d joins after losing every peer, want 2", n)
		}
		stop(0)
	})
}

// Peers that joined this member are not its seeds: a host's supervisor
// whose own instances joined it while the other hosts were unreachable
// keeps trying the seeds until one answers (issue: a host started before its
// seeds stayed a cluster of its own).
func TestRejoinerTriesSeedsDespitePeers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var joins atomic.Int32
		r := rejoiner{
			seeds: []string{"seed:1"},
			join: func([]string) (int, error) {
				if joins.Add(1) <= 2 {
					return 0, errors.New("no route to host")
				}
				return 1, nil
			},
			alone:   func() bool { return joins.Load() == 0 }, // its own instances join it after the first attempt
			initial: 100 * time.Millisecond,
			max:     time.Second,
			log:     slog.New(slog.NewTextHandler(io.Discard, nil)),
		}
		runRejoiner(t, &r)(5 * time.Second)
		if n := joins.Load(); n != 3 {
			t.Fatalf("%d join attempts, want 3: two failures, then one success and no more", n)
		}
	})
}

func TestLostMembers(t *testing.T) {
	var l lostMembers
	if _, ok := l.pick(time.Now()); ok {
		t.Fatal("picked from an empty set")
	}
	l.failed(&memberlist.Node{Name: "left", Addr: net.IPv4(10, 0, 0, 1), Port: 1, State: memberlist.StateLeft})
	l.failed(&memberlist.Node{Name: "dead", Addr: net.IPv4(10, 0, 0, 2), Port: 2, State: memberlist.StateDead})
	if a, ok := l.pick(time.Now()); !ok || a != "10.0.0.2:2" {
		t.Errorf("pick = %q, %v; want the dead member only (one that left is not reached back)", a, ok)
	}
	if _, ok := l.pick(time.Now().Add(reconnectFor + time.Second)); ok {
		t.Error("a member lost longer than reconnectFor is still tried")
	}
	l.failed(&memberlist.Node{Name: "dead", Addr: net.IPv4(10, 0, 0, 2), Port: 2, State: memberlist.StateDead})
	l.back("dead")
	if _, ok := l.pick(time.Now()); ok {
		t.Error("a member that is back is still tried")
	}
}

// runRejoiner runs r until the returned stop is called; stop first sleeps
// for d (virtual time inside a synctest bubble), then cancels r and waits
// for it to return.
func runRejoiner(t *testing.T, r *rejoiner) (stop func(d time.Duration)) {
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { defer close(done); r.run(ctx) }()
	return func(d time.Duration) {
		time.Sleep(d)
		cancel()
		<-done
	}
}
