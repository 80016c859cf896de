// Package discovery tells every Shoal process which instances of which
// services exist right now, without a registry server to run.
//
// Each process runs one [Member]. Members gossip with each other over
// hashicorp/memberlist (SWIM failure detection with the Lifeguard extensions),
// and each one carries its own [Instance] record (service name, HTTP address,
// version, serving or draining) as memberlist node metadata. Every member turns
// what it hears into a local [Catalog]: an immutable [Snapshot] replaced
// atomically on each change, so the request path (the client package's
// resolver and the balance package's picker) reads it without locks, network
// calls or allocation.
//
// Lifecycle of a member:
//
//   - [New] checks the configuration and the instance record; it does no I/O.
//   - [Member.Run] binds the gossip port, joins the seeds (retrying in the
//     background while none answers, so a service may start before its seeds),
//     keeps the catalog in sync with membership, and when its context ends
//     leaves gracefully and shuts down.
//   - [Member.SetState] advertises draining before a planned shutdown and
//     blocks until the change has been broadcast, so peers stop sending new
//     requests before the server stops.
//
// A member that crashes is removed from every peer's catalog by failure
// detection; one that leaves gracefully is removed as soon as its leave
// message spreads. [LocalConfig] tunes the timings for many members on one
// machine; see its comments for the numbers and why.
//
// The discoverytest package starts in-process clusters for tests.
package discovery
