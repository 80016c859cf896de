package client

import "github.com/shoal-dev/shoal/balance"

// DependencyStats is a snapshot of the client's policies for one service it
// calls, for metrics and the dashboard. Counters count since the Transport
// was created; the other fields are read now, one by one, not as one atomic
// snapshot.
type DependencyStats struct {
	Service string `json:"service"`
	// Hosts is the balancer's view of each instance, breaker state included.
	Hosts []balance.HostStats `json:"hosts"`

	Calls    uint64 `json:"calls"`    // RoundTrips made
	Failures uint64 `json:"failures"` // RoundTrips that ended in an error or a 5xx, not those the caller canceled
	Retries  uint64 `json:"retries"`  // attempts after the first, hedges excluded

	// BudgetLeft is how many retries the retry budget would allow now.
	BudgetLeft int `json:"budget_left"`
	// BudgetExhausted counts retries the budget refused.
	BudgetExhausted uint64 `json:"budget_exhausted"`

	// ThrottleRate is the adaptive throttle's current probability of
	// rejecting a call at the caller, in [0, 1].
	ThrottleRate float64 `json:"throttle_rate"`
	// Throttled counts calls the adaptive throttle rejected.
	Throttled uint64 `json:"throttled"`

	// InFlight is the calls in flight now; MaxInFlight the bulkhead's cap
	// (0: no cap).
	InFlight    int `json:"in_flight"`
	MaxInFlight int `json:"max_in_flight"`
	// BulkheadFull counts calls rejected because the bulkhead was full.
	BulkheadFull uint64 `json:"bulkhead_full"`

	Hedges    uint64 `json:"hedges"`     // hedged attempts sent
	HedgeWins uint64 `json:"hedge_wins"` // hedged attempts whose answer was used
}
