// Package verified caches the outcome of verifying a signed token, keyed by
// the token's exact text, until the token expires.
//
// The same bytes verify the same way for as long as the keys that checked
// them are unchanged and the token's time claims hold, so a cache hit skips
// the signature check (tens of microseconds of ECDSA or RSA) and nothing
// else. The owner keeps one Cache per set of keys: a key change builds a
// new verifier, hence a new, empty Cache.
package verified

import (
	"sync"
	"time"
)

// Cache maps a token to what verifying it produced. A full cache is
// emptied, not evicted entry by entry: simple, and at worst it costs one
// signature check per token again. Safe for concurrent use; the zero value
// is not usable (use New).
type Cache[V any] struct {
	limit int

	mu sync.RWMutex
	m  map[string]entry[V]
}

type entry[V any] struct {
	v     V
	until time.Time
}

// New returns a cache of at most limit tokens.
func New[V any](limit int) *Cache[V] {
	return &Cache[V]{limit: limit, m: make(map[string]entry[V])}
}

// Get returns what token verified to, if it is cached and now is before the
// time Put gave for it.
func (c *Cache[V]) Get(token string, now time.Time) (V, bool) {
	c.mu.RLock()
	e, ok := c.m[token]
	c.mu.RUnlock()
	if !ok || !now.Before(e.until) {
		var zero V
		return zero, false
	}
	return e.v, true
}

// Put records that token verified to v, valid until (its expiry, plus any
// leeway the verifier grants).
func (c *Cache[V]) Put(token string, v V, until time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= c.limit {
		clear(c.m)
	}
	c.m[token] = entry[V]{v, until}
}
