package shoal

import (
	"context"
	"fmt"
	"log/slog"
)

// Prepare registers f to run when Run starts, before the instance listens or
// joins gossip: the work a program does before it can serve, such as
// opening its database or loading a dataset, and registering the routes of
// a Router once what they need exists (the Service's client among them).
//
// Functions run in the order given, with Run's context bounded by
// Config.PrepareTimeout, so a SIGTERM stops a long preparation and one that
// hangs (a lock never released) fails; the first error stops Run, which
// returns it (Main logs it and exits with status 1). Prepare panics once
// Run has begun.
func (s *Service) Prepare(f func(ctx context.Context) error) {
	if f == nil {
		panic("shoal: Service.Prepare(nil)")
	}
	s.prepMu.Lock()
	defer s.prepMu.Unlock()
	if s.ran.Load() {
		panic("shoal: Service.Prepare called after Run")
	}
	s.prepares = append(s.prepares, f)
}

// Logger returns the logger of the SDK's logs (Config.Logger, by default
// JSON to stderr), with the service's name and the instance's ID: for a
// program's own logs to read like the SDK's.
func (s *Service) Logger() *slog.Logger { return s.log }

// prepare runs what Prepare registered, then checks the handler. Stopped
// (ctx ended) while preparing is not an error: nothing served yet.
func (s *Service) prepare(runCtx context.Context) error {
	s.prepMu.Lock()
	prepares := s.prepares
	s.prepMu.Unlock()
	ctx, cancel := context.WithTimeoutCause(runCtx, s.cfg.PrepareTimeout,
		fmt.Errorf("preparing took longer than the prepare timeout of %v", s.cfg.PrepareTimeout))
	defer cancel()
	for _, f := range prepares {
		err := f(ctx)
		if runCtx.Err() != nil {
			s.log.Info("stopped while preparing", "err", err)
			return nil
		}
		if err != nil {
			if cause := context.Cause(ctx); cause != nil {
				err = fmt.Errorf("%w (%w)", err, cause)
			}
			return fmt.Errorf("shoal: prepare: %w", err)
		}
	}
	return s.checkHandler()
}
