// Package idempotency makes writes that carry an Idempotency-Key header
// apply once, however often they arrive: retried after a timeout, hedged to
// two instances at nearly the same time, or replayed on another instance
// after the first died mid-request. It is the server side of Shoal's retry
// rule (a request with an Idempotency-Key may be retried and failed over
// like a GET), and it keeps its keys in the service's own database (a
// table, Table, next to the service's data; principle 5: each service owns
// its data), for Config.TTL.
//
// # How
//
// Store.Middleware fingerprints each keyed request (method, path with
// query, SHA-256 of the body), finds its principal (who sends it: see
// below), and claims the key, for that principal, with one atomic statement:
// an INSERT for a new key, or an UPDATE … WHERE the record expired or its
// claim's lease ended. Of any number of attempts racing on a key, on any
// number of instances, exactly one holds it at a time. The holder runs the
// handler (with the lease as its deadline), and its answer is recorded
// before the caller sees it. The others poll the record every few
// milliseconds, reads only, until the answer is there and replay it (status,
// Content-Type and body, with Idempotent-Replayed: true), or until the
// lease ends and one of them takes the key over. A key that comes back with
// another request is refused (422 idempotency_key_reused), as the IETF
// httpapi Idempotency-Key draft says.
//
// # Principals and authorization
//
// Keys are unique per principal: the calling service and the end user it
// acts for (Config.Principal; by default VerifiedPrincipal: both as the
// service's identity.Guard verified them, or, on an instance without an
// identity, no caller and the subject the gateway put in the Shoal-Subject
// header). A stored answer is replayed
// only to requests of the principal that got it, so a key that another
// user chose, by chance or to probe, neither returns their answer nor
// tells (with a 422) that they used it.
//
// A replay is not authorized again by the handler: the middleware answers
// it. Together with the fingerprint, namespacing makes that safe wherever
// authorization depends only on who sends a request and what it is: the
// replay goes to the same principal, for the same method, path and body,
// as the answer it repeats. Where authorization depends on more (grants
// that may be revoked within TTL), use Store.Guarded, which asks an
// authorization function before the key is looked up: a request it
// refuses never sees a stored answer, and claims nothing.
//
// Answers below 500 are final and recorded, except 408, 425 and 429 ("not
// now", nothing done). A 5xx answer or a panic releases the key so that the
// retry runs the request again; so does Claim.Forget, which a handler calls
// for answers given before any effect (a validation error) so the caller may
// fix its request and keep its key.
//
// # The guarantee, and its limits
//
// Answers are once-only: every attempt with a key gets the first recorded
// answer, on whichever instance it lands, for TTL. (An attempt that outlived
// its lease and was taken over still answers its own caller; with Complete
// that answer can only be an error, since its commit fails.)
//
// Effects are exactly-once only for handlers that record the answer in the
// same transaction as their writes, with FromContext(ctx).Complete(ctx, tx,
// …): the key record and the writes commit together or not at all, and a
// claimant whose lease ended and was taken over cannot commit (Complete
// returns ErrClaimLost; the record is keyed on a per-claim token, not on
// time). This safety does not depend on clocks: they only decide when a
// waiter stops waiting.
//
// Handlers that do not use Complete get at-least-once effects with
// once-only answers: if an instance dies between the handler's writes and
// the record of its answer, or the handler outlives its lease (it ignored
// its context), a later attempt runs the handler again. Effects outside the
// database (calls to other services, messages) are never covered by the
// transaction: pass the key on to them.
//
// Other limits:
//   - Keys are remembered for TTL after the answer; a retry after that runs
//     again. Expired records are ignored at once and deleted by Store.Run.
//   - A request with a deadline holds its key until that deadline at most,
//     others for Lease: after a crash, retries of that key wait that long.
//     A waiter whose own deadline ends first gets 409
//     idempotency_key_in_use with Retry-After.
//   - Leases compare the claimant's clock with the waiter's: across hosts,
//     clock skew must stay well under Lease.
//   - The fingerprint is byte-exact: the same JSON with other whitespace is
//     another request. Retries resend the same bytes; a client that
//     re-encodes must encode the same way.
//   - Only status, Content-Type and body are replayed; other headers set by
//     the handler (Location, ETag) are not recorded.
//   - Answers are buffered in memory and in the record: this is for API
//     writes, not for streaming or large downloads (bodies are capped at
//     Config.MaxBodyBytes; answers are not).
//   - Keys are per service database and principal: two requests of one
//     principal choosing the same key collide (422). Use random keys
//     (UUIDs).
//
// # Databases
//
// The Store lives in the service's store.DB, on SQLite (WAL, with a
// busy_timeout) or PostgreSQL; its SQL is portable: $n parameters, ON
// CONFLICT DO NOTHING, BIGINT millisecond times. Migrate runs the
// package's migrations ("idempotency" in shoal_migrations) under the
// store's migration lock, with body as BLOB or BYTEA, so instances
// starting at once need nothing more. Its writes are transactions of
// their own (store.DB.Tx: queued behind the process's other writers, and
// retried while the database is busy, as long as the request lasts; up to
// 5 s when recording an answer). Under PostgreSQL's READ COMMITTED,
// Complete's UPDATE … WHERE token locks the row, so a takeover racing
// with a commit waits for it and then sees the answer.
//
// # Differences from the design brief
//
// Complete takes a context (house style: ctx first). Safe methods pass
// through even with a key (a GET is idempotent already; recording its
// answer would freeze it). The lease is also the handler's deadline, so an
// attempt stops working when others may take its key over. Claim.Forget is
// added so validation errors do not burn keys (as Stripe does). 408, 425
// and 429 release the key like 5xx. Busy databases are retried, as
// store.DB.Tx does: lock timeouts would otherwise turn load into 503s, or
// leave a claim unrecorded until its lease ends.
package idempotency
