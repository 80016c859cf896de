// Package dashboard is the web UI of `shoal up`: one page, embedded in the
// binary (plain HTML, JavaScript and CSS, no build step, nothing fetched
// from elsewhere, so it works offline), updated live over server-sent
// events from the supervisor it shows.
//
// It shows the system as a graph (services, their instances and states,
// the calls between services with their rate and error ratio), per service
// the rate, errors and p50/p99 of the last minutes as sparklines, per
// instance the state of every resilience policy (in flight against the
// adaptive concurrency limit, the requests queued for a slot and whether
// the instance is overloaded, admission refusals, the EWMA latency and
// breaker state its callers see, its own retries, hedges and throttling),
// per caller and dependency the client policies (Hystrix's circuits), an
// event feed, and the recent, slowest and failed traces, each as a
// waterfall across services with its attempts, hedges, failovers and
// fallbacks marked, and the log lines that carry its trace ID. Buttons
// kill, stop and continue an instance, scale a service and restart it
// rolling.
//
// # Wiring
//
// cmd/shoal passes New to the supervisor, which serves it on a loopback
// port of its own and prints its URL:
//
//	supervisor.Options{Dashboard: func(s *supervisor.Supervisor, token string) http.Handler {
//		return dashboard.New(s, token)
//	}}
//
// # Security
//
// The dashboard can kill processes, so it refuses (403) any request whose
// Host is not a loopback address or localhost (DNS rebinding), that does
// not carry the token (from the URL shoal up prints, kept in an HttpOnly
// SameSite=Strict cookie; or Authorization: Bearer TOKEN for scripts), or
// whose Origin is another site; a POST authenticated by the cookie must
// carry its own Origin, and every POST a JSON body. `shoal dashboard`
// prints the URL again (it is in .shoal/state.json).
//
// # JSON API
//
// Every answer is JSON; errors are {"error": {"code", "message"}} with
// the fitting status. Times are RFC 3339; durations of spans are
// milliseconds (offset_ms, duration_ms), latencies in rates are seconds;
// a figure without data is null.
//
//	GET  /api/overview
//	     The system: {system, manifest, now, step_s, services, edges,
//	     traces, events}. services[] = {name, kind (sdk|command), gateway,
//	     rates {rate, error_ratio, p50, p99} over the last 10 s, series
//	     (the same, one point per step_s over the last 5 minutes),
//	     instances[]}. instances[] = what `shoal ps -o json` shows plus
//	     slot ("catalog/1"), exited_at, and metrics {rate, error_ratio, p50,
//	     p99, in_flight, limit, rejected, cpu, rss, ewma, caller_in_flight,
//	     breaker, ejected, ejections, retries, hedges, hedge_wins,
//	     throttled, throttle_rate, bulkhead_full}. edges[] = {from, to,
//	     rate, error_ratio, retries, hedges, hedge_wins, throttled,
//	     throttle_rate, bulkhead_full, budget_exhausted, budget_left,
//	     in_flight, max_in_flight, open, half_open, metrics, traced}.
//	     events: the last 200, oldest first.
//	GET  /api/events?after=SEQ
//	     {events: [{seq, time, kind, level, service, instance, message}]}
//	     after the given seq. Kinds: ready, exit, unhealthy, healthy,
//	     stop, signal, scale, restart, breaker, ejection, reload, chaos.
//	GET  /api/traces[?limit=N]
//	     {recent, slowest, failed}: lists of {trace_id, root, service,
//	     start, duration_ms, spans, errors, services}; duration_ms is
//	     the root span's (what the caller waited), or the spans' extent
//	     until the root arrives.
//	GET  /api/traces/{trace_id}
//	     One trace: the summary fields (but spans is the list, not its
//	     length) and spans[] = {trace_id, span_id,
//	     parent_id, name, kind, service, instance (service.instance.id),
//	     slot, start, offset_ms, duration_ms, status (unset|ok|error),
//	     status_message, attributes, events}, by start time. 404 when the
//	     trace is not kept.
//	GET  /api/traces/{trace_id}/logs
//	     {lines: [{seq, instance, text}]}: the instances' log lines that
//	     carry the trace ID.
//	GET  /api/stream
//	     Server-sent events: "overview" (as /api/overview without events),
//	     "events" ({events} not sent before) and "traces" (as
//	     /api/traces), at most one update a second, after a change.
//	POST /api/instances/{service}/{index}/signal   {"signal": "KILL"}
//	     KILL, TERM, STOP, CONT, INT or HUP, as shoal kill; answers the
//	     instance's status.
//	POST /api/services/{service}/scale   {"instances": 5}
//	POST /api/services/{service}/restart {}
//	     As shoal scale and shoal restart: they answer once done.
//
// For example, with TOKEN from the URL:
//
//	curl -H "Authorization: Bearer $TOKEN" http://127.0.0.1:PORT/api/traces/4bf92f3577b34da6a3ce929d0e0e4736
package dashboard
