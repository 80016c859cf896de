package resilience

import (
	"cmp"
	"fmt"
	"math"
	"sync/atomic"
	"time"

	"github.com/failsafe-go/failsafe-go/adaptivethrottler"
)

// ThrottleConfig sets client-side adaptive throttling, after the Google SRE
// book ("Handling Overload"): a caller whose dependency accepts fewer than
// 1/K of its requests rejects new calls itself with probability
//
//	max(0, (requests − K·accepts) / (requests + 1))
//
// over the last Window, so an overloaded or dead dependency sheds load at
// the caller instead of being retried into the ground. K = 2 lets twice as
// many requests through as succeed: enough to see recovery at once, little
// enough that a dead dependency gets about a tenth of the offered load (the
// rejection probability is capped at MaxRejection so that some calls keep
// probing). The zero value means DefaultThrottleConfig.
type ThrottleConfig struct {
	// Disabled turns throttling off.
	Disabled bool `json:"disabled,omitempty" yaml:"disabled,omitempty"`
	// K is the multiplier of accepts, ≥ 1.
	K float64 `json:"k" yaml:"k"`
	// Window is how far back requests and accepts are counted.
	Window time.Duration `json:"window" yaml:"window"`
	// MinRequests is the fewest requests in Window before any rejection.
	MinRequests int `json:"min_requests" yaml:"min_requests"`
	// MaxRejection caps the rejection probability, in (0, 1].
	MaxRejection float64 `json:"max_rejection" yaml:"max_rejection"`
}

// DefaultThrottleConfig: K = 2 over 10 s (the retry budget's window), from
// 20 requests, rejecting at most 90% of calls. SRE uses 2 minutes; a shorter
// window lets a recovering dependency have its traffic back within seconds.
func DefaultThrottleConfig() ThrottleConfig {
	return ThrottleConfig{K: 2, Window: 10 * time.Second, MinRequests: 20, MaxRejection: 0.9}
}

func (c ThrottleConfig) withDefaults() ThrottleConfig {
	d := DefaultThrottleConfig()
	c.K = cmp.Or(c.K, d.K)
	c.Window = cmp.Or(c.Window, d.Window)
	c.MinRequests = cmp.Or(c.MinRequests, d.MinRequests)
	c.MaxRejection = cmp.Or(c.MaxRejection, d.MaxRejection)
	return c
}

// Validate reports the first setting that cannot work. Zero fields are
// valid: they take their defaults.
func (c ThrottleConfig) Validate() error {
	c = c.withDefaults()
	switch {
	case math.IsNaN(c.K) || math.IsInf(c.K, 1) || c.K < 1:
		return fmt.Errorf("resilience: throttle.k %v must be a finite number, at least 1", c.K)
	case c.Window < 20*time.Millisecond:
		return fmt.Errorf("resilience: throttle.window %v is below 20ms", c.Window)
	case c.MinRequests < 0:
		return fmt.Errorf("resilience: throttle.min_requests %d must not be negative", c.MinRequests)
	case math.IsNaN(c.MaxRejection) || c.MaxRejection <= 0 || c.MaxRejection > 1:
		return fmt.Errorf("resilience: throttle.max_rejection %v out of range (0, 1]", c.MaxRejection)
	}
	return nil
}

// Throttle is one dependency's adaptive throttle, failsafe-go's
// AdaptiveThrottler with Shoal's configuration. Safe for concurrent use.
type Throttle struct {
	t        adaptivethrottler.AdaptiveThrottler[any] // nil if disabled
	rejected atomic.Uint64
}

// NewThrottle returns a Throttle for cfg, whose zero fields take their
// defaults. It panics if cfg.Validate fails.
func NewThrottle(cfg ThrottleConfig) *Throttle {
	if err := cfg.Validate(); err != nil {
		panic(err)
	}
	if cfg.Disabled {
		return &Throttle{}
	}
	cfg = cfg.withDefaults()
	// failsafe-go's success-rate threshold is 1/K: it lets through
	// accepts/threshold = K·accepts requests.
	t := adaptivethrottler.NewBuilder[any]().
		WithFailureRateThreshold(1-1/cfg.K, uint(cfg.MinRequests), cfg.Window).
		WithMaxRejectionRate(cfg.MaxRejection).
		Build()
	return &Throttle{t: t}
}

// Allow reports whether a call may go ahead. A call it allows must be
// followed by Record of each of its requests.
func (t *Throttle) Allow() bool {
	if t.t == nil || t.t.TryAcquirePermit() {
		return true
	}
	t.rejected.Add(1)
	return false
}

// Record counts the outcome of one call allowed by Allow. A call is
// accepted when the dependency served it, even with a client error, on any
// attempt; refusals (429, 503), timeouts and connection failures on every
// attempt are not.
func (t *Throttle) Record(accepted bool) {
	switch {
	case t.t == nil:
	case accepted:
		t.t.RecordSuccess()
	default:
		t.t.RecordFailure()
	}
}

// Rate is the current rejection probability, as of the last Allow.
func (t *Throttle) Rate() float64 {
	if t.t == nil {
		return 0
	}
	return t.t.RejectionRate()
}

// Rejected counts the calls Allow refused.
func (t *Throttle) Rejected() uint64 { return t.rejected.Load() }
