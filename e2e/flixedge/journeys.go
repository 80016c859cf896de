package flixedge

import (
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Ack is a write flix acknowledged.
type Ack struct {
	Profile  string `json:"profile"`
	Session  string `json:"session,omitempty"`
	Title    int    `json:"title"`
	Score    int    `json:"score,omitempty"`
	Position int    `json:"position,omitempty"`
}

// Report is what a run of journeys saw.
type Report struct {
	Started   int           `json:"started"`
	Completed int           `json:"completed"` // journeys whose every step succeeded
	Launched  time.Duration `json:"launched"`  // time over which journeys were started
	Elapsed   time.Duration `json:"elapsed"`   // until the last one ended

	ReadsFailed    int64 `json:"reads_failed"`
	SignInsFailed  int64 `json:"sign_ins_failed"`
	SessionsFailed int64 `json:"sessions_failed"`
	WritesFailed   int64 `json:"writes_failed"` // not acknowledged
	Retries        int64 `json:"retries"`       // requests sent again to another gateway

	Progress []Ack     `json:"progress"` // acknowledged progress reports
	Ratings  []Ack     `json:"ratings"`  // acknowledged ratings
	Failures []string  `json:"failures"` // the first few of each kind
	Latency  Latencies `json:"latency"`  // of whole completed journeys
}

// Latencies are percentiles of journey durations.
type Latencies struct {
	P50 time.Duration `json:"p50"`
	P99 time.Duration `json:"p99"`
}

type run struct {
	mu                               sync.Mutex
	r                                Report
	durations                        []time.Duration
	reads, signIns, sessions, writes atomic.Int64
}

// fail counts a failed step and keeps the first 3 of each kind.
func (x *run) fail(counter *atomic.Int64, what string, err error, a Answer) {
	if counter.Add(1) > 3 {
		return
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	x.r.Failures = append(x.r.Failures, fmt.Sprintf("%s: %v %d %s", what, err, a.Status, a.Body))
}

// RunJourneys starts n journeys open loop, rate per second (journey i is
// due at i/rate whether or not earlier ones have ended), and reports once
// all have ended. Journey i signs in as profile i%500+1, opens the home
// page, starts a session, reports progress and rates a title; every
// (profile, title) pair is distinct for i below 12,000, so acknowledged
// ratings can be checked exactly.
func RunJourneys(e *Edge, rate, n int) Report {
	x := &run{}
	start := time.Now()
	var wg sync.WaitGroup
	for i := range n {
		time.Sleep(time.Until(start.Add(time.Duration(i) * time.Second / time.Duration(rate))))
		wg.Add(1)
		go func() {
			defer wg.Done()
			begin := time.Now()
			if x.journey(e, i) {
				x.mu.Lock()
				x.r.Completed++
				x.durations = append(x.durations, time.Since(begin))
				x.mu.Unlock()
			}
		}()
	}
	x.r.Launched = time.Since(start)
	wg.Wait()
	x.r.Elapsed = time.Since(start)
	x.r.Started = n
	x.r.ReadsFailed, x.r.SignInsFailed = x.reads.Load(), x.signIns.Load()
	x.r.SessionsFailed, x.r.WritesFailed = x.sessions.Load(), x.writes.Load()
	x.r.Retries = e.Retries.Load()
	x.r.Latency = percentiles(x.durations)
	return x.r
}

// journey is journey i; it reports whether every step succeeded. Reads and
// keyed writes go to the other gateway when one cannot be reached.
func (x *run) journey(e *Edge, i int) bool {
	const d = 5 * time.Second
	n := i%500 + 1
	_, profile := ProfileOf(n)
	token, err := e.SignIn(n, d)
	if err != nil {
		x.fail(&x.signIns, "sign-in", err, Answer{})
		return false
	}
	a, err := e.Do(Request{Method: "GET", Path: "/home", Token: token, Retry: true}, d)
	if err != nil || a.Status != 200 {
		x.fail(&x.reads, "GET /home", err, a)
		return false
	}
	tid := 1 + ((i/500)*97+(i%500)*13)%2400
	// The key lets the gateway and the edge send the start again when an
	// instance dies with it: one session either way.
	a, err = e.Do(Request{Method: "POST", Path: "/playback/sessions", Token: token, Key: NewKey(), Retry: true, Body: map[string]any{"title": tid}}, d)
	var session struct{ ID string }
	if err != nil || a.Status != 201 || a.Decode(&session) != nil {
		if a.Status == 403 { // a kids profile and an adult title: not a failure
			return true
		}
		x.fail(&x.sessions, "POST /playback/sessions", err, a)
		return false
	}
	pos := 60 + i
	a, err = e.Do(Request{Method: "POST", Path: "/playback/sessions/" + session.ID + "/progress", Token: token, Key: NewKey(), Retry: true,
		Body: map[string]any{"position_s": pos, "duration_s": 7200}}, d)
	if err != nil || a.Status != 200 {
		x.fail(&x.writes, "POST progress", err, a)
		return false
	}
	x.mu.Lock()
	x.r.Progress = append(x.r.Progress, Ack{Profile: profile, Session: session.ID, Title: tid, Position: pos})
	x.mu.Unlock()
	score := 1 + i%5
	a, err = e.Do(Request{Method: "PUT", Path: fmt.Sprintf("/ratings/%s/%d", profile, tid), Token: token, Key: NewKey(), Retry: true,
		Body: map[string]int{"score": score}}, d)
	if err != nil || a.Status/100 != 2 {
		x.fail(&x.writes, "PUT rating", err, a)
		return false
	}
	x.mu.Lock()
	x.r.Ratings = append(x.r.Ratings, Ack{Profile: profile, Title: tid, Score: score})
	x.mu.Unlock()
	return true
}

func percentiles(ds []time.Duration) Latencies {
	if len(ds) == 0 {
		return Latencies{}
	}
	s := append([]time.Duration(nil), ds...)
	slices.Sort(s)
	return Latencies{P50: s[len(s)/2], P99: s[len(s)*99/100]}
}
