package supervisor

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shoal-dev/shoal"
	"github.com/shoal-dev/shoal/handoff/handofftest"
)

// fakeSupervisor serves h as the control API of a supervisor with this
// process's pid (so it counts as alive) and writes the state file for it.
func fakeSupervisor(t *testing.T, h http.HandlerFunc) string {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, ".shoal"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := writeState(dir, stateFile{PID: os.Getpid(), Control: strings.TrimPrefix(srv.URL, "http://"), Token: "t"}); err != nil {
		t.Fatal(err)
	}
	return dir
}

// shorten sets *v to d for the test.
func shorten(t *testing.T, v *time.Duration, d time.Duration) {
	old := *v
	*v = d
	t.Cleanup(func() { *v = old })
}

func TestFindRunningNoAnswer(t *testing.T) {
	shorten(t, &pingTimeout, 200*time.Millisecond)
	for _, tc := range []struct {
		name string
		h    http.HandlerFunc
		want string
	}{
		{"wrong token", func(w http.ResponseWriter, r *http.Request) {
			writeError(w, &opError{http.StatusForbidden, "forbidden", "missing or wrong " + tokenHeader})
		}, "wrong " + tokenHeader},
		{"wedged", func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }, "did not answer within"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := fakeSupervisor(t, tc.h)
			_, err := FindRunning(dir)
			var na *NoAnswerError
			if !errors.As(err, &na) || errors.Is(err, ErrNotRunning) || na.PID != os.Getpid() {
				t.Fatalf("FindRunning = %v, want a *NoAnswerError", err)
			}
			msg := err.Error()
			if !strings.Contains(msg, "does not answer") || !strings.Contains(msg, tc.want) || strings.Contains(msg, "shoal up") {
				t.Errorf("message %q: want %q and %q, and no advice to start shoal up", msg, "does not answer", tc.want)
			}
			if _, err := os.Stat(statePath(dir)); err != nil {
				t.Errorf("the state file of a live supervisor was removed: %v", err)
			}
		})
	}
}

// TestRemoteCallsAreBounded: a supervisor that answers ping but then hangs
// (wedged, or stopped after FindRunning) does not hang ps, kill or logs.
func TestRemoteCallsAreBounded(t *testing.T) {
	shorten(t, &callTimeout, 200*time.Millisecond)
	dir := fakeSupervisor(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == pathPing {
			shoal.WriteJSON(w, http.StatusOK, pingResponse{PID: os.Getpid()})
			return
		}
		// Read the body, so the server notices the client giving up.
		_, _ = io.Copy(io.Discard, r.Body)
		<-r.Context().Done()
	})
	r, err := FindRunning(dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for name, call := range map[string]func() error{
		"ps":          func() error { _, err := r.PS(ctx); return err },
		"kill":        func() error { _, err := r.Kill(ctx, "a", 1, "KILL"); return err },
		"logs":        func() error { return r.Logs(ctx, "", -1, false, new(strings.Builder)) },
		"logs follow": func() error { return r.Logs(ctx, "", -1, true, new(strings.Builder)) },
		"down":        func() error { return r.Down(ctx) },
	} {
		t.Run(name, func(t *testing.T) {
			done := make(chan error, 1)
			go func() { done <- call() }()
			select {
			case err := <-done:
				if err == nil || !strings.Contains(err.Error(), "did not answer within") {
					t.Errorf("error = %v, want a timeout that says so", err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("the call still hangs after 10s")
			}
		})
	}
}

// TestRemoteOfStoppedSupervisor: once the supervisor has gone, its control
// address refuses connections, and calls say it has stopped
// (ErrNotRunning) instead of showing a dial error, so that long-running
// callers (a monkey) can stop at once.
func TestRemoteOfStoppedSupervisor(t *testing.T) {
	r := &Remote{Dir: "/srv/flix", Control: handofftest.Refused(t), hc: &http.Client{}}
	_, err := r.PS(context.Background())
	if !errors.Is(err, ErrNotRunning) || !strings.Contains(err.Error(), "/srv/flix: it has stopped") {
		t.Fatalf("PS of a stopped supervisor: %v, want ErrNotRunning naming the folder", err)
	}
}
