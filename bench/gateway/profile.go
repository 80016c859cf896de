package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"

	"github.com/shoal-dev/shoal/bench/internal/proc"
)

// armProfiled is the Shoal gateway built from ./profile, with pprof.
const armProfiled = "shoal-profiled"

// runProfile starts the profiling gateway (with the shoal-auth arm's config
// when -profile-arm says so), loads it with wrk for -duration and writes a
// CPU profile of most of that time to b.profile. It runs after the rounds,
// so that profiling never weighs on a measured arm.
func (b *bench) runProfile(ctx context.Context) error {
	// The harness binds the reserved address itself (SO_REUSEADDR).
	pprofSock, pprofAddr, err := proc.Reserve()
	if err != nil {
		return err
	}
	defer pprofSock.Close()
	b.pprofAddr = pprofAddr
	a := &arm{name: armProfiled}
	defer a.stop()
	if err := b.startShoal(a, b.profileArm == armShoalAuth); err != nil {
		return err
	}
	if err := waitProxy(ctx, a); err != nil {
		return err
	}
	if _, err := runWrk(ctx, b.wrk, a.url, a.header, b.conns, b.warmup); err != nil {
		return err
	}
	secs := max(1, int(b.duration/time.Second)-2)
	type result struct {
		p   peak
		err error
	}
	done := make(chan result, 1)
	go func() { // ends with wrk, which ends after -duration
		p, err := runWrk(ctx, b.wrk, a.url, a.header, b.conns, b.duration)
		done <- result{p, err}
	}()
	pause(ctx, time.Second)
	c := &http.Client{Timeout: time.Duration(secs+30) * time.Second}
	resp, err := c.Get(fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", b.pprofAddr, secs))
	if err == nil {
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			err = fmt.Errorf("pprof: %s", resp.Status)
		}
	}
	res := <-done
	if err != nil {
		return err
	}
	if res.err != nil {
		return res.err
	}
	f, err := os.Create(b.profile)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "gateway bench: CPU profile of the %s gateway, %ds under wrk (%s req/s, profiling on) in %s: go tool pprof -top -cum %s\n",
		b.profileArm, secs, fRps(res.p.rps), b.profile, b.profile)
	// Allocations since the start, for what makes the garbage the CPU
	// profile shows being collected.
	if err := fetch(c, "http://"+b.pprofAddr+"/debug/pprof/allocs", b.profile+".allocs"); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "gateway bench: allocations in %s.allocs: go tool pprof -sample_index=alloc_space -top %s.allocs\n", b.profile, b.profile)
	return nil
}

// fetch saves url's body to path.
func fetch(c *http.Client, url, path string) error {
	resp, err := c.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", url, resp.Status)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
