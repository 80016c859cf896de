package main

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/shoal-dev/shoal/supervisor"
)

// The goals of docs/BENCHMARKS.md, per service and for the whole system.
const (
	goalBinary    = 15e6 // bytes
	goalIdleRSS   = 20e6 // bytes
	goalLoadRSS   = 60e6 // bytes
	goalReady     = 50 * time.Millisecond
	goalSystemRSS = 390e6 // bytes: about one Spring Boot service
)

// results is everything one run measured.
type results struct {
	cfg            config
	command        string
	machine        machine
	manifest       *supervisor.Manifest
	services       []serviceResult
	upCold, upWarm time.Duration
	upColdOthers   float64 // cores other processes used during the cold shoal up
	load           *loadResult
}

// mb formats bytes as MB (10^6 bytes).
func mb(bytes float64) string { return fmt.Sprintf("%.1f MB", bytes/1e6) }

func kbBytes(kb int) float64 { return float64(kb) * 1024 }

func ms(d time.Duration) string {
	if d < 10*time.Millisecond {
		return fmt.Sprintf("%.1f ms", float64(d)/1e6)
	}
	return fmt.Sprintf("%.0f ms", float64(d)/1e6)
}

func mark(ok bool) string {
	if ok {
		return "✓"
	}
	return "✗"
}

func verdict(ok bool) string {
	if ok {
		return "**met**"
	}
	return "**not met**"
}

// markdown renders the run as a section of docs/BENCHMARKS.md.
func (r *results) markdown() string {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	total := 0
	for _, s := range r.services {
		total += s.instances
	}
	p("## Footprint, startup and journeys of flix (bench/startup)\n\n")
	p("Measured on %s with:\n\n    %s\n\n", time.Now().Format("2006-01-02"), r.command)
	p("Machine: %s, %d cores, %d MB of memory, Linux %s, %s. 1-minute load average at the start: %.2f.\n",
		r.machine.cpu, r.machine.cores, r.machine.memMB, r.machine.kernel, r.machine.goVersion, startLoad)
	if r.load != nil {
		p("The load generator runs on the same %d cores as the system's %d instances and shoal up: "+
			"it takes part of the CPU that the throughput figures are about (the CPU columns say how much).\n",
			r.machine.cores, total)
	}
	p("1 MB = 10⁶ bytes. RSS is the resident set of each instance's process group (VmRSS of /proc/<pid>/status), " +
		"the figure ps and top show; pages shared between the instances of a service (the binary's text) count in each, " +
		"PSS counts them once.\n\n")

	var per map[string]*svcStats
	var t totals
	multi := false
	if r.load != nil {
		per, t, multi = r.load.systemStats()
	}
	loadLabel := ""
	if r.load != nil && len(r.load.phases) > 0 {
		var cs []string
		for _, ph := range r.load.phases {
			cs = append(cs, fmt.Sprint(ph.conc))
		}
		loadLabel = "C = " + strings.Join(cs, ", ")
	}

	// Goals.
	var binOver, idleOver, loadOver, readyOver []string
	var binMax, idleMax, loadMax, readyMax struct {
		name string
		v    float64
	}
	goSvcs := 0
	for _, s := range r.services {
		if s.command != nil {
			continue // not a Go program of ours
		}
		goSvcs++
		if v := float64(s.size); v > binMax.v {
			binMax.name, binMax.v = s.name, v
		}
		if float64(s.size) > goalBinary {
			binOver = append(binOver, fmt.Sprintf("%s %s", s.name, mb(float64(s.size))))
		}
		if v := float64(s.restartReady); v > readyMax.v {
			readyMax.name, readyMax.v = s.name, v
		}
		if s.restartReady > goalReady {
			readyOver = append(readyOver, fmt.Sprintf("%s %s", s.name, ms(s.restartReady)))
		}
		idleKB := s.restartRSS
		if st := per[s.name]; st != nil {
			idleKB = max(idleKB, st.idleKB)
			if v := kbBytes(st.loadKB); v > loadMax.v {
				loadMax.name, loadMax.v = s.name, v
			}
			if kbBytes(st.loadKB) > goalLoadRSS {
				loadOver = append(loadOver, fmt.Sprintf("%s %s", s.name, mb(kbBytes(st.loadKB))))
			}
		}
		if v := kbBytes(idleKB); v > idleMax.v {
			idleMax.name, idleMax.v = s.name, v
		}
		if kbBytes(idleKB) > goalIdleRSS {
			idleOver = append(idleOver, fmt.Sprintf("%s %s", s.name, mb(kbBytes(idleKB))))
		}
	}
	goalRow := func(goal string, measured bool, over []string, largest string) {
		if !measured {
			p("| %s | not measured (-solo=false) | — |\n", goal)
			return
		}
		met := len(over) == 0
		detail := fmt.Sprintf("%d of %d services within; largest %s", goSvcs-len(over), goSvcs, largest)
		if !met {
			detail += "; over: " + strings.Join(over, ", ")
		}
		p("| %s | %s | %s |\n", goal, detail, verdict(met))
	}
	idleGoal := "idle RSS ≤ 20 MB per service (the larger of: started alone, in the running system)"
	if !r.cfg.solo {
		idleGoal = "idle RSS ≤ 20 MB per service (in the running system)"
	}
	p("### Goals\n\n")
	p("| goal | measured | verdict |\n|---|---|---|\n")
	goalRow("binary ≤ 15 MB per service", r.cfg.solo, binOver, fmt.Sprintf("%s %s", binMax.name, mb(binMax.v)))
	goalRow(idleGoal, r.cfg.solo || r.load != nil, idleOver, fmt.Sprintf("%s %s", idleMax.name, mb(idleMax.v)))
	if r.load != nil {
		goalRow(fmt.Sprintf("RSS under load ≤ 60 MB per service (largest instance, %s)", loadLabel), true, loadOver,
			fmt.Sprintf("%s %s", loadMax.name, mb(loadMax.v)))
	}
	goalRow(fmt.Sprintf("time to ready ≤ 50 ms per service (restart, data present; median of %d)", r.cfg.runs), r.cfg.solo, readyOver,
		fmt.Sprintf("%s %s", readyMax.name, ms(time.Duration(readyMax.v))))
	if r.load != nil {
		peak := kbBytes(t.rss[1])
		p("| whole system at 3 instances per service < one Spring Boot service (~390 MB) | "+
			"%d instances + shoal up: %s idle, %s at peak under load (PSS %s idle, %s at peak) | %s |\n",
			total, mb(kbBytes(t.rss[0])), mb(peak), mb(kbBytes(t.pss[0])), mb(kbBytes(t.pss[1])), verdict(peak < goalSystemRSS))
	}
	p("\nThe goals are about the Go services; ")
	for _, s := range r.services {
		if s.command != nil {
			p("%s (`%s`, not a Go program) is measured but not judged; ", s.name, strings.Join(s.command, " "))
		}
	}
	p("the 390 MB of a Spring Boot service is the issue's figure, not measured here.\n\n")

	// Per service.
	p("### Per service\n\n")
	p("| service | instances | binary | ready, first start (median of %d) | ready, restart (median of %d) | idle RSS alone | idle RSS in the system | of which mapped files | RSS under load | CPU of other processes while started alone |\n",
		r.cfg.first, r.cfg.runs)
	p("|---|---|---|---|---|---|---|---|---|---|\n")
	for _, s := range r.services {
		judged := s.command == nil
		m := func(ok bool) string {
			if !judged {
				return ""
			}
			return " " + mark(ok)
		}
		bin := mb(float64(s.size)) + m(float64(s.size) <= goalBinary)
		if !judged {
			bin = "— (" + s.command[0] + ")"
		}
		first := "—"
		if r.cfg.first > 0 {
			first = ms(s.firstReady)
		}
		inSys, file, underLoad := "—", "—", "—"
		if st := per[s.name]; st != nil {
			inSys = mb(kbBytes(st.idleKB)) + m(kbBytes(st.idleKB) <= goalIdleRSS)
			file = mb(kbBytes(st.idleFile))
			underLoad = mb(kbBytes(st.loadKB)) + m(kbBytes(st.loadKB) <= goalLoadRSS)
		}
		ready, alone, others := ms(s.restartReady)+m(s.restartReady <= goalReady),
			mb(kbBytes(s.restartRSS))+m(kbBytes(s.restartRSS) <= goalIdleRSS), fmt.Sprintf("%.2f cores", s.others)
		if !s.alone {
			bin, first, ready, alone, others = "—", "—", "—", "—", "—"
		}
		p("| %s | %d | %s | %s | %s | %s | %s | %s | %s | %s |\n", s.name, s.instances, bin, first, ready, alone,
			inSys, file, underLoad, others)
	}
	if !r.cfg.solo {
		p("\nWith -solo=false no service was started alone: —.\n")
	}
	p("\nReady: from exec to the first 200 of its health check, one instance started alone (polled every 200 µs). "+
		"A first start has an empty data folder: catalog, ratings and profiles write their datasets then. "+
		"Idle RSS alone: a second after a restart is ready. In the system: the largest instance's median over the last %v of %v of idle, once the first start's background work was done. "+
		"Of which mapped files: the part of that RSS that is pages of the binary and libraries (RssFile), shared by the instances of a service and with the page cache; the rest is the process's own (RssAnon). "+
		"Under load: the largest instance's largest sample (every %v) during the load phases.\n\n", r.loadIdleFor()-r.loadIdleFor()*2/3, r.loadIdleFor(), r.cfg.sampleEvery)

	if r.load != nil {
		lr := r.load
		if len(lr.phases) > 1 {
			p("Largest instance RSS by concurrency:\n\n| service |")
			for _, ph := range lr.phases {
				p(" C = %d |", ph.conc)
			}
			p("\n|---|%s\n", strings.Repeat("---|", len(lr.phases)))
			for _, s := range r.services {
				if st := per[s.name]; st != nil {
					p("| %s |", s.name)
					for _, ph := range lr.phases {
						p(" %s |", mb(kbBytes(st.byPhase[ph.conc])))
					}
					p("\n")
				}
			}
			p("\n")
		}

		p("CPU by service, in cores (mean over the phase; idle: its last %v):\n\n| service | idle |", lr.idleFor-lr.idleFor*2/3)
		for _, ph := range lr.phases {
			p(" C = %d |", ph.conc)
		}
		p("\n|---|---|%s\n", strings.Repeat("---|", len(lr.phases)))
		idleCPU := serviceCPU(lr.samples, idlePhase)
		phaseCPU := map[int]map[string]float64{}
		for _, ph := range lr.phases {
			phaseCPU[ph.conc] = serviceCPU(lr.samples, phaseName(ph.conc))
		}
		for _, name := range cpuRows(idleCPU, phaseCPU) {
			p("| %s | %.2f |", name, idleCPU[name])
			for _, ph := range lr.phases {
				p(" %.2f |", phaseCPU[ph.conc][name])
			}
			p("\n")
		}
		p("\n")

		p("### The whole system\n\n")
		p("| %d instances + shoal up | RSS | of which the instances' mapped files | RSS without them | PSS | of which shoal up (RSS) |\n|---|---|---|---|---|---|\n", total)
		row := func(label string, i int) {
			p("| %s | %s | %s | %s | %s | %s |\n", label, mb(kbBytes(t.rss[i])), mb(kbBytes(t.file[i])),
				mb(kbBytes(t.rss[i]-t.file[i])), mb(kbBytes(t.pss[i])), mb(kbBytes(t.sup[i])))
		}
		row(fmt.Sprintf("idle (median over the last %v of %v)", lr.idleFor-lr.idleFor*2/3, lr.idleFor), 0)
		row(fmt.Sprintf("peak under load (%s)", loadLabel), 1)
		p("\nMapped files are mostly each binary's own pages, shared by the instances of a service: RSS counts them once per instance, PSS once per service.\n\n")

		p("### Journeys through the gateways\n\n")
		p("A journey: POST /signin → GET /home → POST /playback/sessions → POST …/progress (Idempotency-Key) → PUT /ratings/… (Idempotency-Key); "+
			"5 requests, sent in turn to the %d gateways, one of %d adult profiles and a random title of 2,400 each time. "+
			"Closed loop: C clients each start a journey when their last one ends, for %v per concurrency (after %v of warm-up at C = %d). "+
			"A failed journey stops at its failing request; requests are never retried.\n\n",
			gatewayCount(r.manifest), len(adultProfiles), r.cfg.dur, r.cfg.warmup, r.cfg.conc[0])
		p("| concurrency | journeys/s | requests/s | journey p50 | journey p99 | request p50 | request p99 | failed journeys | CPU: system / load generator / others (cores of %d) |\n", r.machine.cores)
		p("|---|---|---|---|---|---|---|---|---|\n")
		for _, ph := range lr.phases {
			sec := ph.elapsed.Seconds()
			p("| %d | %.1f | %.0f | %s | %s | %s | %s | %d of %d | %.2f / %.2f / %.2f |\n", ph.conc,
				float64(ph.journeys)/sec, float64(ph.requests)/sec, ms(ph.journeyP50), ms(ph.jP99),
				ms(ph.requestP50), ms(ph.reqP99), ph.failed, ph.journeys+ph.failed,
				ph.cpu.system, ph.cpu.generator, ph.cpu.others)
		}
		p("\n")
		for _, ph := range lr.phases {
			if len(ph.errors) == 0 {
				continue
			}
			keys := slices.Sorted(func(yield func(string) bool) {
				for k := range ph.errors {
					if !yield(k) {
						return
					}
				}
			})
			slices.SortStableFunc(keys, func(a, b string) int { return ph.errors[b] - ph.errors[a] })
			var parts []string
			for _, k := range keys[:min(len(keys), 5)] {
				parts = append(parts, fmt.Sprintf("%s ×%d (`%s`)", k, ph.errors[k], strings.ReplaceAll(ph.examples[k], "`", "'")))
			}
			p("Failures at C = %d: %s.\n\n", ph.conc, strings.Join(parts, "; "))
		}
		for _, ph := range lr.phases {
			p("Admission control at C = %d (all instances of each service): %s.\n\n", ph.conc, admissionSummary(ph.admission))
		}
		if lr.restarts > 0 {
			p("Instances restarted during the run: %d.\n", lr.restarts)
		}
		p("\n")
	}

	if r.upCold > 0 || r.upWarm > 0 || r.load != nil {
		p("### shoal up and down\n\n| | time |\n|---|---|\n")
		if r.upCold > 0 {
			p("| shoal up until every instance serves, cold build cache | %v |\n", r.upCold.Round(100*time.Millisecond))
		}
		if r.upWarm > 0 {
			p("| shoal up until every instance serves, warm build cache | %v |\n", r.upWarm.Round(100*time.Millisecond))
		}
		if r.load != nil {
			p("| shoal down, after the load | %v |\n", r.load.downTook.Round(100*time.Millisecond))
		}
		p("\nEach shoal up is a first start of the system (a new scratch folder: the datasets are written).\n\n")
	}

	p("### Notes\n\n")
	if r.load != nil {
		lr := r.load
		p("- After shoal up (a first start: datasets written, catalog's title events indexed by search), the system went idle (its processes under %.2f cores over 2 s) in %v",
			lr.settleLimit, lr.settleTook.Round(100*time.Millisecond))
		if !lr.settled {
			p(" — it did not: the idle figures were taken anyway, at %.2f cores", lr.settleCPU.system)
		}
		idle := meanCPU(lr.samples, idlePhase)
		p("; 1-minute load average once idle: %.2f. Idle, the system used %.2f cores (gossip, health checks, outbox polls), other processes %.2f.\n",
			lr.loadBefore, idle.system, idle.others)
		if multi {
			p("- Some instances ran more than one process: their RSS is the sum over the process group.\n")
		} else {
			p("- Every instance is a single process: the pid `shoal ps` shows is the program itself, with no children.\n")
		}
		if len(lr.leftOver) == 0 {
			p("- After shoal down, no process was left (none in the process group of shoal up or of any instance, none running from the scratch folder).\n")
		} else {
			p("- After shoal down, %d processes were left (killed): %s.\n", len(lr.leftOver), strings.Join(lr.leftOver, "; "))
		}
	}
	worst := serviceResult{}
	for _, s := range r.services {
		if s.others >= worst.others {
			worst = s
		}
	}
	p("- Other processes of the machine are not stopped by the benchmark. Each service is started alone once they used under %.2f cores for 3 s (waiting at most %v); "+
		"while the services were started alone, they used at most %.2f cores on average (while %s was measured)",
		quietCores, quietWait, worst.others, worst.name)
	if r.upCold > 0 {
		p("; during shoal up with a cold build cache, %.2f cores", r.upColdOthers)
	}
	if r.load != nil {
		p("; during the load phases, the CPU column \"others\" says")
	}
	p(".\n")
	return b.String()
}

func (r *results) loadIdleFor() time.Duration {
	if r.load == nil {
		return 0
	}
	return r.load.idleFor
}

func gatewayCount(m *supervisor.Manifest) int {
	for _, s := range m.Services {
		if s.Name == "gateway" {
			return max(s.Instances, 1)
		}
	}
	return 0
}

// startLoad is the 1-minute load average when the command started.
var startLoad = loadAvg()

// supervisorRow names shoal up's own process (and anything it starts outside
// an instance's process group) in the CPU-by-service table.
const supervisorRow = "(shoal up)"

// cpuRows lists every service that used CPU in the idle phase or a load
// phase, busiest first under the last phase, shoal up last.
func cpuRows(idle map[string]float64, phases map[int]map[string]float64) []string {
	seen := map[string]bool{}
	for k := range idle {
		seen[k] = true
	}
	var last map[string]float64
	maxC := -1
	for c, m := range phases {
		for k := range m {
			seen[k] = true
		}
		if c > maxC {
			maxC, last = c, m
		}
	}
	delete(seen, supervisorRow)
	rows := make([]string, 0, len(seen)+1)
	for k := range seen {
		rows = append(rows, k)
	}
	slices.SortFunc(rows, func(a, b string) int {
		return cmp.Or(cmp.Compare(last[b], last[a]), strings.Compare(a, b))
	})
	return append(rows, supervisorRow)
}
