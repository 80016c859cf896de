// Package balance picks which instance of a service gets the next request,
// and takes failing instances out of rotation for a while.
//
// The client package keeps one Balancer per service. For each attempt it
// passes the service's current instances, as the discovery catalog returns
// them, and the IDs already tried for this request:
//
//	h, err := bal.Pick(instances, tried) // ErrNoInstance: nothing left
//	start := h.Start()
//	resp, err := send(h.Instance().Addr)
//	h.Finish(start, outcome)             // Success, Failure, Refused, ... (see Outcome)
//
// # Choice
//
// Pick uses "power of two choices" (P2C): it draws two hosts at random and
// keeps the one of lower cost, where cost = peak-EWMA latency × (requests in
// flight + 1), as Finagle's and Linkerd's P2C-PeakEWMA balancers do. Two
// random draws avoid the herd behaviour of always taking the single best
// host on stale information, while still steering load away from slow or
// busy hosts.
//
// The latency estimate is a peak EWMA: a sample above the estimate replaces
// it at once; lower samples pull it down with time constant Config.Decay. An
// idle host's estimate decays toward zero, so a host avoided for being slow
// is tried again later. Failures count as at least Config.FailurePenalty of
// latency, so a host that fails fast does not look fast; a refusal (the
// instance is at its capacity) as twice the estimate, so a host that
// refuses fast does not look idle.
//
// A new host has no estimate. Following Finagle, it costs zero while idle,
// so it is picked as soon as P2C draws it and a new instance takes traffic
// within its first requests; while it has requests in flight and still no
// answer it costs a large penalty, so it is not flooded before its first
// answer sets its estimate. From then on peak EWMA decides.
//
// Hosts are preferred by tier: serving and not ejected, then serving but
// ejected (only when no better host is left), then draining (last resort: a
// draining instance still answers during its drain window). Pick never
// returns a host whose ID is in tried.
//
// # Ejection
//
// A host with EjectionConfig.ConsecutiveFailures failures in a row is
// ejected for a time that doubles with each repeated ejection, from BaseTime
// up to MaxTime. At most MaxFraction of the hosts are ejected at once, and
// never all of them. Ejection ends lazily: Pick compares the end time with
// time.Now, so no goroutine or timer is involved (and testing/synctest's fake
// clock drives it in tests).
//
// # Concurrency
//
// Balancer and Host are safe for concurrent use. Pick takes no lock and does
// not allocate as long as it is given the same candidate slice as before
// (the catalog returns the same slice until the instances change); a new
// slice takes the Balancer's lock once to map instance IDs to Hosts. Host
// counters are atomics; Finish takes a short per-host lock to update the
// estimate, and the Balancer's lock only to decide an ejection.
package balance
