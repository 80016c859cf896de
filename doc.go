// Package shoal is the service SDK: it turns an http.Handler into a member of
// a Shoal system. Run serves the handler, joins gossip discovery so that
// callers find the instance within seconds, and adds what every service needs:
//
//   - an admin listener of its own (Config.AdminAddr, loopback by default),
//     never the service's: /healthz (alive), /readyz (ready: serving, not
//     draining, and every service it calls seen in discovery, see
//     Config.Calls), /infoz (name, instance, version, uptime, peers seen),
//     /metrics and /debug/pprof/ (profiles only for a token signed with
//     the operator's key, Config.FaultKey: shoal profile signs one);
//   - with an identity (Config.Identity; shoal up gives every instance
//     one), mutual TLS on the service's listener and on every call it makes,
//     and a Guard that lets a request reach the handler only from a service
//     the manifest's policy allows, or with a valid user token
//     (identity.CallerFrom and identity.UserFrom say which); without one it
//     serves plain HTTP to anyone, and logs so;
//   - the caller's deadline, from the client's Shoal-Timeout-Ms header, as the
//     handler's context deadline, and an X-Request-Id on every request;
//   - OpenTelemetry tracing configured by the standard OTEL_* environment
//     (OTLP/HTTP export, parent-based sampling; see telemetry.NewTracing,
//     Config.TracerProvider): a server span per request, continuing the
//     caller's W3C traceparent, and a client span per call the handler
//     makes with its request's context; log lines written with that context
//     (Logger().InfoContext...) carry trace_id, span_id and request_id;
//   - a client (Service.Client) that calls other services by name through
//     discovery, balancing and failover;
//   - background workers (Service.Go) that live as long as the service, with
//     panics recovered and counted;
//   - graceful shutdown on SIGTERM/SIGINT or context cancel: the instance is
//     marked draining in gossip, readiness turns false, peers are given time
//     to see it, in-flight requests finish, the workers stop, then it leaves
//     gossip and exits, all bounded by the drain timeout.
//
// A Router routes by method and path pattern (http.ServeMux's patterns),
// answers unknown paths and methods with the JSON error convention, and
// serves the API's OpenAPI document at /openapi.json.
//
// Configuration comes from a Config literal, then SHOAL_* environment
// variables, then command-line flags (see Config.FromEnv, Config.RegisterFlags).
// A process given a socket to serve on (SHOAL_LISTEN_FD, as `shoal up` gives
// every instance; see package handoff) serves on it instead of listening on
// Config.Addr.
package shoal
