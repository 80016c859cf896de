package gateway_test

import (
	"bufio"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/shoal-dev/shoal"
	"github.com/shoal-dev/shoal/client"
	"github.com/shoal-dev/shoal/discovery"
	"github.com/shoal-dev/shoal/internal/syncbuf"
)

// The access log and the metrics see the final status of streams too: 101
// for an upgrade (the connection is hijacked), 200 for server-sent events.
func TestAccessLogSeesStreams(t *testing.T) {
	cat := discovery.NewCatalog()
	upgrade := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		defer conn.Close()
		brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\nhello\n")
		brw.Flush()
		brw.ReadString('\n') // until the client closes
	})
	events := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "data: one\n\n")
	})
	cat.Upsert(discovery.Instance{ID: "ws-1", Service: "ws", Addr: serve(t, upgrade), State: discovery.StateServing})
	cat.Upsert(discovery.Instance{ID: "sse-1", Service: "sse", Addr: serve(t, events), State: discovery.StateServing})
	gw := newGateway(t, cat, client.Config{})
	var logs syncbuf.Buffer
	gw.AccessLog = true
	gw.AccessLogger = slog.New(slog.NewJSONHandler(&logs, nil))
	obs := &fakeObserver{}
	gw.Metrics = obs
	front := httptest.NewServer(gw)
	t.Cleanup(front.Close)

	conn := dial(t, front.Listener.Addr().String(), 10*time.Second)
	io.WriteString(conn, "GET /ws/socket HTTP/1.1\r\nHost: edge\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: %v %v", resp, err)
	}
	if line, _ := br.ReadString('\n'); line != "hello\n" {
		t.Fatalf("read %q", line)
	}
	io.WriteString(conn, "bye\n")
	conn.Close()

	req, _ := http.NewRequest("GET", front.URL+"/sse/events", nil)
	req.Header.Set("Accept", "text/event-stream")
	sresp, err := front.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.ReadAll(sresp.Body)
	sresp.Body.Close()

	eventually(t, "two access log lines", func() bool { return strings.Count(logs.String(), "\n") >= 2 })
	byService := map[string]int{}
	for _, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		var l struct {
			Service string
			Status  int
		}
		if err := json.Unmarshal([]byte(line), &l); err != nil {
			t.Fatal(err)
		}
		byService[l.Service] = l.Status
	}
	if byService["ws"] != 101 || byService["sse"] != 200 {
		t.Errorf("logged statuses %v, want ws 101 and sse 200:\n%s", byService, logs.String())
	}
	obs.mu.Lock()
	defer obs.mu.Unlock()
	if len(obs.seen) != 2 {
		t.Errorf("metrics saw %q", obs.seen)
	}
}

// A caller that hangs up while its request is in a service is recorded
// as 499 (client closed request), not as the route's 5xx, by both ways
// of serving: the engine cancels the request with a cause of its own,
// net/http with none.
func TestCallerGoneIs499(t *testing.T) {
	for _, srv := range servers {
		t.Run(srv.name, func(t *testing.T) {
			e := startEdgeWith(t, shoal.Config{}, time.Minute, srv.engine)
			reached := make(chan struct{}, 1)
			e.backend(t, "api", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				reached <- struct{}{}
				<-r.Context().Done() // until the gateway gives up with its caller
				w.WriteHeader(http.StatusServiceUnavailable)
			}))
			obs := &fakeObserver{}
			e.gw.Metrics = obs
			conn := dial(t, e.addr, 10*time.Second)
			io.WriteString(conn, "GET /api/x HTTP/1.1\r\nHost: edge\r\n\r\n")
			<-reached
			conn.Close()
			eventually(t, "the request recorded", func() bool { return obs.last() != "" })
			if got := obs.last(); !strings.HasSuffix(got, " api 499") {
				t.Errorf("recorded %q, want the api route's request as 499", got)
			}
		})
	}
}
