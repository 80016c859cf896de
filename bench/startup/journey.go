package main

import (
	"bytes"
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// edge sends each request to the next gateway in turn, like a load
// balancer in front of them. It never retries: a failure is counted.
type edge struct {
	gateways []string
	c        *http.Client
	next     atomic.Uint64
}

func newEdge(gateways []string, conns int) *edge {
	return &edge{gateways: gateways, c: &http.Client{Timeout: 10 * time.Second,
		Transport: &http.Transport{MaxIdleConns: 2 * conns, MaxIdleConnsPerHost: conns}}}
}

// errStatus is an answer with an unexpected status.
type errStatus struct {
	status int
	body   string
}

func (e *errStatus) Error() string { return fmt.Sprintf("status %d: %s", e.status, e.body) }

// do sends one request and decodes a JSON answer into out (if not nil) when
// the status is want (or any 2xx for want 0).
func (e *edge) do(method, path, token, key string, body []byte, want int, out any) error {
	base := e.gateways[e.next.Add(1)%uint64(len(e.gateways))]
	req, err := http.NewRequestWithContext(context.Background(), method, base+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	resp, err := e.c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != want && !(want == 0 && resp.StatusCode/100 == 2) {
		return &errStatus{status: resp.StatusCode, body: string(bytes.TrimSpace(b[:min(len(b), 160)]))}
	}
	if out != nil {
		return json.Unmarshal(b, out)
	}
	return nil
}

// adultProfiles are the dataset's profiles that may start any title: the
// second profile of every fifth account is a kids profile (403 on adult
// titles), left out so that every journey runs all its steps.
var adultProfiles = func() []int {
	var ps []int
	for n := 1; n <= 500; n++ {
		if !(n%2 == 0 && (n/2)%5 == 0) {
			ps = append(ps, n)
		}
	}
	return ps
}()

// journey runs one flix journey through the gateways for profile n and
// title tid: sign in, GET /home, POST /playback/sessions, POST progress
// and PUT rating (both with an Idempotency-Key). It returns the latency of
// each request it sent and the first failure, named by its step.
func (e *edge) journey(n, tid int, reqs []time.Duration) ([]time.Duration, string, error) {
	email, profile := fmt.Sprintf("user%d@flix.example", (n+1)/2), fmt.Sprintf("p%04d", n)
	timed := func(f func() error) error {
		begin := time.Now()
		err := f()
		reqs = append(reqs, time.Since(begin))
		return err
	}
	var signin struct{ Token string }
	body, _ := json.Marshal(map[string]string{"email": email, "password": "flix", "profile": profile})
	if err := timed(func() error { return e.do("POST", "/signin", "", "", body, 200, &signin) }); err != nil {
		return reqs, "POST /signin", err
	}
	if err := timed(func() error { return e.do("GET", "/home", signin.Token, "", nil, 200, nil) }); err != nil {
		return reqs, "GET /home", err
	}
	var session struct{ ID string }
	body = fmt.Appendf(nil, `{"title":%d}`, tid)
	if err := timed(func() error {
		return e.do("POST", "/playback/sessions", signin.Token, "", body, 201, &session)
	}); err != nil {
		return reqs, "POST /playback/sessions", err
	}
	body = fmt.Appendf(nil, `{"position_s":%d,"duration_s":7200}`, 60+rand.IntN(7000))
	if err := timed(func() error {
		return e.do("POST", "/playback/sessions/"+session.ID+"/progress", signin.Token, newKey(), body, 200, nil)
	}); err != nil {
		return reqs, "POST progress", err
	}
	body = fmt.Appendf(nil, `{"score":%d}`, 1+rand.IntN(5))
	if err := timed(func() error {
		return e.do("PUT", fmt.Sprintf("/ratings/%s/%d", profile, tid), signin.Token, newKey(), body, 0, nil)
	}); err != nil {
		return reqs, "PUT rating", err
	}
	return reqs, "", nil
}

func newKey() string {
	var b [16]byte
	_, _ = crand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// phaseResult is one closed-loop load phase.
type phaseResult struct {
	conc               int
	elapsed            time.Duration
	journeys, failed   int
	requests           int
	journeyP50, jP99   time.Duration
	requestP50, reqP99 time.Duration
	errors             map[string]int    // "step: status 429" → count
	examples           map[string]string // a body (or error) of each, shortened
	cpu                cpuShare
	admission          []admissionDelta // what admission control did during the phase
}

// drive runs journeys closed-loop with conc workers: each starts its next
// journey when the last one ends, until d has passed; the phase ends when
// the last journey does.
func (e *edge) drive(conc int, d time.Duration, seq *atomic.Int64) phaseResult {
	r := phaseResult{conc: conc, errors: map[string]int{}, examples: map[string]string{}}
	var mu sync.Mutex
	var jlat, rlat []time.Duration
	begin := time.Now()
	deadline := begin.Add(d)
	var wg sync.WaitGroup
	for range conc {
		wg.Go(func() {
			var js, rs []time.Duration
			var ok, failed int
			errs := map[string]int{}
			examples := map[string]string{}
			for time.Now().Before(deadline) {
				i := int(seq.Add(1))
				n := adultProfiles[(i*7919)%len(adultProfiles)]
				start := time.Now()
				var step string
				var err error
				rs, step, err = e.journey(n, 1+rand.IntN(2400), rs)
				if err != nil {
					failed++
					k := errKey(step, err)
					if errs[k]++; errs[k] == 1 {
						examples[k] = err.Error()
					}
					continue
				}
				ok++
				js = append(js, time.Since(start))
			}
			mu.Lock()
			defer mu.Unlock()
			r.journeys += ok
			r.failed += failed
			r.requests += len(rs)
			jlat, rlat = append(jlat, js...), append(rlat, rs...)
			for k, v := range errs {
				r.errors[k] += v
				if _, ok := r.examples[k]; !ok {
					r.examples[k] = examples[k]
				}
			}
		})
	}
	wg.Wait()
	r.elapsed = time.Since(begin)
	r.journeyP50, r.jP99 = percentile(jlat, 50), percentile(jlat, 99)
	r.requestP50, r.reqP99 = percentile(rlat, 50), percentile(rlat, 99)
	return r
}

func errKey(step string, err error) string {
	var es *errStatus
	if errors.As(err, &es) {
		return fmt.Sprintf("%s: status %d", step, es.status)
	}
	msg := err.Error()
	if len(msg) > 80 {
		msg = msg[:80] + "…"
	}
	return step + ": " + msg
}

func percentile(xs []time.Duration, p int) time.Duration {
	if len(xs) == 0 {
		return 0
	}
	slices.Sort(xs)
	return xs[min(len(xs)-1, len(xs)*p/100)]
}
