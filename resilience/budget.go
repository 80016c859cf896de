package resilience

import (
	"fmt"
	"math"
	"sync"
	"time"
)

// BudgetConfig sets how many retries a dependency may receive on top of the
// requests that callers really make. Retries are allowed while, over the last
// Window, retries ≤ Ratio × requests + MinPerSecond × Window. The ratio bounds
// the extra load a dead or overloaded dependency sees to (1 + Ratio)×; the
// floor lets a lightly used dependency still fail over.
type BudgetConfig struct {
	Ratio        float64       `json:"ratio" yaml:"ratio"`
	MinPerSecond float64       `json:"min_per_second" yaml:"min_per_second"`
	Window       time.Duration `json:"window" yaml:"window"`
}

// DefaultBudgetConfig returns the budget Finagle and Linkerd ship with: 20% of
// requests plus 10 retries per second, over a 10 s window.
func DefaultBudgetConfig() BudgetConfig {
	return BudgetConfig{Ratio: 0.2, MinPerSecond: 10, Window: 10 * time.Second}
}

// Validate reports the first field that cannot work.
func (c BudgetConfig) Validate() error {
	switch {
	case math.IsNaN(c.Ratio) || c.Ratio < 0 || c.Ratio > 10:
		return fmt.Errorf("retry budget: ratio %v out of range [0, 10]", c.Ratio)
	case math.IsNaN(c.MinPerSecond) || math.IsInf(c.MinPerSecond, 0) || c.MinPerSecond < 0:
		return fmt.Errorf("retry budget: min_per_second %v must be a finite number, not negative", c.MinPerSecond)
	case c.Window != 0 && c.Window < 100*time.Millisecond:
		return fmt.Errorf("retry budget: window %v must be at least 100ms (0 means %v)", c.Window, DefaultBudgetConfig().Window)
	}
	return nil
}

// budgetSlots is how many slots the window is cut into: retries and requests
// age out one slot (Window/10) at a time.
const budgetSlots = 10

// Budget is a retry budget over a sliding window. It is safe for concurrent
// use; every method takes a short mutex and never blocks otherwise.
type Budget struct {
	cfg  BudgetConfig
	slot time.Duration

	mu      sync.Mutex
	slots   [budgetSlots]budgetSlot
	reqs    int64 // sums over slots, kept in step with them
	retries int64
}

type budgetSlot struct {
	epoch   int64 // which slot-length interval since the Unix epoch this slot holds
	reqs    int64
	retries int64
}

// NewBudget returns a budget. A zero config means DefaultBudgetConfig; a
// zero Window alone means the default window (a zero Ratio or MinPerSecond
// in an otherwise set config means none). It panics on a config that fails
// Validate: check it first where it comes from user input.
func NewBudget(cfg BudgetConfig) *Budget {
	if cfg == (BudgetConfig{}) {
		cfg = DefaultBudgetConfig()
	}
	if cfg.Window == 0 {
		cfg.Window = DefaultBudgetConfig().Window
	}
	if err := cfg.Validate(); err != nil {
		panic(err)
	}
	return &Budget{cfg: cfg, slot: cfg.Window / budgetSlots}
}

// Request records one request made by a caller (a first attempt).
func (b *Budget) Request() {
	b.mu.Lock()
	b.current(time.Now()).reqs++
	b.reqs++
	b.mu.Unlock()
}

// TryRetry spends one retry if the budget allows it and reports whether it did.
func (b *Budget) TryRetry() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.current(time.Now())
	if float64(b.retries+1) > b.cfg.Ratio*float64(b.reqs)+b.cfg.MinPerSecond*b.cfg.Window.Seconds() {
		return false
	}
	s.retries++
	b.retries++
	return true
}

// Left reports how many retries the budget would allow right now.
func (b *Budget) Left() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.current(time.Now())
	left := b.cfg.Ratio*float64(b.reqs) + b.cfg.MinPerSecond*b.cfg.Window.Seconds() - float64(b.retries)
	if left < 0 {
		return 0
	}
	return int(left)
}

// current returns the slot for now, expiring slots that fell out of the
// window. b.mu must be held.
func (b *Budget) current(now time.Time) *budgetSlot {
	epoch := now.UnixNano() / int64(b.slot)
	s := &b.slots[epoch%budgetSlots]
	if s.epoch != epoch {
		// Everything older than the window goes; one slot is reused per
		// slot-length, so walking all of them only happens after idle time.
		for i := range b.slots {
			o := &b.slots[i]
			if o.epoch <= epoch-budgetSlots && (o.reqs != 0 || o.retries != 0) {
				b.reqs -= o.reqs
				b.retries -= o.retries
				o.reqs, o.retries = 0, 0
			}
		}
		b.reqs -= s.reqs
		b.retries -= s.retries
		*s = budgetSlot{epoch: epoch}
	}
	return s
}
