package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shoal-dev/shoal"
)

// fakeSupervisor serves a control API with h (its ping answered) and
// writes the state file that leads the commands to it; it returns the
// manifest's path.
func fakeSupervisor(t *testing.T, h http.HandlerFunc) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v1/ping" {
			shoal.WriteJSON(w, http.StatusOK, map[string]int{"pid": os.Getpid()})
			return
		}
		h(w, r)
	}))
	t.Cleanup(srv.Close)
	dir := t.TempDir()
	state, err := json.Marshal(map[string]any{"pid": os.Getpid(), "control": srv.Listener.Addr().String(), "token": "t"})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, ".shoal"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, ".shoal", "state.json"), state, 0o600); err != nil {
		t.Fatal(err)
	}
	return filepath.Join(dir, "shoal.yaml")
}

// TestRestartUnknownService: a refused restart is not announced first.
func TestRestartUnknownService(t *testing.T) {
	old := restartNote
	restartNote = time.Minute // however slow the machine, the refusal comes first
	t.Cleanup(func() { restartNote = old })
	file := fakeSupervisor(t, func(w http.ResponseWriter, _ *http.Request) {
		shoal.WriteError(w, http.StatusNotFound, "unknown_service", `no service "catalgo" in shoal.yaml; services: catalog`)
	})
	code, out, errOut := runCLI(t, "restart", "catalgo", "-f", file)
	if code != 1 || out != "" || errOut != "shoal: restart: no service \"catalgo\" in shoal.yaml; services: catalog\n" {
		t.Errorf("restart catalgo: status %d, stdout %q, stderr %q", code, out, errOut)
	}
}

// TestLogsTraceNone: logs --trace says so when no line carries the trace,
// on stderr, and exits 1, as grep does.
func TestLogsTraceNone(t *testing.T) {
	const id = "4bf92f3577b34da6a3ce929d0e0e4736"
	var lines atomic.Value
	lines.Store("")
	file := fakeSupervisor(t, func(w http.ResponseWriter, r *http.Request) {
		if got := r.URL.Query().Get("trace_id"); got != id {
			t.Errorf("trace_id %q, want %s", got, id)
		}
		io.WriteString(w, lines.Load().(string))
	})
	code, out, errOut := runCLI(t, "logs", "--file", file, "catalog", "--trace", id)
	want := "shoal: logs: no log line of catalog carries trace " + id + " (of the last 1000 lines of each instance)\n"
	if code != 1 || out != "" || errOut != want {
		t.Errorf("no line: status %d, stdout %q, stderr %q; want 1 and %q", code, out, errOut, want)
	}
	line := "catalog/1 | trace_id=" + id + "\n"
	lines.Store(line)
	if code, out, errOut := runCLI(t, "logs", "--file", file, "--trace", id); code != 0 || out != line || errOut != "" {
		t.Errorf("a line: status %d, stdout %q, stderr %q", code, out, errOut)
	}
}
