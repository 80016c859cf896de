package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

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
	file := fakeSupervisor(t, func(w http.ResponseWriter, _ *http.Request) {
		shoal.WriteError(w, http.StatusNotFound, "unknown_service", `no service "catalgo" in shoal.yaml; services: catalog`)
	})
	code, out, errOut := runCLI(t, "restart", "catalgo", "-f", file)
	if code != 1 || out != "" || errOut != "shoal: restart: no service \"catalgo\" in shoal.yaml; services: catalog\n" {
		t.Errorf("restart catalgo: status %d, stdout %q, stderr %q", code, out, errOut)
	}
}
