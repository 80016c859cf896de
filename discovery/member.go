package discovery

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
)

// maxUpdateWait bounds how long SetState's broadcast wait may outlive a
// context without a deadline. Memberlist normally finishes a broadcast within
// a few gossip rounds; this is only a safety net for a cluster that stops
// mid-way.
const maxUpdateWait = 30 * time.Second

// Member is this process's membership in the cluster: it advertises one
// [Instance] and keeps a [Catalog] of all of them, itself included.
//
// All methods are safe for concurrent use. Run must be called once.
type Member struct {
	cfg     Config // defaults applied
	log     *slog.Logger
	catalog *Catalog
	ready   chan struct{} // closed once bound
	kill    chan struct{} // closed by Kill
	killed  sync.Once
	started atomic.Bool

	mu   sync.Mutex // guards self; meta follows it
	self Instance
	meta atomic.Pointer[[]byte] // encoded self, read by memberlist at any time

	ml   atomic.Pointer[memberlist.Memberlist] // non-nil while bound and not stopping
	addr atomic.Pointer[string]                // gossip address, set before ready closes
}

// New checks cfg and self and returns a member ready to [Member.Run]. It does
// no I/O and starts no goroutines. An empty self.State means StateServing.
// Self.ID becomes the memberlist node name, so it must be unique in the
// cluster (per process, not per service). The encoded record, in either
// state, must fit memberlist's 512-byte metadata limit.
func New(cfg Config, self Instance) (*Member, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if self.State == "" {
		self.State = StateServing
	}
	if err := self.Validate(); err != nil {
		return nil, fmt.Errorf("discovery: %w", err)
	}
	// State is the only field that changes later; check the larger variant.
	for _, s := range []State{StateServing, StateDraining} {
		probe := self
		probe.State = s
		b, err := encodeRecord(probe)
		if err != nil {
			return nil, fmt.Errorf("discovery: encode instance %q: %w", self.ID, err)
		}
		if len(b) > MaxRecordSize {
			return nil, fmt.Errorf("discovery: instance %q record is %d bytes encoded, over memberlist's %d-byte metadata limit: shorten ID, Service, Addr or Version",
				self.ID, len(b), MaxRecordSize)
		}
	}
	cfg = cfg.withDefaults()
	m := &Member{
		cfg:     cfg,
		log:     cfg.Logger.With("instance", self.ID),
		catalog: NewCatalog(),
		ready:   make(chan struct{}),
		kill:    make(chan struct{}),
		self:    self,
	}
	b, _ := encodeRecord(self)
	m.meta.Store(&b)
	return m, nil
}

// Run binds the gossip port, joins the seeds and keeps the catalog in sync
// with membership until ctx ends; then it leaves the cluster gracefully (at
// most Config.LeaveTimeout), closes the gossip sockets and returns nil.
//
// It returns an error if the port cannot be bound (Ready is then never
// closed) or if Run was already called. Seeds that do not answer are not an
// error: joining is retried in the background, with backoff, until a seed
// answers (peers that joined this member meanwhile do not count), and again
// whenever this member has no peer. After Run returns the catalog is no
// longer updated.
func (m *Member) Run(ctx context.Context) error {
	if !m.started.CompareAndSwap(false, true) {
		return errors.New("discovery: Member.Run called more than once")
	}
	mc := m.cfg.memberlistConfig(m.Self().ID)
	mc.Delegate = (*metaDelegate)(m)
	rule := newAddrRule(m.cfg)
	events := &catalogEvents{catalog: m.catalog, log: m.log, rule: rule}
	mc.Events = events
	ml, err := memberlist.Create(mc) // binds, and reports this node to Events
	if err != nil {
		return fmt.Errorf("discovery: start gossip on %s: %w", m.cfg.BindAddr, err)
	}
	// Peers would keep this member out of their catalogs: say so now
	// rather than serve unseen.
	if err := rule.check(m.Self(), ml.LocalNode().Addr); err != nil {
		_ = ml.Shutdown()
		return fmt.Errorf("discovery: instance %q: %w", m.Self().ID, err)
	}
	addr := ml.LocalNode().Address()
	m.addr.Store(&addr)
	m.ml.Store(ml)
	m.log.Debug("discovery: gossip bound", "gossip_addr", addr, "profile", m.cfg.Profile)
	close(m.ready)

	// The rejoiner and reconnect goroutines are owned by Run: they exit
	// when joinCtx ends, and Run waits for them before leaving so no join
	// races the leave.
	joinCtx, stopJoin := context.WithCancel(ctx)
	joinDone, reconnectDone := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(reconnectDone)
		events.lost.reconnect(joinCtx, m.cfg.ReconnectInterval, ml.Join, m.log)
	}()
	go func() {
		defer close(joinDone)
		seeds := m.seedsOtherThan(addr)
		if len(seeds) == 0 {
			return
		}
		r := rejoiner{
			seeds:   seeds,
			join:    ml.Join,
			alone:   func() bool { return ml.NumMembers() <= 1 },
			initial: m.cfg.JoinRetry,
			max:     m.cfg.JoinRetryMax,
			log:     m.log,
		}
		r.run(joinCtx)
	}()

	crashed := false
	select {
	case <-ctx.Done():
	case <-m.kill:
		crashed = true
	}
	stopJoin()
	<-joinDone
	<-reconnectDone
	m.ml.Store(nil)
	if !crashed {
		if err := ml.Leave(m.cfg.LeaveTimeout); err != nil {
			m.log.Warn("discovery: leave not confirmed; peers will detect the departure by probing", "err", err)
		}
	}
	if err := ml.Shutdown(); err != nil {
		m.log.Warn("discovery: shutdown", "err", err)
	}
	return nil
}

// Kill stops gossiping at once, without leaving, as a crashed process would:
// peers notice only through failure detection. Run then returns nil. It is
// meant for fault injection (chaos experiments, discoverytest); a normal
// shutdown cancels Run's context instead. Safe to call more than once, and
// before Run (Run then stops right after binding).
func (m *Member) Kill() { m.killed.Do(func() { close(m.kill) }) }

// Ready is closed once Run has bound the gossip port, so GossipAddr is
// valid. It is never closed if binding fails.
func (m *Member) Ready() <-chan struct{} { return m.ready }

// GossipAddr returns the "ip:port" peers use to reach this member (what
// other members list as a seed), or "" before Ready.
func (m *Member) GossipAddr() string {
	if p := m.addr.Load(); p != nil {
		return *p
	}
	return ""
}

// Catalog returns this member's view of the cluster. It is usable at once
// (empty until Run binds).
func (m *Member) Catalog() *Catalog { return m.catalog }

// Self returns this member's current instance record.
func (m *Member) Self() Instance {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.self
}

// NumMembers returns the number of members believed alive, this one
// included (whether or not their records decode), or 0 when Run is not
// running.
func (m *Member) NumMembers() int {
	if ml := m.ml.Load(); ml != nil {
		return ml.NumMembers()
	}
	return 0
}

// Drain announces this instance as draining and gives callers time to stop
// picking it, within budget: at most 2/5 of it waiting until the update has
// been broadcast to the cluster, then a grace of min(500 ms, budget/10) for
// callers still picking from the snapshot they held before. Both stop early
// when ctx ends. The instance itself keeps serving meanwhile; what follows
// (closing listeners, leaving) is the caller's. The error, if any, is the
// broadcast's; the grace is kept either way.
func (m *Member) Drain(ctx context.Context, budget time.Duration) error {
	announce, cancel := context.WithTimeout(ctx, 2*budget/5)
	err := m.SetState(announce, StateDraining)
	cancel()
	t := time.NewTimer(min(drainGrace, budget/10))
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
	return err
}

// drainGrace caps the pause Drain makes after the broadcast.
const drainGrace = 500 * time.Millisecond

// SetState changes this member's advertised state and pushes the new record
// to the cluster. It blocks until memberlist has finished broadcasting it
// (sent it the configured number of times to random peers), or ctx ends;
// the SDK uses this to let peers see "draining" before it stops serving.
// A broadcast cannot guarantee every peer got it: anti-entropy push/pull
// repairs the rare loss.
//
// When Run is not running, only the local record changes: it is advertised
// when Run binds, and a stopped member has already left the catalogs. The
// broadcast wait runs in a goroutine that ends when memberlist signals the
// broadcast or, at the latest, at ctx's deadline (30 s without one), even if
// SetState has returned early because ctx ended.
func (m *Member) SetState(ctx context.Context, s State) error {
	if !s.valid() {
		return fmt.Errorf("discovery: State %q is unknown (want %q or %q)", s, StateServing, StateDraining)
	}
	m.mu.Lock()
	m.self.State = s
	b, err := encodeRecord(m.self)
	if err == nil {
		m.meta.Store(&b)
	}
	m.mu.Unlock()
	if err != nil {
		return fmt.Errorf("discovery: encode instance: %w", err)
	}

	ml := m.ml.Load()
	if ml == nil {
		return nil
	}
	wait := maxUpdateWait
	if d, ok := ctx.Deadline(); ok {
		wait = time.Until(d)
	}
	if wait <= 0 {
		return fmt.Errorf("discovery: set state %s: %w", s, context.DeadlineExceeded)
	}
	done := make(chan error, 1)
	go func() { done <- ml.UpdateNode(wait) }()
	select {
	case err := <-done:
		if err != nil {
			return fmt.Errorf("discovery: set state %s: %w", s, err)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("discovery: set state %s: broadcast not confirmed: %w", s, context.Cause(ctx))
	}
}

// seedsOtherThan drops this member's own gossip address from the seeds, so
// every instance can be given the same seed list.
func (m *Member) seedsOtherThan(self string) []string {
	var out []string
	for _, s := range m.cfg.Seeds {
		if s == self || s == m.cfg.BindAddr || sameHostPort(s, self) {
			continue
		}
		out = append(out, s)
	}
	return out
}

func sameHostPort(a, b string) bool {
	ah, ap, err1 := net.SplitHostPort(a)
	bh, bp, err2 := net.SplitHostPort(b)
	if err1 != nil || err2 != nil || ap != bp {
		return false
	}
	aip, bip := net.ParseIP(ah), net.ParseIP(bh)
	return aip != nil && aip.Equal(bip)
}

// metaDelegate gives memberlist this member's record. memberlist calls its
// methods from its own goroutines, concurrently; NodeMeta only loads an
// atomic pointer. The other methods are unused (no user messages or state).
type metaDelegate Member

func (d *metaDelegate) NodeMeta(limit int) []byte {
	b := *d.meta.Load()
	if len(b) > limit { // New guarantees this cannot happen; never let memberlist panic
		return nil
	}
	return b
}

func (d *metaDelegate) NotifyMsg([]byte)                           {}
func (d *metaDelegate) GetBroadcasts(overhead, limit int) [][]byte { return nil }
func (d *metaDelegate) LocalState(join bool) []byte                { return nil }
func (d *metaDelegate) MergeRemoteState(buf []byte, join bool)     {}

// catalogEvents applies memberlist's membership events to a catalog.
//
// Memberlist calls these methods one at a time, from several of its
// goroutines, while holding its node lock: they must not block or call back
// into the memberlist. They only decode the record and update the catalog.
// A node whose record does not decode, names a different ID, or advertises
// an HTTP address the rule refuses is left out of the catalog and logged; it
// is still a gossip peer.
type catalogEvents struct {
	catalog *Catalog
	log     *slog.Logger
	rule    addrRule
	lost    lostMembers // members declared dead, to reach back to
}

func (e *catalogEvents) NotifyJoin(n *memberlist.Node) {
	e.lost.back(n.Name)
	e.apply(n, "join")
}
func (e *catalogEvents) NotifyUpdate(n *memberlist.Node) { e.apply(n, "update") }
func (e *catalogEvents) NotifyLeave(n *memberlist.Node) {
	e.lost.failed(n)
	e.catalog.Remove(n.Name)
}

func (e *catalogEvents) apply(n *memberlist.Node, event string) {
	inst, err := decodeRecord(n.Meta)
	if err == nil && inst.ID != n.Name {
		err = fmt.Errorf("record ID %q differs from node name", inst.ID)
	}
	if err == nil {
		err = e.rule.check(inst, n.Addr)
	}
	if err != nil {
		e.log.Warn("discovery: ignoring member with an unusable instance record",
			"node", n.Name, "gossip_addr", n.Address(), "event", event, "err", err)
		e.catalog.Remove(n.Name)
		return
	}
	e.catalog.Upsert(inst)
}
