package supervisor

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/discovery/discoverytest"
	"github.com/shoal-dev/shoal/identity"
	"github.com/shoal-dev/shoal/internal/syncbuf"
)

// helloBin is examples/hello, an SDK service, built once by TestMain.
var helloBin string

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	if dir := os.Getenv(envUpHelper); dir != "" {
		return upHelper(dir)
	}
	dir, err := os.MkdirTemp("", "supervisor-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	helloBin = filepath.Join(dir, "hello")
	if out, err := exec.Command("go", "build", "-o", helloBin, "../examples/hello").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build examples/hello: %v\n%s", err, out)
		return 1
	}
	code := m.Run()
	if code == 0 {
		code = checkLeaks()
	}
	return code
}

// checkLeaks fails the run if goroutines outlive the tests by more than a
// grace period (memberlist ends an in-flight probe only at its deadline).
func checkLeaks() int {
	if err := discoverytest.FindLeaks(); err != nil {
		fmt.Fprintf(os.Stderr, "goleak: goroutines still running after the tests: %v\n", err)
		return 1
	}
	return 0
}

// running is a supervisor started by startSupervisor.
type running struct {
	sup    *Supervisor
	remote *Remote
	out    *syncbuf.Buffer
	cancel context.CancelFunc
	done   chan error // Run's result
}

// startSupervisor runs m (its Dir a fresh temp dir unless set) and returns
// once the control API answers. Cleanup stops it.
func startSupervisor(t *testing.T, m *Manifest) *running {
	t.Helper()
	return startSupervisorOn(t, m, HostOptions{})
}

// startSupervisorOn is startSupervisor with host options.
func startSupervisorOn(t *testing.T, m *Manifest, host HostOptions) *running {
	t.Helper()
	if m.Dir == "" {
		m.Dir = t.TempDir()
	}
	m.Path = filepath.Join(m.Dir, "shoal.yaml")
	if m.DrainTimeout == 0 {
		m.DrainTimeout = 2 * time.Second
	}
	out := &syncbuf.Buffer{}
	sup, err := New(m, Options{Out: out, Host: host})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{sup: sup, out: out, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- sup.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-r.done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
			r.done <- err
		case <-time.After(30 * time.Second):
			t.Errorf("Run did not return 30s after cancel; output:\n%s", out)
		}
	})
	eventually(t, 30*time.Second, "control API answers", func() error {
		select {
		case err := <-r.done:
			r.done <- err
			t.Fatalf("Run returned early: %v\n%s", err, out)
		default:
		}
		rem, err := FindRunning(m.Dir)
		r.remote = rem
		return err
	})
	return r
}

// caller returns a client that calls instances of service by address as a
// service of the system would: mutual TLS with a certificate of the
// system's CA (for "tester"), to an instance that proves it is service,
// one new connection per request.
func (r *running) caller(t *testing.T, service string) *http.Client {
	t.Helper()
	creds, err := r.sup.keys.auth.Credentials("tester", 0)
	if err != nil {
		t.Fatal(err)
	}
	tr := &http.Transport{DisableKeepAlives: true, DialTLSContext: identity.NewDialer(identity.NewSource(creds), nil).ForService(service)}
	return &http.Client{Timeout: 10 * time.Second, Transport: tr}
}

// eventually polls f every 20ms until it returns nil, failing the test with
// f's last error after timeout.
func eventually(t *testing.T, timeout time.Duration, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v: %v", what, timeout, err)
		}
		time.Sleep(20 * time.Millisecond) // polling interval, not a wait for a condition
	}
}

// waitServing polls ps until service has n instances, all serving.
func waitServing(t *testing.T, r *Remote, service string, n int) []InstanceStatus {
	t.Helper()
	var got []InstanceStatus
	eventually(t, 30*time.Second, fmt.Sprintf("%d %s instances serving", n, service), func() error {
		st, err := r.PS(context.Background())
		if err != nil {
			return err
		}
		got = got[:0]
		for _, s := range st {
			if s.Service == service {
				got = append(got, s)
			}
		}
		if len(got) != n {
			return fmt.Errorf("%d instances: %+v", len(got), got)
		}
		for _, s := range got {
			if s.State != StateServing {
				return fmt.Errorf("%s/%d is %s", s.Service, s.Index, s.State)
			}
		}
		return nil
	})
	return got
}

func gone(pid int) error {
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("pid %d still exists (%v)", pid, err)
	}
	return nil
}

// envUpHelper makes the test binary act as shoal up for the folder it names
// (see TestKilledSupervisorLeavesNoProcess).
const envUpHelper = "SUPERVISOR_TEST_UP_DIR"

// testManifest is the system TestSystem and the up helper run: an SDK
// service and a Python one registered by the supervisor.
func testManifest(dir, hello string) *Manifest {
	wd, _ := os.Getwd()
	return &Manifest{Name: "test", Dir: dir, DrainTimeout: 2 * time.Second, Services: []*ServiceSpec{
		{Name: "hello", Command: []string{hello}, Register: RegisterSDK, Instances: 2},
		{Name: "web", Command: []string{"python3", filepath.Join(wd, "testdata", "web.py")}, Instances: 1, Plaintext: true},
	}}
}

func upHelper(dir string) int {
	sup, err := New(testManifest(dir, os.Getenv("SUPERVISOR_TEST_HELLO")), Options{Out: os.Stdout})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := sup.Run(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}
