package e2e

import (
	"encoding/json"
	"net/http"
	"syscall"
	"testing"
	"time"
)

// The acceptance: a caller sends a steady ≥ 200 requests per second
// for ≥ 10 s to 3 instances while one of them is killed, terminated, frozen,
// or a 4th is added. Every request has a 1 s deadline; none may fail. The
// instance hit by the fault is the busiest one at that moment.
const (
	rate     = 250
	runFor   = 12 * time.Second
	deadline = time.Second
	faultAt  = 4 * time.Second
)

// fleet starts a caller and 3 hello instances.
func fleet(t *testing.T) (*caller, []*proc) {
	c := newCaller(t)
	ps := make([]*proc, 3)
	for i := range ps {
		ps[i] = c.startHello(t, i)
	}
	return c, ps
}

func checkNoFailures(t *testing.T, rs []result) summary {
	t.Helper()
	s := summarize(rs)
	t.Logf("load: %v", s)
	if s.failed > 0 {
		t.Errorf("%d of %d requests failed", s.failed, s.total)
	}
	if s.rate < 200 {
		t.Errorf("offered rate %.0f/s, below the 200/s the test must sustain", s.rate)
	}
	return s
}

// (a) SIGKILL: GETs only — a non-idempotent request in flight on a killed
// process is rightly not retried.
func TestKillOneInstance(t *testing.T) {
	c, ps := fleet(t)
	var victim *proc
	var killedAt time.Time
	dropped := make(chan time.Duration, 1)
	rs := load(c.tr.Client(), rate, runFor, deadline, false, event{faultAt, func() {
		victim = ps[c.busiest()]
		var live []string // admin addresses of the instances that stay up
		for _, p := range ps {
			if p != victim {
				live = append(live, p.admin)
			}
		}
		killedAt = time.Now()
		victim.signal(syscall.SIGKILL)
		go func() { dropped <- untilEveryViewDrops(c, live, victim.id, killedAt) }()
	}})
	s := checkNoFailures(t, rs)
	t.Logf("killed the busiest instance, %s, after it served %d requests", victim.id, s.perInstance[victim.id])
	last := c.lastAttemptOn(victim.id).Sub(killedAt)
	t.Logf("SIGKILL → last request sent to the dead instance: %v", last.Round(time.Microsecond))
	if last > 5*time.Second {
		t.Errorf("requests still sent to the dead instance %v after SIGKILL", last)
	}
	select {
	case d := <-dropped:
		t.Logf("SIGKILL → every member's catalog dropped it: %v", d.Round(time.Millisecond))
		if d > 10*time.Second {
			t.Errorf("catalogs kept the dead instance for %v", d)
		}
	case <-time.After(15 * time.Second):
		t.Error("some catalog still lists the dead instance 15s after SIGKILL")
	}
}

// untilEveryViewDrops polls the caller's catalog and every live instance's
// /infoz (at its admin address) until none lists id, and returns how long
// after since that was.
func untilEveryViewDrops(c *caller, live []string, id string, since time.Time) time.Duration {
	for time.Since(since) < 15*time.Second {
		gone := !c.has(id)
		for _, addr := range live {
			gone = gone && !seesAllThree(addr)
		}
		if gone {
			return time.Since(since)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return time.Since(since)
}

// seesAllThree asks the instance whose admin listener is at addr, through
// /infoz, whether it still counts 3 hello instances, that is, the dead one
// too.
func seesAllThree(addr string) bool {
	resp, err := http.Get("http://" + addr + "/infoz")
	if err != nil {
		return true
	}
	defer resp.Body.Close()
	var info struct{ Services map[string]int }
	if err := json.NewDecoder(resp.Body).Decode(&info); err != nil {
		return true
	}
	return info.Services["hello"] > 2
}

// (b) SIGTERM: half the requests are POSTs without an Idempotency-Key; a
// stop on purpose must not fail even those.
func TestTerminateOneInstance(t *testing.T) {
	c, ps := fleet(t)
	var victim *proc
	var termAt time.Time
	rs := load(c.tr.Client(), rate, runFor, deadline, true, event{faultAt, func() {
		victim = ps[c.busiest()]
		termAt = time.Now()
		victim.signal(syscall.SIGTERM)
	}})
	s := checkNoFailures(t, rs)
	t.Logf("terminated the busiest instance, %s, after it served %d requests", victim.id, s.perInstance[victim.id])
	took, ok := victim.waitExit(10*time.Second, termAt)
	if !ok {
		t.Fatal("instance did not exit within 10s of SIGTERM")
	}
	t.Logf("SIGTERM → exit: %v (drain timeout 5s)", took.Round(time.Millisecond))
	if took > 5*time.Second+500*time.Millisecond {
		t.Errorf("exit took %v, past the 5s drain timeout", took)
	}
	if code := victim.cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("exit code %d after a graceful drain, want 0", code)
	}
}

// (c) A 4th instance gets a share of the traffic within 3 s, with nothing
// else touched.
func TestAddInstance(t *testing.T) {
	c, _ := fleet(t)
	var added *proc
	rs := load(c.tr.Client(), rate, runFor, deadline, false, event{faultAt, func() {
		added = c.startHelloAs(t, "hello-3")
	}})
	s := checkNoFailures(t, rs)
	var first time.Time
	for _, r := range rs {
		if r.instance == "hello-3" && r.err == nil && (first.IsZero() || r.start.Before(first)) {
			first = r.start
		}
	}
	if first.IsZero() {
		t.Fatal("the 4th instance served no request")
	}
	took := first.Sub(added.started)
	t.Logf("4th instance started → first request served: %v; it served %d of %d", took.Round(time.Millisecond), s.perInstance["hello-3"], s.total)
	if took > 3*time.Second {
		t.Errorf("4th instance took %v to get traffic, want ≤ 3s", took)
	}
}

// (d) SIGSTOP for 5 s: every request completes within its deadline, and no
// attempt waits on the frozen instance past the client's silent-instance
// rule (quiet for 250 ms, then no answer to OPTIONS * within 500 ms); most
// end sooner, outrun by their hedge.
func TestFreezeOneInstance(t *testing.T) {
	c, ps := fleet(t)
	var victim *proc
	var frozenAt time.Time
	rs := load(c.tr.Client(), rate, runFor, deadline, false,
		event{faultAt, func() {
			victim = ps[c.busiest()]
			frozenAt = time.Now()
			victim.signal(syscall.SIGSTOP)
		}},
		event{faultAt + 5*time.Second, func() { victim.signal(syscall.SIGCONT) }},
	)
	s := checkNoFailures(t, rs)
	t.Logf("froze the busiest instance, %s, for 5s; it served %d requests", victim.id, s.perInstance[victim.id])
	const silentAfter, slack = 750 * time.Millisecond, 150 * time.Millisecond
	var onFrozen int
	var longest time.Duration
	for _, a := range c.attemptsOn(victim.id, frozenAt, frozenAt.Add(5*time.Second)) {
		onFrozen++
		longest = max(longest, a.Duration)
		if a.Duration > silentAfter+slack {
			t.Errorf("an attempt waited %v on the frozen instance, past the %v of the silent-instance rule", a.Duration, silentAfter)
		}
	}
	t.Logf("attempts sent to the frozen instance: %d, longest %v", onFrozen, longest.Round(time.Millisecond))
}
