package shoal

import (
	"errors"
	"net/http"
	"strings"
	"testing"
)

// A request that failed is logged once, in its trace: by the SDK if the
// handler said nothing, not again if it answered with WriteUnavailable
// (which logs to slog's default logger, the service's under shoal.Main);
// one that succeeded is not.
func TestFailedRequestLogged(t *testing.T) {
	logs := newLogRecorder()
	rt := &Router{}
	rt.HandleFunc("GET /broken/{id}", func(w http.ResponseWriter, r *http.Request) {
		WriteError(w, http.StatusInternalServerError, "internal", "broken")
	})
	rt.HandleFunc("GET /down", func(w http.ResponseWriter, r *http.Request) {
		WriteUnavailable(w, r, "the store", errors.New("disk on fire"))
	})
	rt.HandleFunc("GET /fine", func(w http.ResponseWriter, r *http.Request) {})
	svc, _, _ := start(t, Config{Name: "alpha", Logger: logs.logger()}, rt)
	for _, path := range []string{"/broken/7", "/down", "/fine"} {
		resp, err := http.Get("http://" + svc.Addr() + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	text := logs.text()
	if n := strings.Count(text, "request failed"); n != 1 {
		t.Errorf("%d lines say request failed, want 1 (for /broken/7):\n%s", n, text)
	}
	var line string
	for l := range strings.SplitSeq(text, "\n") {
		if strings.HasPrefix(l, "WARN request failed ") {
			line = l
		}
	}
	for _, attr := range []string{"route=/broken/{id}", "path=/broken/7", "status=500", "request_id="} {
		if !strings.Contains(line, " "+attr) {
			t.Errorf("line %q lacks %s", line, attr)
		}
	}
	if strings.Contains(text, "/fine") {
		t.Errorf("a request that succeeded was logged:\n%s", text)
	}
}
