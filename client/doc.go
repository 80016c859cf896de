// Package client makes calls between services resilient. Its Transport is an
// http.RoundTripper that resolves http://<service>/path to one instance of the
// service through the local discovery catalog (no network on the hot path),
// picks the instance with the balance package, bounds every attempt by a
// timeout carved from the caller's deadline, and fails over to a different
// instance when an attempt fails in a way that is safe to retry, as long as
// the per-service retry budget allows.
//
// The remaining deadline travels to the callee in the Shoal-Timeout-Ms header,
// which the shoal SDK server turns back into its handler's context deadline.
//
// Retry rule: an attempt that was never sent (dial error, connection refused)
// is always retried elsewhere; a timeout, a broken connection or a 502/503/504
// only for idempotent methods (GET, HEAD, OPTIONS, TRACE, PUT, DELETE) or
// requests carrying an Idempotency-Key header.
package client
