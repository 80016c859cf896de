package client

import (
	"cmp"
	"fmt"
	"net/http"
	"sort"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/shoal-dev/shoal/balance"
	"github.com/shoal-dev/shoal/identity"
	"github.com/shoal-dev/shoal/resilience"
)

// Config is the client's policy for the services it calls. The zero value
// means DefaultConfig: every policy on, with defaults that need no tuning.
type Config struct {
	// MaxAttempts bounds the tries of one call, first and hedge included.
	MaxAttempts int `json:"max_attempts" yaml:"max_attempts"`
	// Timeout is the deadline of a call whose context has none.
	Timeout time.Duration `json:"timeout" yaml:"timeout"`
	// PerTryTimeout, if set, bounds each attempt's wait for response
	// headers; the attempt is then abandoned and, if the rules allow, tried
	// elsewhere. Zero (the default) means none: an attempt may use the
	// call's whole remaining deadline, because a slow answer is not a
	// failure. Stragglers are hedged, and a frozen instance is found by the
	// silent-instance check (see the package doc) instead.
	PerTryTimeout time.Duration `json:"per_try_timeout" yaml:"per_try_timeout"`
	// Budget bounds retries per service.
	Budget resilience.BudgetConfig `json:"budget" yaml:"budget"`
	// Balance configures instance choice and ejection (the per-instance
	// breaker) per service.
	Balance balance.Config `json:"balance" yaml:"balance"`
	// Hedge configures hedging of idempotent calls.
	Hedge resilience.HedgeConfig `json:"hedge" yaml:"hedge"`
	// Throttle configures client-side adaptive throttling per service.
	Throttle resilience.ThrottleConfig `json:"throttle" yaml:"throttle"`
	// MaxInFlight is the bulkhead: the most calls in flight to one service
	// at once; more fail at once with ErrBulkheadFull. 0 means
	// DefaultMaxInFlight; a negative value means no cap.
	MaxInFlight int `json:"max_in_flight" yaml:"max_in_flight"`

	// Dependencies overrides the policy for the services named: a field set
	// there replaces the one above; a block (budget, balance, hedge,
	// throttle) replaces the block above as a whole, its zero fields taking
	// the defaults.
	Dependencies map[string]Config `json:"dependencies,omitempty" yaml:"dependencies,omitempty"`

	// Observer, if set, is told of every attempt.
	Observer Observer `json:"-" yaml:"-"`
	// TracerProvider, if set, records a span per call and per further
	// attempt (see the package doc); nil records none. Either way a call
	// carries the W3C trace context and baggage of its context, and its
	// request ID (WithRequestID), to the callee.
	TracerProvider trace.TracerProvider `json:"-" yaml:"-"`
	// Base, if set, sends each attempt (one request to one instance's
	// address, http://host:port/...) instead of the default *http.Transport:
	// the gateway's HTTP/1.1 engine sets its own. It serves every service
	// called over plain HTTP (a dependencies entry's Base is ignored).
	Base http.RoundTripper `json:"-" yaml:"-"`
	// TLS, if set, makes every call mutual TLS with this process's
	// identity: each attempt goes to https://<instance address>/... through
	// an http.Transport of the service's own whose handshake succeeds only
	// with an instance proving it is that service (identity.Dialer), and
	// carries the user token of the request being served, if any
	// (identity.ForwardUser). The SDK sets it from the instance's identity.
	TLS *identity.Dialer `json:"-" yaml:"-"`
	// Plaintext names services called over plain HTTP (through Base) even
	// with TLS set: programs a manifest marks plaintext: true.
	Plaintext []string `json:"-" yaml:"-"`
}

// Observer learns of every attempt a Transport makes, failed or not. It is
// called as each attempt ends, on the calling goroutine or, for a hedge, on
// the hedge's, so it must not block.
type Observer interface {
	ObserveAttempt(service string, a Attempt)
}

// DefaultMaxInFlight is the default bulkhead: far above what a healthy
// dependency needs on one machine, low enough that a hung one cannot hold
// every goroutine of the caller.
const DefaultMaxInFlight = 1024

// DefaultConfig: 3 attempts, a 10 s deadline for calls that bring none, the
// default retry budget, balancer, hedging and throttling, and a bulkhead of
// DefaultMaxInFlight.
func DefaultConfig() Config {
	return Config{
		MaxAttempts: 3,
		Timeout:     10 * time.Second,
		Budget:      resilience.DefaultBudgetConfig(),
		Balance:     balance.DefaultConfig(),
		Hedge:       resilience.DefaultHedgeConfig(),
		Throttle:    resilience.DefaultThrottleConfig(),
		MaxInFlight: DefaultMaxInFlight,
	}
}

// withDefaults fills the zero fields of c from DefaultConfig.
func (c Config) withDefaults() Config {
	def := DefaultConfig()
	c.MaxAttempts = cmp.Or(c.MaxAttempts, def.MaxAttempts)
	c.Timeout = cmp.Or(c.Timeout, def.Timeout)
	c.Budget = cmp.Or(c.Budget, def.Budget)
	c.MaxInFlight = cmp.Or(c.MaxInFlight, def.MaxInFlight)
	return c
}

// forService is the policy for calls to service: c with the service's
// Dependencies entry laid over it, defaults filled in.
func (c Config) forService(service string) Config {
	return c.overlay(c.Dependencies[service]).withDefaults()
}

// overlay returns c with the fields d sets replacing c's; a block (budget,
// balance, hedge, throttle) replaces c's as a whole.
func (c Config) overlay(d Config) Config {
	if d.MaxAttempts != 0 {
		c.MaxAttempts = d.MaxAttempts
	}
	if d.Timeout != 0 {
		c.Timeout = d.Timeout
	}
	if d.PerTryTimeout != 0 {
		c.PerTryTimeout = d.PerTryTimeout
	}
	if d.Budget != (resilience.BudgetConfig{}) {
		c.Budget = d.Budget
	}
	if d.Balance != (balance.Config{}) {
		c.Balance = d.Balance
	}
	if d.Hedge != (resilience.HedgeConfig{}) {
		c.Hedge = d.Hedge
	}
	if d.Throttle != (resilience.ThrottleConfig{}) {
		c.Throttle = d.Throttle
	}
	if d.MaxInFlight != 0 {
		c.MaxInFlight = d.MaxInFlight
	}
	return c
}

// WithDependencies returns c with deps laid over its Dependencies: for each
// service named, the fields deps sets replace those c sets (as a manifest's
// dependencies: override a program's code). c is not modified.
func (c Config) WithDependencies(deps map[string]Config) Config {
	if len(deps) == 0 {
		return c
	}
	merged := make(map[string]Config, len(c.Dependencies)+len(deps))
	for name, d := range c.Dependencies {
		merged[name] = d
	}
	for name, d := range deps {
		merged[name] = merged[name].overlay(d)
	}
	c.Dependencies = merged
	return c
}

// Validate reports the first setting that cannot work, naming it as config
// files do. Zero fields are valid: they take their defaults.
func (c Config) Validate() error {
	if err := c.validate(); err != nil {
		return fmt.Errorf("client: %w", err)
	}
	names := make([]string, 0, len(c.Dependencies))
	for name := range c.Dependencies {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		d := c.Dependencies[name]
		if len(d.Dependencies) > 0 {
			return fmt.Errorf("client: dependencies.%s: dependencies do not nest", name)
		}
		if err := c.forService(name).validate(); err != nil {
			return fmt.Errorf("client: dependencies.%s: %w", name, err)
		}
	}
	return nil
}

func (c Config) validate() error {
	c = c.withDefaults()
	switch {
	case c.MaxAttempts < 1 || c.MaxAttempts > maxAttempts:
		return fmt.Errorf("max_attempts %d out of range [1, %d]", c.MaxAttempts, maxAttempts)
	case c.Timeout <= 0:
		return fmt.Errorf("timeout %v must be positive", c.Timeout)
	case c.PerTryTimeout < 0:
		return fmt.Errorf("per_try_timeout %v must not be negative", c.PerTryTimeout)
	}
	for _, err := range []error{c.Budget.Validate(), c.Balance.Validate(), c.Hedge.Validate(), c.Throttle.Validate()} {
		if err != nil {
			return err
		}
	}
	return nil
}

// maxAttempts bounds MaxAttempts so that the instances tried by one call fit
// in a fixed array.
const maxAttempts = 8
