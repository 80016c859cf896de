package balance_test

import (
	"testing"
	"testing/synctest"
	"time"

	"github.com/shoal-dev/shoal/balance"
)

// Quiet counts from the later of the host's last answer and the moment it
// went busy; a TimedOut, Outrun or Canceled attempt is no answer; a failed
// liveness check makes the host Silent until it answers or starts a new
// quiet period.
func TestQuietAndSilent(t *testing.T) {
	type step struct {
		sleep time.Duration
		do    func(h *balance.Host, held *[]time.Time)
	}
	start := func(h *balance.Host, held *[]time.Time) { *held = append(*held, h.Start()) }
	finish := func(o balance.Outcome) func(*balance.Host, *[]time.Time) {
		return func(h *balance.Host, held *[]time.Time) {
			h.Finish((*held)[0], o)
			*held = (*held)[1:]
		}
	}
	check := func(alive bool) func(*balance.Host, *[]time.Time) {
		return func(h *balance.Host, _ *[]time.Time) {
			if !h.ClaimCheck() {
				t.Fatal("ClaimCheck refused with no check in flight")
			}
			if h.ClaimCheck() {
				t.Fatal("a second check claimed while one is in flight")
			}
			h.CheckDone(alive)
		}
	}
	tests := []struct {
		name       string
		steps      []step
		wantQuiet  time.Duration
		wantSilent bool
	}{
		{"idle", nil, 0, false},
		{"busy since its first request", []step{{0, start}, {300 * time.Millisecond, nil}}, 300 * time.Millisecond, false},
		{"a second request does not restart it", []step{{0, start}, {100 * time.Millisecond, start}, {200 * time.Millisecond, nil}}, 300 * time.Millisecond, false},
		{"an answer restarts it", []step{{0, start}, {0, start}, {100 * time.Millisecond, finish(balance.Success)}, {200 * time.Millisecond, nil}}, 200 * time.Millisecond, false},
		{"a 5xx is an answer too", []step{{0, start}, {0, start}, {100 * time.Millisecond, finish(balance.Failure)}, {200 * time.Millisecond, nil}}, 200 * time.Millisecond, false},
		{"a timeout is no answer", []step{{0, start}, {0, start}, {100 * time.Millisecond, finish(balance.TimedOut)}, {200 * time.Millisecond, nil}}, 300 * time.Millisecond, false},
		{"a refusal is an answer", []step{{0, start}, {0, start}, {100 * time.Millisecond, finish(balance.Refused)}, {200 * time.Millisecond, nil}}, 200 * time.Millisecond, false},
		{"a lost hedge race is no answer", []step{{0, start}, {0, start}, {100 * time.Millisecond, finish(balance.Outrun)}, {200 * time.Millisecond, nil}}, 300 * time.Millisecond, false},
		{"idle again", []step{{0, start}, {100 * time.Millisecond, finish(balance.Canceled)}, {200 * time.Millisecond, nil}}, 0, false},
		{"answered the check", []step{{0, start}, {300 * time.Millisecond, check(true)}, {50 * time.Millisecond, nil}}, 50 * time.Millisecond, false},
		{"failed the check", []step{{0, start}, {300 * time.Millisecond, check(false)}, {50 * time.Millisecond, nil}}, 350 * time.Millisecond, true},
		{"answered after failing the check", []step{{0, start}, {0, start}, {300 * time.Millisecond, check(false)}, {10 * time.Millisecond, finish(balance.Success)}}, 0, false},
		{"a new quiet period after failing the check", []step{{0, start}, {300 * time.Millisecond, check(false)}, {0, finish(balance.TimedOut)}, {10 * time.Millisecond, start}}, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				c := serving("a", "b")
				b := balance.New(balance.Config{})
				h := hostOf(t, b, c, "a")
				var held []time.Time
				for _, s := range tt.steps {
					time.Sleep(s.sleep)
					if s.do != nil {
						s.do(h, &held)
					}
				}
				if got := h.Quiet(time.Now()); got != tt.wantQuiet {
					t.Errorf("Quiet = %v, want %v", got, tt.wantQuiet)
				}
				if got := h.Silent(); got != tt.wantSilent {
					t.Errorf("Silent = %v, want %v", got, tt.wantSilent)
				}
			})
		})
	}
}

// failCheck has h hold a request and fail a liveness check; the request is
// still held.
func failCheck(t *testing.T, h *balance.Host) {
	t.Helper()
	h.Start()
	if !h.ClaimCheck() {
		t.Fatal("ClaimCheck refused with no check in flight")
	}
	h.CheckDone(false)
}

// A failed liveness check ejects the host at once, with no failure counted
// before it: the host held a request and answered nothing, not even the
// check. Failing the check again as a half-open probe ejects it again for
// the next length; the cap still holds.
func TestFailedCheckEjects(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := testConfig()
		b := balance.New(cfg)
		c := serving("a", "b", "c", "d")
		failCheck(t, hostOf(t, b, c, "a"))
		s := stats(b)["a"]
		if !s.Ejected || s.Ejections != 1 || !s.EjectedUntil.Equal(time.Now().Add(cfg.Ejection.BaseTime)) {
			t.Fatalf("after a failed check: %+v, want ejected for %v", s, cfg.Ejection.BaseTime)
		}
		for range 50 {
			if h, _ := b.Pick(c, nil); h.Instance().ID == "a" {
				t.Fatal("picked the host that failed its check")
			}
		}
		time.Sleep(cfg.Ejection.BaseTime)
		failCheck(t, hostOf(t, b, c, "a")) // the half-open probe
		if s := stats(b)["a"]; !s.Ejected || !s.EjectedUntil.Equal(time.Now().Add(2*cfg.Ejection.BaseTime)) {
			t.Fatalf("after a failed probe check: %+v, want ejected for %v", s, 2*cfg.Ejection.BaseTime)
		}
		// Half of 4 hosts may be out at once: b is, c is refused.
		failCheck(t, hostOf(t, b, c, "b"))
		failCheck(t, hostOf(t, b, c, "c"))
		if s := stats(b); !s["b"].Ejected || s["c"].Ejected || s["c"].EjectionsRefused != 1 {
			t.Fatalf("b %+v, c %+v: want b ejected, c refused by the cap", s["b"], s["c"])
		}
	})
}

// Unanswered counts from the host's last answer, or from when the balancer
// first saw it, busy or idle: going busy does not restart it, as it does
// Quiet.
func TestUnanswered(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := balance.New(balance.Config{})
		c := serving("a", "b")
		h := hostOf(t, b, c, "a")
		time.Sleep(time.Second)
		if got := h.Unanswered(time.Now()); got != time.Second {
			t.Fatalf("Unanswered of a host never answered = %v, want 1s since it was first seen", got)
		}
		record(h, 10*time.Millisecond, balance.Success)
		time.Sleep(300 * time.Millisecond)
		record(h, 20*time.Millisecond, balance.Outrun)
		record(h, 30*time.Millisecond, balance.Canceled)
		if got := h.Unanswered(time.Now()); got != 350*time.Millisecond {
			t.Fatalf("Unanswered = %v, want 350ms since the success", got)
		}
		h.Start()
		if !h.ClaimCheck() {
			t.Fatal("ClaimCheck refused")
		}
		h.CheckDone(true)
		if got := h.Unanswered(time.Now()); got != 0 {
			t.Fatalf("Unanswered after a passed check = %v, want 0", got)
		}
	})
}
