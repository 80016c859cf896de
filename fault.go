package shoal

import (
	"cmp"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/shoal-dev/shoal/chaos"
)

// faultHop is this instance's side of request-scoped fault injection (see
// package chaos). Every request loses its Shoal-Fault header here; a token
// the operator signed goes into the request's context instead, so that
// the calls the handler makes with that context carry it on (the client
// transport sets the header again) and apply its link faults, and the
// faults for this service's own hop are applied before admission control:
// the fault stands for what happens on the way in, and takes no slot from
// the requests of others. A token that does not verify is dropped and
// counted; the request is served as if it had none.
type faultHop struct {
	verifier *chaos.Verifier // nil: no key, nothing is honoured
	applied  *prometheus.CounterVec
	refused  prometheus.Counter
	log      *slog.Logger
}

func newFaultHop(cfg Config, reg prometheus.Registerer, log *slog.Logger) (*faultHop, error) {
	v, err := chaos.NewVerifier(cfg.FaultKey, cfg.Name)
	if err != nil {
		return nil, err
	}
	h := &faultHop{
		verifier: v, log: log,
		applied: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shoal_chaos_faults_applied_total",
			Help: "Request-scoped faults applied at this instance's hop (a signed Shoal-Fault token), by action.",
		}, []string{"action"}),
		refused: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "shoal_chaos_tokens_refused_total",
			Help: "Shoal-Fault headers dropped because they were not a valid token signed by the operator's key.",
		}),
	}
	reg.MustRegister(h.applied, h.refused)
	return h, nil
}

// apply takes the fault token off r and applies this hop's faults. It
// returns the request to serve (with the verified faults in its context),
// or nil when a fault answered it (an error status); an abort or a stall
// ends the request by panicking with http.ErrAbortHandler, which closes
// the connection without an answer.
func (h *faultHop) apply(w http.ResponseWriter, r *http.Request) *http.Request {
	vs, ok := r.Header[chaos.Header]
	if !ok {
		return r
	}
	delete(r.Header, chaos.Header)
	if len(vs) != 1 {
		h.refused.Inc()
		return r
	}
	set, err := h.verifier.Verify(vs[0])
	if err != nil {
		h.refused.Inc()
		h.log.Debug("fault token refused", "err", err)
		return r
	}
	ctx := chaos.NewContext(r.Context(), set)
	r = r.WithContext(ctx)
	p := chaos.Draw(set.Here())
	if len(p.Applied) == 0 {
		return r
	}
	for _, f := range p.Applied {
		h.applied.WithLabelValues(string(f.Action)).Inc()
	}
	w.Header().Set(chaos.InjectedHeader, chaos.Format(p.Applied))
	delay(ctx, p.Delay)
	if p.End == nil {
		return r
	}
	switch f := *p.End; f.Action {
	case chaos.Error:
		if f.Status == http.StatusServiceUnavailable || f.Status == http.StatusTooManyRequests {
			w.Header().Set("Retry-After", "1")
		}
		WriteError(w, f.Status, "fault_injected", "fault injected by a rehearsal: "+f.String()+" (status "+strconv.Itoa(f.Status)+")")
		return nil
	case chaos.Stall:
		_ = chaos.Wait(ctx, cmp.Or(f.Delay, chaos.MaxDelay))
	}
	panic(http.ErrAbortHandler) // Abort, or a Stall that is over
}

// delay waits d, all of it, as a slow network or disk would, even past
// the request's deadline (the handler then has none left, and a caller
// that gave up has its answer later than it waited: never in time). Only a
// caller that went away ends it sooner.
func delay(ctx context.Context, d time.Duration) {
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
		if !errors.Is(ctx.Err(), context.Canceled) {
			<-t.C
		}
	}
}
