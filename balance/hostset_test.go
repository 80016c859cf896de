package balance_test

import (
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/shoal-dev/shoal/balance"
	"github.com/shoal-dev/shoal/discovery"
)

func ids(b *balance.Balancer) []string {
	var out []string
	for _, s := range b.Stats() {
		out = append(out, s.ID)
	}
	return out
}

func TestHostSetRemovedForgotten(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := balance.New(testConfig())
		abc := serving("c", "a", "b")
		record(hostOf(t, b, abc, "c"), 10*time.Millisecond, balance.Failure)
		if diff := cmp.Diff([]string{"a", "b", "c"}, ids(b)); diff != "" {
			t.Fatalf("Stats IDs (-want +got):\n%s", diff)
		}
		ab := serving("a", "b")
		if _, err := b.Pick(ab, nil); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff([]string{"a", "b"}, ids(b)); diff != "" {
			t.Fatalf("Stats IDs after c left (-want +got):\n%s", diff)
		}
		// c comes back as a new host.
		hostOf(t, b, serving("a", "b", "c"), "c")
		if got, want := stats(b)["c"], (balance.HostStats{ID: "c", Addr: "c:80", State: discovery.StateServing, Breaker: balance.BreakerClosed}); got != want {
			t.Errorf("returning host stats = %+v, want fresh %+v", got, want)
		}
		// No candidates: everything is forgotten.
		if _, err := b.Pick(nil, nil); err == nil {
			t.Fatal("Pick(nil) succeeded")
		}
		if got := b.Stats(); got != nil {
			t.Errorf("Stats after Pick(nil) = %v, want nil", got)
		}
	})
}

func TestHostSetStable(t *testing.T) {
	b := balance.New(testConfig())
	ab := serving("a", "b")
	h := hostOf(t, b, ab, "a")
	h.Start()

	steps := []struct {
		name  string
		cands []discovery.Instance
	}{
		{"same IDs in a new slice", slices.Clone(ab)},
		{"instance added", serving("a", "b", "c")},
		{"order changed", serving("c", "b", "a")},
		{"state changed", withState(serving("c", "b", "a"), discovery.StateDraining, "a")},
		{"back to the first slice", ab},
	}
	for _, s := range steps {
		if got := hostOf(t, b, s.cands, "a"); got != h {
			t.Fatalf("%s: Host of a changed", s.name)
		}
		if n := stats(b)["a"].InFlight; n != 1 {
			t.Fatalf("%s: a has %d in flight, want 1", s.name, n)
		}
		want := s.cands[slices.IndexFunc(s.cands, func(in discovery.Instance) bool { return in.ID == "a" })]
		if got := h.Instance(); got != want {
			t.Errorf("%s: Instance() = %+v, want %+v", s.name, got, want)
		}
	}
}

// TestHostRemovedFinish: requests on a host that left end without effect
// on the current hosts.
func TestHostRemovedFinish(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := balance.New(testConfig())
		abc := serving("a", "b", "c")
		h := hostOf(t, b, abc, "c")
		start := h.Start()
		b.Pick(serving("a", "b"), nil)
		h.Finish(start, balance.Failure)
		for range 5 {
			record(h, time.Millisecond, balance.Failure)
		}
		eject(t, b, serving("a", "b"), "a") // the cap (1 of 2) is still free
		if diff := cmp.Diff([]string{"a", "b"}, ids(b)); diff != "" {
			t.Errorf("Stats IDs (-want +got):\n%s", diff)
		}
	})
}

// TestConcurrent hammers one Balancer from many goroutines while the
// candidate slice changes; run with -race. Hosts present throughout must end
// with nothing in flight.
func TestConcurrent(t *testing.T) {
	sets := [][]discovery.Instance{
		serving("a", "b", "c"),
		serving("a", "b", "c", "d"),
		withState(serving("a", "b", "c"), discovery.StateDraining, "b"),
	}
	b := balance.New(testConfig())
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			var tried []string
			for i := range 2000 {
				c := sets[(g+i/100)%len(sets)]
				if i%7 == 0 {
					tried = tried[:0]
				}
				h, err := b.Pick(c, tried)
				if err != nil {
					tried = tried[:0]
					continue
				}
				tried = append(tried, h.Instance().ID)
				start := h.Start()
				h.Finish(start, balance.Outcome(rand.IntN(4)))
				if i%50 == 0 {
					b.Stats()
				}
			}
		})
	}
	wg.Wait()
	b.Pick(sets[0], nil)
	for _, s := range b.Stats() {
		if s.InFlight != 0 {
			t.Errorf("%s: %d in flight", s.ID, s.InFlight)
		}
	}
}
