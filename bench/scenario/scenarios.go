package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/shoal-dev/shoal/bench/internal/stats"
	"github.com/shoal-dev/shoal/bench/scenario/naive"
)

// scenario is one fault, injected into a fresh deployment per arm.
type scenario struct {
	name  string // what the command line selects; scenarios may share one
	title string
	arms  []string
	cols  []column
	goals []goal
	// prepare, if set, runs once before the arms: it may set the rate, add
	// metrics to every arm's row, and lines to the table's header.
	prepare func(ctx context.Context, b *bench, s *setup) error
	// run measures one arm.
	run func(ctx context.Context, b *bench, arm string, s *setup) (metrics, error)
}

// setup is what a scenario's arms share.
type setup struct {
	rate  int
	extra metrics
	about []string
}

var (
	threeArms = []string{armShoal, armNaive, armNginx}
	// loadGoal is the dead-dependency goal on a load metric k.
	loadGoal = func(what, k string) goal {
		return goal{text: what + " ≤ 1.2× offered (+10/s)", value: key(k),
			limit: func(m metrics, _ map[string]metrics) float64 { return 1.2*m[kOffered] + 10 }, format: fRps}
	}
)

func scenarios() []scenario {
	return []scenario{
		{
			name: "slow-replica", title: "slow-replica: 1 of 3 replicas +200 ms",
			arms: threeArms,
			cols: []column{{kNoFaultP99, "no-fault p99", fMs}, {kFaultyShare, "answered by slow", fPct}},
			goals: []goal{{text: "p99 ≤ 1.2× no-fault p99", value: key(kP99),
				limit: times(1.2, kNoFaultP99), format: fMs}},
			prepare: func(_ context.Context, b *bench, s *setup) error {
				s.about = append(s.about, fmt.Sprintf("%v without fault (no-fault p99), then echo-1 +200 ms for %v; latency columns: the fault window",
					b.d(10*time.Second), b.d(30*time.Second)))
				return nil
			},
			run: runSlowReplica,
		},
		{
			name: "gray-failure", title: "gray-failure: 1 of 3 replicas SIGSTOPped",
			arms:  threeArms,
			goals: []goal{{text: "≥ 99.9% succeed within 1 s", value: key(kSuccess), limit: fixed(0.999), atLeast: true, format: fPct}},
			prepare: func(_ context.Context, b *bench, s *setup) error {
				s.about = append(s.about, fmt.Sprintf("echo-1 SIGSTOP at %v for %v, then SIGCONT; %v in all", b.d(5*time.Second),
					b.d(10*time.Second), b.d(20*time.Second)))
				return nil
			},
			run: runGrayFailure,
		},
		{
			name: "dead-dependency", title: "dead-dependency: every replica answers 503",
			arms:  threeArms,
			goals: []goal{loadGoal("load at replicas", kLoad)},
			prepare: func(_ context.Context, b *bench, s *setup) error {
				s.about = append(s.about, fmt.Sprintf("all 3 replicas answer 503 from the first request, for %v", b.d(20*time.Second)))
				return nil
			},
			run: runDeadDependency,
		},
		{
			name: "dead-dependency", title: "dead-dependency (chain A→B→C): every replica of C answers 503",
			arms:  []string{armShoal, armNaive},
			cols:  []column{{kLoadC, "load at C", fRps}, {kLoadCX, "C × offered", fX}},
			goals: []goal{loadGoal("load at C", kLoadC)},
			prepare: func(_ context.Context, b *bench, s *setup) error {
				// A lower rate: naive's 4 tries per hop make 64 calls to C
				// per call to A, which this machine must be able to serve
				// without starving the load generator.
				s.rate = b.chainRate
				s.about = append(s.about, fmt.Sprintf("3 replicas each of a, b, c; each hop uses the arm's client; c answers 503 for %v; "+
					"\"load at replicas\" is at A", b.d(20*time.Second)),
					"offered load is -chain-rate: with 4 tries per hop naive may send up to 64× of it to C",
					"nginx is not an arm here: the hops are the services' own clients")
				return nil
			},
			run: runChain,
		},
		{
			name: "overload", title: "overload: offered = 2× measured capacity",
			arms: threeArms,
			cols: []column{{kGoodput, "goodput", fRps}, {kRejected, "rejected", fCount},
				{kRejectP99, "rejected p99", fMs}, {kAcceptedP99, "accepted p99", fMs},
				{kAcceptLate, "accepted p99 after 1 s", fMs}},
			goals: []goal{
				{text: "goodput ≥ 90% of capacity", value: key(kGoodput), limit: times(0.9, kCapacity), atLeast: true, format: fRps},
				{text: "rejections answered ≤ 5 ms (p99)", value: key(kRejectP99), limit: fixed(5), format: fMs},
				{text: "accepted p99 ≤ 3× unloaded p99", value: key(kAcceptedP99), limit: times(3, kUnloadedP99), format: fMs},
			},
			prepare: prepareOverload,
			run:     runOverload,
		},
		{
			name: "stragglers", title: "stragglers: 1% of responses +100 ms",
			arms: []string{armShoal, armShoalNoHedge, armNaive, armNginx},
			cols: []column{{kExtra, "extra requests", fPct}},
			goals: []goal{
				{text: "hedged p99.9 ≤ 0.1× unhedged (shoal-nohedge) p99.9", value: key(kP999),
					limit: timesArm(0.1, armShoalNoHedge, kP999), format: fMs},
				{text: "extra requests ≤ 5%", value: key(kExtra), limit: fixed(0.05), format: fPct},
			},
			prepare: func(_ context.Context, b *bench, s *setup) error {
				s.about = append(s.about, fmt.Sprintf("every replica delays 1%% of responses by 100 ms, warm-up included; %v", b.d(30*time.Second)),
					"extra requests = requests reaching replicas / requests offered − 1")
				return nil
			},
			run: runStragglers,
		},
		{
			name: "kill", title: "kill: SIGKILL 1 of 3, restarted on the same port",
			arms:  threeArms,
			goals: []goal{{text: "0 failed requests", value: key(kFailed), limit: fixed(0), format: fCount}},
			prepare: func(_ context.Context, b *bench, s *setup) error {
				s.about = append(s.about, fmt.Sprintf("echo-1 SIGKILL at %v, restarted (same ports, same ID) %v later; %v in all",
					b.d(5*time.Second), b.d(10*time.Second), b.d(25*time.Second)))
				return nil
			},
			run: runKill,
		},
	}
}

// measure warms d up at warmRate, then sends rate requests per second for
// dur with events, and returns the records and, per cluster of d, the
// requests that reached it during the measured attack.
func (b *bench) measure(ctx context.Context, d *deployment, warmRate, rate int, dur time.Duration, events ...event) ([]record, []uint64, error) {
	if b.warmup > 0 {
		if _, err := attack(ctx, d.caller, warmRate, b.warmup); err != nil {
			return nil, nil, fmt.Errorf("warm-up: %w", err)
		}
	}
	before := make([]uint64, len(d.clusters))
	for i, c := range d.clusters {
		n, err := c.count()
		if err != nil {
			return nil, nil, err
		}
		before[i] = n
	}
	overflows := listenOverflows()
	recs, err := attack(ctx, d.caller, rate, dur, events...)
	if err != nil {
		return nil, nil, err
	}
	if n := listenOverflows() - overflows; n > 0 {
		b.warnings = append(b.warnings, fmt.Sprintf("%s: %d TCP listen-queue overflows on this host during the arm: "+
			"some connections waited for a SYN retransmit (≥ 1 s)", d.arm, n))
	}
	if b.verbose {
		reportFailures(os.Stderr, d.arm, recs)
		reportTimeline(os.Stderr, d.arm, recs)
	}
	b.checkGenerator(d.arm, recs, rate, dur)
	served := make([]uint64, len(d.clusters))
	for i, c := range d.clusters {
		n, err := c.count()
		if err != nil {
			return nil, nil, err
		}
		served[i] = n - before[i]
	}
	return recs, served, nil
}

func runSlowReplica(ctx context.Context, b *bench, arm string, s *setup) (metrics, error) {
	d, err := b.deploy(ctx, arm)
	if err != nil {
		return nil, err
	}
	defer d.close()
	c := d.clusters[0]
	pre, dur := b.d(10*time.Second), b.d(40*time.Second)
	recs, served, err := b.measure(ctx, d, s.rate, s.rate, dur,
		event{pre, "slow echo-1", func() error { return c.setFault(0, fault{DelayMs: 200}) }})
	if err != nil {
		return nil, err
	}
	faulty := window(recs, pre, 0)
	m := summarize(faulty)
	m.addLoad(served[0], len(recs), dur)
	m[kNoFaultP99] = ms(stats.Percentile(latencies(window(recs, 0, pre), nil), 0.99))
	ok, slow := 0, 0
	for _, r := range faulty {
		if r.ok() {
			ok++
			if r.replica == c.replicas[0].id {
				slow++
			}
		}
	}
	if ok > 0 {
		m[kFaultyShare] = float64(slow) / float64(ok)
	}
	return m, nil
}

func runGrayFailure(ctx context.Context, b *bench, arm string, s *setup) (metrics, error) {
	d, err := b.deploy(ctx, arm)
	if err != nil {
		return nil, err
	}
	defer d.close()
	c := d.clusters[0]
	pre, stop := b.d(5*time.Second), b.d(10*time.Second)
	return b.simple(ctx, d, s, b.d(20*time.Second),
		event{pre, "SIGSTOP echo-1", func() error { c.pause(0); return nil }},
		event{pre + stop, "SIGCONT echo-1", func() error { c.resume(0); return nil }})
}

func runDeadDependency(ctx context.Context, b *bench, arm string, s *setup) (metrics, error) {
	d, err := b.deploy(ctx, arm)
	if err != nil {
		return nil, err
	}
	defer d.close()
	c := d.clusters[0]
	return b.simple(ctx, d, s, b.d(20*time.Second),
		event{0, "503 on every replica", func() error { return c.setFault(-1, fault{Status: http.StatusServiceUnavailable}) }})
}

func runChain(ctx context.Context, b *bench, arm string, s *setup) (metrics, error) {
	d, err := b.deployChain(ctx, arm)
	if err != nil {
		return nil, err
	}
	defer d.close()
	c := d.clusters[len(d.clusters)-1]
	dur := b.d(20 * time.Second)
	recs, served, err := b.measure(ctx, d, s.rate, s.rate, dur,
		event{0, "503 on every replica of c", func() error { return c.setFault(-1, fault{Status: http.StatusServiceUnavailable}) }})
	if err != nil {
		return nil, err
	}
	m := summarize(recs)
	m.addLoad(served[0], len(recs), dur)
	m[kLoadC] = float64(served[len(served)-1]) / dur.Seconds()
	m[kLoadCX] = float64(served[len(served)-1]) / float64(len(recs))
	return m, nil
}

func runStragglers(ctx context.Context, b *bench, arm string, s *setup) (metrics, error) {
	d, err := b.deploy(ctx, arm)
	if err != nil {
		return nil, err
	}
	defer d.close()
	if err := d.clusters[0].setFault(-1, fault{StragglerFraction: 0.01, StragglerDelayMs: 100}); err != nil {
		return nil, err
	}
	m, err := b.simple(ctx, d, s, b.d(30*time.Second))
	if err != nil {
		return nil, err
	}
	m[kExtra] = m[kLoadX] - 1
	return m, nil
}

func runKill(ctx context.Context, b *bench, arm string, s *setup) (metrics, error) {
	d, err := b.deploy(ctx, arm)
	if err != nil {
		return nil, err
	}
	defer d.close()
	c := d.clusters[0]
	pre, down := b.d(5*time.Second), b.d(10*time.Second)
	return b.simple(ctx, d, s, b.d(25*time.Second),
		event{pre, "SIGKILL echo-1", func() error { c.crash(0); return nil }},
		event{pre + down, "restart echo-1", func() error { return b.restart(c, 0) }})
}

// simple measures d for dur at the scenario's rate and summarises the whole
// window.
func (b *bench) simple(ctx context.Context, d *deployment, s *setup, dur time.Duration, events ...event) (metrics, error) {
	recs, served, err := b.measure(ctx, d, s.rate, s.rate, dur, events...)
	if err != nil {
		return nil, err
	}
	m := summarize(recs)
	m.addLoad(served[0], len(recs), dur)
	return m, nil
}

func workerArgs(b *bench) []string {
	return []string{"-workers", strconv.Itoa(b.workers), "-work", b.work.String()}
}

// prepareOverload measures the capacity of 3 replicas with a worker limit,
// closed loop (2 callers per worker slot, straight to the replicas, no
// retries), then their p99 at a tenth of it; the arms are offered twice the
// capacity.
func prepareOverload(ctx context.Context, b *bench, s *setup) error {
	c, err := b.startCluster(ctx, "echo", 3, "", workerArgs(b)...)
	if err != nil {
		return err
	}
	defer c.close()
	tr := naive.New(c.addrs(), 0)
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: deadline}
	dur := max(b.d(5*time.Second), 2*time.Second)
	var ok atomic.Int64
	var wg sync.WaitGroup
	end := time.Now().Add(dur)
	for range 2 * b.workers * len(c.replicas) {
		wg.Go(func() {
			for time.Now().Before(end) && ctx.Err() == nil {
				resp, err := hc.Get("http://echo/work")
				if err != nil {
					continue
				}
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					ok.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return err
	}
	capacity := float64(ok.Load()) / dur.Seconds()
	if capacity < 1 {
		return errors.New("overload: measured capacity is 0")
	}
	lowRate := max(int(capacity/10), 5)
	recs, err := attack(ctx, &caller{client: hc, url: "http://echo/work"}, lowRate, 5*time.Second)
	if err != nil {
		return err
	}
	unloaded := ms(stats.Percentile(latencies(recs, record.ok), 0.99))
	s.rate = int(2 * capacity)
	s.extra = metrics{kCapacity: capacity, kUnloadedP99: unloaded}
	s.about = append(s.about,
		fmt.Sprintf("replicas: %d worker slots × %v each (-workers, -work); capacity %.0f/s measured closed loop (%d callers, %v); unloaded p99 %.1f ms at %d/s",
			b.workers, b.work, capacity, 2*b.workers*len(c.replicas), dur, unloaded, lowRate),
		fmt.Sprintf("offered %d/s (2× capacity) for %v, after %v at half capacity (the replicas learn their unloaded latency) and a warm-up at capacity", s.rate, b.d(30*time.Second), b.d(10*time.Second)),
		"rejected = failed but answered before the deadline (e.g. 503 from admission control, a client-side throttle)")
	return nil
}

// onset is how long an overload runs before "accepted p99 after 1 s"
// counts its requests: admission control needs a few windows (some 200 ms
// here) to tell an excess from a burst, and the requests it queued
// meanwhile dominate the accepted p99 of a 30 s run.
const onset = time.Second

func runOverload(ctx context.Context, b *bench, arm string, s *setup) (metrics, error) {
	d, err := b.deploy(ctx, arm, workerArgs(b)...)
	if err != nil {
		return nil, err
	}
	defer d.close()
	dur := b.d(30 * time.Second)
	// A service meets overload after running normally for a while: ten
	// seconds at half capacity let the replicas' admission control learn
	// their unloaded latency, as it would have in production.
	if _, err := attack(ctx, d.caller, s.rate/4, b.d(10*time.Second)); err != nil {
		return nil, fmt.Errorf("overload: running in: %w", err)
	}
	recs, served, err := b.measure(ctx, d, s.rate/2, s.rate, dur)
	if err != nil {
		return nil, err
	}
	m := summarize(recs)
	m.addLoad(served[0], len(recs), dur)
	accepted := latencies(recs, record.ok)
	// Goodput is what was answered within the window: requests sent near
	// its end and answered after it would count capacity twice.
	done := latencies(recs, func(r record) bool { return r.ok() && r.at+r.latency <= dur })
	m[kGoodput] = float64(len(done)) / dur.Seconds()
	m[kAcceptedP99] = ms(stats.Percentile(accepted, 0.99))
	// The same, without the requests sent in the first second of the
	// excess: what the instance gives once it has seen the overload,
	// apart from the requests queued while it could not yet tell.
	m[kAcceptLate] = ms(stats.Percentile(latencies(window(recs, onset, 0), record.ok), 0.99))
	rejected := latencies(recs, func(r record) bool { return !r.ok() && !r.timedOut() })
	m[kRejected] = float64(len(rejected))
	m[kRejectP99] = ms(stats.Percentile(rejected, 0.99))
	return m, nil
}

// checkGenerator notes when the load generator could not keep up: fewer
// requests sent than scheduled, or latencies far past the deadline (timers
// firing late on a starved machine). Such a row does not measure the arm.
func (b *bench) checkGenerator(arm string, recs []record, rate int, dur time.Duration) {
	want := float64(rate) * dur.Seconds()
	if float64(len(recs)) < 0.98*want {
		b.warnings = append(b.warnings, fmt.Sprintf("%s: the load generator sent %d of %.0f scheduled requests: it fell behind", arm, len(recs), want))
	}
	worst := time.Duration(0)
	for _, r := range recs {
		worst = max(worst, r.latency)
	}
	if worst > deadline*3/2 {
		b.warnings = append(b.warnings, fmt.Sprintf("%s: a request took %v against a %v deadline: the runner was starved of CPU", arm, worst.Round(time.Millisecond), deadline))
	}
}

// listenOverflows reads the host's count of TCP listen-queue overflows (Linux
// TcpExt ListenOverflows; 0 where it cannot be read). A rise during an arm
// means some of its connections stalled in setup, whoever's socket it was.
func listenOverflows() int64 {
	b, err := os.ReadFile("/proc/net/netstat")
	if err != nil {
		return 0
	}
	lines := strings.Split(string(b), "\n")
	for i := 0; i+1 < len(lines); i += 2 {
		names, values := strings.Fields(lines[i]), strings.Fields(lines[i+1])
		if len(names) == 0 || names[0] != "TcpExt:" || len(values) != len(names) {
			continue
		}
		for j, n := range names {
			if n == "ListenOverflows" {
				v, _ := strconv.ParseInt(values[j], 10, 64)
				return v
			}
		}
	}
	return 0
}
