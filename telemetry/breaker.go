package telemetry

import "github.com/shoal-dev/shoal/balance"

// breakerStates are the states of a host's breaker, in exposition order.
var breakerStates = [...]string{balance.BreakerClosed, balance.BreakerOpen, balance.BreakerHalfOpen}

// hostBreaker returns the state of h's breaker, one of breakerStates, or ""
// when the balancer reports none. It is the one place that reads the
// field, which was added to balance.HostStats alongside this package.
func hostBreaker(h *balance.HostStats) string { return h.Breaker }
