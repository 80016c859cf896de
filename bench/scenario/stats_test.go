package main

import (
	"testing"
	"time"
)

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
