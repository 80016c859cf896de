package main

import (
	"context"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shoal-dev/shoal"
	"github.com/shoal-dev/shoal/examples/flix/internal/flixtest"
	"github.com/shoal-dev/shoal/store"
	"github.com/shoal-dev/shoal/store/storetest"
)

func TestBackoffWait(t *testing.T) {
	for failures, want := range map[int64]time.Duration{
		0: 0, 1: 0, freeFailures: 0,
		freeFailures + 1: time.Second, freeFailures + 2: 2 * time.Second, freeFailures + 5: 16 * time.Second,
		freeFailures + 10: 512 * time.Second, freeFailures + 11: maxWait, freeFailures + 30: maxWait, 1 << 40: maxWait,
	} {
		if got := backoffWait(failures); got != want {
			t.Errorf("backoffWait(%d) = %v, want %v", failures, got, want)
		}
	}
}

// Sign-ins back off per account, on every instance (finding 5 of issue
// 13: the gateway's limit is per client address and per gateway, so
// guesses from many addresses, or spread over instances, went unchecked).
// Two instances share one database, of each engine; a test clock stands
// for time passing.
func TestSigninBackoff(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "profiles.db")
		testSigninBackoff(t, func(ctx context.Context) (*store.DB, error) { return store.OpenSQLite(ctx, path) })
	})
	t.Run("postgres", func(t *testing.T) {
		dsn := storetest.Postgres(t)
		testSigninBackoff(t, func(ctx context.Context) (*store.DB, error) { return store.OpenPostgres(ctx, dsn) })
	})
}

func testSigninBackoff(t *testing.T, open func(context.Context) (*store.DB, error)) {
	var clock atomic.Int64
	clock.Store(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli())
	advance := func(d time.Duration) { clock.Add(d.Milliseconds()) }
	var instances []*httptest.Server
	for range 2 {
		var db *store.DB
		flixtest.Setup(t, func(ctx context.Context) (err error) {
			db, err = open(ctx)
			return err
		})
		t.Cleanup(func() { db.Close() })
		d := openTestDirectory(t, db)
		d.now = func() time.Time { return time.UnixMilli(clock.Load()) }
		instances = append(instances, serveDirectory(t, d))
	}
	n := 0
	signin := func(email, password string, wantStatus int, wantRetry string) {
		t.Helper()
		srv := instances[n%2] // the gateway spreads them over the instances
		n++
		r := flixtest.Do(t, srv, "POST", "/signin", signinBody(email, password, "p0001"))
		if r.Status != wantStatus || r.Header.Get("Retry-After") != wantRetry {
			t.Fatalf("sign-in %d as %s with %q: %d (Retry-After %q) %s; want %d (Retry-After %q)",
				n, email, password, r.Status, r.Header.Get("Retry-After"), r.Body, wantStatus, wantRetry)
		}
	}
	const user = "user1@flix.example"
	for range freeFailures {
		signin(user, "guess", 401, "")
	}
	signin(user, "guess", 429, "1") // the failure that starts the wait says so
	signin(user, "flix", 429, "1")  // and the right password waits too
	signin("User1@Flix.Example ", "flix", 429, "1")
	signin("user2@flix.example", "flix", 401, "") // another account: p0001 is not its profile, but it is checked
	advance(time.Second)
	signin(user, "guess", 429, "2") // each failure doubles the wait
	advance(2 * time.Second)
	signin(user, "flix", 200, "") // and a success clears the count
	signin(user, "guess", 401, "")

	// Emails of no account back off alike: the answers do not tell
	// which accounts exist.
	for range freeFailures {
		signin("nobody@flix.example", "flix", 401, "")
	}
	signin("nobody@flix.example", "flix", 429, "1")

	// Failures are forgotten an hour after the last one.
	for range freeFailures - 1 {
		signin(user, "guess", 401, "")
	}
	advance(forgetAfter + time.Second)
	signin(user, "guess", 401, "")
	signin(user, "guess", 401, "")
}

// The development key pair is published: loading it takes SHOAL_DEV=1,
// and says so loudly (finding 3 of issue 13); a key of one's own loads
// quietly.
func TestDevKeyNeedsOptIn(t *testing.T) {
	var logs strings.Builder
	log := slog.New(slog.NewJSONHandler(&logs, nil))
	if _, err := loadIssuer(testKey, false, log); err == nil || !strings.Contains(err.Error(), "development key") || !strings.Contains(err.Error(), shoal.EnvDev+"=1") {
		t.Fatalf("the development key without %s: %v; want it refused", shoal.EnvDev, err)
	}
	if _, err := loadIssuer(testKey, true, log); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), `"level":"WARN"`) || !strings.Contains(logs.String(), "DEVELOPMENT JWT KEY IN USE") {
		t.Errorf("log %q: want a warning", logs.String())
	}
	logs.Reset()
	own := filepath.Join(t.TempDir(), "own.key")
	if err := os.WriteFile(own, mustGenerateKey(t), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := loadIssuer(own, false, log); err != nil || logs.Len() != 0 {
		t.Errorf("a key of one's own: %v, log %q", err, logs.String())
	}
}
