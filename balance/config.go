package balance

import (
	"cmp"
	"fmt"
	"math"
	"time"
)

// Config tunes a Balancer. The zero value works: every zero field means the
// value DefaultConfig gives it. Config is comparable, so callers can test a
// loaded Config against Config{}.
type Config struct {
	// Decay is the time constant of the peak-EWMA latency estimate: after
	// Decay without a higher sample, the distance between the estimate and
	// the latest samples has shrunk to 1/e (37%). An idle host's estimate
	// decays toward zero the same way, so a host that was slow is tried
	// again after a while. Finagle and Linkerd use 10 s.
	Decay time.Duration `json:"decay" yaml:"decay"`

	// FailurePenalty is the least latency charged for a Failure or a
	// ConnectFailure. Without it a host that fails fast (connection refused,
	// instant 503) would look like the fastest host and attract the traffic
	// it fails: the "black hole". Raise it for services whose normal latency
	// is above it.
	FailurePenalty time.Duration `json:"failure_penalty" yaml:"failure_penalty"`

	// Ejection sets when a failing host is taken out of rotation.
	Ejection EjectionConfig `json:"ejection" yaml:"ejection"`
}

// EjectionConfig sets outlier ejection, the per-instance circuit breaker: a
// host that fails ConsecutiveFailures times in a row, or whose failures
// reach FailureRate of at least MinRequests outcomes over RateWindow, or
// that fails a liveness check (Host.CheckDone), is ejected (picked only when no
// non-ejected serving host is left) for an ejection time that starts at
// BaseTime and doubles with each repeated ejection, up to MaxTime. A host that
// went MaxTime without being ejected starts again from BaseTime. Failures
// while ejected (when picked as a last resort) count toward the next
// ejection, which then follows as soon as the current one ends.
//
// When an ejection ends the breaker is half-open: the next request picked
// for the host is a probe, and while it is in flight the host is picked
// only as a last resort. The probe's success closes the breaker; its failure
// ejects the host again at once, for the next length.
//
// At most MaxFraction of the service's current hosts are ejected at once,
// rounded down but at least one, and never all of them: a one-host service
// is never ejected, and of two failing hosts only one is. An ejection the cap
// refuses is counted in HostStats.EjectionsRefused; the host is ejected on
// its next failure once the cap allows it.
type EjectionConfig struct {
	// ConsecutiveFailures is how many Failure or ConnectFailure outcomes in
	// a row eject a host. A Success resets the count; Canceled leaves it.
	ConsecutiveFailures int `json:"consecutive_failures" yaml:"consecutive_failures"`
	// BaseTime is the length of a host's first ejection.
	BaseTime time.Duration `json:"base_time" yaml:"base_time"`
	// MaxTime caps the length of an ejection.
	MaxTime time.Duration `json:"max_time" yaml:"max_time"`
	// FailureRate is the share of failed outcomes, in (0, 1], over
	// RateWindow that ejects a host once it has MinRequests outcomes there:
	// it catches a host failing often but not in a row.
	FailureRate float64 `json:"failure_rate" yaml:"failure_rate"`
	// MinRequests is the fewest outcomes in RateWindow for FailureRate to
	// apply.
	MinRequests int `json:"min_requests" yaml:"min_requests"`
	// RateWindow is the sliding window of FailureRate.
	RateWindow time.Duration `json:"rate_window" yaml:"rate_window"`
	// MaxFraction is the most of the service's hosts ejected at once, in
	// (0, 1].
	MaxFraction float64 `json:"max_fraction" yaml:"max_fraction"`
	// Disabled turns ejection off; latency and failures still steer picks
	// through the EWMA.
	Disabled bool `json:"disabled,omitempty" yaml:"disabled,omitempty"`
}

// Defaults, as DefaultConfig sets them.
const (
	DefaultDecay               = 10 * time.Second
	DefaultFailurePenalty      = 500 * time.Millisecond
	DefaultConsecutiveFailures = 3
	DefaultEjectionBaseTime    = 2 * time.Second
	DefaultEjectionMaxTime     = 30 * time.Second
	DefaultEjectionMaxFraction = 0.5
	DefaultFailureRate         = 0.5
	DefaultMinRequests         = 20
	DefaultRateWindow          = 10 * time.Second
)

// DefaultConfig is the configuration for services on one machine or a LAN:
// a 10 s decay, a 500 ms failure penalty, and ejection after 3 failures in a
// row or half of at least 20 outcomes over 10 s failed, for 2 s, 4 s, 8 s … up to 30 s, of at most half the hosts.
func DefaultConfig() Config {
	return Config{
		Decay:          DefaultDecay,
		FailurePenalty: DefaultFailurePenalty,
		Ejection: EjectionConfig{
			ConsecutiveFailures: DefaultConsecutiveFailures,
			BaseTime:            DefaultEjectionBaseTime,
			MaxTime:             DefaultEjectionMaxTime,
			MaxFraction:         DefaultEjectionMaxFraction,
			FailureRate:         DefaultFailureRate,
			MinRequests:         DefaultMinRequests,
			RateWindow:          DefaultRateWindow,
		},
	}
}

// withDefaults fills the zero fields of c from DefaultConfig.
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	c.Decay = cmp.Or(c.Decay, d.Decay)
	c.FailurePenalty = cmp.Or(c.FailurePenalty, d.FailurePenalty)
	e := &c.Ejection
	e.ConsecutiveFailures = cmp.Or(e.ConsecutiveFailures, d.Ejection.ConsecutiveFailures)
	e.BaseTime = cmp.Or(e.BaseTime, d.Ejection.BaseTime)
	if e.MaxTime == 0 {
		e.MaxTime = max(d.Ejection.MaxTime, e.BaseTime)
	}
	e.MaxFraction = cmp.Or(e.MaxFraction, d.Ejection.MaxFraction)
	e.FailureRate = cmp.Or(e.FailureRate, d.Ejection.FailureRate)
	e.MinRequests = cmp.Or(e.MinRequests, d.Ejection.MinRequests)
	e.RateWindow = cmp.Or(e.RateWindow, d.Ejection.RateWindow)
	return c
}

// Validate reports the first setting that cannot work, naming the field (as
// written in config files) and its value. Zero fields are valid: they take
// their defaults.
func (c Config) Validate() error {
	c = c.withDefaults()
	e := c.Ejection
	switch {
	case c.Decay < 0:
		return fmt.Errorf("balance: decay %v must not be negative", c.Decay)
	case c.FailurePenalty < 0:
		return fmt.Errorf("balance: failure_penalty %v must not be negative", c.FailurePenalty)
	case e.ConsecutiveFailures < 0:
		return fmt.Errorf("balance: ejection.consecutive_failures %d must not be negative", e.ConsecutiveFailures)
	case e.BaseTime < 0:
		return fmt.Errorf("balance: ejection.base_time %v must not be negative", e.BaseTime)
	case e.MaxTime < 0:
		return fmt.Errorf("balance: ejection.max_time %v must not be negative", e.MaxTime)
	case e.MaxTime < e.BaseTime:
		return fmt.Errorf("balance: ejection.max_time %v is less than ejection.base_time %v", e.MaxTime, e.BaseTime)
	case math.IsNaN(e.MaxFraction) || e.MaxFraction < 0 || e.MaxFraction > 1:
		return fmt.Errorf("balance: ejection.max_fraction %v out of range (0, 1]", e.MaxFraction)
	case math.IsNaN(e.FailureRate) || e.FailureRate < 0 || e.FailureRate > 1:
		return fmt.Errorf("balance: ejection.failure_rate %v out of range (0, 1]", e.FailureRate)
	case e.MinRequests < 0:
		return fmt.Errorf("balance: ejection.min_requests %d must not be negative", e.MinRequests)
	case e.RateWindow < 0:
		return fmt.Errorf("balance: ejection.rate_window %v must not be negative", e.RateWindow)
	case e.RateWindow > 0 && e.RateWindow < 2*time.Millisecond:
		return fmt.Errorf("balance: ejection.rate_window %v is below 2ms", e.RateWindow)
	}
	return nil
}
