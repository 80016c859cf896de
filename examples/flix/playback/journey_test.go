package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/examples/flix/internal/flixtest"
	"github.com/shoal-dev/shoal/store"
)

// startHistory builds the history service and runs it on loopback with a
// fresh data folder, as `shoal up` would, and returns its base URL and its
// SQLite database file. (It is another main package, which Go cannot
// import: the test runs the real program instead.) The process is stopped
// when t ends.
func startHistory(t *testing.T) (url, dbFile string) {
	t.Helper()
	dir := t.TempDir()
	bin := filepath.Join(dir, "history")
	build := exec.Command("go", "build", "-o", bin, "../history")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building history: %v\n%s", err, out)
	}
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(),
		"SHOAL_DATA_DIR="+filepath.Join(dir, "data"),
		"SHOAL_DATABASE_URL=",
		"SHOAL_ADDR=127.0.0.1:0",
		"SHOAL_GOSSIP_ADDR=127.0.0.1:0",
		"SHOAL_SEEDS=",
	)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	addr := make(chan string, 1)
	go func() { // ends when the process closes stderr (it exits)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			var line struct{ Msg, Addr, Scheme string }
			if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "serving" && line.Addr != "" {
				select {
				case addr <- line.Scheme + "://" + line.Addr:
				default:
				}
			}
			if testing.Verbose() {
				t.Logf("history: %s", sc.Bytes())
			}
		}
		io.Copy(io.Discard, stderr)
		cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(15 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
	})
	select {
	case a := <-addr:
		if a[:3] == "://" {
			a = "http" + a
		}
		return a, filepath.Join(dir, "data", "history.db")
	case <-exited:
		t.Fatal("history exited before serving")
	case <-time.After(30 * time.Second):
		t.Fatal("history did not start serving within 30s")
	}
	return "", ""
}

// The whole path of a progress report: playback records and publishes it,
// its outbox delivers it to the history service's Inbox, and history
// records where the profile stopped. (Its API answers only a signed-in
// profile's user token, which a process without a service identity, as
// this one is, cannot verify: the test reads what history wrote.)
func TestJourneyToHistory(t *testing.T) {
	history, historyDB := startHistory(t)
	p := newTestPlayback(t, flixtest.Dialects[0], map[string]http.Handler{
		"profiles":        testProfiles,
		"catalog":         testCatalog,
		"history":         flixtest.Upstream(history),
		"recommendations": accept,
	})
	ctx, cancel := context.WithCancel(context.Background())
	runDone := make(chan error, 1)
	go func() { runDone <- p.outbox.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-runDone; err != nil {
			t.Errorf("outbox.Run: %v", err)
		}
	})

	s := start(t, p.srv, "p0001", 3)
	if r := flixtest.Do(t, p.srv, "POST", "/sessions/"+s.ID+"/progress", `{"position_s":600}`, as(t, "p0001", key("j1"))...); r.Status != 200 {
		t.Fatalf("progress: %d %s", r.Status, r.Body)
	}

	deadline, stop := context.WithTimeout(context.Background(), 20*time.Second)
	defer stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	db, err := store.OpenSQLite(deadline, historyDB)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for {
		var pos, dur float64
		err := db.QueryRowContext(deadline, `SELECT position_s, duration_s FROM history WHERE profile = $1 AND title = $2`, "p0001", 3).Scan(&pos, &dur)
		if err == nil {
			if pos != 600 || dur != 2700 {
				t.Fatalf("history has title 3 at %v of %v; want 600 of 2700", pos, dur)
			}
			break
		}
		select {
		case <-deadline.Done():
			st, _ := p.outbox.Stats(context.Background())
			t.Fatalf("title 3 not in p0001's history within 20s (last: %v); outbox %+v", err, st)
		case <-tick.C:
		}
	}
	// Both subscribers got it, once.
	for deadline.Err() == nil {
		st, err := p.outbox.Stats(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if st.Delivered == 2 && st.Pending == 0 {
			break
		}
		select {
		case <-deadline.Done():
			t.Fatalf("outbox %+v: want 2 delivered", st)
		case <-tick.C:
		}
	}
}
