package shoal

import (
	"context"
	"maps"
	"net/http"
	"slices"
	"time"

	"github.com/shoal-dev/shoal/discovery"
)

// Readiness: an instance that has just joined gossip may not know yet of
// the services it calls, and would answer its first requests with "no
// instances known". So /readyz says "starting" until the instance's own
// discovery view holds a serving instance of every service it declared
// (Config.Calls, and the keys of Config.Client.Dependencies), or until
// Config.DependencyWait has passed. The wait happens once, at start: an
// instance that is ready stays ready when a dependency goes away later,
// or one service down would take every caller out of rotation with it.
//
// Gossip advertises the instance as serving from its join on, as before:
// the join's state exchange gives the newcomer, in one round trip, every
// member its seed knows, so what it still lacks is what the system lacks
// too (a dependency still starting). A gossip state for "starting" would
// change the records every member decodes, for a window that readiness
// already covers for the supervisor and rolling restarts.

// dependencies returns the services cfg declares it calls, sorted, once
// each.
func dependencies(cfg Config) []string {
	deps := slices.Concat(cfg.Calls, slices.Collect(maps.Keys(cfg.Client.Dependencies)))
	slices.Sort(deps)
	return slices.Compact(deps)
}

// missing returns the services of deps that have no serving instance in
// snap.
func missing(snap *discovery.Snapshot, deps []string) []string {
	var out []string
	for _, d := range deps {
		if !slices.ContainsFunc(snap.Instances(d), func(in discovery.Instance) bool {
			return in.State == discovery.StateServing
		}) {
			out = append(out, d)
		}
	}
	return out
}

// awaitDependencies opens the readiness gate once cat holds every
// dependency, or once DependencyWait has passed, and logs which. It
// returns then, or when ctx ends.
func (s *Service) awaitDependencies(ctx context.Context, cat *discovery.Catalog) {
	begin := time.Now()
	t := time.NewTimer(s.cfg.DependencyWait)
	defer t.Stop()
	watchCtx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	snaps := cat.Watch(watchCtx)
	for {
		select {
		case snap, ok := <-snaps:
			if !ok {
				return // ctx ended
			}
			if len(missing(snap, s.deps)) == 0 {
				s.depsFound.Store(true)
				s.log.Info("ready: every service called is in discovery", "calls", s.deps,
					"waited", time.Since(begin).Round(time.Millisecond).String())
				return
			}
		case <-t.C:
			s.depsFound.Store(true)
			s.log.Warn("ready without services still missing from discovery; calls to them fail until they appear",
				"missing", missing(cat.Snapshot(), s.deps), "waited", s.cfg.DependencyWait.String())
			return
		}
	}
}

// Readiness is the body of GET /readyz.
type Readiness struct {
	// Status is "starting" (503) while the instance waits for the
	// services it calls, "ready" (200), or "draining" (503).
	Status string `json:"status"`
	// Missing lists the services called that have no serving instance in
	// this instance's view of discovery.
	Missing []string `json:"missing,omitempty"`
}

// readiness answers GET /readyz.
func (s *Service) readiness() (int, Readiness) {
	var rd Readiness
	if cat := s.Catalog(); cat != nil {
		rd.Missing = missing(cat.Snapshot(), s.deps)
	}
	switch {
	case s.draining.Load():
		rd.Status = "draining"
		return http.StatusServiceUnavailable, rd
	case !s.depsFound.Load():
		rd.Status = "starting"
		return http.StatusServiceUnavailable, rd
	}
	rd.Status = "ready"
	return http.StatusOK, rd
}
