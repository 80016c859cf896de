// Package resilience holds the policies that keep calls between services from
// turning one failure into many: retry budgets today; hedging, breakers,
// bulkheads and adaptive concurrency as they land.
//
// Policies here are per dependency and safe for concurrent use. They read the
// clock through time.Now, so their timing is testable under testing/synctest.
package resilience
