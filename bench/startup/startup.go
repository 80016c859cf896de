package main

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/shoal-dev/shoal/handoff"
	"github.com/shoal-dev/shoal/supervisor"
)

// serviceResult is what one service measured alone.
type serviceResult struct {
	name      string
	instances int
	command   []string // set for a command: service (no binary of ours)
	alone     bool     // measured alone (-solo); else only its name, instances and command are known
	size      int64    // bytes of the built binary

	firstReady, restartReady time.Duration // medians
	firstRSS, restartRSS     int           // KB, medians, a second after ready
	others                   float64       // cores other processes used meanwhile
}

// unmeasured is what the manifest says of svc: with -solo=false, all that
// is known of it.
func unmeasured(svc *supervisor.ServiceSpec) serviceResult {
	r := serviceResult{name: svc.Name, instances: max(svc.Instances, 1)}
	if svc.Build == "" {
		r.command = svc.Command
	}
	return r
}

// measureService builds svc like the supervisor does, then starts it alone
// first times with an empty data folder each (a first start), and runs
// times with the data the last first start left (a restart).
func measureService(m *supervisor.Manifest, svc *supervisor.ServiceSpec, tmp string, first, runs int) (r serviceResult, err error) {
	r = unmeasured(svc)
	r.alone = true
	waitQuiet(quietCores, quietWait)
	meter := startMeter()
	defer func() { r.others = meter.others() }()
	argv := svc.Command
	health := svc.Health
	if svc.Build != "" {
		bin := filepath.Join(tmp, svc.Name)
		// The supervisor's build flags, so sizes are what shoal up runs.
		if err := goBuild(m.Dir, bin, svc.Build, nil); err != nil {
			return r, fmt.Errorf("build: %w", err)
		}
		st, err := os.Stat(bin)
		if err != nil {
			return r, err
		}
		r.size = st.Size()
		argv = append([]string{bin}, svc.Args...)
		if health == "" {
			health = "/readyz"
		}
	} else {
		argv = append(slices.Clone(argv), svc.Args...)
		if health == "" {
			health = "/"
		}
	}
	// starts starts svc n times, the i-th on the data folder dataOf(i),
	// and returns the medians of its time to ready and of its RSS.
	starts := func(n int, dataOf func(i int) string) (time.Duration, int, error) {
		var ready []time.Duration
		var rss []int
		for i := range n {
			d, kb, err := startOnce(m, svc, argv, health, dataOf(i))
			if err != nil {
				return 0, 0, err
			}
			ready, rss = append(ready, d), append(rss, kb)
		}
		return median(ready), median(rss), nil
	}
	firstData := func(i int) string { return filepath.Join(tmp, fmt.Sprintf("data-%s-%d", svc.Name, i)) }
	var data string
	if first > 0 {
		if r.firstReady, r.firstRSS, err = starts(first, firstData); err != nil {
			return r, fmt.Errorf("first start: %w", err)
		}
		data = firstData(first - 1)
	} else {
		data = filepath.Join(tmp, "data-"+svc.Name)
		if _, _, err := startOnce(m, svc, argv, health, data); err != nil {
			return r, fmt.Errorf("first start: %w", err)
		}
	}
	if runs > 0 {
		if r.restartReady, r.restartRSS, err = starts(runs, func(int) string { return data }); err != nil {
			return r, fmt.Errorf("restart: %w", err)
		}
	}
	return r, nil
}

// Before each service, other processes should use under quietCores for 3 s
// (waiting at most quietWait): start times are what a busy machine
// disturbs most.
const (
	quietCores = 0.25
	quietWait  = 2 * time.Minute
)

// goBuild builds pkg into bin with the supervisor's flags.
func goBuild(dir, bin, pkg string, env []string) error {
	build := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", bin, pkg)
	build.Dir, build.Stderr = dir, os.Stderr
	if env != nil {
		build.Env = append(os.Environ(), env...)
	}
	return build.Run()
}

// startOnce starts argv as one instance of svc, from the manifest's folder
// with the environment and the socket the supervisor gives (no gossip
// seeds: it is alone; no identity: plain HTTP), polls its health path every
// 200 µs (an SDK program's on its admin listener), and reads the RSS of its
// process group after a second of idling.
func startOnce(m *supervisor.Manifest, svc *supervisor.ServiceSpec, argv []string, health, dataDir string) (time.Duration, int, error) {
	sock, err := handoff.Reserve("127.0.0.1:0")
	if err != nil {
		return 0, 0, err
	}
	defer sock.Close() // at once after the start, like the supervisor: the process holds its copy
	adminSock, err := handoff.Reserve("127.0.0.1:0")
	if err != nil {
		return 0, 0, err
	}
	defer adminSock.Close() // the process binds the address itself
	port := sock.Addr().Port
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = m.Dir
	cmd.Env = os.Environ()
	for k, v := range svc.Env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	p := strconv.Itoa(port)
	// Alone, the services it calls never appear in its discovery view:
	// readiness is measured without waiting for them.
	cmd.Env = append(cmd.Env, "SHOAL_NAME="+svc.Name, "SHOAL_ADDR=127.0.0.1:"+p, "PORT="+p, "SHOAL_ADMIN_ADDR="+adminSock.Addr().String(),
		"SHOAL_GOSSIP_ADDR=127.0.0.1:0", "SHOAL_DATA_DIR="+dataDir, "SHOAL_DEPENDENCY_WAIT=1ns")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	sock.Pass(cmd)
	url := fmt.Sprintf("http://127.0.0.1:%d%s", port, health)
	if svc.Register == supervisor.RegisterSDK {
		url = "http://" + adminSock.Addr().String() + health
	}
	c := &http.Client{Timeout: time.Second}
	begin := time.Now()
	err = cmd.Start()
	sock.Close()
	if err != nil {
		return 0, 0, err
	}
	pid := cmd.Process.Pid
	track(pid, true)
	defer func() {
		_ = syscall.Kill(-pid, syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			_ = syscall.Kill(-pid, syscall.SIGKILL)
			<-done
		}
		track(pid, false)
	}()
	for {
		if resp, err := c.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Since(begin) > 30*time.Second {
			return 0, 0, fmt.Errorf("GET %s not 200 after 30s", health)
		}
		time.Sleep(200 * time.Microsecond)
	}
	took := time.Since(begin)
	time.Sleep(time.Second) // idle: what it holds when nothing happens
	snap, err := scanProcs()
	if err != nil {
		return 0, 0, err
	}
	rss, _, _ := memKB(snap.groups[pid])
	if rss == 0 {
		return 0, 0, fmt.Errorf("no RSS for pid %d", pid)
	}
	return took, rss, nil
}

// groups are the process groups this command started (an instance alone,
// or shoal up), for killAll.
var groups struct {
	sync.Mutex
	pids map[int]bool
}

func track(pid int, on bool) {
	groups.Lock()
	defer groups.Unlock()
	if groups.pids == nil {
		groups.pids = map[int]bool{}
	}
	if on {
		groups.pids[pid] = true
	} else {
		delete(groups.pids, pid)
	}
}

// killAll SIGKILLs every process group still tracked: on the way out, and
// on Ctrl-C. shoal up's instances die with it (their parent-death signal).
func killAll() {
	groups.Lock()
	defer groups.Unlock()
	for pid := range groups.pids {
		_ = syscall.Kill(-pid, syscall.SIGKILL)
	}
}

func median[T int | time.Duration](xs []T) T {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}
