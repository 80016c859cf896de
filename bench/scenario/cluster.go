package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"syscall"
	"time"

	"github.com/shoal-dev/shoal/bench/internal/proc"
	"github.com/shoal-dev/shoal/handoff"
)

// fault is the replica's control payload (see replica/main.go).
type fault struct {
	DelayMs           int     `json:"delay_ms,omitempty"`
	Status            int     `json:"status,omitempty"`
	StragglerFraction float64 `json:"straggler_fraction,omitempty"`
	StragglerDelayMs  int     `json:"straggler_delay_ms,omitempty"`
}

// replica is one instance of the test service, with the ports it keeps
// across a restart (nginx's upstreams name the HTTP address; memberlist
// lets an instance ID rejoin only at its old gossip address). The ports are
// reserved (handoff) from the first start until the cluster closes, so no
// other socket takes them while a crashed replica is down. Gossip binds UDP
// too, at the same port number, which a TCP reservation cannot hold: that
// half stays exposed, on loopback during a benchmark.
type replica struct {
	id                          string
	addr, gossip, contrl, admin string
	reserved                    []*handoff.Port
	args, env                   []string
	p                           *proc.Proc
	carried                     uint64 // requests counted by earlier, killed incarnations
}

// cluster is the replicas of one service.
type cluster struct {
	service  string
	replicas []*replica
}

// startCluster starts n replicas of service, seeded with seed's gossip
// address when it is not empty, and waits until each answers /readyz (on
// its admin listener).
func (b *bench) startCluster(ctx context.Context, service string, n int, seed string, args ...string) (*cluster, error) {
	c := &cluster{service: service}
	for i := range n {
		r := &replica{id: fmt.Sprintf("%s-%d", service, i+1)}
		c.replicas = append(c.replicas, r)
		for _, addr := range []*string{&r.addr, &r.gossip, &r.contrl, &r.admin} {
			p, err := handoff.Reserve("127.0.0.1:0")
			if err != nil {
				c.close()
				return nil, err
			}
			r.reserved = append(r.reserved, p)
			*addr = p.Addr().String()
		}
		r.args = append([]string{"-control", r.contrl}, args...)
		if b.verbose {
			r.args = append(r.args, "-log-admission", "500ms")
		}
		r.env = []string{"SHOAL_NAME=" + service, "SHOAL_INSTANCE=" + r.id, "SHOAL_ADDR=" + r.addr,
			"SHOAL_GOSSIP_ADDR=" + r.gossip, "SHOAL_ADMIN_ADDR=" + r.admin, "SHOAL_DRAIN_TIMEOUT=1s"}
		if seed != "" {
			r.env = append(r.env, "SHOAL_SEEDS="+seed)
		}
		if err := b.startReplica(r); err != nil {
			c.close()
			return nil, err
		}
	}
	for _, r := range c.replicas {
		if err := c.waitReady(ctx, r); err != nil {
			c.close()
			return nil, err
		}
	}
	return c, nil
}

// startReplica starts an incarnation of r, on a socket of its own bound to
// r's HTTP address (beside the reservation, which never listens: once the
// incarnation dies, its address refuses connections).
func (b *bench) startReplica(r *replica) error {
	sock, err := handoff.Reserve(r.addr)
	if err != nil {
		return err
	}
	seq := b.logSeq.Add(1)
	p, err := proc.Start(r.id, filepath.Join(b.tmp, fmt.Sprintf("%03d-%s.log", seq, r.id)), b.replicaBin, r.args, r.env, sock)
	r.p = p
	return err
}

func (c *cluster) waitReady(ctx context.Context, r *replica) error {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if err := proc.PollReady(ctx, "http://"+r.admin+"/readyz"); err != nil {
		return fmt.Errorf("%s (log %s): %w", r.id, r.p.Log, err)
	}
	return proc.PollReady(ctx, "http://"+r.contrl+"/count")
}

// addrs lists the replicas' HTTP addresses.
func (c *cluster) addrs() []string {
	out := make([]string, len(c.replicas))
	for i, r := range c.replicas {
		out[i] = r.addr
	}
	return out
}

var controlClient = &http.Client{Timeout: 2 * time.Second}

// setFault sets f on replica i, or on all of them when i < 0.
func (c *cluster) setFault(i int, f fault) error {
	body, _ := json.Marshal(f)
	for j, r := range c.replicas {
		if i >= 0 && j != i {
			continue
		}
		resp, err := controlClient.Post("http://"+r.contrl+"/fault", "application/json", bytes.NewReader(body))
		if err != nil {
			return fmt.Errorf("fault on %s: %w", r.id, err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("fault on %s: %s", r.id, resp.Status)
		}
	}
	return nil
}

// count returns the /work requests that reached the replicas so far.
func (c *cluster) count() (uint64, error) {
	var total uint64
	var errs []error
	for _, r := range c.replicas {
		n, err := r.count()
		total += n
		errs = append(errs, err)
	}
	return total, errors.Join(errs...)
}

// count is the requests that reached r: the larger of the handler's and the
// SDK's counts of requests let through, plus those admission control
// rejected, plus what earlier incarnations counted.
func (r *replica) count() (uint64, error) {
	resp, err := controlClient.Get("http://" + r.contrl + "/count")
	if err != nil {
		return r.carried, fmt.Errorf("count on %s: %w", r.id, err)
	}
	defer resp.Body.Close()
	var n struct{ Handled, SDK, Rejected uint64 }
	if err := json.NewDecoder(resp.Body).Decode(&n); err != nil {
		return r.carried, fmt.Errorf("count on %s: %w", r.id, err)
	}
	return r.carried + max(n.Handled, n.SDK) + n.Rejected, nil
}

// pause and resume stop and continue replica i (SIGSTOP, SIGCONT): a hung
// process whose sockets still accept connections.
func (c *cluster) pause(i int)  { c.replicas[i].p.Signal(syscall.SIGSTOP) }
func (c *cluster) resume(i int) { c.replicas[i].p.Signal(syscall.SIGCONT) }

// crash kills replica i with SIGKILL, keeping what it had counted.
func (c *cluster) crash(i int) {
	r := c.replicas[i]
	if n, err := r.count(); err == nil {
		r.carried = n
	}
	r.p.Kill()
}

// restart starts replica i again on the same ports and instance ID.
func (b *bench) restart(c *cluster, i int) error { return b.startReplica(c.replicas[i]) }

// close kills every replica and releases its ports.
func (c *cluster) close() {
	for _, r := range c.replicas {
		if r.p != nil {
			r.p.Signal(syscall.SIGCONT)
			r.p.Kill()
		}
		for _, p := range r.reserved {
			p.Close()
		}
	}
}
