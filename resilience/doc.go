// Package resilience holds the policies that keep calls between services from
// turning one failure into many: the retry Budget, the Hedger (when to hedge,
// and how often), the adaptive Throttle (Google SRE client-side throttling),
// and the server's adaptive concurrency Limiter (admission control). The
// client package applies the first three per service it calls; the shoal SDK
// applies the Limiter before every handler. Per-instance breakers live with
// the balancer (package balance), which must read them on every pick.
//
// Throttle, Limiter and bulkheads are built on failsafe-go; the Budget and
// the Hedger are Shoal's own, since they are read on every call and must not
// allocate.
//
// Policies here are per dependency and safe for concurrent use. They read the
// clock through time.Now, so their timing is testable under testing/synctest.
package resilience
