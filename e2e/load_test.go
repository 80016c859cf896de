package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/client"
	"github.com/shoal-dev/shoal/discovery"
	"github.com/shoal-dev/shoal/handoff/handofftest"
)

// caller is the test process's own gossip member and resilient client.
// The hello instances it calls have no identity: they serve plain HTTP.
// (This test process is built with the race detector, which makes a TLS
// handshake ten times dearer than in the services' own builds; mutual TLS
// under load is tested through the gateways of shoal up, in up_test.go and
// flix_chaos_test.go.)
type caller struct {
	member *discovery.Member
	tr     *client.Transport

	mu       sync.Mutex
	attempts []client.Attempt
}

func newCaller(t *testing.T) *caller {
	t.Helper()
	cfg := discovery.LocalConfig()
	cfg.BindAddr = "127.0.0.1:0"
	m := runMember(t, cfg, discovery.Instance{ID: "e2e-caller", Service: "e2e-caller", Addr: "127.0.0.1:9", State: discovery.StateServing})
	c := &caller{member: m}
	tr, err := client.New(m.Catalog(), client.Config{Observer: c})
	if err != nil {
		t.Fatal(err)
	}
	c.tr = tr
	t.Cleanup(c.tr.CloseIdleConnections)
	return c
}

// runMember runs a gossip member in this process until the test ends, and
// returns it once it is ready (joining its seeds may still go on).
func runMember(t *testing.T, cfg discovery.Config, self discovery.Instance) *discovery.Member {
	t.Helper()
	m, err := discovery.New(cfg, self)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }() // owned by the test: ends at its cleanup
	t.Cleanup(func() {
		cancel()
		<-done
	})
	select {
	case <-m.Ready():
	case err := <-done:
		done <- err // for the cleanup
		t.Fatal(err)
	}
	return m
}

func (c *caller) ObserveAttempt(_ string, a client.Attempt) {
	c.mu.Lock()
	c.attempts = append(c.attempts, a)
	c.mu.Unlock()
}

// busiest returns the index of the hello instance that received the most
// attempts in the last second: the one whose loss hurts most.
func (c *caller) busiest() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	counts := map[string]int{}
	since := time.Now().Add(-time.Second)
	for _, a := range c.attempts {
		if a.Start.After(since) {
			counts[a.Instance]++
		}
	}
	best, most := 0, -1
	for i := range 3 {
		if n := counts[fmt.Sprintf("hello-%d", i)]; n > most {
			best, most = i, n
		}
	}
	return best
}

// attemptsOn returns the attempts on instance id sent between from and to.
func (c *caller) attemptsOn(id string, from, to time.Time) []client.Attempt {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []client.Attempt
	for _, a := range c.attempts {
		if a.Instance == id && !a.Start.Before(from) && a.Start.Before(to) {
			out = append(out, a)
		}
	}
	return out
}

// lastAttemptOn returns when the last attempt on instance id was sent.
func (c *caller) lastAttemptOn(id string) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	var last time.Time
	for _, a := range c.attempts {
		if a.Instance == id && a.Start.After(last) {
			last = a.Start
		}
	}
	return last
}

// startHello starts instance i of the hello service, seeded with the caller,
// and waits until the caller's catalog lists it.
func (c *caller) startHello(t *testing.T, i int) *proc {
	t.Helper()
	id := fmt.Sprintf("hello-%d", i)
	p := c.startHelloAs(t, id)
	waitFor(t, 10*time.Second, id+" in the caller's catalog", func() bool { return c.has(id) })
	return p
}

// startHelloAs starts a hello instance with ID id, seeded with the caller,
// with its admin listener on a reserved port (proc.admin).
func (c *caller) startHelloAs(t *testing.T, id string) *proc {
	t.Helper()
	admin := handofftest.Port(t).Addr().String()
	env := []string{"SHOAL_NAME=hello", "SHOAL_INSTANCE=" + id, "SHOAL_ADDR=127.0.0.1:0", "SHOAL_ADMIN_ADDR=" + admin,
		"SHOAL_GOSSIP_ADDR=127.0.0.1:0", "SHOAL_SEEDS=" + c.member.GossipAddr(), "SHOAL_DRAIN_TIMEOUT=5s"}
	p := startProc(t, "hello", id, env...)
	p.admin = admin
	return p
}

func (c *caller) has(id string) bool {
	for _, in := range c.member.Catalog().Instances("hello") {
		if in.ID == id {
			return true
		}
	}
	return false
}

// waitFor polls cond every 10ms until it holds or d passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > d {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return time.Since(start)
}

// result is one request of a load run.
type result struct {
	start    time.Time
	latency  time.Duration
	status   int
	instance string
	err      error
}

// event is a fault injected at an offset from the start of a load run.
type event struct {
	at time.Duration
	do func()
}

// load calls hello open-loop at rate per second for dur, each request with
// its own deadline, and returns every request's result. With posts, every
// other request is a POST without an Idempotency-Key. Events run in order,
// on the calling goroutine, between two requests.
func load(c *http.Client, rate int, dur, deadline time.Duration, posts bool, events ...event) []result {
	return run(rate, dur, func(i int) result {
		method := "GET"
		if posts && i%2 == 1 {
			method = "POST"
		}
		return call(c, method, deadline)
	}, events...)
}

// run calls do(i) open-loop, request i due at i/rate from the start whether
// or not earlier ones have answered, and collects the results.
func run(rate int, dur time.Duration, do func(i int) result, events ...event) []result {
	n := int(dur.Seconds() * float64(rate))
	results := make([]result, n)
	var wg sync.WaitGroup
	begin := time.Now()
	for i := range n {
		due := time.Duration(i) * time.Second / time.Duration(rate)
		for len(events) > 0 && events[0].at <= due {
			events[0].do()
			events = events[1:]
		}
		time.Sleep(time.Until(begin.Add(due)))
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = do(i)
		}()
	}
	wg.Wait()
	return results
}

func call(c *http.Client, method string, deadline time.Duration) result {
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	r := result{start: time.Now()}
	var body io.Reader
	if method == "POST" {
		body = strings.NewReader("payload")
	}
	req, _ := http.NewRequestWithContext(ctx, method, "http://hello/hello", body)
	resp, err := c.Do(req)
	if err != nil {
		r.err, r.latency = err, time.Since(r.start)
		return r
	}
	var answer struct{ Instance, Echo string }
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	r.latency, r.status = time.Since(r.start), resp.StatusCode
	switch {
	case err != nil:
		r.err = err
	case json.Unmarshal(b, &answer) != nil:
		r.err = fmt.Errorf("bad body %q", b)
	case method == "POST" && answer.Echo != "payload":
		r.err = fmt.Errorf("POST body arrived as %q", answer.Echo)
	}
	r.instance = answer.Instance
	return r
}

// summary describes a load run for logs and failure messages.
type summary struct {
	total, failed int
	rate          float64
	maxLatency    time.Duration
	p99           time.Duration
	perInstance   map[string]int
	firstFailures []string
}

func summarize(rs []result) summary {
	s := summary{total: len(rs), perInstance: map[string]int{}}
	lat := make([]time.Duration, 0, len(rs))
	var first, last time.Time
	for i, r := range rs {
		if i == 0 || r.start.Before(first) {
			first = r.start
		}
		if r.start.After(last) {
			last = r.start
		}
		lat = append(lat, r.latency)
		s.maxLatency = max(s.maxLatency, r.latency)
		if r.err != nil || r.status != http.StatusOK {
			s.failed++
			if len(s.firstFailures) < 5 {
				s.firstFailures = append(s.firstFailures, fmt.Sprintf("at %v: status %d, err %v", r.start.Sub(first).Round(time.Millisecond), r.status, r.err))
			}
			continue
		}
		s.perInstance[r.instance]++
	}
	if span := last.Sub(first).Seconds(); span > 0 {
		s.rate = float64(len(rs)-1) / span
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	if len(lat) > 0 {
		s.p99 = lat[len(lat)*99/100]
	}
	return s
}

func (s summary) String() string {
	ids := make([]string, 0, len(s.perInstance))
	for id, n := range s.perInstance {
		ids = append(ids, fmt.Sprintf("%s=%d", id, n))
	}
	sort.Strings(ids)
	return fmt.Sprintf("%d requests at %.0f/s, %d failed, p99 %v, max %v, served by [%s]%s",
		s.total, s.rate, s.failed, s.p99.Round(time.Millisecond), s.maxLatency.Round(time.Millisecond),
		strings.Join(ids, " "), strings.Join(append([]string{""}, s.firstFailures...), "\n  "))
}
