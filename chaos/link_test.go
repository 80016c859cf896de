package chaos

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"sync/atomic"
	"syscall"
	"testing"
	"testing/synctest"
	"time"
)

// service is a fake round tripper standing for the network and the
// service behind it: it counts what reaches it and answers 200.
type service struct{ hits atomic.Int64 }

func (s *service) RoundTrip(req *http.Request) (*http.Response, error) {
	s.hits.Add(1)
	return &http.Response{StatusCode: 200, Header: http.Header{}, Body: io.NopCloser(http.NoBody), Request: req}, nil
}

func TestLinkFaults(t *testing.T) {
	tests := []struct {
		fault  string
		sent   int64 // requests that reached the service
		status int   // 0: an error
		check  func(t *testing.T, err error)
	}{
		{fault: "api>ratings:error=503", sent: 0, status: 503},
		{fault: "api>ratings:reset", sent: 0, check: func(t *testing.T, err error) {
			var op *net.OpError
			if !errors.As(err, &op) || op.Op != "dial" || !errors.Is(err, syscall.ECONNRESET) {
				t.Errorf("reset: %v, want a dial error with ECONNRESET (never sent)", err)
			}
		}},
		{fault: "api>ratings:abort", sent: 1, check: func(t *testing.T, err error) {
			if !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Errorf("abort: %v, want io.ErrUnexpectedEOF after sending", err)
			}
		}},
		{fault: "api>search:abort", sent: 1, status: 200}, // another link's fault
	}
	for _, tt := range tests {
		t.Run(tt.fault, func(t *testing.T) {
			svc := &service{}
			l := &Link{Base: svc, Faults: mustParse(t, tt.fault)}
			req, _ := http.NewRequest("GET", "http://127.0.0.1:1/x", nil)
			req.Host = "ratings"
			resp, err := l.RoundTrip(req)
			if got := svc.hits.Load(); got != tt.sent {
				t.Errorf("%d requests reached the service, want %d", got, tt.sent)
			}
			switch {
			case tt.check != nil:
				tt.check(t, err)
			case err != nil:
				t.Fatalf("error %v, want status %d", err, tt.status)
			default:
				resp.Body.Close()
				if resp.StatusCode != tt.status {
					t.Errorf("status %d, want %d", resp.StatusCode, tt.status)
				}
				if injected := resp.Header.Get(InjectedHeader) != ""; injected != (tt.status != 200) {
					t.Errorf("%s header %q", InjectedHeader, resp.Header.Get(InjectedHeader))
				}
			}
		})
	}
}

func TestLinkDelayAndBlackhole(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		svc := &service{}
		l := &Link{Base: svc, Faults: mustParse(t, "api>ratings:delay=300ms")}
		req, _ := http.NewRequest("GET", "http://127.0.0.1:1/x", nil)
		req.Host = "ratings"
		start := time.Now()
		resp, err := l.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if d := time.Since(start); d != 300*time.Millisecond || resp.Header.Get(InjectedHeader) != "api>ratings:delay=300ms" {
			t.Errorf("delayed by %v, header %q", d, resp.Header.Get(InjectedHeader))
		}

		// A blackhole answers nothing until the caller gives up.
		l.Faults = mustParse(t, "api>ratings:blackhole")
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		req = req.WithContext(ctx)
		start = time.Now()
		if _, err := l.RoundTrip(req); !errors.Is(err, context.DeadlineExceeded) || time.Since(start) != 2*time.Second {
			t.Errorf("blackhole: %v after %v", err, time.Since(start))
		}
		if svc.hits.Load() != 1 {
			t.Errorf("%d requests reached the service, want the delayed one only", svc.hits.Load())
		}
	})
}
