package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shoal-dev/shoal"
	"github.com/shoal-dev/shoal/client"
	"github.com/shoal-dev/shoal/examples/flix/internal/flixtest"
	"github.com/shoal-dev/shoal/examples/flix/internal/profile"
)

// Fake dependencies: handlers for httptest servers, or an address that
// refuses connections, or nothing (no instance in discovery).
var (
	titleOK = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/titles/7" {
			http.Error(w, `{"error":{"code":"not_found","message":"x"}}`, 404)
			return
		}
		io.WriteString(w, `{"id":7,"name":"Salt Horizons","year":2015,"genres":["action"],"kind":"movie"}`)
	})
	averageOK = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/titles/7/average" {
			http.Error(w, "wrong path "+r.URL.Path, 400)
			return
		}
		io.WriteString(w, `{"title":7,"average":4.5,"count":2}`)
	})
	fail500 = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, `{"error":{"code":"internal","message":"boom"}}`, 500)
	})
	notJSON  = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "<html>") })
	notFound = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, `{"error":{"code":"not_found","message":"no title"}}`, 404)
	})
)

// hang is a stopped (SIGSTOP) instance, as far as callers can tell: it
// answers only when the request is abandoned.
var hang http.Handler = hangs{}

type hangs struct{}

func (hangs) ServeHTTP(_ http.ResponseWriter, r *http.Request) { <-r.Context().Done() }

// refused marks a dependency whose only instance drops connections.
var refused = flixtest.Refused

// newAPI returns the api's handler calling the given fakes by name through
// a real client.Transport over a static catalog; a nil fake is a service
// with no instance at all.
func newAPI(t *testing.T, catalog, ratings http.Handler) (*api, http.Handler) {
	t.Helper()
	return newAPIWith(t, map[string]http.Handler{"catalog": catalog, "ratings": ratings})
}

// newAPIWith is newAPI with any services: a missing or nil fake is a
// service with no instance.
func newAPIWith(t *testing.T, fakes map[string]http.Handler) (*api, http.Handler) {
	t.Helper()
	// One attempt per call: with one instance per service, the default
	// three would each get a third of a budget, too little for healthy
	// fakes under -race on a loaded machine; failover is the client's
	// business, tested there.
	c := flixtest.Client(t, client.Config{MaxAttempts: 1}, fakes)
	// The tests wait out the budget of a dependency that hangs, so theirs
	// are short; one that answers gets ten times more, so that a loaded
	// machine does not make it miss the budget.
	budget := func(service string, short time.Duration) time.Duration {
		if _, ok := fakes[service].(hangs); ok {
			return short
		}
		return 10 * short
	}
	a := &api{
		client:        c,
		rights:        &profile.Cache{Client: c},
		catalogBudget: budget("catalog", timeScale*500*time.Millisecond),
		ratingsBudget: budget("ratings", timeScale*100*time.Millisecond),
		log:           slog.New(slog.DiscardHandler),
	}
	var rt shoal.Router
	a.routes(&rt)
	return a, &rt
}

type answer struct {
	ID       int
	Name     string
	Rating   *rating
	Degraded []string
	Error    struct{ Code, Message string }
}

func TestTitle(t *testing.T) {
	tests := []struct {
		name             string
		path             string
		catalog, ratings http.Handler
		wantStatus       int
		wantDegraded     bool
		wantCode         string
	}{
		{name: "title with rating", path: "/titles/7", catalog: titleOK, ratings: averageOK, wantStatus: 200},
		{name: "ratings slow", path: "/titles/7", catalog: titleOK, ratings: hang, wantStatus: 200, wantDegraded: true},
		{name: "ratings refuse", path: "/titles/7", catalog: titleOK, ratings: refused, wantStatus: 200, wantDegraded: true},
		{name: "ratings absent", path: "/titles/7", catalog: titleOK, ratings: nil, wantStatus: 200, wantDegraded: true},
		{name: "ratings 500", path: "/titles/7", catalog: titleOK, ratings: fail500, wantStatus: 200, wantDegraded: true},
		{name: "ratings garbage", path: "/titles/7", catalog: titleOK, ratings: notJSON, wantStatus: 200, wantDegraded: true},
		{name: "catalog 404", path: "/titles/9", catalog: titleOK, ratings: averageOK, wantStatus: 404, wantCode: "not_found"},
		{name: "catalog 404 with ratings down", path: "/titles/9", catalog: notFound, ratings: hang, wantStatus: 404, wantCode: "not_found"},
		{name: "catalog refuses", path: "/titles/7", catalog: refused, ratings: averageOK, wantStatus: 502, wantCode: "bad_gateway"},
		{name: "catalog absent", path: "/titles/7", catalog: nil, ratings: averageOK, wantStatus: 503, wantCode: "unavailable"},
		{name: "catalog slow", path: "/titles/7", catalog: hang, ratings: averageOK, wantStatus: 504, wantCode: "timeout"},
		{name: "catalog 500", path: "/titles/7", catalog: fail500, ratings: averageOK, wantStatus: 502, wantCode: "bad_gateway"},
		{name: "catalog garbage", path: "/titles/7", catalog: notJSON, ratings: averageOK, wantStatus: 502, wantCode: "bad_gateway"},
		{name: "id not a number", path: "/titles/..%2Fadmin", catalog: titleOK, ratings: averageOK, wantStatus: 404, wantCode: "not_found"},
		{name: "id zero", path: "/titles/0", catalog: titleOK, ratings: averageOK, wantStatus: 404, wantCode: "not_found"},
		{name: "unknown route", path: "/ratings/7", catalog: titleOK, ratings: averageOK, wantStatus: 404, wantCode: "not_found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, h := newAPI(t, tt.catalog, tt.ratings)
			srv := httptest.NewServer(h)
			defer srv.Close()
			start := time.Now()
			resp, err := http.Get(srv.URL + tt.path)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			took := time.Since(start)
			raw, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tt.wantStatus, raw)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q", ct)
			}
			var got answer
			if err := json.Unmarshal(raw, &got); err != nil {
				t.Fatalf("%s: %v", raw, err)
			}
			if took > timeScale*time.Second {
				t.Errorf("took %v: the budgets should bound it well below that", took)
			}
			if tt.wantStatus != 200 {
				if got.Error.Code != tt.wantCode || got.Error.Message == "" {
					t.Errorf("error %+v, want code %q", got.Error, tt.wantCode)
				}
				if strings.Contains(string(raw), "127.0.0.1") {
					t.Errorf("error leaks an address: %s", raw)
				}
				if tt.wantStatus == 503 && resp.Header.Get("Retry-After") == "" {
					t.Errorf("503 without Retry-After")
				}
				return
			}
			if got.ID != 7 || got.Name != "Salt Horizons" {
				t.Errorf("title missing: %s", raw)
			}
			if tt.wantDegraded {
				if len(got.Degraded) != 1 || got.Degraded[0] != "ratings" || got.Rating != nil {
					t.Errorf("want degraded [ratings] and no rating: %s", raw)
				}
			} else if got.Degraded != nil || got.Rating == nil || got.Rating.Count != 2 || *got.Rating.Average != 4.5 {
				t.Errorf("want the rating and no degradation: %s", raw)
			}
		})
	}
}

// Outgoing calls carry the incoming request's deadline: a caller with a
// second left (three under the race detector) gets a catalog call bounded by
// that, not by the budget. (With less, a loaded machine misses it.)
func TestDeadlinePropagates(t *testing.T) {
	left := timeScale * time.Second
	var sent atomic.Value
	catalog := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sent.Store(r.Header.Get(client.TimeoutHeader))
		titleOK(w, r)
	})
	a, h := newAPI(t, catalog, averageOK)
	a.catalogBudget = 10 * left
	ctx, cancel := context.WithTimeout(context.Background(), left)
	defer cancel()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/titles/7", nil).WithContext(ctx))
	if rec.Code != 200 {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	d, err := client.ParseTimeout(sent.Load().(string))
	if err != nil || d > left {
		t.Errorf("catalog was given %v (%v), want at most the caller's %v", d, err, left)
	}
}

// A request that is itself out of time does not wait for the ratings
// budget: the degraded answer comes within the caller's deadline.
func TestRatingsBudgetWithinIncomingDeadline(t *testing.T) {
	// Time enough for the catalog on a loaded machine, far less than the
	// ratings budget.
	left := timeScale * time.Second
	a, h := newAPI(t, titleOK, hang)
	a.ratingsBudget = 10 * left
	ctx, cancel := context.WithTimeout(context.Background(), left)
	defer cancel()
	rec := httptest.NewRecorder()
	start := time.Now()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/titles/7", nil).WithContext(ctx))
	// The degraded answer must be ready before the caller gives up, not
	// at the same instant.
	if took := time.Since(start); took >= left+slack {
		t.Errorf("answered after %v with %v left: too late for the caller", took, left)
	}
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), `"degraded":["ratings"]`) {
		t.Errorf("%d %s", rec.Code, rec.Body)
	}
}
