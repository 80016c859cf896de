package main

import (
	"context"
	"fmt"
	"math"
	"os"
	"time"

	"github.com/shoal-dev/shoal/bench/internal/stats"
)

// metrics are one arm's values in one round (or their medians), by key.
// Latencies are in microseconds.
type metrics map[string]float64

// Keys of metrics. The first group is measured; the second is derived per
// round from other arms of the same round (see results.derive).
const (
	kRPS     = "rps"      // wrk Requests/sec
	kCPU     = "cpu_us"   // the proxy's CPU time per request during the wrk run, µs
	kCPUSys  = "sys_us"   // ... of which in the kernel
	kUp      = "upstream" // requests the replicas served per request wrk got answered
	kFailed  = "failed"   // wrk non-2xx/3xx answers and socket errors
	kWrkP50  = "wrk_p50"  // wrk's closed-loop latency
	kWrkP99  = "wrk_p99"  //
	kSent    = "sent"     // fixed rate: requests sent
	kErrors  = "errors"   // fixed rate: requests not answered 2xx
	kP50     = "p50"      // fixed rate: latency of every request
	kP99     = "p99"      //
	kP999    = "p999"     //
	kAddP50  = "add_p50"  // p50 − direct's p50 in the same round
	kAddP99  = "add_p99"  //
	kAddP999 = "add_p999" //
	kXNginx  = "x_nginx"  // rps / nginx's rps in the same round
	kXCaddy  = "x_caddy"  // rps / caddy's rps in the same round
	kXGo     = "x_go"     // rps / go-proxy's rps in the same round
	kCPUxNg  = "cpu_x_ng" // CPU per request / nginx's in the same round
)

// measure runs a's fixed-rate load, then its peak load, each after an
// unrecorded warm-up.
func (b *bench) measure(ctx context.Context, a *arm) (metrics, error) {
	if b.warmup > 0 {
		if _, err := attack(ctx, a.urls, a.header, b.rate, b.warmup); err != nil {
			return nil, err
		}
	}
	f, err := attack(ctx, a.urls, a.header, b.rate, b.latDuration)
	if err != nil {
		return nil, err
	}
	if f.ok == 0 {
		return nil, fmt.Errorf("no request of %d at %d/s was answered 2xx: %v", f.sent, b.rate, f.failures)
	}
	if len(f.failures) > 0 {
		fmt.Fprintf(os.Stderr, "gateway bench: %s at %d/s: %d of %d failed: %v\n", a.name, b.rate, f.sent-f.ok, f.sent, f.failures)
	}
	pause(ctx, 500*time.Millisecond)
	if b.warmup > 0 {
		if _, err := runWrk(ctx, b.wrk, a.url, a.header, b.conns, b.warmup); err != nil {
			return nil, err
		}
	}
	cpu := a.cpuTime()
	served, errBefore := b.replicaRequests()
	p, err := runWrk(ctx, b.wrk, a.url, a.header, b.conns, b.duration)
	if err != nil {
		return nil, err
	}
	cpu = a.cpuTime().Sub(cpu)
	servedAfter, errAfter := b.replicaRequests()
	pause(ctx, 500*time.Millisecond)
	m := metrics{
		kRPS: p.rps, kFailed: float64(p.failed), kWrkP50: us(p.p50), kWrkP99: us(p.p99),
		kSent: float64(f.sent), kErrors: float64(f.sent - f.ok),
		kP50: us(stats.Percentile(f.latencies, 0.5)), kP99: us(stats.Percentile(f.latencies, 0.99)), kP999: us(stats.Percentile(f.latencies, 0.999)),
	}
	if len(a.procs) > 0 && p.requests > 0 {
		m[kCPU] = us(cpu.User+cpu.Sys) / float64(p.requests)
		m[kCPUSys] = us(cpu.Sys) / float64(p.requests)
	}
	if errBefore == nil && errAfter == nil && p.requests > 0 {
		m[kUp] = float64(servedAfter-served) / float64(p.requests)
	}
	return m, nil
}

// brief is a round's line on the terminal.
func (m metrics) brief() string {
	return fmt.Sprintf("peak %7.0f req/s (%g failed, proxy CPU %3.0f µs/req, %.3f upstream/req)   at rate: p50 %5.0f µs  p99 %6.0f µs  p99.9 %6.0f µs  (%g errors)",
		m[kRPS], m[kFailed], m[kCPU], m[kUp], m[kP50], m[kP99], m[kP999], m[kErrors])
}

func pause(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

// results are every arm's metrics, by round.
type results struct {
	arms   []*arm
	rounds []map[string]metrics
}

func newResults(arms []*arm) *results { return &results{arms: arms} }

func (r *results) add(arm string, round int, m metrics) {
	for len(r.rounds) <= round {
		r.rounds = append(r.rounds, map[string]metrics{})
	}
	r.rounds[round][arm] = m
}

// derive fills each round's comparisons: added latency over direct,
// throughput ratios to nginx, caddy and go-proxy, and CPU per request
// against nginx's, from the same round's values.
func (r *results) derive() {
	for _, round := range r.rounds {
		for name, m := range round {
			if d, ok := round[armDirect]; ok && name != armDirect {
				m[kAddP50], m[kAddP99], m[kAddP999] = m[kP50]-d[kP50], m[kP99]-d[kP99], m[kP999]-d[kP999]
			}
			if n, ok := round[armNginx]; ok && n[kRPS] > 0 {
				m[kXNginx] = m[kRPS] / n[kRPS]
			}
			if c, ok := round[armCaddy]; ok && c[kRPS] > 0 {
				m[kXCaddy] = m[kRPS] / c[kRPS]
			}
			if g, ok := round[armGoProxy]; ok && g[kRPS] > 0 {
				m[kXGo] = m[kRPS] / g[kRPS]
			}
			if n, ok := round[armNginx]; ok && n[kCPU] > 0 && has(m, kCPU) {
				m[kCPUxNg] = m[kCPU] / n[kCPU]
			}
		}
	}
}

// medians returns each arm's medians over the rounds it was measured in,
// with the range of its throughput and how many rounds it has.
func (r *results) medians() map[string]summary {
	out := map[string]summary{}
	for _, a := range r.arms {
		var ms []metrics
		s := summary{minRPS: math.Inf(1)}
		for _, round := range r.rounds {
			if m, ok := round[a.name]; ok {
				ms = append(ms, m)
				s.minRPS, s.maxRPS = min(s.minRPS, m[kRPS]), max(s.maxRPS, m[kRPS])
			}
		}
		if len(ms) > 0 {
			s.m, s.n = stats.Median(ms), len(ms)
			out[a.name] = s
		}
	}
	return out
}

// summary is one arm over the rounds.
type summary struct {
	m              metrics
	n              int // rounds measured
	minRPS, maxRPS float64
}
