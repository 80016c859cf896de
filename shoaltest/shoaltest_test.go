package shoaltest_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/chaos/experiment"
	"github.com/shoal-dev/shoal/chaos/monkey"
	"github.com/shoal-dev/shoal/discovery/discoverytest"
	"github.com/shoal-dev/shoal/manifest"
	"github.com/shoal-dev/shoal/shoaltest"
)

func TestMain(m *testing.M) { discoverytest.VerifyTestMain(m) }

// scratch is a folder inside the module (go build resolves its packages
// from there), removed at the end.
func scratch(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("..", ".e2e-shoaltest-")
	if err != nil {
		t.Fatal(err)
	}
	abs, _ := filepath.Abs(dir)
	t.Cleanup(func() { os.RemoveAll(abs) })
	return abs
}

func write(t *testing.T, path, text string) string {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// A small system started from the test; experiments and the monkey
// against it.
func TestSystem(t *testing.T) {
	dir := scratch(t)
	sys := shoaltest.Start(t, write(t, filepath.Join(dir, "shoal.yaml"), `
name: tiny
services:
  hello:
    build: ../examples/hello
    instances: 3
  gateway:
    build: ../cmd/shoal
    args: [gateway]
`), shoaltest.Configure(func(m *manifest.Manifest) { m.DrainTimeout = 2 * time.Second }))
	if gws := sys.Gateways(t); len(gws) != 1 {
		t.Fatalf("gateways %v", gws)
	}

	// Both experiments' load: hello through the gateway, 10 requests a
	// second, after a second of baseline.
	const traffic = `
warmup: 1s
baseline: 1s
traffic:
  synthetic:
    rate: 10
    requests: [{path: /hello/hello}]
`
	t.Run("a slower hello holds", func(t *testing.T) {
		rep := sys.Experiment(t, write(t, filepath.Join(dir, "slow.yaml"), traffic+`
duration: 3s
fault: {request: 'hello:delay=50ms'}
hypothesis:
  - {name: answers, route: /hello/, success: {tolerance: 0.01}}
  - {name: a little slower, route: /hello/, latency: {quantile: 0.5, tolerance: 1s}}
`))
		shoaltest.RequireVerdict(t, rep, experiment.Held)
		for _, c := range rep.Checks {
			if c.Name == "a little slower" && c.Difference < 0.04 {
				t.Errorf("the experiment's median is %v, the control's %v: the fault did not apply", c.Experiment, c.Control)
			}
		}
	})

	t.Run("a failing hello aborts", func(t *testing.T) {
		rep := sys.Experiment(t, write(t, filepath.Join(dir, "down.yaml"), traffic+`
duration: 1m
fault: {request: 'hello:error=503'}
hypothesis:
  - {name: answers, route: /hello/, success: {tolerance: 0.01}}
abort:
  - {name: still answering, route: /hello/, success: {tolerance: 0.2}}
`))
		shoaltest.RequireVerdict(t, rep, experiment.Aborted)
		if rep.AbortedAfter > 10*time.Second {
			t.Errorf("aborted %v after the fault", rep.AbortedAfter)
		}
	})

	t.Run("monkey", func(t *testing.T) {
		stop := sys.Monkey(t, monkey.Config{Every: 300 * time.Millisecond, Services: []string{"hello"}, DryRun: true})
		time.Sleep(1100 * time.Millisecond) // the monkey's turns
		results := stop()
		acted := 0
		for _, r := range results {
			if r.Err == nil && r.Action.Service == "hello" && r.Action.DryRun {
				acted++
			}
		}
		if acted < 2 {
			t.Errorf("%d dry-run actions in 1.1s at every 300ms: %+v", acted, results)
		}
	})

	t.Run("attach", func(t *testing.T) {
		again := shoaltest.Attach(t, filepath.Join(dir, "shoal.yaml"))
		if gws := again.Gateways(t); len(gws) != 1 {
			t.Errorf("attached: gateways %v", gws)
		}
	})
}
