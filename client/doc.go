// Package client makes calls between services resilient. Its Transport is an
// http.RoundTripper that resolves http://<service>/path to one instance of the
// service through the local discovery catalog (no network on the hot path),
// picks the instance with the balance package, lets every attempt use the
// caller's whole remaining deadline (a slow answer is not a failure), and
// fails over to a different instance when an attempt fails in a way that is
// safe to retry, as long as the per-service retry budget allows.
//
// Policies, all on by default, applied per service in this order:
//
//  1. Adaptive throttle (resilience.Throttle, SRE client-side throttling with
//     K = 2): a service that has been failing most calls lately gets a share
//     of new calls rejected at once with ErrThrottled, instead of the load.
//  2. Bulkhead (MaxInFlight): at most that many calls in flight to one
//     service; more fail at once with ErrBulkheadFull.
//  3. Balancing and the per-instance breaker (balance): P2C over peak-EWMA
//     latency × in-flight; an instance failing 3 times in a row or half of
//     its recent requests is ejected, then probed (half-open) when it returns.
//  4. Failover within the retry budget (resilience.Budget, 20% + 10/s).
//     An attempt is bounded by the call's deadline only, unless a per-try
//     timeout is set as a policy (Config.PerTryTimeout, per dependency, or
//     CallPolicy.PerTryTimeout per call). An attempt that could fail over
//     watches its instance: one that holds requests, has answered nothing
//     for 250 ms and does not answer OPTIONS * within 500 ms is silent
//     (frozen): it is ejected, and its attempts end with ErrInstanceSilent
//     and go elsewhere; a busy instance answers, and keeps its slow work. An
//     instance whose attempt lost a hedge race, and that has answered
//     nothing for 250 ms, is checked too, so hedges do not hide a dead one.
//  5. Hedging (resilience.Hedger) of idempotent calls: when the first attempt
//     has not answered by about the p95 of recent latency (at least 5 ms), a
//     second goes to another instance; the first answer wins and the other is
//     canceled. Hedges are budgeted to 5% of calls.
//
// Config.Dependencies overrides any of these for a named service; shoal up
// sets them from the manifest's dependencies:. Transport.Dependencies
// reports every policy's state (the telemetry package exports it).
//
// The remaining deadline (or the per-try timeout, when set and shorter)
// travels to the callee in the Shoal-Timeout-Ms header, which the shoal SDK
// server turns back into its handler's context deadline.
//
// Retry rule: an attempt that was never sent (dial error, connection refused,
// or a 503 carrying Shoal-Rejected, which an SDK server's admission control
// sends before doing any work) is always retried elsewhere; a timeout, a
// broken connection or a 502/503/504 only for idempotent methods (GET, HEAD,
// OPTIONS, TRACE, PUT, DELETE) or requests carrying an Idempotency-Key header.
//
// Fallback and Async give a call a budget and an answer to use instead when
// it fails or runs out of time.
//
// # Tracing
//
// Every attempt carries, from the request's context, the W3C traceparent,
// tracestate and baggage (Propagator), and the request ID (WithRequestID;
// X-Request-Id), so that the callee continues the caller's trace and logs
// whether or not either records spans. With Config.TracerProvider (the SDK
// service sets its own), a call is a client span "<METHOD> <service>"
// carrying its first attempt, and each further attempt — a retry or a
// hedge — a client span under it; the callee's server span is the child of
// the span whose attempt reached it. The attributes (see trace.go) name the
// instance (shoal.instance), the attempt (shoal.attempt, from 1), why it
// exists (shoal.attempt.reason: first, "retry: <how the previous one
// failed>", hedge), how it ended (shoal.outcome) and the instance's breaker
// after it (shoal.breaker); a fallback used is a span with shoal.fallback.
// A call not sampled makes no span and sends its (unsampled) trace context
// on all the same; a call under a span that is not sampled does not even ask
// the SDK for one (see trace.go), nor does a call that starts a trace when
// the provider is a TracerProvider, whose sampler the Transport asks itself
// (see root.go). Folding the first attempt into the call's span keeps
// the common call at one span: tracing stays within a few microseconds and
// allocations per call (docs/BENCHMARKS.md). An attempt that nothing can
// end early (no hedge, no failover, no per-try timeout) runs in the call's
// context: such a call adds 4 allocations to its round tripper's.
package client
