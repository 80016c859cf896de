package telemetry

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// CohortMetrics are what a gateway measures of the live traffic it puts
// in an experiment's cohorts (see package chaos), for the experiment to
// compare the two:
//
//   - shoal_chaos_cohort_requests_total{experiment, cohort, route, code}:
//     requests of each cohort the gateway answered, by route and exact
//     status code;
//   - shoal_chaos_cohort_request_duration_seconds{experiment, cohort,
//     route}: their time from reaching the gateway to their answer's end.
//
// Only the requests of a cohort are counted, a small share of the traffic,
// so labels are looked up per request. Create it with NewCohortMetrics; it
// is safe for concurrent use.
type CohortMetrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

// NewCohortMetrics returns cohort metrics registered in reg.
func NewCohortMetrics(reg prometheus.Registerer) (*CohortMetrics, error) {
	m := &CohortMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shoal_chaos_cohort_requests_total",
			Help: "Requests of an experiment's cohorts the gateway answered, by experiment, cohort (control or experiment), route and exact status code.",
		}, []string{"experiment", "cohort", "route", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "shoal_chaos_cohort_request_duration_seconds",
			Help:    "Time from a cohort's request reaching the gateway to its answer ending, by experiment, cohort and route.",
			Buckets: durationBuckets,
		}, []string{"experiment", "cohort", "route"}),
	}
	if err := register(reg, m.requests, m.duration); err != nil {
		return nil, err
	}
	return m, nil
}

// ObserveCohort records one request of a cohort as it ends.
func (m *CohortMetrics) ObserveCohort(experiment, cohort, route string, code int, d time.Duration) {
	m.requests.WithLabelValues(experiment, cohort, route, strconv.Itoa(code)).Inc()
	m.duration.WithLabelValues(experiment, cohort, route).Observe(d.Seconds())
}
