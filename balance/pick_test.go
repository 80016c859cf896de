package balance_test

import (
	"errors"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/shoal-dev/shoal/balance"
	"github.com/shoal-dev/shoal/discovery"
)

// eject fails the host of id ConsecutiveFailures times.
func eject(t *testing.T, b *balance.Balancer, c []discovery.Instance, id string) {
	t.Helper()
	h := hostOf(t, b, c, id)
	// A host on probation (half-open) is ejected again by its first failure.
	for range balance.DefaultConsecutiveFailures {
		record(h, time.Millisecond, balance.Failure)
		if stats(b)[id].Ejected {
			return
		}
	}
	if !stats(b)[id].Ejected {
		t.Fatalf("%s not ejected", id)
	}
}

func TestPick(t *testing.T) {
	abc := serving("a", "b", "c")
	tests := []struct {
		name  string
		cands []discovery.Instance
		tried []string
		setup func(t *testing.T, b *balance.Balancer, c []discovery.Instance)
		want  []string // IDs Pick may return; empty: ErrNoInstance
	}{
		{name: "nil candidates"},
		{name: "empty candidates", cands: []discovery.Instance{}},
		{name: "single", cands: serving("a"), want: []string{"a"}},
		{name: "single tried", cands: serving("a"), tried: []string{"a"}},
		{name: "all tried", cands: abc, tried: []string{"c", "a", "b"}},
		{name: "never tried", cands: abc, tried: []string{"a", "b"}, want: []string{"c"}},
		{name: "unknown tried ID ignored", cands: abc, tried: []string{"x"}, want: []string{"a", "b", "c"}},
		{
			name:  "draining skipped while a serving one exists",
			cands: withState(abc, discovery.StateDraining, "a", "c"),
			setup: func(t *testing.T, b *balance.Balancer, c []discovery.Instance) {
				// Even a slow, busy serving host beats an idle draining one.
				h := hostOf(t, b, c, "b")
				record(h, time.Second, balance.Success)
				h.Start()
			},
			want: []string{"b"},
		},
		{
			name:  "draining as last resort",
			cands: withState(abc, discovery.StateDraining, "a", "c"),
			tried: []string{"b"},
			want:  []string{"a", "c"},
		},
		{name: "all draining", cands: withState(abc, discovery.StateDraining, "a", "b", "c"), want: []string{"a", "b", "c"}},
		{
			name:  "unknown state ranks with draining",
			cands: withState(abc, "", "a", "c"),
			want:  []string{"b"},
		},
		{
			name:  "ejected skipped while a healthy one exists",
			cands: abc,
			setup: func(t *testing.T, b *balance.Balancer, c []discovery.Instance) { eject(t, b, c, "a") },
			want:  []string{"b", "c"},
		},
		{
			name:  "ejected picked when the only one not tried",
			cands: abc,
			tried: []string{"b", "c"},
			setup: func(t *testing.T, b *balance.Balancer, c []discovery.Instance) { eject(t, b, c, "a") },
			want:  []string{"a"},
		},
		{
			name:  "ejected serving preferred to draining",
			cands: withState(abc, discovery.StateDraining, "b", "c"),
			setup: func(t *testing.T, b *balance.Balancer, c []discovery.Instance) { eject(t, b, c, "a") },
			want:  []string{"a"},
		},
		{
			name:  "in-flight steers between equal hosts",
			cands: serving("a", "b"),
			setup: func(t *testing.T, b *balance.Balancer, c []discovery.Instance) {
				ha, hb := hostOf(t, b, c, "a"), hostOf(t, b, c, "b")
				record(ha, 10*time.Millisecond, balance.Success)
				record(hb, 10*time.Millisecond, balance.Success)
				ha.Start()
			},
			want: []string{"b"},
		},
		{
			name:  "lower latency wins between two",
			cands: serving("a", "b"),
			setup: func(t *testing.T, b *balance.Balancer, c []discovery.Instance) {
				record(hostOf(t, b, c, "a"), 50*time.Millisecond, balance.Success)
				record(hostOf(t, b, c, "b"), 10*time.Millisecond, balance.Success)
			},
			want: []string{"b"},
		},
		{
			name:  "new host without answer not flooded",
			cands: serving("a", "b"),
			setup: func(t *testing.T, b *balance.Balancer, c []discovery.Instance) {
				record(hostOf(t, b, c, "a"), time.Second, balance.Success)
				hostOf(t, b, c, "b").Start() // b: no estimate, one in flight
			},
			want: []string{"a"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				b := balance.New(testConfig())
				if tt.setup != nil {
					tt.setup(t, b, tt.cands)
				}
				got := map[string]int{}
				for range 200 {
					h, err := b.Pick(tt.cands, tt.tried)
					if len(tt.want) == 0 {
						if !errors.Is(err, balance.ErrNoInstance) || h != nil {
							t.Fatalf("Pick = %v, %v; want nil, ErrNoInstance", h, err)
						}
						return
					}
					if err != nil {
						t.Fatalf("Pick: %v", err)
					}
					got[h.Instance().ID]++
				}
				var ids []string
				for id := range got {
					ids = append(ids, id)
				}
				sort.Strings(ids)
				if diff := cmp.Diff(tt.want, ids); diff != "" {
					t.Errorf("picked IDs (-want +got):\n%s", diff)
				}
			})
		})
	}
}

// TestPickDistribution checks P2C's shares with fixed costs: equal hosts
// share evenly, and a slow host loses every comparison.
func TestPickDistribution(t *testing.T) {
	const picks = 20000
	tests := []struct {
		name      string
		latencies map[string]time.Duration // absent: no estimate yet
		min, max  map[string]float64       // bounds on each host's share
	}{
		{
			name:      "new hosts share evenly",
			latencies: map[string]time.Duration{},
			min:       map[string]float64{"a": 0.2, "b": 0.2, "c": 0.2, "d": 0.2},
			max:       map[string]float64{"a": 0.3, "b": 0.3, "c": 0.3, "d": 0.3},
		},
		{
			name:      "equal hosts share evenly",
			latencies: map[string]time.Duration{"a": 5 * time.Millisecond, "b": 5 * time.Millisecond, "c": 5 * time.Millisecond, "d": 5 * time.Millisecond},
			min:       map[string]float64{"a": 0.2, "b": 0.2, "c": 0.2, "d": 0.2},
			max:       map[string]float64{"a": 0.3, "b": 0.3, "c": 0.3, "d": 0.3},
		},
		{
			// Expected shares with costs a<b<c<d: 3/6, 2/6, 1/6, 0.
			name:      "ordered by latency",
			latencies: map[string]time.Duration{"a": 1 * time.Millisecond, "b": 2 * time.Millisecond, "c": 3 * time.Millisecond, "d": 4 * time.Millisecond},
			min:       map[string]float64{"a": 0.45, "b": 0.28, "c": 0.12, "d": 0},
			max:       map[string]float64{"a": 0.55, "b": 0.38, "c": 0.22, "d": 0},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				c := serving("a", "b", "c", "d")
				b := balance.New(balance.DefaultConfig())
				// Equal latencies must be recorded at the same instant, or
				// the earlier ones decay a little further and win.
				byLatency := map[time.Duration][]*balance.Host{}
				for id, d := range tt.latencies {
					byLatency[d] = append(byLatency[d], hostOf(t, b, c, id))
				}
				for d, hosts := range byLatency {
					var wg sync.WaitGroup
					for _, h := range hosts {
						wg.Go(func() { record(h, d, balance.Success) })
					}
					wg.Wait()
				}
				got := map[string]int{}
				for range picks {
					h, err := b.Pick(c, nil)
					if err != nil {
						t.Fatal(err)
					}
					got[h.Instance().ID]++
				}
				for id := range tt.min {
					share := float64(got[id]) / picks
					if share < tt.min[id] || share > tt.max[id] {
						t.Errorf("%s share %.3f, want in [%.2f, %.2f] (picks %v)", id, share, tt.min[id], tt.max[id], got)
					}
				}
			})
		})
	}
}

// TestPickUnderLoad runs a closed loop of workers against hosts with fixed
// latencies in fake time: the slow host gets a small share, and a host that
// joins takes traffic at once without being flooded before it answers.
func TestPickUnderLoad(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		latency := map[string]time.Duration{
			"fast-1": 5 * time.Millisecond, "fast-2": 5 * time.Millisecond, "fast-3": 5 * time.Millisecond,
			"slow": 50 * time.Millisecond,
			"new":  200 * time.Millisecond,
		}
		b := balance.New(balance.DefaultConfig())
		var cands atomic.Pointer[[]discovery.Instance]
		before := serving("fast-1", "fast-2", "fast-3", "slow")
		cands.Store(&before)

		var mu sync.Mutex
		served := map[string]int{}
		stop := time.Now().Add(20 * time.Second)
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				for time.Now().Before(stop) {
					h, err := b.Pick(*cands.Load(), nil)
					if err != nil {
						t.Error(err)
						return
					}
					id := h.Instance().ID
					record(h, latency[id], balance.Success)
					mu.Lock()
					served[id]++
					mu.Unlock()
				}
			})
		}

		time.Sleep(10 * time.Second)
		mu.Lock()
		total := 0
		for _, n := range served {
			total += n
		}
		if share := float64(served["slow"]) / float64(total); share > 0.05 {
			t.Errorf("slow host share %.3f after 10s, want <= 0.05 (served %v)", share, served)
		}
		mu.Unlock()

		// "new" joins; its first answer takes 200ms. Until then it gets
		// one request at a time, not a flood from the 8 callers: one, or
		// two when a second caller picked it in the instant between the
		// first one's Pick and its Start.
		after := append(slices.Clone(before), serving("new")...)
		cands.Store(&after)
		time.Sleep(100 * time.Millisecond)
		if n := stats(b)["new"].InFlight; n < 1 || n > 2 {
			t.Errorf("new host in flight before its first answer = %d, want 1 (2 at most)", n)
		}
		time.Sleep(200 * time.Millisecond)
		mu.Lock()
		if served["new"] < 1 {
			t.Errorf("new host served %d requests 300ms after joining, want >= 1", served["new"])
		}
		mu.Unlock()

		wg.Wait()
		for id, s := range stats(b) {
			if s.InFlight != 0 {
				t.Errorf("%s: %d in flight after all requests ended", id, s.InFlight)
			}
		}
	})
}

func TestPickZeroAllocs(t *testing.T) {
	c := serving("a", "b", "c", "d", "e", "f", "g", "h", "i", "j")
	b := balance.New(balance.DefaultConfig())
	tried := []string{"c"}
	for _, id := range []string{"a", "b"} {
		h := hostOf(t, b, c, id)
		start := h.Start()
		h.Finish(start.Add(-time.Millisecond), balance.Success)
	}
	if n := testing.AllocsPerRun(1000, func() {
		h, err := b.Pick(c, tried)
		if err != nil {
			t.Fatal(err)
		}
		h.Finish(h.Start(), balance.Success)
	}); n != 0 {
		t.Errorf("Pick+Start+Finish allocates %v times, want 0", n)
	}
}

// TestRefusedIsNoBlackHole: a host that refuses every request at once (an
// instance at its capacity) would look idle, and so cheapest, if a refusal
// were neutral (Canceled): it would get most of the picks and refuse them.
// Charged as Refused, it gets a small share while the others serve.
func TestRefusedIsNoBlackHole(t *testing.T) {
	for _, tt := range []struct {
		o         balance.Outcome
		low, high float64 // bounds of the refusing host's share of picks
	}{
		{balance.Canceled, 0.5, 1}, // the black hole, as it was
		{balance.Refused, 0, 0.1},
	} {
		t.Run(tt.o.String(), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				b := balance.New(balance.DefaultConfig())
				c := serving("full", "b", "c")
				var mu sync.Mutex
				picked := map[string]int{}
				stop := time.Now().Add(10 * time.Second)
				var wg sync.WaitGroup
				for range 8 {
					wg.Go(func() {
						for time.Now().Before(stop) {
							h, err := b.Pick(c, nil)
							if err != nil {
								t.Error(err)
								return
							}
							id := h.Instance().ID
							if id == "full" {
								record(h, time.Millisecond, tt.o)
							} else {
								record(h, 20*time.Millisecond, balance.Success)
							}
							mu.Lock()
							picked[id]++
							mu.Unlock()
						}
					})
				}
				wg.Wait()
				share := float64(picked["full"]) / float64(picked["full"]+picked["b"]+picked["c"])
				if share < tt.low || share > tt.high {
					t.Errorf("refusing host's share of picks %.3f, want in [%v, %v] (picked %v)", share, tt.low, tt.high, picked)
				}
			})
		})
	}
}
