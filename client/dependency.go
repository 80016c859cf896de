package client

import (
	"net/http"
	"slices"
	"sort"
	"sync/atomic"

	"github.com/failsafe-go/failsafe-go/bulkhead"

	"github.com/shoal-dev/shoal/balance"
	"github.com/shoal-dev/shoal/resilience"
)

// dependency is the client's state for one service it calls: the policy
// resolved for it and each policy's state.
type dependency struct {
	name     string
	cfg      Config
	bal      *balance.Balancer
	budget   *resilience.Budget
	hedger   *resilience.Hedger
	throttle *resilience.Throttle
	bulkhead bulkhead.Bulkhead[any] // nil: no cap
	// spanNames are the names of the spans of its calls, by method (see
	// spanName), made once rather than per call.
	spanNames [4]string
	// rt sends the attempts, to URLs of scheme (empty: the request's own):
	// the Transport's base, or with an identity the service's own mutual
	// TLS transport, whose pool holds only connections verified for it.
	rt     http.RoundTripper
	scheme string

	inFlight                                          atomic.Int64
	calls, failures, retries, budgetOut, bulkheadFull atomic.Uint64
}

func (t *Transport) dependency(service string) *dependency {
	if v, ok := t.services.Load(service); ok {
		return v.(*dependency)
	}
	cfg := t.cfg.forService(service)
	d := &dependency{
		name:      service,
		cfg:       cfg,
		bal:       balance.New(cfg.Balance),
		budget:    resilience.NewBudget(cfg.Budget),
		hedger:    resilience.NewHedger(cfg.Hedge),
		throttle:  resilience.NewThrottle(cfg.Throttle),
		spanNames: newSpanNames(service),
		rt:        t.base,
	}
	if cfg.MaxInFlight > 0 {
		d.bulkhead = bulkhead.New[any](uint(cfg.MaxInFlight))
	}
	if t.cfg.TLS != nil && !slices.Contains(t.cfg.Plaintext, service) {
		tr := newBaseTransport()
		tr.DialTLSContext = limitDials(maxHandshakes, t.cfg.TLS.ForService(service)).DialContext
		d.rt, d.scheme = tr, "https"
	}
	v, loaded := t.services.LoadOrStore(service, d)
	if loaded && d.rt != t.base {
		d.rt.(*http.Transport).CloseIdleConnections() // never used: a racing call stored its own
	}
	return v.(*dependency)
}

// admit applies the throttle and the bulkhead to a new call. It returns the
// reason the call may not go ahead, or nil; after nil, release must follow.
func (d *dependency) admit() error {
	d.calls.Add(1)
	if !d.throttle.Allow() {
		d.failures.Add(1)
		return ErrThrottled
	}
	if d.bulkhead != nil && !d.bulkhead.TryAcquirePermit() {
		d.bulkheadFull.Add(1)
		d.failures.Add(1)
		return ErrBulkheadFull
	}
	d.inFlight.Add(1)
	return nil
}

// release ends a call admitted by admit.
func (d *dependency) release() {
	d.inFlight.Add(-1)
	if d.bulkhead != nil {
		d.bulkhead.ReleasePermit()
	}
}

// stats is the dependency's snapshot.
func (d *dependency) stats() DependencyStats {
	hedges, wins := d.hedger.Stats()
	return DependencyStats{
		Service:         d.name,
		Hosts:           d.bal.Stats(),
		Calls:           d.calls.Load(),
		Failures:        d.failures.Load(),
		Retries:         d.retries.Load(),
		BudgetLeft:      d.budget.Left(),
		BudgetExhausted: d.budgetOut.Load(),
		ThrottleRate:    d.throttle.Rate(),
		Throttled:       d.throttle.Rejected(),
		InFlight:        int(d.inFlight.Load()),
		MaxInFlight:     max(d.cfg.MaxInFlight, 0),
		BulkheadFull:    d.bulkheadFull.Load(),
		Hedges:          hedges,
		HedgeWins:       wins,
	}
}

// Dependencies returns a snapshot of every service the Transport has
// called, sorted by name. It takes no lock the calls take for long and may
// be called from any goroutine (a metrics scrape, the dashboard).
func (t *Transport) Dependencies() []DependencyStats {
	var out []DependencyStats
	t.services.Range(func(_, v any) bool {
		out = append(out, v.(*dependency).stats())
		return true
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Service < out[j].Service })
	return out
}
