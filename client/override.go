package client

import (
	"context"
	"time"
)

// CallPolicy overrides, for one call, parts of the policy the Transport
// applies to the service called. A zero field keeps the service's policy.
// The gateway uses it to give each route its own attempts and hedging.
type CallPolicy struct {
	// MaxAttempts caps the attempts of the call, first and hedge included
	// (1 to 8; larger values are capped at 8).
	MaxAttempts int
	// NoHedge turns hedging off for the call.
	NoHedge bool
	// PerTryTimeout, if positive, bounds each attempt's wait for response
	// headers, as Config.PerTryTimeout does for a service.
	PerTryTimeout time.Duration
}

type policyKey struct{}

// WithPolicy returns a context whose calls through a Transport follow p
// where it differs from the service's policy.
func WithPolicy(ctx context.Context, p CallPolicy) context.Context {
	return context.WithValue(ctx, policyKey{}, p)
}

// callPolicy returns the attempts, per-try timeout and hedging for a call
// with ctx to a service whose policy allows serviceAttempts with
// servicePerTry.
func callPolicy(ctx context.Context, serviceAttempts int, servicePerTry time.Duration) (attempts int, perTry time.Duration, hedge bool) {
	p, ok := ctx.Value(policyKey{}).(CallPolicy)
	if !ok {
		return serviceAttempts, servicePerTry, true
	}
	attempts, perTry = serviceAttempts, servicePerTry
	if p.MaxAttempts > 0 {
		attempts = min(p.MaxAttempts, maxAttempts)
	}
	if p.PerTryTimeout > 0 {
		perTry = p.PerTryTimeout
	}
	return attempts, perTry, !p.NoHedge
}
