// Package discoverytest runs in-process discovery clusters for tests: real
// memberlist members on 127.0.0.1 with free ports and the local profile,
// with helpers to add members, crash them, make them leave, and wait (by
// polling, never by fixed sleeps) until every member's catalog agrees.
//
// A Cluster belongs to the test that created it, and t.Cleanup stops every
// member still running. Methods that can fail take the calling test (or
// subtest) and must be called from its goroutine: they may call t.Fatal.
package discoverytest

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/shoal-dev/shoal/discovery"
)

// pollInterval is how often Wait* re-checks the catalogs.
const pollInterval = 5 * time.Millisecond

// startTimeout bounds how long Start waits for a member to bind.
const startTimeout = 10 * time.Second

// convergeTimeout bounds NewCluster's wait for every catalog to list every
// member: generous, since a machine busy with other tests slows gossip
// (10 members took 6 s at load average 11; they take 1 s on a quiet one).
const convergeTimeout = 30 * time.Second

// TB is the part of testing.TB a Cluster uses; *testing.T and *testing.B
// satisfy it.
type TB interface {
	Helper()
	Cleanup(func())
	Logf(format string, args ...any)
	Errorf(format string, args ...any)
	Fatalf(format string, args ...any)
}

// quietLogger shows only warnings and errors: members log a line at info
// level each time they join.
var quietLogger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))

// Cluster is a set of in-process members.
type Cluster struct {
	service string
	config  func(*discovery.Config)

	mu      sync.Mutex
	members []*running // in start order, including stopped ones
	seq     int
}

type running struct {
	m       *discovery.Member
	cancel  context.CancelFunc
	done    chan struct{} // closed when Run returns
	err     error         // Run's result, valid after done
	stopped bool          // killed or left
}

// Option configures NewCluster.
type Option func(*Cluster)

// WithService sets the service name of the members NewCluster and Add
// start (default "svc").
func WithService(name string) Option { return func(c *Cluster) { c.service = name } }

// WithConfig edits each member's configuration after LocalConfig, the seed
// and the logger are filled in, e.g. to set Keys or a Logger.
func WithConfig(f func(*discovery.Config)) Option { return func(c *Cluster) { c.config = f } }

// NewCluster starts n members (n may be 0), the first as the seed of the
// others, and waits until every catalog lists all n. Everything still
// running is stopped by t.Cleanup, abruptly (like Kill) to keep tests fast.
func NewCluster(t TB, n int, opts ...Option) *Cluster {
	t.Helper()
	c := &Cluster{service: "svc"}
	for _, o := range opts {
		o(c)
	}
	t.Cleanup(c.stopAll)
	for range n {
		c.Add(t)
	}
	if n > 0 {
		d := c.WaitConverged(t, convergeTimeout)
		t.Logf("discoverytest: %d members converged in %v", n, d)
	}
	return c
}

// Add starts one more member of the cluster's service, seeded with the
// first running member, and returns once it is bound (not yet joined: use
// WaitFor for that).
func (c *Cluster) Add(t TB) *discovery.Member {
	t.Helper()
	cfg := discovery.LocalConfig()
	if first := c.Members(); len(first) > 0 {
		cfg.Seeds = []string{first[0].GossipAddr()}
	}
	cfg.Logger = quietLogger
	if c.config != nil {
		c.config(&cfg)
	}
	return c.Start(t, cfg, c.NextInstance())
}

// NextInstance returns a fresh, valid instance record of the cluster's
// service: a unique ID and a placeholder HTTP address (nothing listens there).
func (c *Cluster) NextInstance() discovery.Instance {
	c.mu.Lock()
	c.seq++
	n := c.seq
	c.mu.Unlock()
	return discovery.Instance{
		ID:      fmt.Sprintf("%s-%d", c.service, n),
		Service: c.service,
		Addr:    fmt.Sprintf("127.0.0.1:%d", 20000+n),
		Version: "test",
		State:   discovery.StateServing,
	}
}

// Start runs a member with exactly cfg and self, registers it with the
// cluster (so Wait* consider it and cleanup stops it), and returns once it
// is bound. It fails the test if the member cannot bind.
func (c *Cluster) Start(t TB, cfg discovery.Config, self discovery.Instance) *discovery.Member {
	t.Helper()
	m, err := discovery.New(cfg, self)
	if err != nil {
		t.Fatalf("discoverytest: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{m: m, cancel: cancel, done: make(chan struct{})}
	go func() { // owned by the cluster: exits when cancel or Kill stops Run
		defer close(r.done)
		r.err = m.Run(ctx)
	}()
	select {
	case <-m.Ready():
	case <-r.done:
		cancel()
		t.Fatalf("discoverytest: member %s did not start: %v", self.ID, r.err)
	case <-time.After(startTimeout):
		cancel()
		t.Fatalf("discoverytest: member %s not bound after %v", self.ID, startTimeout)
	}
	c.mu.Lock()
	c.members = append(c.members, r)
	c.mu.Unlock()
	return m
}

// Members returns the running members (not killed, not left) in start order.
func (c *Cluster) Members() []*discovery.Member {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*discovery.Member
	for _, r := range c.members {
		if !r.stopped {
			out = append(out, r.m)
		}
	}
	return out
}

// IDs returns the instance IDs of the running members, sorted.
func (c *Cluster) IDs() []string {
	var ids []string
	for _, m := range c.Members() {
		ids = append(ids, m.Self().ID)
	}
	slices.Sort(ids)
	return ids
}

// Kill crashes m: gossip stops without a leave message, so peers must detect
// the failure. It returns once m's Run has returned.
func (c *Cluster) Kill(t TB, m *discovery.Member) {
	t.Helper()
	r := c.find(t, m)
	m.Kill()
	await(t, r)
}

// Leave stops m gracefully (its Run context is cancelled: it broadcasts a
// leave, then shuts down) and returns once Run has returned.
func (c *Cluster) Leave(t TB, m *discovery.Member) {
	t.Helper()
	r := c.find(t, m)
	r.cancel()
	await(t, r)
}

func (c *Cluster) find(t TB, m *discovery.Member) *running {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, r := range c.members {
		if r.m == m && !r.stopped {
			r.stopped = true
			return r
		}
	}
	t.Fatalf("discoverytest: member %s is not running in this cluster", m.Self().ID)
	return nil
}

func await(t TB, r *running) {
	t.Helper()
	select {
	case <-r.done:
		if r.err != nil {
			t.Errorf("discoverytest: member %s: Run: %v", r.m.Self().ID, r.err)
		}
	case <-time.After(startTimeout):
		t.Fatalf("discoverytest: member %s still running %v after being stopped", r.m.Self().ID, startTimeout)
	}
}

func (c *Cluster) stopAll() {
	c.mu.Lock()
	rs := slices.Clone(c.members)
	c.mu.Unlock()
	for _, r := range rs {
		r.m.Kill()
		r.cancel()
	}
	for _, r := range rs {
		<-r.done
	}
}

// Condition is a predicate on one member's catalog snapshot.
type Condition func(*discovery.Snapshot) bool

// Has holds when the snapshot lists the instance id.
func Has(id string) Condition {
	return func(s *discovery.Snapshot) bool { _, ok := s.Lookup(id); return ok }
}

// Lacks holds when the snapshot does not list the instance id.
func Lacks(id string) Condition {
	return func(s *discovery.Snapshot) bool { _, ok := s.Lookup(id); return !ok }
}

// InState holds when the snapshot lists id in state st.
func InState(id string, st discovery.State) Condition {
	return func(s *discovery.Snapshot) bool { i, ok := s.Lookup(id); return ok && i.State == st }
}

// Exactly holds when the snapshot lists exactly the given IDs.
func Exactly(ids ...string) Condition {
	want := slices.Sorted(slices.Values(ids))
	return func(s *discovery.Snapshot) bool { return slices.Equal(snapshotIDs(s), want) }
}

// Stalls: a poll that comes StallLimit late means this process could not
// run (a machine busy with other work). Its members could not answer
// probes either, and their peers may rightly have taken some for dead, so
// a wait that saw a stall starts its timeout over, up to stallCap times
// the timeout in all.
const (
	StallLimit = 500 * time.Millisecond
	stallCap   = 5
)

// WaitFor polls until cond holds on the catalog of every running member and
// returns how long that took; it fails the test after timeout (counted from
// the last stall of the process, see StallLimit), listing each member whose
// catalog does not satisfy cond.
func (c *Cluster) WaitFor(t TB, timeout time.Duration, what string, cond Condition) time.Duration {
	t.Helper()
	return WaitForMembers(t, c.Members(), timeout, what, cond)
}

// WaitForMembers is WaitFor on the given members only; they need not
// belong to a Cluster.
func WaitForMembers(t TB, members []*discovery.Member, timeout time.Duration, what string, cond Condition) time.Duration {
	t.Helper()
	start := time.Now()
	deadline, last := start.Add(timeout), start
	stalls := 0
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for {
		var failing []*discovery.Member
		for _, m := range members {
			if !cond(m.Catalog().Snapshot()) {
				failing = append(failing, m)
			}
		}
		if len(failing) == 0 {
			return time.Since(start)
		}
		<-tick.C
		now := time.Now()
		if now.Sub(last) > StallLimit && now.Sub(start) < stallCap*timeout {
			stalls++
			deadline = now.Add(timeout)
		}
		last = now
		if now.After(deadline) {
			var b strings.Builder
			for _, m := range failing {
				fmt.Fprintf(&b, "\n  %s (%d alive) sees %v", m.Self().ID, m.NumMembers(), describe(m.Catalog().Snapshot()))
			}
			t.Fatalf("discoverytest: %s: not true on %d of %d members after %v (%d stalls of this process over %v):%s",
				what, len(failing), len(members), now.Sub(start).Round(time.Millisecond), stalls, StallLimit, b.String())
		}
	}
}

// WaitConverged waits until every running member's catalog lists exactly
// the running members.
func (c *Cluster) WaitConverged(t TB, timeout time.Duration) time.Duration {
	t.Helper()
	return c.WaitFor(t, timeout, "converged", Exactly(c.IDs()...))
}

func snapshotIDs(s *discovery.Snapshot) []string {
	ids := make([]string, 0, s.Len())
	for _, i := range s.All() {
		ids = append(ids, i.ID)
	}
	slices.Sort(ids)
	return ids
}

func describe(s *discovery.Snapshot) string {
	parts := make([]string, 0, s.Len())
	for _, i := range s.All() {
		parts = append(parts, i.ID+"("+string(i.State)+")")
	}
	slices.Sort(parts)
	return fmt.Sprintf("v%d %v", s.Version(), parts)
}
