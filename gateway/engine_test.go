package gateway_test

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/shoal-dev/shoal"
	"github.com/shoal-dev/shoal/client"
	"github.com/shoal-dev/shoal/discovery"
	"github.com/shoal-dev/shoal/gateway"
)

// TestEngineDrain: when the gateway service stops, the engine closes idle
// keep-alive connections at once, lets a request in flight finish with its
// whole answer (and Connection: close), and then Run returns.
func TestEngineDrain(t *testing.T) {
	started, release := make(chan struct{}), make(chan struct{})
	cat := discovery.NewCatalog()
	cat.Upsert(discovery.Instance{ID: "api-1", Service: "api", State: discovery.StateServing,
		Addr: serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/slow" {
				close(started)
				<-release
			}
			io.WriteString(w, "done")
		}))})
	gw := newGateway(t, cat, client.Config{Base: gateway.NewUpstream()})
	cfg := shoal.Config{Name: "gateway", Logger: gw.Logger, Engine: gateway.NewEngine(), DrainTimeout: 10 * time.Second}
	svc, err := shoal.New(cfg, gw)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	<-svc.Ready()

	connect := func() (net.Conn, *bufio.Reader) {
		c := dial(t, svc.Addr(), 20*time.Second)
		t.Cleanup(func() { c.Close() })
		return c, bufio.NewReader(c)
	}
	idle, idleR := connect()
	io.WriteString(idle, "GET /api/fast HTTP/1.1\r\nHost: gw\r\n\r\n")
	if resp, err := http.ReadResponse(idleR, nil); err != nil || resp.StatusCode != 200 {
		t.Fatalf("first request: %v", err)
	} else {
		io.ReadAll(resp.Body)
	}
	busy, busyR := connect()
	io.WriteString(busy, "GET /api/slow HTTP/1.1\r\nHost: gw\r\n\r\n")
	<-started

	cancel()
	// The idle connection is closed: its next read ends.
	if _, err := idleR.ReadByte(); err == nil {
		t.Error("the idle connection got bytes instead of being closed")
	}
	close(release)
	resp, err := http.ReadResponse(busyR, nil)
	if err != nil {
		t.Fatalf("the request in flight: %v", err)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil || string(body) != "done" || !resp.Close {
		t.Errorf("in flight: %s %q (%v), close %v; want its whole answer and Connection: close", resp.Status, body, err, resp.Close)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Run did not return after the drain")
	}
}
