package idempotency

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/shoal-dev/shoal/store"
)

// newStore opens a Store over db and migrates it.
func newStore(t testing.TB, db *store.DB, cfg Config) *Store {
	t.Helper()
	s, err := New(db, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	return s
}

// answer is what a caller saw.
type answer struct {
	status   int
	ct       string
	replayed bool
	body     string
}

// serve sends one request straight to h (no network: usable in a
// synctest bubble).
func serve(h http.Handler, ctx context.Context, method, path, key, body string) answer {
	req := httptest.NewRequestWithContext(ctx, method, path, strings.NewReader(body))
	if key != "" {
		req.Header.Set(KeyHeader, key)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return answer{rec.Code, rec.Header().Get("Content-Type"), rec.Header().Get(ReplayedHeader) == "true", rec.Body.String()}
}

// send sends one request over the network to srv.
func send(t testing.TB, c *http.Client, base, method, path, key, body string) answer {
	req, err := http.NewRequest(method, base+path, strings.NewReader(body))
	if err != nil {
		t.Error(err)
		return answer{}
	}
	if key != "" {
		req.Header.Set(KeyHeader, key)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Error(err)
		return answer{}
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return answer{resp.StatusCode, resp.Header.Get("Content-Type"), resp.Header.Get(ReplayedHeader) == "true", string(b)}
}

func countRows(t testing.TB, db *store.DB, query string, args ...any) int {
	t.Helper()
	var n int
	if err := db.QueryRow(query, args...).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}
