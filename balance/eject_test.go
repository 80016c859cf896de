package balance_test

import (
	"fmt"
	"testing"
	"testing/synctest"
	"time"

	"github.com/shoal-dev/shoal/balance"
)

func TestEjectionThreshold(t *testing.T) {
	S, F, CF, C := balance.Success, balance.Failure, balance.ConnectFailure, balance.Canceled
	tests := []struct {
		name        string
		outcomes    []balance.Outcome
		disabled    bool
		wantEjected bool
		wantConsec  int64
	}{
		{name: "two failures", outcomes: []balance.Outcome{F, F}, wantConsec: 2},
		{name: "three failures", outcomes: []balance.Outcome{F, F, F}, wantEjected: true},
		{name: "three connect failures", outcomes: []balance.Outcome{CF, CF, CF}, wantEjected: true},
		{name: "mixed failures", outcomes: []balance.Outcome{F, CF, F}, wantEjected: true},
		{name: "success resets", outcomes: []balance.Outcome{F, F, S, F, F}, wantConsec: 2},
		{name: "canceled is neutral", outcomes: []balance.Outcome{F, F, C, F}, wantEjected: true},
		{name: "canceled does not reset", outcomes: []balance.Outcome{F, C, C, F}, wantConsec: 2},
		{name: "disabled", outcomes: []balance.Outcome{F, F, F, F, F}, disabled: true, wantConsec: 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				cfg := testConfig()
				cfg.Ejection.Disabled = tt.disabled
				b := balance.New(cfg)
				c := serving("a", "b", "c")
				h := hostOf(t, b, c, "a")
				for _, o := range tt.outcomes {
					record(h, time.Millisecond, o)
				}
				s := stats(b)["a"]
				if s.Ejected != tt.wantEjected || s.ConsecutiveFailures != tt.wantConsec {
					t.Errorf("Ejected, ConsecutiveFailures = %v, %d; want %v, %d", s.Ejected, s.ConsecutiveFailures, tt.wantEjected, tt.wantConsec)
				}
				wantEjections := int64(0)
				if tt.wantEjected {
					wantEjections = 1
				}
				if s.Ejections != wantEjections {
					t.Errorf("Ejections = %d, want %d", s.Ejections, wantEjections)
				}
			})
		})
	}
}

func TestEjectionReturnsAfterBaseTime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := balance.New(testConfig())
		c := serving("a", "b")
		eject(t, b, c, "a")
		s := stats(b)["a"]
		if want := time.Now().Add(time.Second); !s.EjectedUntil.Equal(want) {
			t.Errorf("EjectedUntil = %v, want %v", s.EjectedUntil, want)
		}
		// b is busy, without an answer yet: only ejection keeps a out.
		hostOf(t, b, c, "b").Start()
		for range 50 {
			if h, _ := b.Pick(c, nil); h.Instance().ID != "b" {
				t.Fatalf("picked ejected host %s", h.Instance().ID)
			}
		}
		time.Sleep(time.Second - time.Nanosecond)
		if !stats(b)["a"].Ejected {
			t.Fatal("host back before BaseTime")
		}
		time.Sleep(time.Nanosecond)
		s = stats(b)["a"]
		if s.Ejected || !s.EjectedUntil.IsZero() {
			t.Fatalf("host still ejected after BaseTime: %+v", s)
		}
		if h, _ := b.Pick(c, nil); h.Instance().ID != "a" {
			t.Errorf("picked %s, want the returned host a", h.Instance().ID)
		}
	})
}

func TestEjectionTimeGrows(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := balance.New(testConfig()) // BaseTime 1s, MaxTime 5s
		c := serving("a", "b")
		ejectFor := func() time.Duration {
			eject(t, b, c, "a")
			d := time.Until(stats(b)["a"].EjectedUntil)
			time.Sleep(d) // until it is back
			return d
		}
		for i, want := range []time.Duration{1, 2, 4, 5, 5} {
			if got := ejectFor(); got != want*time.Second {
				t.Errorf("ejection %d lasted %v, want %v", i+1, got, want*time.Second)
			}
		}
		// Behaving for MaxTime starts over from BaseTime.
		time.Sleep(5 * time.Second)
		if got := ejectFor(); got != time.Second {
			t.Errorf("ejection after behaving lasted %v, want 1s", got)
		}
		if got := ejectFor(); got != 2*time.Second {
			t.Errorf("next ejection lasted %v, want 2s", got)
		}
		if n := stats(b)["a"].Ejections; n != 7 {
			t.Errorf("Ejections = %d, want 7", n)
		}
	})
}

func TestEjectionCap(t *testing.T) {
	tests := []struct {
		hosts    int
		fraction float64
		want     int
	}{
		{hosts: 1, fraction: 0.5, want: 0},
		{hosts: 1, fraction: 1, want: 0},
		{hosts: 2, fraction: 0.5, want: 1},
		{hosts: 2, fraction: 1, want: 1},
		{hosts: 3, fraction: 0.5, want: 1},
		{hosts: 4, fraction: 0.1, want: 1}, // at least one
		{hosts: 5, fraction: 0.3, want: 1},
		{hosts: 10, fraction: 0.5, want: 5},
		{hosts: 10, fraction: 0.3, want: 3},
		{hosts: 10, fraction: 1, want: 9}, // never all
		{hosts: 100, fraction: 0.29, want: 29},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%d hosts %v", tt.hosts, tt.fraction), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				cfg := testConfig()
				cfg.Ejection.MaxFraction = tt.fraction
				b := balance.New(cfg)
				var ids []string
				for i := range tt.hosts {
					ids = append(ids, fmt.Sprintf("h%03d", i))
				}
				c := serving(ids...)
				for _, id := range ids {
					h := hostOf(t, b, c, id)
					for range cfg.Ejection.ConsecutiveFailures {
						record(h, time.Millisecond, balance.Failure)
					}
				}
				ejected, refused := 0, 0
				for _, s := range b.Stats() {
					if s.Ejected {
						ejected++
					}
					if s.EjectionsRefused > 0 {
						refused++
					}
				}
				if ejected != tt.want || refused != tt.hosts-tt.want {
					t.Errorf("ejected %d, refused %d; want %d, %d", ejected, refused, tt.want, tt.hosts-tt.want)
				}
				if _, err := b.Pick(c, nil); err != nil {
					t.Errorf("Pick with every host failing: %v", err)
				}
			})
		})
	}
}

// TestEjectionCapFrees: a refused host is ejected on its next failure once
// an ejected one is back.
func TestEjectionCapFrees(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := balance.New(testConfig())
		c := serving("a", "b")
		eject(t, b, c, "a")
		hb := hostOf(t, b, c, "b")
		for range 3 {
			record(hb, time.Millisecond, balance.Failure)
		}
		if s := stats(b)["b"]; s.Ejected || s.EjectionsRefused != 1 {
			t.Fatalf("b: %+v; want not ejected, 1 refused", s)
		}
		time.Sleep(time.Second) // a is back
		record(hb, time.Millisecond, balance.Failure)
		if s := stats(b)["b"]; !s.Ejected {
			t.Fatalf("b not ejected once the cap allowed it: %+v", s)
		}
	})
}

// TestEjectionCapCurrentSet: the cap counts the hosts of the current
// candidates only.
func TestEjectionCapCurrentSet(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := balance.New(testConfig())
		abcd := serving("a", "b", "c", "d")
		eject(t, b, abcd, "a")
		ab := serving("a", "b") // c and d are gone: 1 of 2 may be ejected
		hb := hostOf(t, b, ab, "b")
		for range 3 {
			record(hb, time.Millisecond, balance.Failure)
		}
		if s := stats(b)["b"]; s.Ejected || s.EjectionsRefused != 1 {
			t.Fatalf("b: %+v; want refused by the cap", s)
		}
	})
}
