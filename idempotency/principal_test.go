package idempotency

import (
	"context"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/shoal-dev/shoal"
	"github.com/shoal-dev/shoal/identity"
	"github.com/shoal-dev/shoal/internal/testidentity"
	"github.com/shoal-dev/shoal/store/storetest"
)

// Config.Principal decides the namespace: here the caller comes from a
// header a (test) transport would have verified.
func TestConfigPrincipal(t *testing.T) {
	db := storetest.SQLite.MustOpen(t, filepath.Join(t.TempDir(), "svc.db"))
	s := newStore(t, db, Config{Principal: func(r *http.Request) Principal {
		return Principal{Caller: r.Header.Get("Test-Caller"), Subject: r.Header.Get(SubjectHeader)}
	}})
	var runs atomic.Int64
	h := s.Middleware(testHandler(&runs))
	tests := []struct {
		caller, subject string
		wantBody        string
		wantReplayed    bool
	}{
		{"api", "ann", `{"n":1}`, false},
		{"playback", "ann", `{"n":2}`, false}, // another caller, the same subject and key
		{"api", "", `{"n":3}`, false},         // the caller's own call
		{"api", "ann", `{"n":1}`, true},
		{"playback", "ann", `{"n":2}`, true},
		{"api", "", `{"n":3}`, true},
	}
	for i, tt := range tests {
		got, _ := serveCall(h, call{method: "POST", path: "/ok", key: "k", body: "x",
			header: map[string][]string{"Test-Caller": {tt.caller}, SubjectHeader: {tt.subject}}})
		if got.body != tt.wantBody || got.replayed != tt.wantReplayed {
			t.Errorf("call %d (%s, %s): %s replayed %v; want %s replayed %v",
				i, tt.caller, tt.subject, got.body, got.replayed, tt.wantBody, tt.wantReplayed)
		}
	}
	var rows int
	if err := db.QueryRow(`SELECT COUNT(*) FROM ` + Table + ` WHERE idem_key = 'k'`).Scan(&rows); err != nil || rows != 3 {
		t.Errorf("%d rows for key k (%v), want 3: one per principal", rows, err)
	}
}

// Guarded asks its authorization before the key: a refused request gets
// the refusal, never the stored answer, and claims nothing.
func TestGuarded(t *testing.T) {
	db := storetest.SQLite.MustOpen(t, filepath.Join(t.TempDir(), "svc.db"))
	s := newStore(t, db, Config{})
	var runs atomic.Int64
	revoked := map[string]bool{}
	var seen []string // bodies authorize saw
	authorize := func(w http.ResponseWriter, r *http.Request) bool {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			t.Error(err)
		}
		seen = append(seen, string(b))
		if revoked[r.Header.Get(SubjectHeader)] {
			shoal.WriteError(w, http.StatusForbidden, "forbidden", "revoked")
			return false
		}
		return true
	}
	h := s.Guarded(authorize, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body) // the handler gets the body too
		w.Write([]byte("run " + string(b)))
		runs.Add(1)
	}))
	send := func(body string) answer {
		got, _ := serveCall(h, call{method: "POST", path: "/grant", key: "k", body: body, header: ann})
		return got
	}
	if got := send("x"); got.status != 200 || got.replayed || got.body != "run x" {
		t.Fatalf("first: %+v", got)
	}
	if got := send("x"); got.status != 200 || !got.replayed {
		t.Fatalf("retry: %+v, want a replay", got)
	}
	revoked["ann"] = true
	if got := send("x"); got.status != 403 || got.replayed || strings.Contains(got.body, "run") {
		t.Fatalf("retry after the grant was revoked: %+v, want 403 without the stored answer", got)
	}
	if got := send("y"); got.status != 403 {
		t.Fatalf("another request, revoked: %+v, want 403 (not 422: the key is not looked up)", got)
	}
	if runs.Load() != 1 {
		t.Errorf("handler ran %d times, want 1", runs.Load())
	}
	if want := []string{"x", "x", "x", "y"}; strings.Join(seen, ",") != strings.Join(want, ",") {
		t.Errorf("authorize saw bodies %q, want %q", seen, want)
	}
	// Without a key, authorize is not Guarded's business: the handler
	// authorizes as it would without the middleware.
	if got, _ := serveCall(h, call{method: "POST", path: "/grant", body: "z", header: ann}); got.status != 200 || got.body != "run z" {
		t.Errorf("without a key: %+v", got)
	}
	if n := countRows(t, db, `SELECT COUNT(*) FROM `+Table); n != 1 {
		t.Errorf("%d keys stored, want 1", n)
	}
}

// A database of an earlier build has the key table without principals,
// created outside the migration list: Migrate replaces it.
func TestMigrateReplacesUnnamespacedTable(t *testing.T) {
	db := storetest.SQLite.MustOpen(t, filepath.Join(t.TempDir(), "svc.db"))
	if _, err := db.Exec(`CREATE TABLE ` + Table + ` (
		idem_key TEXT NOT NULL PRIMARY KEY, fingerprint TEXT NOT NULL, token TEXT NOT NULL, status INTEGER NOT NULL,
		lease_until BIGINT NOT NULL, expires_at BIGINT NOT NULL, content_type TEXT NOT NULL, body BLOB);
		CREATE INDEX ` + Table + `_expires ON ` + Table + ` (expires_at);
		INSERT INTO ` + Table + ` VALUES ('k', 'fp', 't', 200, 0, 9999999999999, 'text/plain', X'6F6C64')`); err != nil {
		t.Fatal(err)
	}
	s := newStore(t, db, Config{})
	var runs atomic.Int64
	got := serve(s.Middleware(testHandler(&runs)), context.Background(), "POST", "/ok", "k", "")
	if got.status != 200 || got.replayed || runs.Load() != 1 {
		t.Errorf("after the migration: %+v, %d runs; want a fresh answer", got, runs.Load())
	}
	if n := countRows(t, db, `SELECT COUNT(*) FROM `+Table+` WHERE caller = '' AND subject = ''`); n != 1 {
		t.Errorf("%d rows, want the new one only", n)
	}
}

// Behind an identity.Guard, the default principal is the caller and the
// user the Guard verified: a service that sets Shoal-Subject to another
// user's name gets neither that user's stored answer nor their key, and a
// user token names the user whatever the header says.
func TestVerifiedPrincipal(t *testing.T) {
	db := storetest.SQLite.MustOpen(t, filepath.Join(t.TempDir(), "svc.db"))
	s := newStore(t, db, Config{})
	var runs atomic.Int64
	ca := testidentity.CA(t, "sys")
	self := testidentity.Source(t, ca, "ratings")
	gateway := testidentity.Source(t, ca, "gateway")
	tokens, err := identity.NewTokenVerifier(self, "gateway")
	if err != nil {
		t.Fatal(err)
	}
	guard := &identity.Guard{Self: self.Credentials().ID, Tokens: tokens}
	srv := testidentity.Server(t, self, guard.Wrap(s.Middleware(testHandler(&runs))))
	issuer, err := identity.NewTokenIssuer(gateway, 0)
	if err != nil {
		t.Fatal(err)
	}
	annToken, err := issuer.Token("ann", "jwt")
	if err != nil {
		t.Fatal(err)
	}
	as := func(service string) *http.Client {
		tr := &http.Transport{DialTLSContext: identity.NewDialer(testidentity.Source(t, ca, service), nil).ForService("ratings")}
		t.Cleanup(tr.CloseIdleConnections)
		return &http.Client{Transport: tr}
	}
	gw, api := as("gateway"), as("api")
	for i, tt := range []struct {
		c              *http.Client
		token, subject string
		wantBody       string
		wantReplayed   bool
	}{
		{gw, annToken, "ann", `{"n":1}`, false}, // as the gateway sends it
		{gw, annToken, "ann", `{"n":1}`, true},
		{api, "", "ann", `{"n":2}`, false},     // not ann's answer: the header is no proof
		{gw, annToken, "bob", `{"n":1}`, true}, // the token's user, whatever the header says
		{gw, "", "ann", `{"n":3}`, false},      // the gateway's own call
	} {
		req, err := http.NewRequest("POST", "https://"+srv.Listener.Addr().String()+"/ok", strings.NewReader("x"))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set(KeyHeader, "k")
		if tt.token != "" {
			req.Header.Set(identity.UserTokenHeader, tt.token)
		}
		if tt.subject != "" {
			req.Header.Set(SubjectHeader, tt.subject)
		}
		resp, err := tt.c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(body) != tt.wantBody || (resp.Header.Get(ReplayedHeader) == "true") != tt.wantReplayed {
			t.Errorf("call %d: %s replayed %q; want %s replayed %v", i, body, resp.Header.Get(ReplayedHeader), tt.wantBody, tt.wantReplayed)
		}
	}
}
