package client

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"syscall"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/discovery"
	"github.com/shoal-dev/shoal/identity"
)

// BenchmarkCall compares one GET through the full client stack with the
// same GET through a plain http.Transport, to the same loopback server, and
// the client stack over plain HTTP with the same over mutual TLS (what every
// call between services with an identity pays). The difference between
// the first two is what Shoal adds per call; between shoal and shoal+mtls,
// what mutual TLS adds on a kept-alive connection. The reconnect arms close
// the connection after every response, so each call pays a connection:
// TCP, plus a resumed TLS session with mTLS (the first call's full
// handshake is amortised):
//
//	go test -run '^$' -bench BenchmarkCall -count 10 ./client | benchstat -col /stack -
func BenchmarkCall(b *testing.B) {
	ca, err := identity.NewCA("bench", 0)
	if err != nil {
		b.Fatal(err)
	}
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	closing := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "close")
		io.WriteString(w, "ok")
	})
	plainSrv, plainClosing := httptest.NewServer(ok), httptest.NewServer(closing)
	mtlsSrv, mtlsClosing := mtlsServer(b, ca, "svc", ok), mtlsServer(b, ca, "svc", closing)
	for _, s := range []*httptest.Server{plainSrv, plainClosing} {
		defer s.Close()
	}
	addr := plainSrv.Listener.Addr().String()
	plain := newBaseTransport()
	defer plain.CloseIdleConnections()
	dialer := identity.NewDialer(identity.NewSource(credentials(b, ca, "caller")), nil)
	stack := func(srv *httptest.Server, tls bool) http.RoundTripper {
		cfg := Config{}
		if tls {
			cfg.TLS = dialer
		}
		tr, err := New(oneInstance(srv.Listener.Addr().String()), cfg)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(tr.CloseIdleConnections)
		return tr
	}

	for _, bc := range []struct {
		name string
		rt   http.RoundTripper
		url  string
	}{
		{"stack=plain", plain, "http://" + addr + "/x"},
		{"stack=shoal", stack(plainSrv, false), "http://svc/x"},
		{"stack=shoal+mtls", stack(mtlsSrv, true), "http://svc/x"},
		{"stack=shoal/reconnect", stack(plainClosing, false), "http://svc/x"},
		{"stack=shoal+mtls/reconnect", stack(mtlsClosing, true), "http://svc/x"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			benchGet(b, bc.rt, bc.url)
		})
	}
}

// BenchmarkOverhead measures the client stack alone: the same calls with
// the network replaced by an in-memory round tripper, so the figures are
// Shoal's own cost per call (throttle, bulkhead, resolve, pick, budget,
// deadline carving, header, bookkeeping) without the noise of a real round
// trip. With 3 instances every policy is in play: calls are hedge-eligible,
// so each also reads the hedge delay and arms (and stops) the hedge timer.
//
//	go test -run '^$' -bench BenchmarkOverhead -count 10 ./client | benchstat -col /stack -
func BenchmarkOverhead(b *testing.B) {
	for _, bc := range []struct {
		name string
		rt   http.RoundTripper
	}{
		{"stack=fake", fakeRoundTripper{}},
		{"stack=shoal+fake", fakeShoal(b, 1)},
		{"stack=shoal3+fake", fakeShoal(b, 3)},
	} {
		b.Run(bc.name, func(b *testing.B) {
			benchGet(b, bc.rt, "http://svc/x")
		})
	}
}

// fakeShoal is a Transport over n instances answered by fakeRoundTripper,
// its hedge delay already known.
func fakeShoal(b *testing.B, n int) *Transport {
	list := make([]discovery.Instance, n)
	for i := range list {
		list[i] = discovery.Instance{ID: fmt.Sprintf("svc-%d", i), Service: "svc", Addr: fmt.Sprintf("127.0.0.1:%d", i+1), State: discovery.StateServing}
	}
	tr, err := New(resolverFunc(func(string) []discovery.Instance { return list }), Config{})
	if err != nil {
		b.Fatal(err)
	}
	tr.base = fakeRoundTripper{}
	h := tr.dependency("svc").hedger
	for range 100 {
		h.Observe(time.Now(), time.Millisecond)
	}
	return tr
}

func benchGet(b *testing.B, rt http.RoundTripper, url string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	// Process CPU per call, both ends (client and server share the
	// process): on a shared machine, wall time mostly measures waiting.
	cpu := processCPU()
	defer func() { b.ReportMetric(float64(processCPU()-cpu)/float64(b.N), "cpu-ns/op") }()
	for b.Loop() {
		resp, err := rt.RoundTrip(req)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := io.Copy(io.Discard, resp.Body); err != nil {
			b.Fatal(err)
		}
		resp.Body.Close()
	}
}

// oneInstance returns a resolver with a single instance at addr. Like the
// discovery catalog, it hands out the same slice on every call.
func oneInstance(addr string) resolverFunc {
	list := []discovery.Instance{{ID: "svc-0", Service: "svc", Addr: addr, State: discovery.StateServing}}
	return func(string) []discovery.Instance { return list }
}

// fakeRoundTripper answers 200 "ok" from memory, with a body that allocates
// nothing.
type fakeRoundTripper struct{}

var okResponse = http.Response{StatusCode: 200, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1}

func (fakeRoundTripper) RoundTrip(req *http.Request) (*http.Response, error) {
	resp := okResponse
	resp.Body = http.NoBody
	resp.Request = req
	return &resp, nil
}

// processCPU is the CPU time this process has used, user and system.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		panic(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
