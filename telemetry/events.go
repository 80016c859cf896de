package telemetry

import "github.com/prometheus/client_golang/prometheus"

// EventMetrics are the metrics of a service's event outbox (package
// events), which it is told of as they happen (it implements
// events.OutboxMetrics; set it as OutboxConfig.Metrics):
//
//   - shoal_events_deliveries_total{topic, service, outcome}: delivery
//     attempts of the producer instance, by topic, subscriber and outcome
//     (delivered, failed, or panicked: recovered, and counted as failed
//     too for the retry).
//   - shoal_events_dead_lettered_total{topic, service}: deliveries this
//     instance gave up on and moved to the dead letters. Alert on any
//     increase: a subscriber lost events until they are redelivered.
//   - shoal_events_dead_letters: dead letters in the database (all
//     instances'), as the outbox last counted them (every minute).
//
// Labels stay bounded: topics and subscribers come from the outbox's
// configuration. Create it with NewEventMetrics; it is safe for concurrent
// use. (telemetry does not import events, which would link the SQL
// drivers into every Shoal binary, the gateway's included.)
type EventMetrics struct {
	deliveries   *prometheus.CounterVec
	deadLettered *prometheus.CounterVec
	deadLetters  prometheus.Gauge
}

// NewEventMetrics returns the outbox metrics, registered in reg (a
// service's Metrics.Registry, so they are served at its /metrics).
func NewEventMetrics(reg prometheus.Registerer) (*EventMetrics, error) {
	m := &EventMetrics{
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shoal_events_deliveries_total",
			Help: "Event delivery attempts, by topic, subscriber and outcome (delivered, failed, panicked).",
		}, []string{"topic", "service", "outcome"}),
		deadLettered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shoal_events_dead_lettered_total",
			Help: "Event deliveries given up on (max attempts or age reached) and moved to the dead letters, by topic and subscriber.",
		}, []string{"topic", "service"}),
		deadLetters: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "shoal_events_dead_letters",
			Help: "Dead letters in the service's database, as its outbox last counted them; redeliver them once the subscriber is fixed.",
		}),
	}
	if err := register(reg, m.deliveries, m.deadLettered, m.deadLetters); err != nil {
		return nil, err
	}
	return m, nil
}

// Delivery counts one delivery attempt. It does not block.
func (m *EventMetrics) Delivery(topic, service, outcome string) {
	m.deliveries.WithLabelValues(topic, service, outcome).Inc()
}

// DeadLettered counts a delivery given up on. It does not block.
func (m *EventMetrics) DeadLettered(topic, service string) {
	m.deadLettered.WithLabelValues(topic, service).Inc()
}

// DeadLetters sets how many dead letters the database holds. It does not
// block.
func (m *EventMetrics) DeadLetters(n int64) { m.deadLetters.Set(float64(n)) }
