package idempotency

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"
)

// Config tunes a Store. The zero value works: every zero field takes the
// value DefaultConfig gives it.
type Config struct {
	// TTL is how long a key is remembered after its request was answered:
	// a retry with the key within TTL gets the first answer back; after it
	// the key is free again. It must cover the longest time a caller may
	// retry, with room to spare. Default 24 h, as Stripe and the IETF
	// Idempotency-Key draft suggest.
	TTL time.Duration `json:"ttl" yaml:"ttl"`

	// Lease is how long an attempt's claim on a key blocks other attempts
	// with the key (they wait) before it is taken to be dead (its instance
	// crashed or hung) and another attempt takes the key over. The lease of
	// a request with a deadline ends at that deadline if it comes first,
	// and the handler runs under the lease as its own deadline: an attempt
	// cannot outlive its claim unless its handler ignores its context.
	// Set it above the longest time a handler may take. Default 30 s.
	Lease time.Duration `json:"lease" yaml:"lease"`

	// MaxBodyBytes bounds the request body read to fingerprint it; a larger
	// body is refused with 413. Default 1 MiB.
	MaxBodyBytes int64 `json:"max_body_bytes" yaml:"max_body_bytes"`

	// PurgeInterval is how often Run deletes expired keys. Expired keys are
	// ignored whether purged or not, so it only bounds how long they take
	// disk space. Default 10 min.
	PurgeInterval time.Duration `json:"purge_interval" yaml:"purge_interval"`

	// Principal says who a request comes from: keys are unique per
	// principal, so an answer is replayed only to the principal that got
	// it first, and two principals choosing the same key never meet.
	// Default: VerifiedPrincipal. It is called from request goroutines,
	// and must not block.
	Principal func(*http.Request) Principal `json:"-" yaml:"-"`

	// Logger receives the failures no caller sees (a purge or a record
	// that could not be written); default slog.Default().
	Logger *slog.Logger `json:"-" yaml:"-"`
}

// Defaults, as DefaultConfig sets them.
const (
	DefaultTTL           = 24 * time.Hour
	DefaultLease         = 30 * time.Second
	DefaultMaxBodyBytes  = 1 << 20
	DefaultPurgeInterval = 10 * time.Minute
)

// DefaultConfig remembers keys for 24 h, lets a dead attempt block its key
// for at most 30 s (or until its request's deadline), fingerprints bodies
// up to 1 MiB and purges expired keys every 10 minutes.
func DefaultConfig() Config {
	return Config{
		TTL:           DefaultTTL,
		Lease:         DefaultLease,
		MaxBodyBytes:  DefaultMaxBodyBytes,
		PurgeInterval: DefaultPurgeInterval,
	}
}

// withDefaults fills the zero fields of c from DefaultConfig.
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	c.TTL = cmp.Or(c.TTL, d.TTL)
	if c.Lease == 0 {
		c.Lease = min(d.Lease, max(c.TTL, 0))
	}
	c.MaxBodyBytes = cmp.Or(c.MaxBodyBytes, d.MaxBodyBytes)
	c.PurgeInterval = cmp.Or(c.PurgeInterval, d.PurgeInterval)
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Principal == nil {
		c.Principal = VerifiedPrincipal
	}
	return c
}

// Validate reports every setting that cannot work, naming the field (as
// written in config files) and its value. Zero fields are valid: they take
// their defaults.
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	if c.TTL < 0 {
		errs = append(errs, fmt.Errorf("idempotency: ttl %v must not be negative", c.TTL))
	}
	if c.Lease < 0 {
		errs = append(errs, fmt.Errorf("idempotency: lease %v must not be negative", c.Lease))
	}
	if c.TTL > 0 && c.Lease > c.TTL {
		// A claim expires (and may be purged) after TTL: a longer lease
		// would let a live claim vanish.
		errs = append(errs, fmt.Errorf("idempotency: lease %v is longer than ttl %v", c.Lease, c.TTL))
	}
	if c.MaxBodyBytes < 0 {
		errs = append(errs, fmt.Errorf("idempotency: max_body_bytes %d must not be negative", c.MaxBodyBytes))
	}
	if c.PurgeInterval < 0 {
		errs = append(errs, fmt.Errorf("idempotency: purge_interval %v must not be negative", c.PurgeInterval))
	}
	return errors.Join(errs...)
}
