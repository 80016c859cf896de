package shoal

import (
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/client"
	"github.com/shoal-dev/shoal/resilience"
)

// Asking for a stream is not streaming: a request that sends Accept:
// text/event-stream or an Upgrade header to a handler that answers as usual
// holds its admission permit like any other, so those headers are no way
// around the concurrency limit. (They used to drop the permit on arrival.)
func TestStreamHeadersDoNotBypassAdmission(t *testing.T) {
	for _, tt := range []struct{ name, header, value string }{
		{"event-stream", "Accept", "text/event-stream"},
		{"upgrade", "Upgrade", "websocket"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			entered := make(chan struct{}, 2)
			release := make(chan struct{})
			h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				entered <- struct{}{}
				select {
				case <-release:
				case <-r.Context().Done():
				}
				io.WriteString(w, `{"plain":"json"}`)
			})
			svc, _, _ := start(t, Config{Name: "limited", Admission: resilience.LimiterConfig{MaxLimit: 1, NoQueue: true}}, h)
			tr := &http.Transport{}
			t.Cleanup(tr.CloseIdleConnections)
			hc := &http.Client{Transport: tr, Timeout: 10 * time.Second}
			first := make(chan error, 1)
			go func() {
				req, _ := http.NewRequest(http.MethodGet, "http://"+svc.Addr()+"/home", nil)
				req.Header.Set(tt.header, tt.value)
				resp, err := hc.Do(req)
				if err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
				first <- err
			}()
			<-entered
			// Refused at once, or let in to wait in the handler until the
			// timeout: the bug.
			second := &http.Client{Transport: tr, Timeout: 2 * time.Second}
			resp, err := second.Get("http://" + svc.Addr() + "/home")
			close(release)
			if err != nil {
				t.Fatalf("second request let in past the limit of 1 while the first (%s: %s) runs: %v", tt.header, tt.value, err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get(client.RejectedHeader) == "" {
				t.Errorf("second request with the first (%s: %s) in the handler: %d, want a 503 refusal at the limit of 1",
					tt.header, tt.value, resp.StatusCode)
			}
			if err := <-first; err != nil {
				t.Fatal(err)
			}
		})
	}
}

// A response that really streams gives its permit back as it starts: a
// text/event-stream header, a flush, or a hijacked connection (a WebSocket's
// 101). With a limit of 1 and such a stream open, a plain request is let in.
func TestStartedStreamsReleaseAdmission(t *testing.T) {
	for _, tt := range []struct {
		name   string
		stream func(w http.ResponseWriter) (closeStream func())
	}{
		{"event-stream header", func(w http.ResponseWriter) func() {
			w.Header().Set("Content-Type", "text/event-stream; charset=utf-8")
			io.WriteString(w, "data: hello\n")
			return func() {}
		}},
		{"flush", func(w http.ResponseWriter) func() {
			io.WriteString(w, "data: hello\n")
			w.(http.Flusher).Flush()
			return func() {}
		}},
		{"hijack", func(w http.ResponseWriter) func() {
			conn, brw, err := http.NewResponseController(w).Hijack()
			if err != nil {
				panic(err)
			}
			brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\ndata: hello\n")
			brw.Flush()
			return func() { conn.Close() }
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			release := make(chan struct{})
			started := make(chan struct{})
			h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path != "/stream" {
					io.WriteString(w, "ok")
					return
				}
				closeStream := tt.stream(w)
				defer closeStream()
				close(started)
				select {
				case <-release:
				case <-r.Context().Done():
				}
			})
			svc, _, _ := start(t, Config{Name: "streams", Admission: resilience.LimiterConfig{MaxLimit: 1}}, h)
			defer close(release)
			tr := &http.Transport{}
			t.Cleanup(tr.CloseIdleConnections)
			hc := &http.Client{Transport: tr, Timeout: 10 * time.Second}
			go func() {
				req, _ := http.NewRequest(http.MethodGet, "http://"+svc.Addr()+"/stream", nil)
				req.Header.Set("Accept", "text/event-stream")
				if resp, err := hc.Do(req); err == nil {
					io.Copy(io.Discard, resp.Body) // until the handler ends
					resp.Body.Close()
				}
			}()
			<-started
			plain, _ := get(t, hc, "http://"+svc.Addr()+"/plain")
			if plain.StatusCode != http.StatusOK {
				t.Errorf("plain request with a stream open under a limit of 1: %d, want 200", plain.StatusCode)
			}
			if st := svc.Admission(); st.InFlight != 0 {
				t.Errorf("admission in flight = %d with only a stream open, want 0", st.InFlight)
			}
		})
	}
}
