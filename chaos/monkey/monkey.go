// Package monkey is Shoal's chaos monkey: it kills, freezes or slows a
// random instance of a running system at an interval or at random times,
// so that failover is exercised all the time rather than trusted. The
// supervisor does each action (supervisor.ChaosAction) and records it as
// an event; the monkey picks the instance, never the last serving one of a
// service unless told to (the supervisor checks that again, where the
// instances are). `shoal chaos monkey` runs it against a running shoal up,
// shoal up itself when the manifest enables it, and package shoaltest
// from a test.
package monkey

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"time"

	"github.com/shoal-dev/shoal/manifest"
	"github.com/shoal-dev/shoal/supervisor"
)

// Config is the monkey's settings: the manifest's chaos.monkey.
type Config = manifest.Monkey

// DefaultEvery is the time between actions when Config sets neither
// every nor rate.
const DefaultEvery = 10 * time.Second

// Target is the system the monkey acts on: a *supervisor.Remote (shoal up
// in another process) or a *supervisor.Supervisor (in this one). The
// monkey calls it from its own goroutine, one call at a time; calls may
// block for as long as their own bounds.
type Target interface {
	PS(ctx context.Context) ([]supervisor.InstanceStatus, error)
	Chaos(ctx context.Context, a supervisor.ChaosAction) (supervisor.ChaosResult, error)
}

// Result is one turn of the monkey: what it asked for and what happened.
type Result struct {
	Time   time.Time
	Action supervisor.ChaosAction // zero if nothing could be picked
	Done   supervisor.ChaosResult
	// Err is why nothing was done: no instance to pick (ErrNothingToPick),
	// or the supervisor's refusal (a *supervisor.Error, e.g. last_serving).
	Err error
}

// ErrNothingToPick: no instance could be acted on without breaking the
// rules (every candidate service is down to its last serving instance,
// or excluded).
var ErrNothingToPick = errors.New("monkey: no instance to pick")

// maxPSFailures ends a run once the supervisor has not answered that many
// turns in a row (one that has stopped, supervisor.ErrNotRunning, ends it
// at once).
const maxPSFailures = 3

// maxResults bounds the results Run keeps: a monkey shoal up runs for
// days must not grow without end.
const maxResults = 10_000

// Monkey acts on Target as Config says. Set its fields, then call Run.
type Monkey struct {
	Config Config
	Target Target
	// By names the monkey in the events; default "monkey".
	By string
	// Report, if set, is called after each turn from Run's goroutine.
	Report func(Result)
	// Rand, if set, makes the picks and random intervals repeatable.
	Rand *rand.Rand
}

// Run acts every interval until Config.For has passed or ctx ends (then
// it returns nil), and returns every turn's result (the last 10,000 at
// most). It fails at once on a Config that does not validate, and when
// the target has stopped (supervisor.ErrNotRunning) or stops answering.
func (m *Monkey) Run(ctx context.Context) ([]Result, error) {
	cfg := m.Config
	if err := cfg.Validate(nil); err != nil {
		return nil, err
	}
	rng := m.Rand
	if rng == nil {
		rng = rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	}
	end := time.Now().Add(cfg.For)
	busy := map[string]time.Time{} // slot → end of this monkey's stop or slow there
	var results []Result
	failures := 0
	for {
		// A turn is taken only before the end: the last wait may be cut
		// short by it.
		wait, last := interval(cfg, rng), false
		if cfg.For > 0 && !time.Now().Add(wait).Before(end) {
			wait, last = time.Until(end), true
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return results, nil
		case <-t.C:
		}
		if last {
			return results, nil
		}
		r := Result{Time: time.Now()}
		st, err := m.Target.PS(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return results, nil
			}
			if errors.Is(err, supervisor.ErrNotRunning) {
				return results, fmt.Errorf("monkey: the system is gone, so the monkey stops: %w", err)
			}
			if failures++; failures >= maxPSFailures {
				return results, fmt.Errorf("monkey: the supervisor does not answer: %w", err)
			}
			r.Err = err
		} else {
			failures = 0
			r.Action, r.Err = m.pick(st, busy, rng, r.Time)
		}
		if r.Err == nil {
			r.Done, r.Err = m.Target.Chaos(ctx, r.Action)
			if r.Err == nil && !cfg.DryRun && r.Action.Action != supervisor.ActionKill {
				busy[slot(r.Done.Instance)] = r.Time.Add(r.Action.For)
			}
		}
		if ctx.Err() != nil {
			return results, nil
		}
		if len(results) == maxResults {
			results = slices.Delete(results, 0, maxResults/10)
		}
		results = append(results, r)
		if m.Report != nil {
			m.Report(r)
		}
	}
}

// interval is the wait before the next turn.
func interval(cfg Config, rng *rand.Rand) time.Duration {
	if cfg.Rate > 0 {
		return time.Duration(rng.ExpFloat64() / cfg.Rate * float64(time.Second))
	}
	return cmp.Or(cfg.Every, DefaultEvery)
}

func slot(st supervisor.InstanceStatus) string { return st.Service + "/" + strconv.Itoa(st.Index) }

// pick chooses a service among those allowed that have an instance to
// spare (or any serving one, with AllowLast), then one of its serving
// instances the monkey is not already stopping or slowing, then an
// action: each uniformly.
func (m *Monkey) pick(st []supervisor.InstanceStatus, busy map[string]time.Time, rng *rand.Rand, now time.Time) (supervisor.ChaosAction, error) {
	cfg := m.Config
	serving := map[string][]supervisor.InstanceStatus{}
	var services []string
	for _, s := range st {
		if until, ok := busy[slot(s)]; ok && now.Before(until) {
			continue
		}
		if s.State != supervisor.StateServing || s.PID == 0 || manifest.Reserved(s.Service) ||
			len(cfg.Services) > 0 && !slices.Contains(cfg.Services, s.Service) || slices.Contains(cfg.Exclude, s.Service) {
			continue
		}
		if _, seen := serving[s.Service]; !seen {
			services = append(services, s.Service)
		}
		serving[s.Service] = append(serving[s.Service], s)
	}
	services = slices.DeleteFunc(services, func(name string) bool { return !cfg.AllowLast && len(serving[name]) < 2 })
	if len(services) == 0 {
		return supervisor.ChaosAction{}, ErrNothingToPick
	}
	svc := services[rng.IntN(len(services))]
	in := serving[svc][rng.IntN(len(serving[svc]))]
	actions := cfg.Actions
	if len(actions) == 0 {
		actions = []string{supervisor.ActionKill}
	}
	a := supervisor.ChaosAction{
		Service: svc, Index: in.Index, Action: actions[rng.IntN(len(actions))],
		DryRun: cfg.DryRun, KeepServing: !cfg.AllowLast, By: cmp.Or(m.By, "monkey"),
	}
	switch a.Action {
	case supervisor.ActionStop:
		a.For = cmp.Or(cfg.StopFor, supervisor.DefaultStopFor)
	case supervisor.ActionSlow:
		a.For, a.Pause = cmp.Or(cfg.SlowFor, supervisor.DefaultSlowFor), cmp.Or(cfg.Pause, supervisor.DefaultPause)
	}
	return a, nil
}
