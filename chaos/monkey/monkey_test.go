package monkey

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/shoal-dev/shoal/supervisor"
)

// fakeSystem is a Target: a fixed set of instances, each action recorded
// (with the fake clock's time) and a kill taking the instance out of
// serving until the next turn.
type fakeSystem struct {
	mu       sync.Mutex
	st       []supervisor.InstanceStatus
	actions  []supervisor.ChaosAction
	at       []time.Time
	psErr    error
	chaosErr error
}

func newFakeSystem(counts map[string]int) *fakeSystem {
	f := &fakeSystem{}
	for _, svc := range []string{"gateway", "catalog", "ratings", "search"} {
		for i := 1; i <= counts[svc]; i++ {
			f.st = append(f.st, supervisor.InstanceStatus{Service: svc, Index: i, PID: 100 + i, State: supervisor.StateServing})
		}
	}
	return f
}

func (f *fakeSystem) PS(context.Context) ([]supervisor.InstanceStatus, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.st), f.psErr
}

func (f *fakeSystem) Chaos(_ context.Context, a supervisor.ChaosAction) (supervisor.ChaosResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.chaosErr != nil {
		return supervisor.ChaosResult{}, f.chaosErr
	}
	f.actions = append(f.actions, a)
	f.at = append(f.at, time.Now())
	for _, s := range f.st {
		if s.Service == a.Service && s.Index == a.Index {
			return supervisor.ChaosResult{Instance: s, Message: a.By + " " + a.Action}, nil
		}
	}
	return supervisor.ChaosResult{}, fmt.Errorf("no %s/%d", a.Service, a.Index)
}

func TestMonkeyEvery(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakeSystem(map[string]int{"gateway": 2, "catalog": 3, "ratings": 1})
		m := &Monkey{Target: f, Config: Config{Every: 2 * time.Second, For: 10 * time.Second, Exclude: []string{"gateway"}},
			Rand: rand.New(rand.NewPCG(1, 2))}
		start := time.Now()
		results, err := m.Run(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d != 10*time.Second {
			t.Errorf("ran for %v, want 10s", d)
		}
		if len(f.actions) != 4 || len(results) != 4 {
			t.Fatalf("%d actions, %d results in 10s at every 2s, want 4 (at 2, 4, 6, 8s)", len(f.actions), len(results))
		}
		for i, a := range f.actions {
			if f.at[i].Sub(start) != time.Duration(i+1)*2*time.Second {
				t.Errorf("action %d at %v", i, f.at[i].Sub(start))
			}
			// ratings has one instance, gateway is excluded: catalog only.
			if a.Service != "catalog" || a.Action != supervisor.ActionKill || !a.KeepServing || a.By != "monkey" || a.DryRun {
				t.Errorf("action %d: %+v", i, a)
			}
		}
	})
}

func TestMonkeyAllowLastAndActions(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakeSystem(map[string]int{"ratings": 1})
		m := &Monkey{Target: f, Config: Config{Every: time.Second, For: 31 * time.Second, AllowLast: true, DryRun: true,
			Actions: []string{"stop", "slow"}, StopFor: 3 * time.Second, SlowFor: 4 * time.Second, Pause: 0.25}, By: "test"}
		if _, err := m.Run(context.Background()); err != nil {
			t.Fatal(err)
		}
		kinds := map[string]int{}
		for _, a := range f.actions {
			kinds[a.Action]++
			if a.Service != "ratings" || a.KeepServing || !a.DryRun || a.By != "test" {
				t.Errorf("action %+v", a)
			}
			if a.Action == "stop" && a.For != 3*time.Second || a.Action == "slow" && (a.For != 4*time.Second || a.Pause != 0.25) {
				t.Errorf("timed action %+v", a)
			}
		}
		// A dry run stops and slows nothing, so the one instance stays a
		// candidate every turn.
		if len(f.actions) != 30 || kinds["stop"] == 0 || kinds["slow"] == 0 {
			t.Errorf("%d actions (%v), want 30 of both kinds", len(f.actions), kinds)
		}
	})
}

// Without allow_last a service down to one instance is never picked; an
// instance the monkey froze is not picked again until it is resumed.
func TestMonkeyKeepsTheLastInstance(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakeSystem(map[string]int{"catalog": 2, "ratings": 1})
		m := &Monkey{Target: f, Config: Config{Every: time.Second, For: 12500 * time.Millisecond, Actions: []string{"stop"}, StopFor: 5 * time.Second}}
		results, err := m.Run(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		// Turns at 1..12 s: a stop at 1 s leaves catalog one instance until
		// 6 s, so turns 2-5 find nothing; again at 7 s and 13 s.
		var acted []int
		for i, r := range results {
			switch {
			case r.Err == nil:
				acted = append(acted, i+1)
			case !errors.Is(r.Err, ErrNothingToPick):
				t.Errorf("turn %d: %v", i+1, r.Err)
			}
		}
		if !slices.Equal(acted, []int{1, 6, 11}) {
			t.Errorf("acted at turns %v, want [1 6 11]", acted)
		}
		for _, a := range f.actions {
			if a.Service != "catalog" {
				t.Errorf("picked %s/%d", a.Service, a.Index)
			}
		}
	})
}

func TestMonkeyRate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakeSystem(map[string]int{"catalog": 3})
		m := &Monkey{Target: f, Config: Config{Rate: 2, For: 100 * time.Second}, Rand: rand.New(rand.NewPCG(3, 4))}
		if _, err := m.Run(context.Background()); err != nil {
			t.Fatal(err)
		}
		// A Poisson process at 2/s: about 200 actions, with gaps that vary.
		if n := len(f.actions); n < 160 || n > 240 {
			t.Errorf("%d actions in 100s at rate 2/s", n)
		}
		gaps := map[time.Duration]bool{}
		for i := 1; i < len(f.at); i++ {
			gaps[f.at[i].Sub(f.at[i-1])] = true
		}
		if len(gaps) < len(f.at)/2 {
			t.Errorf("only %d distinct gaps between %d actions: not random", len(gaps), len(f.at))
		}
	})
}

func TestMonkeyStops(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// The supervisor's refusals are reported, and the monkey goes on.
		f := newFakeSystem(map[string]int{"catalog": 3})
		f.chaosErr = &supervisor.Error{Status: http.StatusConflict, Code: "last_serving", Message: "no"}
		var reported []Result
		m := &Monkey{Target: f, Config: Config{Every: time.Second, For: 3500 * time.Millisecond}, Report: func(r Result) { reported = append(reported, r) }}
		results, err := m.Run(context.Background())
		if err != nil || len(results) != 3 || len(reported) != 3 {
			t.Errorf("refused actions: %d results, %d reported, %v", len(results), len(reported), err)
		}

		// A supervisor that does not answer ends the run with an error.
		f.psErr = errors.New("context deadline exceeded")
		if _, err := m.Run(context.Background()); err == nil {
			t.Error("Run went on without a supervisor")
		}

		// One that has stopped ends it at the first turn, however long
		// the run was to last.
		f.psErr = fmt.Errorf("%w for /x: it has stopped", supervisor.ErrNotRunning)
		begin := time.Now()
		forever := &Monkey{Target: f, Config: Config{Every: time.Second}}
		if _, err := forever.Run(context.Background()); !errors.Is(err, supervisor.ErrNotRunning) || time.Since(begin) != time.Second {
			t.Errorf("after the system stopped: %v, %v later; want ErrNotRunning at the first turn", err, time.Since(begin))
		}

		// Canceling ends it with what was done.
		f.psErr, f.chaosErr = nil, nil
		ctx, cancel := context.WithCancel(context.Background())
		m.Config.For = 0
		done := make(chan []Result)
		go func() {
			r, _ := m.Run(ctx)
			done <- r
		}()
		time.Sleep(2500 * time.Millisecond)
		cancel()
		if r := <-done; len(r) != 2 {
			t.Errorf("canceled after 2.5s: %d results", len(r))
		}

		if _, err := (&Monkey{Target: f, Config: Config{Every: time.Second, Rate: 1}}).Run(context.Background()); err == nil {
			t.Error("a Config with every and rate ran")
		}
	})
}
