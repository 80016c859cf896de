package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/pprof/profile"

	"github.com/shoal-dev/shoal/e2e/flixedge"
	"github.com/shoal-dev/shoal/handoff/handofftest"
)

// system is a `shoal up` of a manifest in a scratch folder inside the
// repository (so that `go build` of its packages resolves this module).
type system struct {
	manifest string
	gateway  string // base URL of the first gateway instance
	up       *proc
}

// scratchDir makes a folder at the repository root that the test removes.
func scratchDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("..", ".e2e-")
	if err != nil {
		t.Fatal(err)
	}
	abs, _ := filepath.Abs(dir)
	t.Cleanup(func() { os.RemoveAll(abs) })
	return abs
}

// gatewayPort reserves a loopback port for a gateway for the test's
// duration: shoal up binds it as it binds 8080 (both sockets allow address
// reuse and neither listens), and no other socket on the machine can take
// it, so tests running beside this one cannot collide with the system.
func gatewayPort(t *testing.T) int {
	t.Helper()
	return handofftest.Port(t).Addr().Port
}

// referenceManifest is the shipped ../shoal.yaml moved one folder down, with
// the two gateways on reserved ports instead of 8080 and 8081.
func referenceManifest(t *testing.T) (text string, gatewayPorts [2]int) {
	t.Helper()
	b, err := os.ReadFile("../shoal.yaml")
	if err != nil {
		t.Fatal(err)
	}
	p1, p2 := gatewayPort(t), gatewayPort(t)
	text = string(b)
	text = regexp.MustCompile(`\b8080\b`).ReplaceAllString(text, fmt.Sprint(p1))
	text = regexp.MustCompile(`\b8081\b`).ReplaceAllString(text, fmt.Sprint(p2))
	text = regexp.MustCompile(`build:(\s*)\./`).ReplaceAllString(text, "build:${1}../")
	text = regexp.MustCompile(`(\s)examples/flix/`).ReplaceAllString(text, "${1}../examples/flix/")
	return text, [2]int{p1, p2}
}

// startSystem runs `shoal up` on manifest text in a scratch folder and waits
// until ready answers 200 through the gateway.
func startSystem(t *testing.T, text string, gatewayPort int, ready string, within time.Duration) *system {
	t.Helper()
	dir := scratchDir(t)
	s := &system{manifest: filepath.Join(dir, "shoal.yaml"), gateway: fmt.Sprintf("http://127.0.0.1:%d", gatewayPort)}
	if err := os.WriteFile(s.manifest, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	s.up = startProcArgs(t, "shoal", "shoal up", []string{"up", "-f", s.manifest}, "NO_COLOR=1")
	t.Cleanup(func() { s.shoal(t, "down") }) // graceful first; startProc's cleanup kills what is left
	begin := time.Now()
	waitFor(t, within, "GET "+ready+" to answer 200 through the gateway", func() bool {
		select {
		case <-s.up.exited:
			t.Fatalf("shoal up exited early:\n%s", s.up.out.String())
		default:
		}
		resp, err := http.Get(s.gateway + ready)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	t.Logf("shoal up → %s answered 200 in %v", ready, time.Since(begin).Round(100*time.Millisecond))
	return s
}

// shoal runs the CLI against the system's manifest.
func (s *system) shoal(t *testing.T, args ...string) (string, error) {
	t.Helper()
	return s.shoalQuiet(args...)
}

// shoalQuiet is shoal for goroutines other than the test's.
func (s *system) shoalQuiet(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, "shoal"), append([]string{"-f", s.manifest}, args...)...)
	cmd.Env = append(os.Environ(), "NO_COLOR=1")
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// shoalAsync starts the CLI and returns a function that waits for it and
// reports when it finished.
func (s *system) shoalAsync(t *testing.T, args ...string) func() (string, time.Time, error) {
	t.Helper()
	done := make(chan struct{})
	var out string
	var err error
	var at time.Time
	go func() {
		defer close(done)
		out, err = s.shoal(t, args...)
		at = time.Now()
	}()
	return func() (string, time.Time, error) {
		<-done
		return out, at, err
	}
}

type psEntry struct {
	Service  string `json:"service"`
	Index    int    `json:"index"`
	Addr     string `json:"addr"`
	Admin    string `json:"admin"`
	PID      int    `json:"pid"`
	State    string `json:"state"`
	Restarts int    `json:"restarts"`
}

func (s *system) ps(t *testing.T) []psEntry {
	t.Helper()
	out, err := s.shoal(t, "ps", "-o", "json")
	if err != nil {
		t.Fatalf("shoal ps: %v\n%s", err, out)
	}
	var list []psEntry
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		t.Fatalf("shoal ps -o json: %v\n%s", err, out)
	}
	return list
}

// gatewayAdmin is the admin address (metrics, health) of the gateway
// instance at s.gateway: the gateway serves its metrics there, not on its
// public listener.
func (s *system) gatewayAdmin(t *testing.T) string {
	t.Helper()
	_, port, _ := strings.Cut(strings.TrimPrefix(s.gateway, "http://"), ":")
	list := s.ps(t)
	for _, e := range list {
		if e.Service == "gateway" && strings.HasSuffix(e.Addr, ":"+port) && e.Admin != "" {
			return e.Admin
		}
	}
	t.Fatalf("no gateway instance with an admin address serves %s in shoal ps: %+v", s.gateway, list)
	return ""
}

func serving(list []psEntry, service string) int {
	n := 0
	for _, e := range list {
		if e.Service == service && e.State == "serving" {
			n++
		}
	}
	return n
}

// getTitle asks the api, through the gateway, for a title within deadline.
func getTitle(c *http.Client, base string, i int, deadline time.Duration) result {
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	r := result{start: time.Now()}
	req, _ := http.NewRequestWithContext(ctx, "GET", fmt.Sprintf("%s/titles/%d", base, i%2000+1), nil)
	resp, err := c.Do(req)
	if err != nil {
		r.err, r.latency = err, time.Since(r.start)
		return r
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	r.latency, r.status, r.err = time.Since(r.start), resp.StatusCode, err
	var body struct {
		Degraded []string `json:"degraded"`
	}
	switch {
	case r.err == nil && resp.StatusCode != http.StatusOK:
		// The body says who failed and why (gateway, api, or a refusal).
		r.err = fmt.Errorf("%s", bytes.TrimSpace(b))
	case r.err == nil && json.Unmarshal(b, &body) != nil:
		r.err = fmt.Errorf("bad body %q", b)
	}
	if len(body.Degraded) > 0 {
		r.instance = "degraded"
	}
	return r
}

func TestUpReferenceSystem(t *testing.T) {
	text, ports := referenceManifest(t)
	sys := startSystem(t, text, ports[0], "/titles/1", 180*time.Second)
	// The first answers came while services were still starting: the
	// gateway's adaptive throttle may still be shedding some calls from
	// those failures. The system is steady once 50 calls in a row succeed.
	steady := 0
	waitFor(t, 30*time.Second, "50 successful GET /titles in a row", func() bool {
		resp, err := http.Get(sys.gateway + "/titles/1")
		if err == nil {
			resp.Body.Close()
		}
		if err != nil || resp.StatusCode != 200 {
			steady = 0
			return false
		}
		steady++
		return steady >= 50
	})
	gateways := []string{sys.gateway, fmt.Sprintf("http://127.0.0.1:%d", ports[1])}
	fl := flixedge.New(gateways...)
	c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256}}
	drive := func(events ...event) summary {
		return summarize(run(rate, runFor, func(i int) result { return getTitle(c, sys.gateway, i, deadline) }, events...))
	}

	t.Run("manifest dependencies reach the service", func(t *testing.T) {
		// shoal.yaml caps api's calls in flight to ratings at 128; every
		// other dependency keeps the default bulkhead. Only an instance that
		// has called both shows both, so any api instance will do.
		var apis []string
		for _, e := range sys.ps(t) {
			if e.Service == "api" {
				apis = append(apis, e.Admin)
			}
		}
		want := []string{`shoal_client_max_in_flight{service="ratings"} 128`, `shoal_client_max_in_flight{service="catalog"} 1024`}
		waitFor(t, 30*time.Second, "an api instance's /metrics to show both dependencies", func() bool {
			if resp, err := http.Get(sys.gateway + "/titles/2"); err == nil {
				resp.Body.Close()
			}
			for _, a := range apis {
				resp, err := http.Get("http://" + a + "/metrics")
				if err != nil {
					continue
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if strings.Contains(string(b), want[0]) && strings.Contains(string(b), want[1]) {
					return true
				}
			}
			return false
		})
	})

	t.Run("python service registered by the supervisor", func(t *testing.T) {
		var body string
		waitFor(t, 30*time.Second, "GET /trailers/7 through the gateway", func() bool {
			resp, err := http.Get(sys.gateway + "/trailers/7")
			if err != nil {
				return false
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			body = string(b)
			return resp.StatusCode == 200
		})
		if !strings.Contains(body, "trailers/7.mp4") {
			t.Fatalf("trailers answered %q", body)
		}
	})

	t.Run("shoal profile catalog", func(t *testing.T) {
		dir := t.TempDir()
		out, err := sys.shoal(t, "profile", "catalog", "--seconds", "1", "-o", dir)
		if err != nil {
			t.Fatalf("shoal profile: %v\n%s", err, out)
		}
		if !strings.Contains(out, "catalog: 3 instance(s) -> ") {
			t.Errorf("shoal profile did not merge the 3 catalog instances:\n%s", out)
		}
		f, err := os.Open(filepath.Join(dir, "catalog.cpu.pb.gz"))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if p, err := profile.Parse(f); err != nil || p.DurationNanos < int64(time.Second) {
			t.Errorf("catalog.cpu.pb.gz: %v (%v long)", err, p)
		}
	})

	t.Run("kill catalog/1", func(t *testing.T) {
		before := sys.ps(t)
		var wait func() (string, time.Time, error)
		s := drive(event{faultAt, func() { wait = sys.shoalAsync(t, "kill", "catalog/1", "--signal", "KILL") }})
		t.Logf("load: %v", s)
		if out, _, err := wait(); err != nil {
			t.Fatalf("shoal kill: %v\n%s", err, out)
		}
		if s.failed > 0 {
			t.Errorf("%d of %d requests failed", s.failed, s.total)
		}
		waitFor(t, 15*time.Second, "catalog/1 restarted and serving", func() bool {
			for _, e := range sys.ps(t) {
				for _, b := range before {
					if e.Service == "catalog" && e.Index == 1 && b.Service == "catalog" && b.Index == 1 {
						return e.State == "serving" && e.PID != b.PID && e.Restarts > b.Restarts
					}
				}
			}
			return false
		})
	})

	t.Run("restart ratings", func(t *testing.T) {
		var issued time.Time
		var wait func() (string, time.Time, error)
		s := drive(event{2 * time.Second, func() {
			issued = time.Now()
			wait = sys.shoalAsync(t, "restart", "ratings")
		}})
		loadEnd := time.Now()
		t.Logf("load: %v", s)
		out, done, err := wait()
		if err != nil {
			t.Fatalf("shoal restart: %v\n%s", err, out)
		}
		t.Logf("rolling restart of 3 ratings instances took %v", done.Sub(issued).Round(time.Millisecond))
		if done.After(loadEnd) {
			t.Errorf("the restart finished after the load stopped: part of it ran without traffic")
		}
		if s.failed > 0 {
			t.Errorf("%d of %d requests failed", s.failed, s.total)
		}
	})

	t.Run("scale catalog=5", func(t *testing.T) {
		var issued time.Time
		served := make(chan time.Duration, 1) // until every new instance has served a request
		s := drive(event{faultAt, func() {
			issued = time.Now()
			wait := sys.shoalAsync(t, "scale", "catalog=5")
			go func() { served <- untilNewInstancesServe(sys, wait, issued) }()
		}})
		t.Logf("load: %v", s)
		if s.failed > 0 {
			t.Errorf("%d of %d requests failed", s.failed, s.total)
		}
		d := <-served
		t.Logf("scale catalog=5 → both new instances served requests after %v", d.Round(time.Millisecond))
		if d > 3*time.Second {
			t.Errorf("new instances took %v to serve requests, want ≤ 3s", d)
		}
		if n := serving(sys.ps(t), "catalog"); n != 5 {
			t.Fatalf("%d catalog instances serving after scale, want 5", n)
		}
	})

	t.Run("stop a ratings instance", func(t *testing.T) {
		var stopped string
		for _, e := range sys.ps(t) {
			if e.Service == "ratings" && e.State == "serving" {
				stopped = fmt.Sprintf("ratings/%d", e.Index)
				break
			}
		}
		var stop, cont func() (string, time.Time, error)
		s := drive(
			event{faultAt, func() { stop = sys.shoalAsync(t, "kill", stopped, "--signal", "STOP") }},
			event{faultAt + 5*time.Second, func() { cont = sys.shoalAsync(t, "kill", stopped, "--signal", "CONT") }},
		)
		for _, wait := range []func() (string, time.Time, error){stop, cont} {
			if out, _, err := wait(); err != nil {
				t.Errorf("shoal kill %s: %v\n%s", stopped, err, out)
			}
		}
		t.Logf("load: %v (degraded answers: %d)", s, s.perInstance["degraded"])
		if s.failed > 0 {
			t.Errorf("%d of %d requests failed", s.failed, s.total)
		}
		if s.maxLatency > deadline {
			t.Errorf("slowest api answer took %v, over 1s", s.maxLatency)
		}
	})

	// The flix journeys (flix_test.go), through both gateways.
	t.Run("journey", func(t *testing.T) { journey(t, fl) })
	t.Run("recommendations down", func(t *testing.T) { recommendationsDown(t, sys, fl) })
	t.Run("rehearsing failure", func(t *testing.T) { rehearse(t, sys, fl) })
	t.Run("nothing lost under chaos", func(t *testing.T) { chaos(t, sys, gateways) })

	t.Run("down leaves no process", func(t *testing.T) {
		pids := sys.ps(t)
		if out, err := sys.shoal(t, "down"); err != nil {
			t.Fatalf("shoal down: %v\n%s", err, out)
		}
		if _, ok := sys.up.waitExit(30*time.Second, time.Now()); !ok {
			t.Fatal("shoal up still running 30s after shoal down")
		}
		for _, e := range pids {
			if alive(e.PID) {
				t.Errorf("%s/%d (pid %d) or its process group survived shoal down", e.Service, e.Index, e.PID)
			}
		}
	})
}

// untilNewInstancesServe waits for the scale command, then polls catalog/4
// and catalog/5's /infoz until both report requests served, and returns how
// long after issued that was (a minute if never).
func untilNewInstancesServe(sys *system, wait func() (string, time.Time, error), issued time.Time) time.Duration {
	if _, _, err := wait(); err != nil {
		return time.Minute
	}
	out, err := sys.shoalQuiet("ps", "-o", "json")
	var list []psEntry
	if err != nil || json.Unmarshal([]byte(out), &list) != nil {
		return time.Minute
	}
	var addrs []string
	for _, e := range list {
		if e.Service == "catalog" && e.Index > 3 {
			addrs = append(addrs, e.Admin)
		}
	}
	for time.Since(issued) < time.Minute {
		all := len(addrs) == 2
		for _, a := range addrs {
			var info struct{ Requests int }
			resp, err := http.Get("http://" + a + "/infoz")
			if err == nil {
				_ = json.NewDecoder(resp.Body).Decode(&info)
				resp.Body.Close()
			}
			all = all && info.Requests > 0
		}
		if all {
			return time.Since(issued)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return time.Minute
}

func TestUpRejectsBadManifest(t *testing.T) {
	dir := scratchDir(t)
	path := filepath.Join(dir, "shoal.yaml")
	bad := "name: broken\nservices:\n  catalog:\n    build: ../examples/hello\n    instance: 3\n"
	if err := os.WriteFile(path, []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(filepath.Join(binDir, "shoal"), "up", "-f", path).CombinedOutput()
	if err == nil {
		t.Fatalf("shoal up accepted a bad manifest:\n%s", out)
	}
	if !strings.Contains(string(out), "shoal.yaml:5") || !strings.Contains(string(out), "instances") {
		t.Fatalf("error does not point at line 5 or suggest instances:\n%s", out)
	}
	t.Logf("shoal up on a bad manifest said: %s", strings.TrimSpace(string(out)))
}

func TestUpKilledLeavesNoOrphans(t *testing.T) {
	port := gatewayPort(t)
	text := fmt.Sprintf(`name: tiny
services:
  hello:
    build: ../examples/hello
    instances: 2
  gateway:
    build: ../cmd/shoal
    args: [gateway]
    port: [%d]
`, port)
	sys := startSystem(t, text, port, "/hello/hello", 120*time.Second)
	pids := sys.ps(t)
	sys.up.signal(syscall.SIGKILL)
	<-sys.up.exited
	for _, e := range pids {
		waitFor(t, 5*time.Second, fmt.Sprintf("%s/%d (pid %d) to die with shoal up", e.Service, e.Index, e.PID), func() bool {
			return !alive(e.PID)
		})
	}
}

// alive reports whether process pid, or any process of the group it led
// (instances run in their own group), still exists. 0 is no process.
func alive(pid int) bool {
	if pid <= 0 {
		return false
	}
	return syscall.Kill(pid, 0) == nil || syscall.Kill(-pid, 0) == nil
}
