package resilience

// LimiterStats is a snapshot of a server's adaptive concurrency limit, for
// metrics and the dashboard.
type LimiterStats struct {
	Limit    int    `json:"limit"`     // the current concurrency limit
	InFlight int    `json:"in_flight"` // requests admitted and not finished
	Admitted uint64 `json:"admitted"`  // requests admitted since start
	Rejected uint64 `json:"rejected"`  // requests not admitted since start, Late and Abandoned included

	Queued     int    `json:"queued"`     // requests waiting for a slot now
	Waited     uint64 `json:"waited"`     // admitted after waiting in the queue, since start
	Late       uint64 `json:"late"`       // refused after waiting (their allowance ran out, or overload began), since start
	Abandoned  uint64 `json:"abandoned"`  // given up by their caller while waiting (canceled: a hedge won elsewhere, a client left), since start
	Overloaded bool   `json:"overloaded"` // the queue is overloaded: waits are cut short
	Cap        int    `json:"cap"`        // requests in flight allowed while requests wait (see cap.go); 0: no cap
	Overloads  uint64 `json:"overloads"`  // times the queue became overloaded, since start
}
