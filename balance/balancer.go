package balance

import (
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/shoal-dev/shoal/discovery"
)

// ErrNoInstance is returned by Pick when no candidate is left once the
// tried ones are excluded.
var ErrNoInstance = errors.New("balance: no instance to pick")

// Balancer picks instances of one service. Create one per service with New;
// it is safe for concurrent use.
type Balancer struct {
	cfg   Config    // defaults applied; read-only after New
	tau   float64   // cfg.Decay in ns
	epoch time.Time // origin of the int64 nanosecond times kept in Hosts

	// set is the host set for the last candidate slice seen. Pick reads it
	// without locking; it is replaced, never changed, when the candidates
	// change.
	set atomic.Pointer[hostSet]

	// mu serializes set replacement and ejection decisions (which need a
	// consistent count of ejected hosts). Both are rare; the steady-state
	// Pick path never takes it.
	mu sync.Mutex
}

// hostSet maps one candidate slice to Hosts. Immutable once published.
type hostSet struct {
	// base and n identify the slice it was built from: the catalog hands
	// out the same backing array until the service's instances change.
	base  *discovery.Instance
	n     int
	hosts []*Host // hosts[i] is the Host of candidates[i]
	all   []*Host // distinct Hosts, sorted by ID
}

// New returns a Balancer for cfg, whose zero fields take their defaults.
// It does no I/O and starts no goroutines. It panics if cfg.Validate fails:
// validate configuration loaded from files first.
func New(cfg Config) *Balancer {
	if err := cfg.Validate(); err != nil {
		panic(err)
	}
	cfg = cfg.withDefaults()
	return &Balancer{cfg: cfg, tau: float64(cfg.Decay), epoch: time.Now()}
}

// nanotime is the monotonic time in ns since b.epoch (fake time under
// testing/synctest, since it reads time.Now).
func (b *Balancer) nanotime() int64 { return int64(time.Since(b.epoch)) }

// clock reads b.nanotime once, on first use: Pick needs the time only when
// a host has an ejection set, and reading it costs as much as the rest of a
// pick. Once read, every tier decision of the pick uses the same instant.
type clock struct {
	b   *Balancer
	now int64
	ok  bool
}

func (c *clock) get() int64 {
	if !c.ok {
		c.now, c.ok = c.b.nanotime(), true
	}
	return c.now
}

// Preference tiers, best first. Pick chooses among the non-tried candidates
// of the best non-empty tier. Instances in any state other than serving
// rank with draining ones.
const (
	tierServing        = iota // serving, not ejected
	tierServingEjected        // serving but ejected
	tierDraining              // draining: still answers during its drain window
	tierDrainingEjected
	numTiers
)

func tier(in *discovery.Instance, h *Host, clk *clock) int {
	t := tierServing
	if in.State != discovery.StateServing {
		t = tierDraining
	}
	if h.ejected(clk) {
		t++
	}
	return t
}

// fastTries bounds the random draws of Pick's fast path. With half the
// candidates eligible it finds two in 8 draws 96% of the time.
const fastTries = 8

// Pick chooses a host among candidates, the service's current instances,
// leaving out those whose ID is in tried. Among the best tier of what is
// left — serving and not ejected, else serving but ejected, else draining —
// it draws two hosts at random and returns the one with the lower cost,
// peak-EWMA latency × (requests in flight + 1) ("power of two choices").
// It returns ErrNoInstance if no candidate is left.
//
// Pick never blocks: it takes no lock unless candidates is a different
// slice from the last call's, and does not allocate when it is the same
// slice (pass the catalog's slice as is, not a copy). Hosts of instances
// no longer among the candidates are forgotten: calls that alternate
// between a current and a stale slice make the Balancer forget and
// recreate the instances that differ, losing their state.
func (b *Balancer) Pick(candidates []discovery.Instance, tried []string) (*Host, error) {
	if len(candidates) == 0 {
		b.forgetAll()
		return nil, ErrNoInstance
	}
	s := b.set.Load()
	if s == nil || s.n != len(candidates) || s.base != &candidates[0] {
		s = b.rebuild(candidates)
	}
	clk := clock{b: b}
	if h := b.pickFast(s, candidates, tried, &clk); h != nil {
		return h.picked(), nil
	}
	if h := b.pickScan(s, candidates, tried, &clk); h != nil {
		return h.picked(), nil
	}
	return nil, ErrNoInstance
}

// pickFast draws random indices and keeps those in the best tier (serving,
// not ejected, not tried) until it has two, so the common case costs O(1)
// whatever the number of hosts. Each accepted draw is uniform among the
// eligible hosts, so the pair is a uniform pair of them. It returns nil
// (leaving the work to pickScan) if it did not find two.
func (b *Balancer) pickFast(s *hostSet, c []discovery.Instance, tried []string, clk *clock) *Host {
	n := len(c)
	if n < 2 {
		return nil
	}
	first := -1
	var r uint64
	for k := range fastTries {
		// One 64-bit random number gives two draws. Lemire's multiply-shift
		// maps 32 random bits to [0, n) with a bias below n/2³², nil here.
		if k%2 == 0 {
			r = rand.Uint64()
		} else {
			r >>= 32
		}
		i := int((r & math.MaxUint32) * uint64(n) >> 32)
		if i == first || c[i].State != discovery.StateServing || isTried(c[i].ID, tried) || s.hosts[i].ejected(clk) {
			continue
		}
		if first < 0 {
			first = i
			continue
		}
		return b.cheaper(s.hosts[first], s.hosts[i])
	}
	return nil
}

// pickScan counts the non-tried candidates per tier, then draws two
// distinct ones of the best tier by rank. Another goroutine may eject a host,
// or clear an ejection that is over, between the two passes; if that makes a
// drawn rank vanish it uses the other draw, or scans again.
func (b *Balancer) pickScan(s *hostSet, c []discovery.Instance, tried []string, clk *clock) *Host {
	for range 3 {
		var counts [numTiers]int
		for i := range c {
			if !isTried(c[i].ID, tried) {
				counts[tier(&c[i], s.hosts[i], clk)]++
			}
		}
		t := 0
		for t < numTiers && counts[t] == 0 {
			t++
		}
		if t == numTiers {
			return nil
		}
		k := counts[t]
		r1, r2 := 0, -1
		if k > 1 {
			r1 = rand.IntN(k)
			r2 = rand.IntN(k - 1)
			if r2 >= r1 {
				r2++
			}
		}
		var h1, h2 *Host
		rank := 0
		for i := range c {
			if isTried(c[i].ID, tried) || tier(&c[i], s.hosts[i], clk) != t {
				continue
			}
			switch rank {
			case r1:
				h1 = s.hosts[i]
			case r2:
				h2 = s.hosts[i]
			}
			rank++
		}
		switch {
		case h1 != nil && h2 != nil:
			return b.cheaper(h1, h2)
		case h1 != nil:
			return h1
		case h2 != nil:
			return h2
		}
	}
	// Still racing with ejections: any candidate left will do.
	for i := range c {
		if !isTried(c[i].ID, tried) {
			return s.hosts[i]
		}
	}
	return nil
}

// cheaper returns the host of lower cost, x on a tie (x is the first random
// draw, so ties split evenly).
func (b *Balancer) cheaper(x, y *Host) *Host {
	if y.load().cheaper(x.load(), b.tau) {
		return y
	}
	return x
}

func isTried(id string, tried []string) bool {
	for _, t := range tried {
		if t == id {
			return true
		}
	}
	return false
}

// rebuild publishes the host set for candidates (non-empty), keeping the
// Host of every instance ID that stays, so in-flight counts, estimates and
// ejections survive a new slice, and marking the others removed.
func (b *Balancer) rebuild(c []discovery.Instance) *hostSet {
	b.mu.Lock()
	defer b.mu.Unlock()
	old := b.set.Load()
	if old != nil && old.n == len(c) && old.base == &c[0] {
		return old // another Pick got here first
	}
	s := &hostSet{base: &c[0], n: len(c)}
	if old != nil && sameIDs(old.hosts, c) {
		// Same instances in a new slice (a state or address change, or a
		// caller's copy): share the immutable slices.
		s.hosts, s.all = old.hosts, old.all
		for i := range c {
			s.hosts[i].setInstance(c[i])
		}
		b.set.Store(s)
		return s
	}
	prev := make(map[string]*Host)
	if old != nil {
		for _, h := range old.all {
			prev[h.id] = h
		}
	}
	s.hosts = make([]*Host, len(c))
	byID := make(map[string]*Host, len(c))
	for i := range c {
		id := c[i].ID
		h := byID[id]
		if h == nil {
			h = prev[id]
			if h == nil {
				h = &Host{b: b, id: id}
				h.heard.Store(b.nanotime())
			}
			h.setInstance(c[i])
			byID[id] = h
			s.all = append(s.all, h)
		}
		s.hosts[i] = h
	}
	for id, h := range prev {
		if byID[id] == nil {
			h.removed = true
		}
	}
	slices.SortFunc(s.all, func(x, y *Host) int { return strings.Compare(x.id, y.id) })
	b.set.Store(s)
	return s
}

func sameIDs(hosts []*Host, c []discovery.Instance) bool {
	if len(hosts) != len(c) {
		return false
	}
	for i, h := range hosts {
		if h.id != c[i].ID {
			return false
		}
	}
	return true
}

// forgetAll drops every host: the service has no instances.
func (b *Balancer) forgetAll() {
	if s := b.set.Load(); s == nil || len(s.all) == 0 {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if s := b.set.Load(); s != nil {
		for _, h := range s.all {
			h.removed = true
		}
	}
	b.set.Store(&hostSet{})
}

// HostStats is a snapshot of one host, for metrics and the dashboard.
type HostStats struct {
	ID    string          `json:"id"`
	Addr  string          `json:"addr"`
	State discovery.State `json:"state"`
	// EWMA is the peak-EWMA latency estimate now (0 before the first
	// sample).
	EWMA     time.Duration `json:"ewma"`
	InFlight int64         `json:"in_flight"`
	Ejected  bool          `json:"ejected"`
	// Breaker is BreakerClosed, BreakerOpen (ejected) or BreakerHalfOpen.
	Breaker string `json:"breaker"`
	// EjectedUntil is when the current ejection ends; zero if not ejected.
	EjectedUntil time.Time `json:"ejected_until,omitzero"`
	// Ejections counts the host's ejections.
	Ejections int64 `json:"ejections"`
	// EjectionsRefused counts the ejections the MaxFraction cap refused.
	EjectionsRefused    int64 `json:"ejections_refused"`
	ConsecutiveFailures int64 `json:"consecutive_failures"`
}

// Stats returns a snapshot of the current hosts, sorted by ID. The fields of
// one host are read one by one, not as one atomic snapshot.
func (b *Balancer) Stats() []HostStats {
	s := b.set.Load()
	if s == nil || len(s.all) == 0 {
		return nil
	}
	now := b.nanotime()
	out := make([]HostStats, 0, len(s.all))
	for _, h := range s.all {
		in := h.Instance()
		st := HostStats{
			ID:                  h.id,
			Addr:                in.Addr,
			State:               in.State,
			EWMA:                time.Duration(h.estimate(now, b.tau)),
			InFlight:            h.inFlight.Load(),
			Ejections:           h.ejections.Load(),
			EjectionsRefused:    h.refused.Load(),
			ConsecutiveFailures: h.consecFail.Load(),
			Breaker:             h.breaker(now),
		}
		if u := h.ejectedUntil.Load(); u != 0 && now < u {
			st.Ejected = true
			st.EjectedUntil = b.epoch.Add(time.Duration(u)).Round(0)
		}
		out = append(out, st)
	}
	return out
}
