package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
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
