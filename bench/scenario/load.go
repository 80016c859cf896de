package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"
)

// replicaHeader names the replica that served a response (replica/main.go).
const replicaHeader = "X-Replica"

// record is one request of an attack.
type record struct {
	at      time.Duration // sent, from the attack's start
	latency time.Duration
	code    int    // 0 when no response came
	err     string // "" for a 2xx
	replica string // X-Replica of the response
}

func (r record) ok() bool { return r.code >= 200 && r.code < 300 && r.err == "" }

// timedOut reports whether the call, or one of its attempts, ran out of
// time, rather than being answered or refused.
func (r record) timedOut() bool {
	if r.code != 0 {
		return false
	}
	e := strings.ToLower(r.err)
	return strings.Contains(e, "timeout") || strings.Contains(e, "timed out") || strings.Contains(e, "deadline exceeded")
}

// event is something done to the replicas at an offset into an attack.
type event struct {
	at   time.Duration
	name string
	do   func() error
}

// attack sends rate requests per second to c for dur, open loop (a request is
// sent on schedule whether or not earlier ones have answered), runs events at
// their offsets, and returns every request, in the order they were sent.
func attack(ctx context.Context, c *caller, rate int, dur time.Duration, events ...event) ([]record, error) {
	a := vegeta.NewAttacker(vegeta.Client(c.client), vegeta.Timeout(deadline), vegeta.MaxBody(0),
		vegeta.Redirects(vegeta.NoFollow))
	var mu sync.Mutex
	var errs []error
	for _, ev := range events {
		t := time.AfterFunc(ev.at, func() {
			if err := ev.do(); err != nil {
				mu.Lock()
				errs = append(errs, fmt.Errorf("%s at %v: %w", ev.name, ev.at, err))
				mu.Unlock()
			}
		})
		defer t.Stop()
	}
	stop := context.AfterFunc(ctx, func() { a.Stop() })
	defer stop()
	target := vegeta.NewStaticTargeter(vegeta.Target{Method: http.MethodGet, URL: c.url})
	var out []record
	begin := time.Now() // the events' timers started just before
	for res := range a.Attack(target, vegeta.Rate{Freq: rate, Per: time.Second}, dur, "") {
		out = append(out, record{at: res.Timestamp.Sub(begin), latency: res.Latency, code: int(res.Code),
			err: res.Error, replica: res.Headers.Get(replicaHeader)})
	}
	slices.SortFunc(out, func(x, y record) int { return cmp.Compare(x.at, y.at) })
	if err := ctx.Err(); err != nil {
		return out, err
	}
	mu.Lock()
	defer mu.Unlock()
	return out, errors.Join(errs...)
}

var digits = regexp.MustCompile(`[0-9][0-9.]*`)

// reportFailures writes the most frequent failures of an attack to w.
func reportFailures(w io.Writer, arm string, rs []record) {
	counts := map[string]int{}
	for _, r := range rs {
		if r.ok() {
			continue
		}
		e := digits.ReplaceAllString(r.err, "N") // group by kind, not by port or latency
		if r.code != 0 {
			e = strconv.Itoa(r.code)
		}
		counts[e]++
	}
	kinds := slices.SortedFunc(maps.Keys(counts), func(a, b string) int { return cmp.Compare(counts[b], counts[a]) })
	for _, k := range kinds[:min(len(kinds), 4)] {
		fmt.Fprintf(w, "  %s: %d× %.300s\n", arm, counts[k], k)
	}
}

// reportTimeline writes, for each second of an attack with a failure or a
// request slower than 100 ms, how many of each: where in the run they were.
// It stays quiet when most requests failed: every second would be listed.
func reportTimeline(w io.Writer, arm string, rs []record) {
	failed := 0
	for _, r := range rs {
		if !r.ok() {
			failed++
		}
	}
	if 2*failed > len(rs) {
		return
	}
	type second struct {
		failed, slow int
		worst        time.Duration
	}
	var secs []second
	for _, r := range rs {
		i := int(r.at / time.Second)
		for len(secs) <= i {
			secs = append(secs, second{})
		}
		if !r.ok() {
			secs[i].failed++
		}
		if r.latency > 100*time.Millisecond {
			secs[i].slow++
		}
		secs[i].worst = max(secs[i].worst, r.latency)
	}
	for i, s := range secs {
		if s.failed > 0 || s.slow > 0 {
			fmt.Fprintf(w, "  %s: second %d: %d failed, %d over 100 ms, slowest %v\n", arm, i, s.failed, s.slow, s.worst.Round(time.Millisecond))
		}
	}
}
