package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/<pid>/stat:
// 100 on every Linux architecture Go supports.
const clockTicks = 100

// procStat is one process, from /proc/<pid>/stat.
type procStat struct {
	pid, pgid int
	start     uint64 // start time in ticks since boot: (pid, start) is one process
	ticks     uint64 // utime + stime
	rssKB     int
}

// group is a process group: an instance (the supervisor starts each in its
// own group, whose id is the instance's pid) and whatever it started.
type group struct {
	pids  []int
	rssKB int
}

// snapshot is every process at one moment.
type snapshot struct {
	procs  []procStat
	groups map[int]group // by process group id
}

var pageKB = os.Getpagesize() / 1024

// scanProcs reads /proc/<pid>/stat of every process.
func scanProcs() (*snapshot, error) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	s := &snapshot{groups: map[int]group{}}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		p, ok := readStat(pid)
		if !ok {
			continue // gone meanwhile
		}
		s.procs = append(s.procs, p)
		g := s.groups[p.pgid]
		g.pids = append(g.pids, p.pid)
		g.rssKB += p.rssKB
		s.groups[p.pgid] = g
	}
	return s, nil
}

func readStat(pid int) (procStat, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return procStat{}, false
	}
	// The command name is in parentheses and may hold anything: the
	// fields we want follow its last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return procStat{}, false
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 22 {
		return procStat{}, false
	}
	num := func(k int) uint64 { // field k of proc(5), counted from 1
		n, _ := strconv.ParseUint(f[k-3], 10, 64)
		return n
	}
	return procStat{pid: pid, pgid: int(num(5)), start: num(22), ticks: num(14) + num(15), rssKB: int(num(24)) * pageKB}, true
}

// memKB is the resident memory of group g from /proc/<pid>/status: VmRSS,
// and RssAnon (heap, stacks: the process's own) apart from RssFile (the
// mapped binary and libraries, shared by every process mapping the file).
func memKB(g group) (rss, anon, file int) {
	for _, pid := range g.pids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		if err != nil {
			continue
		}
		for line := range strings.SplitSeq(string(b), "\n") {
			k, v, ok := strings.Cut(line, ":")
			if !ok {
				continue
			}
			n, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			switch k {
			case "VmRSS":
				rss += n
			case "RssAnon":
				anon += n
			case "RssFile":
				file += n
			}
		}
	}
	return rss, anon, file
}

// pssKB is the proportional set size of the processes of group g:
// pages shared with other processes (the same binary's text, mapped by
// every instance of a service) count for their share only.
func pssKB(g group) int {
	total := 0
	for _, pid := range g.pids {
		f, err := os.Open(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if rest, ok := strings.CutPrefix(sc.Text(), "Pss:"); ok {
				n, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(rest), " kB"))
				total += n
				break
			}
		}
		f.Close()
	}
	return total
}

// machine describes where the run happened.
type machine struct {
	cpu       string
	cores     int
	memMB     int
	kernel    string
	goVersion string
}

func readMachine() machine {
	m := machine{cores: runtime.NumCPU(), goVersion: runtime.Version()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.SplitSeq(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.cpu = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for line := range strings.SplitSeq(string(b), "\n") {
			if rest, ok := strings.CutPrefix(line, "MemTotal:"); ok {
				kb, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(rest), " kB"))
				m.memMB = kb / 1024
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.kernel = strings.TrimSpace(string(b))
	}
	return m
}

// loadAvg is the 1-minute load average.
func loadAvg() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return -1
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return -1
	}
	v, _ := strconv.ParseFloat(f[0], 64)
	return v
}

// cpuMeter splits the machine's CPU time since it started into this
// command's (with its children that have been waited for: instances
// started alone, go build, shoal up once it exited) and everyone else's.
type cpuMeter struct {
	at   time.Time
	busy float64 // seconds of busy CPU, all cores, from /proc/stat
	ours float64 // seconds of CPU, this process and its waited children
}

func startMeter() cpuMeter { return cpuMeter{at: time.Now(), busy: machineBusy(), ours: ourCPU()} }

// others is the CPU, in cores, that other processes used since m started.
func (m cpuMeter) others() float64 {
	sec := time.Since(m.at).Seconds()
	if sec <= 0 {
		return 0
	}
	return max(0, (machineBusy()-m.busy)-(ourCPU()-m.ours)) / sec
}

// machineBusy is the CPU time, in seconds over all cores, that the machine
// spent not idle since boot.
func machineBusy() float64 {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line) // cpu user nice system idle iowait irq softirq steal ...
	var busy uint64
	for i, v := range f[1:] {
		if i == 3 || i == 4 || i >= 8 { // idle, iowait; guest time is in user already
			continue
		}
		n, _ := strconv.ParseUint(v, 10, 64)
		busy += n
	}
	return float64(busy) / clockTicks
}

func ourCPU() float64 {
	var self, children syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &self)
	_ = syscall.Getrusage(syscall.RUSAGE_CHILDREN, &children)
	sec := func(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }
	return sec(self.Utime) + sec(self.Stime) + sec(children.Utime) + sec(children.Stime)
}

// waitQuiet waits until other processes use under limit cores over 3 s, at
// most max; it returns what they used in the last 3 s.
func waitQuiet(limit float64, max time.Duration) float64 {
	deadline := time.Now().Add(max)
	for {
		m := startMeter()
		time.Sleep(3 * time.Second)
		o := m.others()
		if o < limit || time.Now().After(deadline) {
			return o
		}
		progress("  other processes use %.2f cores: waiting for them to drop under %.2f", o, limit)
	}
}
