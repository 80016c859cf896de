package resilience

// LimiterStats is a snapshot of a server's adaptive concurrency limit, for
// metrics and the dashboard.
type LimiterStats struct {
	Limit    int    `json:"limit"`     // the current concurrency limit
	InFlight int    `json:"in_flight"` // requests admitted and not finished
	Admitted uint64 `json:"admitted"`  // requests admitted since start
	Rejected uint64 `json:"rejected"`  // requests rejected since start
}
