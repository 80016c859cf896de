package discovery

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"time"
)

// msgJoinRetry is logged each time no seed answered; tests wait for it.
const msgJoinRetry = "discovery: no seed answered; retrying in the background"

// rejoiner keeps a member connected to its seeds: until one of them has
// answered it tries them with exponential backoff (initial, doubling, capped
// at max, with ±20 % jitter so restarted fleets do not retry in lockstep);
// once joined it checks every max whether it has lost every peer, and if so
// starts again. Peers that joined this member do not count as joining the
// seeds: a host's supervisor whose own instances joined it while the other
// hosts were unreachable would otherwise never try them again, and the host
// would stay a cluster of its own.
type rejoiner struct {
	seeds   []string
	join    func(seeds []string) (int, error) // memberlist.Join: may block for its TCP timeout per seed
	alone   func() bool
	initial time.Duration
	max     time.Duration
	log     *slog.Logger
}

// run returns when ctx is done.
func (r *rejoiner) run(ctx context.Context) {
	delay := r.initial
	failures := 0
	joined := false // a seed answered, and a peer has been known since
	for {
		wait := r.max
		if r.alone() {
			joined = false
		}
		if !joined {
			n, err := r.join(r.seeds)
			if n > 0 {
				r.log.Info("discovery: joined", "seeds_answered", n, "attempts", failures+1)
				failures, delay, joined = 0, r.initial, true
			} else {
				failures++
				wait = jitter(delay)
				level := slog.LevelDebug
				if failures == 1 {
					level = slog.LevelInfo
				}
				r.log.Log(ctx, level, msgJoinRetry, "seeds", r.seeds, "attempt", failures, "retry_in", wait, "err", err)
				delay = min(2*delay, r.max)
			}
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// jitter returns d ± 20 %.
func jitter(d time.Duration) time.Duration {
	return time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
}
