// Package chaos is request-scoped fault injection (Netflix's FIT redone for
// Shoal): a fault attached to chosen requests travels with them through
// the whole call tree and applies at the hop it names, wherever that is,
// to those requests only.
//
// # Faults
//
// A fault names a hop, an action and optionally a fraction (Parse):
//
//	ratings:delay=300ms             ratings waits 300 ms before its handler
//	catalog:error=503,p=0.5         half the requests reaching catalog get 503
//	search:abort                    search closes the connection, no answer
//	search:stall=2s                 search holds the request, answers nothing
//	api>ratings:reset               api's calls to ratings: a reset before sending
//	api>ratings:abort               ...sent, but the answer is lost
//	api>ratings:blackhole           ...no answer until api gives up
//	api>ratings:delay=100ms         ...sent 100 ms late
//	api>ratings:error=502           ...a 502 without reaching ratings
//
// A service hop (SERVICE) applies in that service's server (the SDK's
// handler chain, before admission control); a link hop (CALLER>SERVICE)
// applies in the caller's client transport, to each attempt, between the
// balancer and the instance: a network that misbehaves between the two,
// in process (tc netem needs root and hits the whole machine). Link also
// applies fixed link faults, for tests.
//
// # How a fault travels, and who may send one
//
// A fault rides in the Shoal-Fault header as a token (Signer): a JWT signed
// EdDSA with the operator's key, which only the operator holds (shoal up
// creates it in .shoal/chaos.key, mode 0600; `shoal chaos token` and
// `shoal experiment run` read it there). Every instance gets the public
// half (SHOAL_FAULT_KEY, shoal.Config.FaultKey) and verifies the token
// itself (Verifier), so only faults from the operator are honoured, at the
// gateway and at every hop behind it; a service that was broken into
// cannot make one. A header that is not such a token (a fault description
// from outside, another key's token, an expired one) is dropped and
// counted (shoal_chaos_tokens_refused_total), and the request is served as
// if it had none. The SDK's server takes the header off every request and
// puts the verified token in the request's context (NewContext); the
// client transport sets the header again on every call made with that
// context, so it follows the call tree without handlers doing anything.
// Tokens live at most 24 hours. A dedicated header rather than
// OpenTelemetry baggage: baggage is passed on by any instrumented program,
// unsigned, and a gateway could not tell it from a user's.
//
// # Experiments at the gateway
//
// An experiment token (Signer.Experiment) tells a gateway to put a share
// of its live traffic each into a control and an experiment cohort, by a
// hash of the authenticated caller or of the request ID, and to send the
// experiment cohort's requests with a fault token (see package gateway,
// and package chaos/experiment, which runs experiments to a verdict).
//
// # Profile tokens
//
// The operator's key also signs profile tokens (Signer.Profile): a service's
// instances serve their profiles (net/http/pprof, on the SDK's admin
// listener) only to a bearer of one for that service (Verifier.VerifyProfile),
// whatever address the request comes from. shoal profile signs them.
package chaos
