package shoal

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/shoal-dev/shoal/discovery"
)

// Go runs f in a goroutine that lives as long as the service: a background
// worker (an outbox relay, a cache refresh, a purge loop). Workers given
// before Run start once the instance has joined gossip and serves, with the
// service's client able to reach its peers; those given while it runs
// start at once; those given once it drains are not started (and logged).
//
// f must return when ctx ends. The drain ends ctx after the last in-flight
// request has finished (handlers may rely on a worker until then) and while
// the instance is still in gossip (a worker's last calls still reach its
// peers), then waits for the workers until the drain's deadline, less the
// part kept for leaving gossip; a worker still running then is logged and
// left behind.
//
// An error f returns is logged, unless ctx had ended and the error is
// ctx's; a panic in f is recovered, logged with its stack and counted
// (/infoz, and shoal_worker_panics_total at /metrics): it stops that
// worker, not the process. A worker is not restarted: one that must
// survive its own failures loops and retries inside f. name says which
// worker a log line is about.
func (s *Service) Go(name string, f func(ctx context.Context) error) {
	if f == nil {
		panic("shoal: Service.Go(" + name + "): nil function")
	}
	s.workers.add(name, f)
}

// workers are a service's background goroutines. The owner is Run: start
// launches the pending ones, stop cancels them all and waits.
type workers struct {
	log *slog.Logger

	mu      sync.Mutex
	ctx     context.Context    // set by start; nil before
	cancel  context.CancelFunc // ends ctx; set by start
	pending []worker
	stopped bool
	wg      sync.WaitGroup

	running  atomic.Int64
	panicked atomic.Uint64
	failed   atomic.Uint64
}

type worker struct {
	name string
	f    func(context.Context) error
}

// WorkerStats counts a service's background workers (see Service.Go).
type WorkerStats struct {
	Running  int64  `json:"running"`
	Failed   uint64 `json:"failed"`   // returned an error before the drain
	Panicked uint64 `json:"panicked"` // recovered panics
}

func (ws *workers) stats() WorkerStats {
	return WorkerStats{Running: ws.running.Load(), Failed: ws.failed.Load(), Panicked: ws.panicked.Load()}
}

func (ws *workers) add(name string, f func(context.Context) error) {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	switch {
	case ws.stopped:
		ws.log.Warn("worker not started: the service is draining", "worker", name)
	case ws.ctx == nil:
		ws.pending = append(ws.pending, worker{name, f})
	default:
		ws.launch(worker{name, f})
	}
}

// start launches the pending workers, and later ones at once, with a
// context that stop cancels; values of ctx are kept, its cancellation is
// not (the drain decides when workers stop).
func (ws *workers) start(ctx context.Context) {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	ws.ctx, ws.cancel = context.WithCancel(context.WithoutCancel(ctx))
	for _, w := range ws.pending {
		ws.launch(w)
	}
	ws.pending = nil
}

// launch starts one worker. ws.mu is held.
func (ws *workers) launch(w worker) {
	ws.wg.Add(1)
	ws.running.Add(1)
	go ws.run(ws.ctx, w)
}

// run is one worker's goroutine: it ends when f returns or panics.
func (ws *workers) run(ctx context.Context, w worker) {
	defer ws.wg.Done()
	defer ws.running.Add(-1)
	defer func() {
		if v := recover(); v != nil {
			ws.panicked.Add(1)
			ws.log.Error("worker panicked; it is stopped, the service serves on", "worker", w.name,
				"panic", fmt.Sprint(v), "stack", string(debug.Stack()))
		}
	}()
	err := w.f(ctx)
	switch {
	case ctx.Err() != nil && (err == nil || errors.Is(err, ctx.Err())):
		ws.log.Debug("worker stopped", "worker", w.name)
	case err != nil:
		ws.failed.Add(1)
		ws.log.Error("worker failed; the service serves on without it", "worker", w.name, "err", err)
	default:
		ws.log.Info("worker finished", "worker", w.name)
	}
}

// stop cancels the workers and waits for them until deadline. Workers
// given later are not started.
func (ws *workers) stop(deadline time.Time) {
	ws.mu.Lock()
	ws.stopped = true
	cancel := ws.cancel
	ws.mu.Unlock()
	if cancel == nil {
		return // never started
	}
	cancel()
	done := make(chan struct{})
	go func() { // ends when the last worker does, or never if one never ends (logged below)
		ws.wg.Wait()
		close(done)
	}()
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		if n := ws.running.Load(); n > 0 {
			ws.log.Warn("workers still running at the drain deadline; left behind", "running", n)
		}
	}
}

// startBackground starts what runs beside the HTTP server: the workers,
// and the wait for the services called (until ctx ends at the latest).
// Run calls it once serving.
func (s *Service) startBackground(ctx context.Context, cat *discovery.Catalog) {
	s.workers.start(ctx)
	if len(s.deps) == 0 {
		s.depsFound.Store(true)
		return
	}
	go s.awaitDependencies(ctx, cat) // owned by Run: ends with ctx, which Run cancels on return
}

// collectors are the workers' metrics.
func (ws *workers) collectors() []prometheus.Collector {
	return []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "shoal_workers_running",
			Help: "Background workers (Service.Go) running.",
		}, func() float64 { return float64(ws.running.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "shoal_worker_failures_total",
			Help: "Background workers that returned an error before the drain.",
		}, func() float64 { return float64(ws.failed.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "shoal_worker_panics_total",
			Help: "Background workers stopped by a panic (recovered).",
		}, func() float64 { return float64(ws.panicked.Load()) }),
	}
}
