package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/shoal-dev/shoal/bench/internal/proc"
	"github.com/shoal-dev/shoal/bench/scenario/naive"
	"github.com/shoal-dev/shoal/client"
	"github.com/shoal-dev/shoal/discovery"
)

// Arms: the clients a scenario compares, each on its own fresh replicas.
const (
	armShoal        = "shoal"         // client.Transport, default config (every policy on)
	armShoalNoHedge = "shoal-nohedge" // the same with hedging off
	armNaive        = "naive"         // round robin over static addresses, 3 retries on error/5xx
	armNginx        = "nginx"         // nginx upstream (bench/peers/nginx-scenario.conf)
)

// deadline bounds every call of every arm.
const deadline = time.Second

// caller is how an arm's load reaches the replicas: a client and the URL.
type caller struct {
	client *http.Client
	url    string
	close  func()
}

// joinGossip runs a discovery member for the runner itself, so that Shoal's
// client resolves services from a catalog as any service's would. stop
// leaves the cluster.
func joinGossip(ctx context.Context) (*discovery.Member, func(), error) {
	cfg := discovery.LocalConfig()
	cfg.Logger = slog.New(slog.DiscardHandler)
	m, err := discovery.New(cfg, discovery.Instance{ID: "scenario-runner", Service: "scenario-runner", Addr: "127.0.0.1:9"})
	if err != nil {
		return nil, nil, err
	}
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }() // owned by stop
	stop := func() {
		cancel()
		<-done
	}
	select {
	case <-m.Ready():
		return m, stop, nil
	case err := <-done:
		cancel()
		return nil, nil, err
	}
}

// waitCatalog polls m's catalog until it lists n serving instances of each
// service.
func waitCatalog(ctx context.Context, m *discovery.Member, n int, services ...string) error {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	return proc.Poll(ctx, fmt.Sprintf("%d serving instances of %v in the runner's catalog", n, services), func() error {
		for _, s := range services {
			serving := 0
			for _, in := range m.Catalog().Instances(s) {
				if in.State == discovery.StateServing {
					serving++
				}
			}
			if serving < n {
				return fmt.Errorf("%d of %s", serving, s)
			}
		}
		return nil
	})
}

// shoalCaller is Shoal's client over m's catalog, calling service by name.
func shoalCaller(m *discovery.Member, arm, service string) (*caller, error) {
	cfg := client.DefaultConfig()
	if arm == armShoalNoHedge {
		cfg.Hedge.Disabled = true
	}
	c := &caller{url: "http://" + service + "/work"}
	tr, err := client.New(m.Catalog(), cfg)
	if err != nil {
		return nil, err
	}
	c.client = &http.Client{Transport: tr, Timeout: deadline}
	c.close = tr.CloseIdleConnections
	return c, nil
}

func naiveCaller(addrs []string, service string) *caller {
	tr := naive.New(addrs, naive.DefaultRetries)
	return &caller{client: &http.Client{Transport: tr, Timeout: deadline}, url: "http://" + service + "/work", close: tr.CloseIdleConnections}
}

func plainCaller(addr string) *caller {
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		MaxIdleConns:        1024,
		MaxIdleConnsPerHost: 512,
		DisableCompression:  true,
	}
	return &caller{client: &http.Client{Transport: tr, Timeout: deadline}, url: "http://" + addr + "/work", close: tr.CloseIdleConnections}
}

// deployment is an arm's replicas and its caller; close stops them all.
type deployment struct {
	arm      string
	clusters []*cluster // the called service first
	caller   *caller
	stops    []func()
}

func (d *deployment) close() {
	for i := len(d.stops) - 1; i >= 0; i-- {
		d.stops[i]()
	}
}

// deploy starts fresh replicas of "echo" (replicaArgs passed to each) and
// arm's caller in front of them.
func (b *bench) deploy(ctx context.Context, arm string, replicaArgs ...string) (_ *deployment, err error) {
	d := &deployment{arm: arm}
	defer func() {
		if err != nil {
			d.close()
		}
	}()
	seed := ""
	var m *discovery.Member
	if arm == armShoal || arm == armShoalNoHedge {
		var stop func()
		if m, stop, err = joinGossip(ctx); err != nil {
			return nil, err
		}
		d.stops = append(d.stops, stop)
		seed = m.GossipAddr()
	}
	c, err := b.startCluster(ctx, "echo", 3, seed, replicaArgs...)
	if err != nil {
		return nil, err
	}
	d.clusters = []*cluster{c}
	d.stops = append(d.stops, c.close)
	switch arm {
	case armShoal, armShoalNoHedge:
		if err := waitCatalog(ctx, m, 3, "echo"); err != nil {
			return nil, err
		}
		d.caller, err = shoalCaller(m, arm, "echo")
		if err != nil {
			return nil, err
		}
	case armNaive:
		d.caller = naiveCaller(c.addrs(), "echo")
	case armNginx:
		p, addr, err := b.startNginx(ctx, c.addrs())
		if err != nil {
			return nil, err
		}
		d.stops = append(d.stops, p.Kill)
		d.caller = plainCaller(addr)
	default:
		return nil, fmt.Errorf("unknown arm %q", arm)
	}
	d.stops = append(d.stops, d.caller.close)
	return d, nil
}

// deployChain starts services a → b → c, each of 3 replicas relaying to the
// next with the arm's client (shoal or naive), and the arm's caller of a.
func (b *bench) deployChain(ctx context.Context, arm string) (_ *deployment, err error) {
	d := &deployment{arm: arm}
	defer func() {
		if err != nil {
			d.close()
		}
	}()
	var m *discovery.Member
	seed := ""
	switch arm {
	case armShoal:
		var stop func()
		if m, stop, err = joinGossip(ctx); err != nil {
			return nil, err
		}
		d.stops = append(d.stops, stop)
		seed = m.GossipAddr()
	case armNaive:
	default:
		return nil, errors.New("the chain runs the shoal and naive arms only: each hop uses the arm's client")
	}
	var next *cluster
	for _, svc := range []string{"c", "b", "a"} {
		var args []string
		if next != nil {
			args = []string{"-next", next.service, "-hop", arm}
			if arm == armNaive {
				args = append(args, "-next-addrs", strings.Join(next.addrs(), ","))
			}
		}
		c, err := b.startCluster(ctx, svc, 3, seed, args...)
		if err != nil {
			return nil, err
		}
		d.stops = append(d.stops, c.close)
		d.clusters = append([]*cluster{c}, d.clusters...)
		next = c
	}
	if arm == armShoal {
		if err := waitCatalog(ctx, m, 3, "a", "b", "c"); err != nil {
			return nil, err
		}
		if d.caller, err = shoalCaller(m, arm, "a"); err != nil {
			return nil, err
		}
	} else {
		d.caller = naiveCaller(next.addrs(), "a")
	}
	d.stops = append(d.stops, d.caller.close)
	return d, nil
}
