package discovery

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
)

// reconnectFor is how long a member keeps trying to reach one it lost to a
// failure: a partition that lasts longer splits the cluster until a
// restart (or a rejoin of a member left alone).
const reconnectFor = 30 * time.Minute

// lostMembers remembers the members declared dead (not those that left),
// by node name, with their gossip address. Reaching back to them is what
// heals a partition: the two sides each think the other dead, no gossip
// crosses, and neither side is alone, so nothing else would make them meet
// again. One successful push-pull with any member of the other side is
// enough: each side then hears it was suspected and refutes, and the
// catalogs merge.
type lostMembers struct {
	mu    sync.Mutex
	byKey map[string]lostMember
}

type lostMember struct {
	addr string
	at   time.Time
}

// failed records n if it was declared dead. Called from memberlist's
// event callbacks: it must not block.
func (l *lostMembers) failed(n *memberlist.Node) {
	if n.State != memberlist.StateDead {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.byKey == nil {
		l.byKey = map[string]lostMember{}
	}
	l.byKey[n.Name] = lostMember{addr: n.Address(), at: time.Now()}
}

// back forgets a member that is alive again.
func (l *lostMembers) back(name string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.byKey, name)
}

// pick returns the address of a lost member at random, forgetting those
// lost for longer than reconnectFor; false if there is none.
func (l *lostMembers) pick(now time.Time) (string, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var addrs []string
	for name, m := range l.byKey {
		if now.Sub(m.at) > reconnectFor {
			delete(l.byKey, name)
			continue
		}
		addrs = append(addrs, m.addr)
	}
	if len(addrs) == 0 {
		return "", false
	}
	return addrs[rand.IntN(len(addrs))], true
}

// reconnect tries one lost member every interval (± 20 %) until ctx ends.
// The address is first dialled with ctx, so that a host that does not
// answer never holds up a shutdown for memberlist's TCP timeout; join is
// memberlist.Join.
func (l *lostMembers) reconnect(ctx context.Context, interval time.Duration, join func([]string) (int, error), log *slog.Logger) {
	for {
		t := time.NewTimer(jitter(interval))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		addr, ok := l.pick(time.Now())
		if !ok {
			continue
		}
		dctx, cancel := context.WithTimeout(ctx, interval)
		c, err := new(net.Dialer).DialContext(dctx, "tcp", addr)
		cancel()
		if err != nil {
			continue
		}
		c.Close()
		if n, err := join([]string{addr}); n > 0 {
			log.Info("discovery: reached a member lost to a failure; merging views", "gossip_addr", addr)
		} else {
			log.Debug("discovery: a lost member's address answered but did not join", "gossip_addr", addr, "err", err)
		}
	}
}
