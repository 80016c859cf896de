// Package telemetry exports the metrics of a Shoal service in the
// Prometheus format: the state of every resilience policy, the RED
// metrics (rate, errors, duration) of the service's own handler, and the
// Go runtime and process metrics. It also traces requests with
// OpenTelemetry and ties log lines to them.
//
// # Traces and logs
//
// [NewTracing] reads the standard OTEL_* environment (the one shoal up
// gives every instance): spans go over OTLP/HTTP to
// OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT, sampled parent-based with a ratio
// (OTEL_TRACES_SAMPLER, _ARG; all by default); no endpoint, no tracing.
// [Tracing.Middleware] gives every request an ID (X-Request-Id), takes in
// the caller's W3C trace context and baggage, and records a server span;
// the client package sends all three on with every call made with the
// request's context. [NewLogHandler] adds trace_id, span_id and
// request_id to every line logged with such a context, so that shoal logs
// and the dashboard find a trace's lines across services.
//
// The policies keep their own counters and state; telemetry reads them at
// scrape time through small interfaces the policies' owners implement —
// [DependencySource] (a *client.Transport) and [LimiterSource] (a
// *shoal.Service) — and turns each snapshot into const metrics. Nothing
// runs between scrapes and nothing is copied on the request path, except
// by [Metrics.Middleware], which records each request it serves.
//
// Wiring, done by the shoal package:
//
//	m := telemetry.New("catalog", "catalog-1")
//	m.AddDependencies(transport)
//	m.AddLimiter(service)
//	mux.Handle("GET /metrics", m.Handler())
//	handler = m.Middleware(handler)
//
// Every Metrics has a registry of its own; nothing is registered in the
// global default registry.
//
// # Labels
//
// The exporting service and instance are not labels on every series: the
// scrape target's labels (job, instance, and on Kubernetes pod and
// service) already say where a series comes from, and a scraped label
// named service or instance would clash with them. They are exported once,
// in shoal_service_info{service_name, service_instance_id} 1, to join on
// when needed.
//
// On client metrics, service is the dependency called and instance_id one
// of its instances (the discovery ID). On server metrics there are no
// labels but method and code.
//
// # Client metrics, per dependency {service}
//
//   - shoal_client_calls_total, shoal_client_failures_total: calls made,
//     and calls that ended in an error or a 5xx after retries and hedges
//     (their deadline passing included; not those their caller canceled,
//     which stopped waiting). failures/calls is the error rate the caller
//     sees.
//   - shoal_client_retries_total: attempts after the first, hedges excluded.
//   - shoal_client_budget_left: retries the retry budget allows now;
//     shoal_client_budget_exhausted_total: retries it refused. A budget
//     near 0 with a rising exhausted count means the dependency fails more
//     than the budget covers: failures now reach the caller instead of
//     being retried, on purpose, so retries cannot amplify an outage.
//   - shoal_client_throttle_rate: probability in [0, 1] that the adaptive
//     throttle rejects a call at the caller; above 0 the dependency is
//     rejecting requests and the caller is backing off.
//     shoal_client_throttled_total counts the calls it rejected.
//   - shoal_client_in_flight vs shoal_client_max_in_flight: calls in flight
//     and the bulkhead's cap (0: no cap). When in_flight reaches the cap,
//     calls are rejected and shoal_client_bulkhead_full_total rises.
//   - shoal_client_hedges_total, shoal_client_hedge_wins_total: hedged
//     attempts sent, and those whose answer was used. wins/hedges near 0
//     means hedges add load without cutting the tail.
//
// And for the whole process, with no labels:
// shoal_client_async_panics_total, panics recovered on the goroutines
// client.Async starts (each logged with its stack); any increase is a bug.
//
// # Client metrics, per instance {service, instance_id}
//
//   - shoal_client_instance_ewma_seconds: the peak-EWMA latency the
//     balancer ranks the instance by (with in-flight; lower gets more).
//   - shoal_client_instance_in_flight: calls to the instance in flight.
//   - shoal_client_instance_ejected: 1 while outlier detection has the
//     instance ejected, else 0. sum by (service) gives how many are out.
//   - shoal_client_instance_ejections_total: ejections so far;
//     shoal_client_instance_ejections_refused_total: ejections refused
//     because the cap on the ejected fraction was reached (the dependency
//     is failing broadly, not one bad instance).
//   - shoal_client_instance_breaker_state{state}: one series per state,
//     closed, open and half_open; 1 for the current one, 0 for the others.
//     sum by (service, state) counts instances per state; open is ejected,
//     half_open is back on probation. No series when the balancer reports
//     no breaker.
//
// # Server metrics
//
//   - shoal_server_concurrency_limit vs shoal_server_in_flight: the
//     adaptive concurrency limit and the requests admitted and running; a
//     falling limit means the service's latency is rising.
//     shoal_server_concurrency_cap, when not 0, caps the requests in
//     flight below the limit while others wait (the process was found to
//     queue work inside).
//   - shoal_server_queued: requests waiting for a slot now. A request
//     beyond the limit waits while its deadline allows its expected wait
//     plus the mean service time, and is refused at once otherwise.
//     shoal_server_waited_total counts those admitted after waiting.
//   - shoal_server_admitted_total, shoal_server_rejected_total: requests
//     admitted and not admitted (503 with Retry-After, unprocessed);
//     rejected/(admitted+rejected) is the shed rate. Of the rejected,
//     shoal_server_rejected_late_total were refused after waiting (the
//     wait their deadline allowed ran out: the expected wait was wrong;
//     or overload began and the backlog was shed), and
//     shoal_server_abandoned_total were given up by their caller while
//     they waited (canceled, or a hedge answered first elsewhere).
//   - shoal_server_overloaded: 1 while more requests arrive than the
//     instance completes (an open-loop excess, not a long but steady
//     queue); a request then waits only if nobody waits ahead of it or it
//     would be served within [resilience.OverloadTarget], so the excess
//     is refused at once.
//     shoal_server_overloads_total counts the times it began.
//   - shoal_http_requests_total{method, route, code}: requests the handler
//     finished. Rate is its rate; errors are code=~"5..". A 5xx answered
//     to a caller that had already gone (a hedge that lost, a client that
//     gave up) is recorded as 499 ([StatusClientClosed]): nobody saw it.
//   - shoal_http_request_duration_seconds{method, route, code}: handler latency,
//     as classic buckets from 0.5 ms to 10 s and, for scrapers that
//     negotiate protobuf, a native histogram. Split it by code: fast 503
//     rejections under overload would otherwise make latency look better.
//
// method is one of the nine standard methods or "other"; route is the
// template of the service Router's pattern that served the request
// ("/titles/{id}"), empty for a request no route served; code is the exact
// status code (see [Metrics.Middleware] for why).
//
// # Event metrics
//
// A service that publishes events registers [EventMetrics] (see there) in
// its registry: deliveries by outcome, dead-lettered deliveries, and the
// dead letters held.
package telemetry
