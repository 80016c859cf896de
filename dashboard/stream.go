package dashboard

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"time"
)

// heartbeat keeps an idle stream's connection from looking dead.
const heartbeat = 20 * time.Second

// stream serves GET /api/stream: server-sent events, each a JSON object:
//
//	event: overview   the system (as GET /api/overview, without events)
//	event: events     {"events": [...]}: events not sent before
//	event: traces     the trace lists (as GET /api/traces), when spans arrived
//
// The first message of each kind comes at once; then one update at most
// every pushEvery, and only after a change. The handler owns its loop; it
// ends when the client goes or the server closes.
func (s *Server) stream(w http.ResponseWriter, r *http.Request) {
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	var lastEvent, lastTraces uint64
	tracesSent := false
	beat := time.NewTicker(heartbeat)
	defer beat.Stop()
	wait := time.NewTimer(0)
	defer wait.Stop()
	for {
		changed := s.sys.Changed()
		var b bytes.Buffer
		ov := s.sys.Overview()
		writeEvent(&b, "overview", ov)
		if evs := s.sys.Events(lastEvent, eventsShown); len(evs) > 0 {
			lastEvent = evs[len(evs)-1].Seq
			writeEvent(&b, "events", map[string]any{"events": evs})
		}
		if !tracesSent || ov.Traces.Version != lastTraces {
			tracesSent, lastTraces = true, ov.Traces.Version
			writeEvent(&b, "traces", s.tracesNow(tracesShown))
		}
		if _, err := w.Write(b.Bytes()); err != nil {
			return
		}
		if rc.Flush() != nil {
			return
		}
		wait.Reset(s.pushEvery)
		select {
		case <-wait.C:
		case <-r.Context().Done():
			return
		}
		for waiting := true; waiting; {
			select {
			case <-changed:
				waiting = false
			case <-beat.C:
				if _, err := fmt.Fprint(w, ": heartbeat\n\n"); err != nil || rc.Flush() != nil {
					return
				}
			case <-r.Context().Done():
				return
			}
		}
	}
}

func writeEvent(b *bytes.Buffer, name string, v any) {
	data, err := json.Marshal(v)
	if err != nil {
		data, _ = json.Marshal(map[string]string{"error": err.Error()})
	}
	fmt.Fprintf(b, "event: %s\ndata: %s\n\n", name, data)
}
