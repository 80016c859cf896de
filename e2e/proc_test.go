package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/discovery/discoverytest"
	"github.com/shoal-dev/shoal/internal/syncbuf"
)

// binDir holds the binaries TestMain builds once for every test.
var binDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "shoal-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	cmd := exec.Command("go", "build", "-o", binDir, "../examples/hello", "../cmd/shoal", "./journeys")
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building examples/hello, cmd/shoal and e2e/journeys:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	if code == 0 {
		// The load test runs a gossip member in this process.
		if err := discoverytest.FindLeaks(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak: goroutines still running after the tests:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// proc is a service instance running as a child process.
type proc struct {
	id      string
	admin   string // an SDK program's admin listener, if the test gave it one
	cmd     *exec.Cmd
	started time.Time
	out     *syncbuf.Buffer
	exited  chan struct{} // closed when the process has been waited for
	exitAt  time.Time     // valid after exited is closed
}

// startProc starts binary name from binDir with env added to the test's
// environment. The process dies with the test process (parent-death signal)
// and is killed at cleanup if still running.
func startProc(t *testing.T, name, id string, env ...string) *proc {
	t.Helper()
	return startProcArgs(t, name, id, nil, env...)
}

// startProcArgs is startProc with command-line arguments.
func startProcArgs(t *testing.T, name, id string, args []string, env ...string) *proc {
	t.Helper()
	return startCmd(t, id, exec.Command(filepath.Join(binDir, name), args...), env...)
}

// startCmd starts cmd as startProc does.
func startCmd(t *testing.T, id string, cmd *exec.Cmd, env ...string) *proc {
	t.Helper()
	p := &proc{id: id, out: &syncbuf.Buffer{}, exited: make(chan struct{}), cmd: cmd}
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	p.started = time.Now()
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", id, err)
	}
	go func() {
		_ = p.cmd.Wait()
		p.exitAt = time.Now()
		close(p.exited)
	}()
	t.Cleanup(func() {
		p.signal(syscall.SIGCONT)
		p.signal(syscall.SIGKILL)
		<-p.exited
		if t.Failed() {
			t.Logf("--- output of %s ---\n%s", p.id, p.out.String())
		}
	})
	return p
}

func (p *proc) signal(sig syscall.Signal) {
	select {
	case <-p.exited:
	default:
		_ = p.cmd.Process.Signal(sig)
	}
}

// waitExit waits up to d for the process to exit and reports how long after
// since it did.
func (p *proc) waitExit(d time.Duration, since time.Time) (time.Duration, bool) {
	select {
	case <-p.exited:
		return p.exitAt.Sub(since), true
	case <-time.After(d):
		return 0, false
	}
}
