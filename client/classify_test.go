package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/handoff/handofftest"
)

func TestClassifyErr(t *testing.T) {
	// A real refused dial, from a port nothing listens on.
	addr := handofftest.Refused(t)
	_, refused := net.Dial("tcp", addr)
	if refused == nil {
		t.Fatalf("dial %s succeeded", addr)
	}
	tests := []struct {
		name string
		err  error
		want failure
	}{
		{"refused dial", refused, notSent},
		{"wrapped refused", fmt.Errorf("proxy: %w", syscall.ECONNREFUSED), notSent},
		{"dial timeout", &net.OpError{Op: "dial", Net: "tcp", Err: context.DeadlineExceeded}, notSent},
		{"dns", &net.DNSError{Err: "no such host", Name: "x"}, notSent},
		{"eof after write", io.EOF, broken},
		{"unexpected eof", io.ErrUnexpectedEOF, broken},
		{"reset on read", &net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET}, broken},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := classifyErr(tt.err); got != tt.want {
				t.Errorf("classifyErr(%v) = %d, want %d", tt.err, got, tt.want)
			}
		})
	}
}

func TestClassifyStatus(t *testing.T) {
	for code, want := range map[int]failure{
		200: noFailure, 404: noFailure, 429: noFailure, 500: noFailure, 501: noFailure,
		502: badGateway, 503: badGateway, 504: badGateway,
	} {
		if got := classifyStatus(code); got != want {
			t.Errorf("classifyStatus(%d) = %d, want %d", code, got, want)
		}
	}
}

func TestRetryable(t *testing.T) {
	tests := []struct {
		f          failure
		idempotent bool
		want       bool
	}{
		{notSent, false, true},
		{notSent, true, true},
		{timedOut, false, false},
		{timedOut, true, true},
		{broken, false, false},
		{broken, true, true},
		{badGateway, false, false},
		{badGateway, true, true},
		{callDone, true, false},
		{noFailure, true, false},
	}
	for _, tt := range tests {
		if got := retryable(tt.f, tt.idempotent); got != tt.want {
			t.Errorf("retryable(%d, %v) = %v, want %v", tt.f, tt.idempotent, got, tt.want)
		}
	}
}

func TestIdempotent(t *testing.T) {
	tests := []struct {
		method string
		key    string
		want   bool
	}{
		{"GET", "", true}, {"HEAD", "", true}, {"OPTIONS", "", true}, {"PUT", "", true},
		{"DELETE", "", true}, {"POST", "", false}, {"PATCH", "", false},
		{"POST", "k-1", true}, {"PATCH", "k-2", true},
	}
	for _, tt := range tests {
		r, _ := http.NewRequest(tt.method, "http://svc/", nil)
		if tt.key != "" {
			r.Header.Set("Idempotency-Key", tt.key)
		}
		if got := idempotent(r); got != tt.want {
			t.Errorf("idempotent(%s, key=%q) = %v, want %v", tt.method, tt.key, got, tt.want)
		}
	}
}

func TestReplayable(t *testing.T) {
	get, _ := http.NewRequest("GET", "http://svc/", nil)
	withGetBody, _ := http.NewRequest("POST", "http://svc/", strings.NewReader("x"))
	opaque, _ := http.NewRequest("POST", "http://svc/", io.NopCloser(strings.NewReader("x")))
	for _, tt := range []struct {
		name string
		r    *http.Request
		want bool
	}{{"no body", get, true}, {"GetBody", withGetBody, true}, {"opaque body", opaque, false}} {
		if got := replayable(tt.r); got != tt.want {
			t.Errorf("%s: replayable = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestParseTimeout(t *testing.T) {
	tests := []struct {
		in      string
		want    time.Duration
		wantErr bool
	}{
		{"1", time.Millisecond, false},
		{"850", 850 * time.Millisecond, false},
		{"999999999", maxTimeout, false},
		{"", 0, true},
		{"-5", 0, true},
		{"1.5", 0, true},
		{"10s", 0, true},
		{"1234567890", 0, true},
		{"+5", 0, true},
	}
	for _, tt := range tests {
		got, err := ParseTimeout(tt.in)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("ParseTimeout(%q) = %v, %v; want %v, err=%v", tt.in, got, err, tt.want, tt.wantErr)
		}
		if err != nil && !strings.Contains(err.Error(), TimeoutHeader) {
			t.Errorf("ParseTimeout(%q) error %q does not name the header", tt.in, err)
		}
	}
	if got := FormatTimeout(1500 * time.Microsecond); got != "1" {
		t.Errorf("FormatTimeout(1.5ms) = %q, want 1", got)
	}
	if got := FormatTimeout(0); got != "1" {
		t.Errorf("FormatTimeout(0) = %q, want 1", got)
	}
}

func FuzzParseTimeout(f *testing.F) {
	for _, s := range []string{"1", "850", "", "-1", "99999999999", "1e3", " 5"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParseTimeout(s)
		if err != nil {
			return
		}
		if d <= 0 && s != "0" && strings.Trim(s, "0") != "" {
			t.Fatalf("ParseTimeout(%q) = %v, want positive", s, d)
		}
		if d > maxTimeout {
			t.Fatalf("ParseTimeout(%q) = %v, over the cap", s, d)
		}
		// What we accept, we format back to the same value (below the cap).
		if d < maxTimeout && d > 0 {
			if back, _ := ParseTimeout(FormatTimeout(d)); back != d {
				t.Fatalf("round trip %q → %v → %v", s, d, back)
			}
		}
	})
}

func TestErrorMessageAndMatching(t *testing.T) {
	e := &Error{
		Service: "ratings", Method: "GET", URL: "http://ratings/titles/1",
		Attempts: []Attempt{
			{Instance: "ratings-a", Addr: "127.0.0.1:1", Err: syscall.ECONNREFUSED},
			{Instance: "ratings-b", Addr: "127.0.0.1:2", Err: &StatusError{Code: 503}},
		},
		Err: ErrBudgetExhausted,
	}
	msg := e.Error()
	for _, want := range []string{`service "ratings"`, "2 attempts failed", "retry budget exhausted", "ratings-a at 127.0.0.1:1", "connection refused", "ratings-b", "503 Service Unavailable"} {
		if !strings.Contains(msg, want) {
			t.Errorf("Error() = %q, missing %q", msg, want)
		}
	}
	if !errors.Is(e, ErrBudgetExhausted) || !errors.Is(e, syscall.ECONNREFUSED) {
		t.Errorf("errors.Is does not see the reason and the attempts' errors")
	}
	var se *StatusError
	if !errors.As(e, &se) || se.Code != 503 {
		t.Errorf("errors.As(*StatusError) = %v", se)
	}
	none := &Error{Service: "x", Method: "GET", URL: "http://x/", Err: ErrNoInstances}
	if !strings.Contains(none.Error(), "no instances known") {
		t.Errorf("Error() = %q", none.Error())
	}
}
