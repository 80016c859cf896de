package main

import (
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// cpuShare is CPU time in cores (1 = one core busy all the time), split by
// whose it was.
type cpuShare struct {
	system    float64 // the instances and shoal up
	generator float64 // this command: the journeys' clients
	others    float64 // every other process of the machine
}

// instSample is one instance at one sample.
type instSample struct {
	service      string
	index, pid   int
	rssKB, pssKB int
	anonKB       int // RSS of its own (heap, stacks), not of mapped files
	fileKB       int // RSS of mapped files: the binary, shared by the service's instances
	procs        int // processes in its group: 1 unless it started children
}

// sample is the whole system at one moment.
type sample struct {
	phase          string
	inst           []instSample
	supRSS, supPSS int                // shoal up itself
	cpu            cpuShare           // since the previous sample
	svcCPU         map[string]float64 // cores by service, since the previous sample
	cpuValid       bool
}

// sampler records a sample every period, labelled with the current phase.
type sampler struct {
	sys    *system
	mu     sync.Mutex
	phase  string
	all    []sample
	prev   map[[2]uint64]uint64 // (pid, start time) → ticks at the last sample
	prevAt time.Time
	stop   chan struct{}
	done   chan struct{}
}

func startSampler(sys *system, every time.Duration, phase string) *sampler {
	s := &sampler{sys: sys, phase: phase, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			s.take()
			select {
			case <-s.stop:
				return
			case <-tick.C:
			}
		}
	}()
	return s
}

func (s *sampler) setPhase(p string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.phase = p
}

func (s *sampler) finish() []sample {
	close(s.stop)
	<-s.done
	return s.all
}

// take records one sample: every instance's process group RSS (and PSS),
// and the CPU time every process used since the previous sample.
func (s *sampler) take() {
	list, err := s.sys.ps()
	if err != nil {
		return
	}
	snap, err := scanProcs()
	if err != nil {
		return
	}
	now := time.Now()
	sup := s.sys.supervisorPID()
	ours := map[int]bool{sup: true}
	svcOf := map[int]string{} // process group → service
	s.mu.Lock()
	smp := sample{phase: s.phase}
	s.mu.Unlock()
	for _, in := range list {
		if in.PID <= 0 {
			continue
		}
		ours[in.PID] = true
		svcOf[in.PID] = in.Service
		g := snap.groups[in.PID]
		rss, anon, file := memKB(g)
		smp.inst = append(smp.inst, instSample{service: in.Service, index: in.Index, pid: in.PID,
			rssKB: rss, anonKB: anon, fileKB: file, pssKB: pssKB(g), procs: len(g.pids)})
	}
	smp.supRSS, _, _ = memKB(snap.groups[sup])
	smp.supPSS = pssKB(snap.groups[sup])

	ticks := map[[2]uint64]uint64{}
	var used [3]uint64 // system, generator, others
	bySvc := map[string]uint64{}
	self := os.Getpid()
	for _, p := range snap.procs {
		k := [2]uint64{uint64(p.pid), p.start}
		ticks[k] = p.ticks
		d := p.ticks - min(p.ticks, s.prev[k]) // a new process: all of its time is recent
		switch {
		case ours[p.pgid]:
			used[0] += d
			if svc, ok := svcOf[p.pgid]; ok {
				bySvc[svc] += d
			} else {
				bySvc[supervisorRow] += d
			}
		case p.pid == self:
			used[1] += d
		default:
			used[2] += d
		}
	}
	if s.prev != nil {
		sec := now.Sub(s.prevAt).Seconds() * clockTicks
		smp.cpu = cpuShare{float64(used[0]) / sec, float64(used[1]) / sec, float64(used[2]) / sec}
		smp.svcCPU = map[string]float64{}
		for svc, t := range bySvc {
			smp.svcCPU[svc] = float64(t) / sec
		}
		smp.cpuValid = true
	}
	s.prev, s.prevAt = ticks, now
	s.mu.Lock()
	s.all = append(s.all, smp)
	s.mu.Unlock()
}

// recentCPU is the mean CPU share of the last n samples.
func (s *sampler) recentCPU(n int) (cpuShare, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.all) < n+1 {
		return cpuShare{}, false
	}
	return meanCPU(s.all[len(s.all)-n:], ""), true
}

// meanCPU is the mean CPU share of the samples of phase (all if "").
func meanCPU(samples []sample, phase string) cpuShare {
	var c cpuShare
	n := 0
	for _, s := range samples {
		if !s.cpuValid || (phase != "" && s.phase != phase) {
			continue
		}
		c.system, c.generator, c.others = c.system+s.cpu.system, c.generator+s.cpu.generator, c.others+s.cpu.others
		n++
	}
	if n > 0 {
		c.system, c.generator, c.others = c.system/float64(n), c.generator/float64(n), c.others/float64(n)
	}
	return c
}

// serviceCPU is the mean CPU of each service over the samples of phase.
func serviceCPU(samples []sample, phase string) map[string]float64 {
	out := map[string]float64{}
	n := 0
	for _, s := range samples {
		if !s.cpuValid || s.phase != phase {
			continue
		}
		for svc, c := range s.svcCPU {
			out[svc] += c
		}
		n++
	}
	for svc := range out {
		out[svc] /= float64(max(n, 1))
	}
	return out
}

// loadResult is the system run: idle, then under journeys.
type loadResult struct {
	loadBefore  float64 // 1-minute load average once the system went idle
	settleTook  time.Duration
	settleCPU   cpuShare
	settleLimit float64 // cores
	settled     bool
	idleFor     time.Duration
	samples     []sample
	phases      []phaseResult
	restarts    int
	downTook    time.Duration
	leftOver    []string
}

const idlePhase = "idle"

func phaseName(conc int) string { return fmt.Sprintf("C=%d", conc) }

// measureLoad waits until journeys pass through every gateway and the
// system has gone idle, samples it idle, then drives journeys at each
// concurrency while sampling.
func measureLoad(sys *system, cfg config) (*loadResult, error) {
	lr := &loadResult{idleFor: cfg.idle}
	progress("waiting for a journey's first steps to pass through every gateway")
	deadline := time.Now().Add(2 * time.Minute)
	for _, gw := range sys.gateways {
		one := newEdge([]string{gw}, 1)
		for {
			var signin struct{ Token string }
			err := one.do("POST", "/signin", "", "", []byte(`{"email":"user1@flix.example","password":"flix","profile":"p0001"}`), 200, &signin)
			if err == nil {
				err = one.do("GET", "/home", signin.Token, "", nil, 200, nil)
			}
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				return nil, fmt.Errorf("gateway %s: sign-in and home page still failing after 2 minutes: %v", gw, err)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}

	// Idle means the first start's background work is done (catalog's
	// 2,400 title events delivered to search and indexed):
	// the system's CPU over 2 s below 1.5% of a core per instance (what
	// gossip, health checks and outbox polls cost when nothing happens is
	// about 0.7%).
	limit := 0.015 * float64(sys.total)
	progress("waiting for the system to go idle (its processes under %.2f cores over 2 s, at most %v)", limit, cfg.settleTimeout)
	smp := startSampler(sys, cfg.sampleEvery, "settle")
	begin := time.Now()
	window := max(1, int(2*time.Second/cfg.sampleEvery))
	lastSaid := begin
	for time.Since(begin) < cfg.settleTimeout {
		time.Sleep(cfg.sampleEvery)
		c, ok := smp.recentCPU(window)
		if !ok {
			continue
		}
		lr.settleCPU = c
		if c.system < limit {
			lr.settled = true
			break
		}
		if time.Since(lastSaid) > 10*time.Second {
			progress("  system %.2f cores, others %.2f", c.system, c.others)
			lastSaid = time.Now()
		}
	}
	lr.settleTook, lr.settleLimit, lr.loadBefore = time.Since(begin), limit, loadAvg()
	progress("idle after %v (system %.2f cores, others %.2f); idling for %v",
		lr.settleTook.Round(100*time.Millisecond), lr.settleCPU.system, lr.settleCPU.others, lr.idleFor)
	// Idle figures come from the last third of the idle time: a Go
	// process's heap takes a while to reach its idle size (garbage from
	// background work accumulates up to the GC goal; memory freed after
	// the first start is returned to the OS gradually).
	smp.setPhase("idle-early")
	time.Sleep(lr.idleFor * 2 / 3)
	smp.setPhase(idlePhase)
	time.Sleep(lr.idleFor - lr.idleFor*2/3)

	var seq atomic.Int64
	e := newEdge(sys.gateways, max(64, slicesMax(cfg.conc)))
	if cfg.warmup > 0 {
		smp.setPhase("warmup")
		progress("warm-up: %v at concurrency %d", cfg.warmup, cfg.conc[0])
		e.drive(cfg.conc[0], cfg.warmup, &seq)
	}
	for _, c := range cfg.conc {
		smp.setPhase(phaseName(c))
		progress("journeys at concurrency %d for %v", c, cfg.dur)
		before := admissionCounts(sys)
		r := e.drive(c, cfg.dur, &seq)
		r.admission = diffAdmission(before, admissionCounts(sys))
		progress("  %d journeys (%.1f/s), %d failed, p50 %v, p99 %v", r.journeys, float64(r.journeys)/r.elapsed.Seconds(),
			r.failed, r.journeyP50.Round(time.Millisecond), r.jP99.Round(time.Millisecond))
		progress("  admission: %s", admissionSummary(r.admission))
		lr.phases = append(lr.phases, r)
	}
	smp.setPhase("after")
	lr.samples = smp.finish()
	for i := range lr.phases {
		lr.phases[i].cpu = meanCPU(lr.samples, phaseName(lr.phases[i].conc))
	}
	list, err := sys.ps()
	if err != nil {
		return nil, err
	}
	for _, in := range list {
		lr.restarts += in.Restarts
	}
	return lr, nil
}

func slicesMax(xs []int) int {
	m := 0
	for _, x := range xs {
		m = max(m, x)
	}
	return m
}
