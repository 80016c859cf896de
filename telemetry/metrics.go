package telemetry

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/shoal-dev/shoal/client"
	"github.com/shoal-dev/shoal/resilience"
)

// DependencySource reports the client-side policies of the services a
// process calls. A *client.Transport implements it.
//
// Dependencies is called at scrape time, from goroutines the Prometheus
// registry starts, possibly from several at once when scrapes overlap. It
// must be safe for concurrent use and must not block: it reads counters
// and state that are already in memory (short lock holds are fine, I/O is
// not), because the scrape waits for it. telemetry neither keeps nor
// modifies the returned slice. A service should appear in one source
// only: the same service reported twice makes those series fail to
// gather (the rest of the scrape is still served).
type DependencySource interface {
	Dependencies() []client.DependencyStats
}

// LimiterSource reports a server's adaptive concurrency limit. A
// *shoal.Service implements it.
//
// Admission is called at scrape time under the same contract as
// [DependencySource.Dependencies]: safe for concurrent use, never blocking.
type LimiterSource interface {
	Admission() resilience.LimiterStats
}

// DependencySourceFunc adapts a function to a [DependencySource].
type DependencySourceFunc func() []client.DependencyStats

// Dependencies returns f().
func (f DependencySourceFunc) Dependencies() []client.DependencyStats { return f() }

// LimiterSourceFunc adapts a function to a [LimiterSource].
type LimiterSourceFunc func() resilience.LimiterStats

// Admission returns f().
func (f LimiterSourceFunc) Admission() resilience.LimiterStats { return f() }

// Metrics is the Prometheus metrics of one Shoal service instance: the
// state of its resilience policies, read from its sources at scrape time,
// the RED metrics of its handler (see [Metrics.Middleware]), and the Go
// runtime and process metrics. Create it with [New]; it is safe for
// concurrent use.
type Metrics struct {
	reg    *prometheus.Registry
	policy *policyCollector
	red    *red
}

// New returns the metrics of instance instance of service service, in a
// registry of their own (never the global default registry). service and
// instance are exported once, in shoal_service_info, rather than as labels
// on every series: see the package documentation. New does no I/O and
// starts no goroutines.
func New(service, instance string) *Metrics {
	reg := prometheus.NewRegistry()
	m := &Metrics{
		reg:    reg,
		policy: newPolicyCollector(service, instance),
		red:    newRED(),
	}
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.policy,
		m.red.requests,
		m.red.duration,
	)
	return m
}

// AddDependencies adds a source of client-side policy state, read at every
// scrape. It may be called at any time, also while scrapes run.
func (m *Metrics) AddDependencies(src DependencySource) {
	m.policy.mu.Lock()
	defer m.policy.mu.Unlock()
	m.policy.deps = append(m.policy.deps, src)
}

// AddLimiter sets the source of the server's admission state, read at
// every scrape. A process has one admission limiter: AddLimiter panics if
// called twice, as the shoal_server_* series carry no label to tell two
// apart.
func (m *Metrics) AddLimiter(src LimiterSource) {
	m.policy.mu.Lock()
	defer m.policy.mu.Unlock()
	if m.policy.limiter != nil {
		panic("telemetry: AddLimiter called twice")
	}
	m.policy.limiter = src
}

// Registry returns the registry the metrics live in, for a service to
// register metrics of its own next to them.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler returns the handler that serves the metrics at /metrics, in the
// format the scraper negotiates (text, OpenMetrics, or protobuf, which
// carries native histograms). A series that fails to gather is left out
// and counted in promhttp_metric_handler_errors_total; the rest of the
// scrape is served.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
		ErrorHandling: promhttp.ContinueOnError,
		Registry:      m.reg,
	})
}

// register registers each of cs in reg, stopping at the first it refuses.
func register(reg prometheus.Registerer, cs ...prometheus.Collector) error {
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}
