package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/shoal-dev/shoal/handoff"
	"github.com/shoal-dev/shoal/supervisor"
)

// system is a `shoal up` of a scratch copy of the manifest.
type system struct {
	m        *supervisor.Manifest
	shoal    string // the CLI binary
	dir      string // scratch folder holding the manifest copy
	manifest string
	gateways []string        // base URLs of the gateway instances
	ports    []*handoff.Port // the gateways' ports, reserved while the system runs
	total    int             // instances the manifest runs
	cmd      *exec.Cmd
	log      string
	exited   chan struct{}
	remote   *supervisor.Remote

	upTook, downTook time.Duration
	seen             map[int]bool // every instance pid seen, for the leftover check
}

var (
	buildDot    = regexp.MustCompile(`(build:\s*)\./`)
	examplesDir = regexp.MustCompile(`(\s)examples/`)
)

// scratchManifest is m's manifest moved one folder down (relative paths
// fixed) with the fixed ports replaced by reserved ones (shoal up can bind
// them, no other socket can take them; close them once the system is
// down); it returns the base URLs of the gateway instances.
func scratchManifest(m *supervisor.Manifest) (string, []string, []*handoff.Port, error) {
	b, err := os.ReadFile(m.Path)
	if err != nil {
		return "", nil, nil, err
	}
	text := buildDot.ReplaceAllString(string(b), "${1}../")
	text = examplesDir.ReplaceAllString(text, "${1}../examples/")
	var gateways []string
	var ports []*handoff.Port
	for _, svc := range m.Services {
		for _, p := range svc.Port {
			r, err := handoff.Reserve("127.0.0.1:0")
			if err != nil {
				closeAll(ports)
				return "", nil, nil, err
			}
			ports = append(ports, r)
			port := r.Addr().Port
			text = regexp.MustCompile(`\b`+strconv.Itoa(p)+`\b`).ReplaceAllString(text, strconv.Itoa(port))
			if svc.Name == "gateway" {
				gateways = append(gateways, fmt.Sprintf("http://127.0.0.1:%d", port))
			}
		}
	}
	return text, gateways, ports, nil
}

func closeAll(ports []*handoff.Port) {
	for _, p := range ports {
		p.Close()
	}
}

// startSystem runs shoal up on a scratch copy of m's manifest, with
// GOCACHE=gocache unless empty, and returns once ps shows every instance
// serving.
func startSystem(m *supervisor.Manifest, shoal, tmp, gocache string) (*system, error) {
	text, gateways, ports, err := scratchManifest(m)
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp(m.Dir, ".bench-flix-")
	if err != nil {
		closeAll(ports)
		return nil, err
	}
	s := &system{m: m, shoal: shoal, dir: dir, manifest: filepath.Join(dir, "shoal.yaml"), gateways: gateways, ports: ports,
		exited: make(chan struct{}), seen: map[int]bool{}}
	for _, svc := range m.Services {
		s.total += max(svc.Instances, 1)
	}
	fail := func(err error) (*system, error) {
		s.kill()
		os.RemoveAll(dir)
		return nil, err
	}
	if err := os.WriteFile(s.manifest, []byte(text), 0o644); err != nil {
		return fail(err)
	}
	logf, err := os.CreateTemp(tmp, "up-*.log")
	if err != nil {
		return fail(err)
	}
	defer logf.Close() // the child has its own descriptor
	s.log = logf.Name()
	s.cmd = exec.Command(shoal, "up", "-f", s.manifest)
	s.cmd.Env = append(os.Environ(), "NO_COLOR=1")
	if gocache != "" {
		s.cmd.Env = append(s.cmd.Env, "GOCACHE="+gocache)
	}
	s.cmd.Stdout, s.cmd.Stderr = logf, logf
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	begin := time.Now()
	if err := s.cmd.Start(); err != nil {
		return fail(err)
	}
	track(s.cmd.Process.Pid, true)
	go func() { _ = s.cmd.Wait(); close(s.exited) }()

	deadline := time.Now().Add(10 * time.Minute)
	for time.Now().Before(deadline) {
		select {
		case <-s.exited:
			return fail(fmt.Errorf("shoal up exited: %s", tail(s.log)))
		default:
		}
		if s.remote == nil {
			s.remote, _ = supervisor.FindRunning(dir)
		}
		if s.remote != nil {
			if list, err := s.ps(); err == nil && countServing(list) == s.total {
				s.upTook = time.Since(begin)
				return s, nil
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fail(fmt.Errorf("not all %d instances serving after 10 minutes: %s", s.total, tail(s.log)))
}

// ps lists the instances and remembers their pids.
func (s *system) ps() ([]supervisor.InstanceStatus, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	list, err := s.remote.PS(ctx)
	for _, in := range list {
		if in.PID > 0 {
			s.seen[in.PID] = true
		}
	}
	return list, err
}

func (s *system) supervisorPID() int { return s.cmd.Process.Pid }

// down runs shoal down, waits for shoal up to exit, and returns the
// processes left behind: any in the process group of the supervisor or of
// an instance it ran, or whose command line or working folder is in the
// scratch folder (those are killed). It removes the scratch folder.
func (s *system) down() ([]string, error) {
	defer os.RemoveAll(s.dir)
	defer closeAll(s.ports)
	if s.remote != nil {
		_, _ = s.ps()
	}
	begin := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, s.shoal, "-f", s.manifest, "down").CombinedOutput()
	if err != nil {
		s.kill()
		return nil, fmt.Errorf("%v: %s", err, out)
	}
	select {
	case <-s.exited:
	case <-time.After(30 * time.Second):
		s.kill()
		return nil, fmt.Errorf("shoal up still running 30s after shoal down returned")
	}
	s.downTook = time.Since(begin)
	track(s.supervisorPID(), false)

	snap, err := scanProcs()
	if err != nil {
		return nil, err
	}
	var left []string
	for _, p := range snap.procs {
		if p.pid == os.Getpid() {
			continue
		}
		mine := p.pgid == s.supervisorPID() || s.seen[p.pgid]
		if !mine {
			cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", p.pid))
			cwd, _ := os.Readlink(fmt.Sprintf("/proc/%d/cwd", p.pid))
			mine = strings.Contains(string(cmdline), s.dir) || strings.HasPrefix(cwd, s.dir)
		}
		if mine {
			cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", p.pid))
			left = append(left, fmt.Sprintf("pid %d: %s", p.pid, strings.ReplaceAll(strings.TrimSpace(string(cmdline)), "\x00", " ")))
			_ = syscall.Kill(p.pid, syscall.SIGKILL)
		}
	}
	return left, nil
}

// kill SIGKILLs shoal up's process group (its instances follow: they get
// SIGKILL when their parent dies).
func (s *system) kill() {
	closeAll(s.ports)
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
	<-s.exited
	track(s.cmd.Process.Pid, false)
}

func countServing(list []supervisor.InstanceStatus) int {
	n := 0
	for _, s := range list {
		if s.State == supervisor.StateServing {
			n++
		}
	}
	return n
}

// tail returns the last lines of file, for an error message.
func tail(file string) string {
	b, err := os.ReadFile(file)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return strings.Join(lines[max(0, len(lines)-10):], "\n")
}
