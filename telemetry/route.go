package telemetry

import (
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// RouteMetrics are the RED metrics of an edge gateway, per route:
//
//   - shoal_gateway_requests_total{route, service, code}: requests the
//     gateway answered, by route (its path prefix, or "default" for
//     /<service>/<path> routing), target service and exact status code,
//     the gateway's own answers (401, 404, 413, 429...) included.
//   - shoal_gateway_request_duration_seconds{route, service}: time from
//     the request reaching the gateway to its answer ending.
//
// The labels stay bounded: routes come from the configuration, services
// from discovery (the gateway labels a request for an unknown service with
// service=""). Create it with NewRouteMetrics; it is safe for concurrent
// use.
type RouteMetrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec

	mu     sync.RWMutex
	series map[routeLabels]*routeSeries
}

type routeLabels struct{ route, service string }

// routeSeries caches the children of one route and service, so the hot
// path does no label hashing: a map lookup under a read lock, an array
// index and an atomic load.
type routeSeries struct {
	duration prometheus.Observer
	codes    [500]atomic.Pointer[prometheus.Counter] // codes 100 to 599
}

// NewRouteMetrics returns the gateway's route metrics, registered in reg
// (for a gateway running as a Shoal service, its Metrics.Registry, so they
// are served at its /metrics).
func NewRouteMetrics(reg prometheus.Registerer) (*RouteMetrics, error) {
	m := &RouteMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shoal_gateway_requests_total",
			Help: "Requests the gateway answered, by route (path prefix, or default), target service and exact status code.",
		}, []string{"route", "service", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:                            "shoal_gateway_request_duration_seconds",
			Help:                            "Time from a request reaching the gateway to its answer ending, by route and target service.",
			Buckets:                         durationBuckets,
			NativeHistogramBucketFactor:     1.1,
			NativeHistogramMaxBucketNumber:  160,
			NativeHistogramMinResetDuration: time.Hour,
		}, []string{"route", "service"}),
		series: map[routeLabels]*routeSeries{},
	}
	if err := register(reg, m.requests, m.duration); err != nil {
		return nil, err
	}
	return m, nil
}

// ObserveRoute records one request. It never blocks for long: it is called
// on every request's goroutine as the request ends.
func (m *RouteMetrics) ObserveRoute(route, service string, code int, d time.Duration) {
	key := routeLabels{route, service}
	m.mu.RLock()
	s := m.series[key]
	m.mu.RUnlock()
	if s == nil {
		s = m.newSeries(key)
	}
	s.duration.Observe(d.Seconds())
	if code < 100 || code > 599 {
		m.requests.WithLabelValues(route, service, strconv.Itoa(code)).Inc()
		return
	}
	p := &s.codes[code-100]
	c := p.Load()
	if c == nil {
		// Racing first uses store the same child.
		cnt := m.requests.WithLabelValues(route, service, strconv.Itoa(code))
		c = &cnt
		p.Store(c)
	}
	(*c).Inc()
}

func (m *RouteMetrics) newSeries(key routeLabels) *routeSeries {
	m.mu.Lock()
	defer m.mu.Unlock()
	if s := m.series[key]; s != nil {
		return s
	}
	s := &routeSeries{duration: m.duration.WithLabelValues(key.route, key.service)}
	m.series[key] = s
	return s
}
