package telemetry

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/shoal-dev/shoal/balance"
	"github.com/shoal-dev/shoal/client"
	"github.com/shoal-dev/shoal/resilience"
)

// Label names. The per-instance label is instance_id, not instance: a
// scraped label named instance collides with the target label Prometheus
// attaches to every series and is renamed exported_instance under the
// default honor_labels: false.
const (
	labelService    = "service"     // the dependency a client metric is about
	labelInstanceID = "instance_id" // one instance of that dependency
	labelState      = "state"       // a breaker state
)

// policyCollector exports the state of the resilience policies, read from
// the sources at scrape time. Every value is a const metric: the sources
// own the counters, so nothing is kept here between scrapes and nothing
// runs in the background.
type policyCollector struct {
	info *prometheus.Desc

	calls, failures, retries              *prometheus.Desc
	budgetLeft, budgetExhausted           *prometheus.Desc
	throttleRate, throttled               *prometheus.Desc
	inFlight, maxInFlight, bulkheadFull   *prometheus.Desc
	hedges, hedgeWins                     *prometheus.Desc
	instEWMA, instInFlight, instEjected   *prometheus.Desc
	instEjections, instRefused, instBreak *prometheus.Desc

	limit, srvInFlight, admitted, rejected *prometheus.Desc
	queued, waited, late, abandoned        *prometheus.Desc
	overloaded, overloads, capped          *prometheus.Desc

	asyncPanics *prometheus.Desc

	service, instance string

	mu      sync.Mutex // guards deps and limiter
	deps    []DependencySource
	limiter LimiterSource
}

func newPolicyCollector(service, instance string) *policyCollector {
	dep := []string{labelService}
	inst := []string{labelService, labelInstanceID}
	d := prometheus.NewDesc
	return &policyCollector{
		service:  service,
		instance: instance,
		info: d("shoal_service_info",
			"Always 1; its labels name the Shoal service and the instance that exports these metrics.",
			[]string{"service_name", "service_instance_id"}, nil),

		calls: d("shoal_client_calls_total",
			"Calls made to the service (RoundTrips, not attempts).", dep, nil),
		failures: d("shoal_client_failures_total",
			"Calls to the service that ended in an error or a 5xx, after retries and hedges.", dep, nil),
		retries: d("shoal_client_retries_total",
			"Attempts after the first to the service, hedges excluded.", dep, nil),
		budgetLeft: d("shoal_client_budget_left",
			"Retries the retry budget would allow now; 0 means retries are being refused.", dep, nil),
		budgetExhausted: d("shoal_client_budget_exhausted_total",
			"Retries the retry budget refused.", dep, nil),
		throttleRate: d("shoal_client_throttle_rate",
			"Probability, in [0, 1], that the adaptive throttle rejects a call at the caller now.", dep, nil),
		throttled: d("shoal_client_throttled_total",
			"Calls the adaptive throttle rejected at the caller, without sending them.", dep, nil),
		inFlight: d("shoal_client_in_flight",
			"Calls to the service in flight now.", dep, nil),
		maxInFlight: d("shoal_client_max_in_flight",
			"The bulkhead's cap on calls in flight; 0 means no cap.", dep, nil),
		bulkheadFull: d("shoal_client_bulkhead_full_total",
			"Calls rejected because the bulkhead was full.", dep, nil),
		hedges: d("shoal_client_hedges_total",
			"Hedged attempts sent because an attempt passed the latency threshold.", dep, nil),
		hedgeWins: d("shoal_client_hedge_wins_total",
			"Hedged attempts whose answer was used.", dep, nil),

		instEWMA: d("shoal_client_instance_ewma_seconds",
			"Peak-EWMA latency estimate of the instance, used by the balancer; 0 before the first sample.", inst, nil),
		instInFlight: d("shoal_client_instance_in_flight",
			"Calls to the instance in flight now.", inst, nil),
		instEjected: d("shoal_client_instance_ejected",
			"1 if the instance is ejected by outlier detection now (it gets traffic only when nothing else is left), else 0.", inst, nil),
		instEjections: d("shoal_client_instance_ejections_total",
			"Times the instance was ejected by outlier detection.", inst, nil),
		instRefused: d("shoal_client_instance_ejections_refused_total",
			"Ejections of the instance refused because the cap on the ejected fraction was reached.", inst, nil),
		instBreak: d("shoal_client_instance_breaker_state",
			"Circuit breaker state of the instance: 1 for the current state (closed, open or half_open), 0 for the others.",
			[]string{labelService, labelInstanceID, labelState}, nil),

		limit: d("shoal_server_concurrency_limit",
			"The adaptive concurrency limit now; a request beyond it waits for a slot while its deadline allows, else is rejected with 503 at once.", nil, nil),
		srvInFlight: d("shoal_server_in_flight",
			"Requests admitted and not finished; at the concurrency limit (or the cap), new requests queue or are rejected.", nil, nil),
		admitted: d("shoal_server_admitted_total",
			"Requests admitted by the admission control, at once or after waiting.", nil, nil),
		rejected: d("shoal_server_rejected_total",
			"Requests not admitted (503 with Retry-After, unprocessed): refused at once, refused after waiting, or given up by their caller while waiting.", nil, nil),
		queued: d("shoal_server_queued",
			"Requests waiting for a slot now.", nil, nil),
		waited: d("shoal_server_waited_total",
			"Requests admitted after waiting for a slot.", nil, nil),
		late: d("shoal_server_rejected_late_total",
			"Requests refused after waiting (also in shoal_server_rejected_total): the wait their deadline allowed ran out, or overload began and the backlog was shed.", nil, nil),
		abandoned: d("shoal_server_abandoned_total",
			"Requests whose caller gave up while they waited for a slot (also in shoal_server_rejected_total).", nil, nil),
		overloaded: d("shoal_server_overloaded",
			"1 while the instance is overloaded (more requests arrive than it completes): a request then waits only if nobody waits ahead of it or it would be served within "+resilience.OverloadTarget.String()+"; else 0.", nil, nil),
		overloads: d("shoal_server_overloads_total",
			"Times the instance became overloaded.", nil, nil),
		capped: d("shoal_server_concurrency_cap",
			"The cap on requests in flight below the limit while requests wait (the process queues work inside); 0 means no cap.", nil, nil),

		asyncPanics: d("shoal_client_async_panics_total",
			"Panics recovered on goroutines client.Async started (in a call or its fallback), in the whole process.", nil, nil),
	}
}

// Describe sends every descriptor, so the registry checks the collector.
func (c *policyCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{
		c.info,
		c.calls, c.failures, c.retries,
		c.budgetLeft, c.budgetExhausted,
		c.throttleRate, c.throttled,
		c.inFlight, c.maxInFlight, c.bulkheadFull,
		c.hedges, c.hedgeWins,
		c.instEWMA, c.instInFlight, c.instEjected,
		c.instEjections, c.instRefused, c.instBreak,
		c.limit, c.srvInFlight, c.admitted, c.rejected,
		c.queued, c.waited, c.late, c.abandoned,
		c.overloaded, c.overloads, c.capped,
		c.asyncPanics,
	} {
		ch <- d
	}
}

// Collect reads every source once and sends its state.
func (c *policyCollector) Collect(ch chan<- prometheus.Metric) {
	deps, limiter := c.sources()
	gauge(ch, c.info, 1, c.service, c.instance)
	for _, src := range deps {
		ds := src.Dependencies()
		for i := range ds {
			c.collectDependency(ch, &ds[i])
		}
	}
	if limiter != nil {
		s := limiter.Admission()
		gauge(ch, c.limit, float64(s.Limit))
		gauge(ch, c.srvInFlight, float64(s.InFlight))
		counter(ch, c.admitted, float64(s.Admitted))
		counter(ch, c.rejected, float64(s.Rejected))
		gauge(ch, c.queued, float64(s.Queued))
		counter(ch, c.waited, float64(s.Waited))
		counter(ch, c.late, float64(s.Late))
		counter(ch, c.abandoned, float64(s.Abandoned))
		gauge(ch, c.overloaded, boolValue(s.Overloaded))
		counter(ch, c.overloads, float64(s.Overloads))
		gauge(ch, c.capped, float64(s.Cap))
	}
	counter(ch, c.asyncPanics, float64(client.AsyncPanics()))
}

// sources returns the current sources. It copies them under the lock, so
// Add* may run during a scrape, and the sources are called after the lock
// is released, so a slow source cannot hold up Add*.
func (c *policyCollector) sources() ([]DependencySource, LimiterSource) {
	c.mu.Lock()
	defer c.mu.Unlock()
	// Capacity clipped: a later append copies instead of writing into the
	// returned slice.
	return c.deps[:len(c.deps):len(c.deps)], c.limiter
}

func (c *policyCollector) collectDependency(ch chan<- prometheus.Metric, d *client.DependencyStats) {
	svc := d.Service
	counter(ch, c.calls, float64(d.Calls), svc)
	counter(ch, c.failures, float64(d.Failures), svc)
	counter(ch, c.retries, float64(d.Retries), svc)
	gauge(ch, c.budgetLeft, float64(d.BudgetLeft), svc)
	counter(ch, c.budgetExhausted, float64(d.BudgetExhausted), svc)
	gauge(ch, c.throttleRate, d.ThrottleRate, svc)
	counter(ch, c.throttled, float64(d.Throttled), svc)
	gauge(ch, c.inFlight, float64(d.InFlight), svc)
	gauge(ch, c.maxInFlight, float64(d.MaxInFlight), svc)
	counter(ch, c.bulkheadFull, float64(d.BulkheadFull), svc)
	counter(ch, c.hedges, float64(d.Hedges), svc)
	counter(ch, c.hedgeWins, float64(d.HedgeWins), svc)
	for i := range d.Hosts {
		c.collectHost(ch, svc, &d.Hosts[i])
	}
}

func (c *policyCollector) collectHost(ch chan<- prometheus.Metric, svc string, h *balance.HostStats) {
	id := h.ID
	gauge(ch, c.instEWMA, h.EWMA.Seconds(), svc, id)
	gauge(ch, c.instInFlight, float64(h.InFlight), svc, id)
	gauge(ch, c.instEjected, boolValue(h.Ejected), svc, id)
	counter(ch, c.instEjections, float64(h.Ejections), svc, id)
	counter(ch, c.instRefused, float64(h.EjectionsRefused), svc, id)
	c.collectBreaker(ch, svc, id, hostBreaker(h))
}

// collectBreaker sends the enum-as-gauge series of one breaker: 1 for the
// current state, 0 for the others, so sum by (state) counts the instances
// in each state and a change of state never leaves a stale series behind.
// An empty state (no breaker) sends nothing; an unknown one sends all
// zeros rather than a series per unforeseen value.
func (c *policyCollector) collectBreaker(ch chan<- prometheus.Metric, svc, id, state string) {
	if state == "" {
		return
	}
	for _, s := range breakerStates {
		gauge(ch, c.instBreak, boolValue(s == state), svc, id, s)
	}
}

func gauge(ch chan<- prometheus.Metric, d *prometheus.Desc, v float64, labels ...string) {
	constMetric(ch, d, prometheus.GaugeValue, v, labels)
}

func counter(ch chan<- prometheus.Metric, d *prometheus.Desc, v float64, labels ...string) {
	constMetric(ch, d, prometheus.CounterValue, v, labels)
}

// constMetric sends a const metric. It uses NewConstMetric, not
// MustNewConstMetric: a label value that is not valid UTF-8 (a service
// name from a misbehaving peer) must fail that one series, which the
// handler reports and leaves out, not panic in the registry's collecting
// goroutine and take the process down.
func constMetric(ch chan<- prometheus.Metric, d *prometheus.Desc, t prometheus.ValueType, v float64, labels []string) {
	m, err := prometheus.NewConstMetric(d, t, v, labels...)
	if err != nil {
		m = prometheus.NewInvalidMetric(d, err)
	}
	ch <- m
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
