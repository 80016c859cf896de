package shoal

import "github.com/shoal-dev/shoal/telemetry"

// Metrics returns the instance's metrics, served at /metrics, so that a
// service can register metrics of its own next to them (in
// Metrics().Registry()); the gateway adds its per-route metrics this way.
func (s *Service) Metrics() *telemetry.Metrics { return s.metrics }
