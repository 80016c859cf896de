package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/shoal-dev/shoal/bench/internal/proc"
)

// startReplicas starts the 3 backend replicas (service "echo"), the first
// seeding the others' gossip, and waits until each is ready.
func (b *bench) startReplicas(ctx context.Context) error {
	for i := range 3 {
		sock, addr, err := proc.Reserve()
		if err != nil {
			return err
		}
		// The admin listener's port, reserved until the replica binds it.
		adminSock, admin, err := proc.Reserve()
		if err != nil {
			return err
		}
		defer adminSock.Close()
		id := fmt.Sprintf("echo-%d", i+1)
		env := []string{"SHOAL_NAME=echo", "SHOAL_INSTANCE=" + id, "SHOAL_ADDR=" + addr, "SHOAL_ADMIN_ADDR=" + admin,
			"SHOAL_GOSSIP_ADDR=127.0.0.1:0", "SHOAL_ADMISSION=" + b.admission, "SHOAL_DRAIN_TIMEOUT=1s"}
		if i > 0 {
			env = append(env, "SHOAL_SEEDS="+b.gossip[0])
		}
		p, err := proc.Start(id, filepath.Join(b.tmp, id+".log"), b.backendBin, nil, env, sock)
		if err != nil {
			return err
		}
		b.replicas = append(b.replicas, addr)
		b.replicaAdmins = append(b.replicaAdmins, admin)
		// Ready once /infoz answers; it names the gossip address the
		// replica bound, the seed of the next ones and of the gateways.
		var gossip string
		wctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		err = proc.Poll(wctx, id+" ready", func() error {
			resp, err := proc.Probe.Get("http://" + admin + "/infoz")
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			var info struct{ Gossip, State string }
			if err := json.NewDecoder(resp.Body).Decode(&info); err != nil {
				return fmt.Errorf("/infoz: %w", err)
			}
			if info.State != "serving" || info.Gossip == "" {
				return fmt.Errorf("/infoz: state %q, gossip %q", info.State, info.Gossip)
			}
			gossip = info.Gossip
			return nil
		})
		cancel()
		if err != nil {
			return fmt.Errorf("%w; log %s:\n%s", err, p.Log, p.Tail())
		}
		b.gossip = append(b.gossip, gossip)
	}
	return nil
}

// replicaRequests sums the requests the replicas' handlers have served
// (/infoz "requests"), to count what a proxy sends upstream per request:
// hedges and retries show up as more than one.
func (b *bench) replicaRequests() (uint64, error) {
	var total uint64
	for _, r := range b.replicaAdmins {
		resp, err := proc.Probe.Get("http://" + r + "/infoz")
		if err != nil {
			return 0, err
		}
		var info struct{ Requests uint64 }
		err = json.NewDecoder(resp.Body).Decode(&info)
		resp.Body.Close()
		if err != nil {
			return 0, fmt.Errorf("%s/infoz: %w", r, err)
		}
		total += info.Requests
	}
	return total, nil
}

// lookWrk finds wrk, which the run cannot do without.
func lookWrk() (string, error) {
	path, err := exec.LookPath("wrk")
	if err != nil {
		return "", fmt.Errorf("wrk is needed for peak throughput and could not be installed (apt-get install wrk): %w", err)
	}
	return path, nil
}

// versions names the peers and tools as installed, for the report.
func versions(names []string) string {
	cmds := map[string][]string{
		armNginx:   {"nginx", "-v"},      // nginx version: nginx/1.22.1
		armHAProxy: {"haproxy", "-v"},    // HAProxy version 2.6.12-1+deb12u4 2026/10/17 - https://haproxy.org/
		armCaddy:   {"caddy", "version"}, // v2.6.2
		"wrk":      {"wrk", "-v"},        // wrk debian/4.1.0-3+b2 [epoll] Copyright (C) 2012 Will Glozer
	}
	var out []string
	for _, n := range append([]string{"wrk"}, names...) {
		c, ok := cmds[n]
		if !ok {
			continue
		}
		text, _ := exec.Command(c[0], c[1:]...).CombinedOutput() // wrk -v exits 1
		line, _, _ := strings.Cut(strings.TrimSpace(string(text)), "\n")
		f := strings.Fields(line)
		switch {
		case len(f) == 0:
			continue
		case n == armNginx:
			line = f[len(f)-1]
		case n == armHAProxy && len(f) >= 3:
			line = "haproxy " + f[2]
		case n == armCaddy:
			line = "caddy " + strings.TrimPrefix(f[0], "v")
		case n == "wrk" && len(f) >= 2:
			line = "wrk " + f[1]
		}
		out = append(out, line)
	}
	return strings.Join(out, ", ")
}
