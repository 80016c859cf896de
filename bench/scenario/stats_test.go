package main

import (
	"testing"
	"time"
)

func TestPercentile(t *testing.T) {
	ms := func(xs ...int) []time.Duration {
		out := make([]time.Duration, len(xs))
		for i, x := range xs {
			out[i] = time.Duration(x) * time.Millisecond
		}
		return out
	}
	hundred := make([]int, 100)
	for i := range hundred {
		hundred[i] = i + 1
	}
	for _, tc := range []struct {
		name   string
		sorted []time.Duration
		q      float64
		want   time.Duration
	}{
		{"empty", nil, 0.99, 0},
		{"one", ms(7), 0.5, 7 * time.Millisecond},
		{"median of four is the second", ms(1, 2, 3, 4), 0.5, 2 * time.Millisecond},
		{"p99 of 1..100", ms(hundred...), 0.99, 99 * time.Millisecond},
		{"p99.9 of 1..100 is the max", ms(hundred...), 0.999, 100 * time.Millisecond},
		{"p100", ms(1, 2, 3), 1, 3 * time.Millisecond},
		{"tiny q is the min", ms(1, 2, 3), 0.0001, time.Millisecond},
	} {
		if got := percentile(tc.sorted, tc.q); got != tc.want {
			t.Errorf("%s: percentile(q=%v) = %v, want %v", tc.name, tc.q, got, tc.want)
		}
	}
}

func TestSummarize(t *testing.T) {
	rs := []record{
		{at: 0, latency: 2 * time.Millisecond, code: 200},
		{at: 1, latency: 4 * time.Millisecond, code: 200},
		{at: 2, latency: 1 * time.Millisecond, code: 503, err: "503 Service Unavailable"},
		{at: 3, latency: time.Second, err: "context deadline exceeded (Client.Timeout exceeded while awaiting headers)"},
	}
	m := summarize(rs)
	for k, want := range map[string]float64{kRequests: 4, kSuccess: 0.5, kFailed: 2, kP50: 2, kP99: 1000, kMax: 1000} {
		if m[k] != want {
			t.Errorf("%s = %v, want %v", k, m[k], want)
		}
	}
	m.addLoad(80, 4, 2*time.Second)
	if m[kLoad] != 40 || m[kLoadX] != 20 || m[kOffered] != 2 {
		t.Errorf("load = %v/s, %v×, offered %v/s; want 40/s, 20×, 2/s", m[kLoad], m[kLoadX], m[kOffered])
	}
	if !rs[3].timedOut() || rs[2].timedOut() {
		t.Errorf("timedOut: deadline %v, 503 %v; want true, false", rs[3].timedOut(), rs[2].timedOut())
	}
	if got := len(window(rs, 1, 3)); got != 2 {
		t.Errorf("window [1, 3) has %d records, want 2", got)
	}
}

func TestMedian(t *testing.T) {
	got := median([]metrics{{"a": 3, "b": 1}, {"a": 1, "b": 2}, {"a": 2, "b": 10}, {"a": 9}})
	if got["a"] != 2.5 || got["b"] != 2 {
		t.Errorf("median = %v, want a 2.5 (even count), b 2", got)
	}
}
