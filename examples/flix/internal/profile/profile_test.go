package profile

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

func TestCheckID(t *testing.T) {
	for id, ok := range map[string]bool{
		"p0001": true, "A-b_c.9": true, strings.Repeat("x", MaxIDLen): true,
		"": false, "p 1": false, "../p1": false, "p/1": false, "é": false, strings.Repeat("x", MaxIDLen+1): false,
	} {
		if err := CheckID(id); (err == nil) != ok {
			t.Errorf("CheckID(%q) = %v, want ok %v", id, err, ok)
		}
	}
}

// The profile a request is about, by route: the path's, checked against
// the signed-in one, or the signed-in one.
func TestOf(t *testing.T) {
	mux := http.NewServeMux()
	serve := func(w http.ResponseWriter, r *http.Request) {
		if id, ok := Of(w, r, "profile"); ok {
			w.Write([]byte(id))
		}
	}
	mux.HandleFunc("GET /home/{profile}", serve)
	mux.HandleFunc("GET /home", serve)
	tests := []struct {
		path, subject string
		want          int
		wantBody      string
	}{
		{"/home/p0001", "", 200, "p0001"},          // from inside the system
		{"/home/p0001", "p0001", 200, "p0001"},     // the signed-in profile
		{"/home/p0001", "p0002", 403, "forbidden"}, // another one
		{"/home/p%201", "", 400, "invalid_argument"},
		{"/home", "p0002", 200, "p0002"},
		{"/home", "", 401, "unauthenticated"},
		{"/home", "p 2", 400, "invalid_argument"},
	}
	for _, tt := range tests {
		r := httptest.NewRequest("GET", tt.path, nil)
		if tt.subject != "" {
			r.Header.Set(SubjectHeader, tt.subject)
		}
		w := httptest.NewRecorder()
		mux.ServeHTTP(w, r)
		if w.Code != tt.want || !strings.Contains(w.Body.String(), tt.wantBody) {
			t.Errorf("GET %s as %q = %d %s, want %d %s", tt.path, tt.subject, w.Code, w.Body, tt.want, tt.wantBody)
		}
	}
}

func TestAllows(t *testing.T) {
	kids := Rights{Maturity: "kids", MayWatch: []string{"all"}}
	for title, want := range map[string]bool{"all": true, "teen": false, "adult": false, "": false} {
		if got := kids.Allows(title); got != want {
			t.Errorf("kids.Allows(%q) = %v", title, got)
		}
	}
	if Unknown.Allows("teen") || !Unknown.Allows("all") {
		t.Error("Unknown allows more than titles for everyone")
	}
}

// fakeProfiles answers GET /profiles/{id} from rights, counting calls.
func fakeProfiles(calls *atomic.Int64, rights map[string]Rights) *http.Client {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		rt, ok := rights[strings.TrimPrefix(r.URL.Path, "/profiles/")]
		switch {
		case r.Host != "profiles":
			http.Error(w, "wrong service "+r.Host, http.StatusBadGateway)
		case !ok:
			http.Error(w, `{"error":{"code":"not_found"}}`, http.StatusNotFound)
		case rt.Maturity == "broken":
			http.Error(w, `{"error":{"code":"internal"}}`, http.StatusInternalServerError)
		default:
			w.Write([]byte(`{"id":"x","maturity":"` + rt.Maturity + `","may_watch":["` + strings.Join(rt.MayWatch, `","`) + `"]}`))
		}
	})
	// In-process: the handler answers the request the client would send.
	return &http.Client{Transport: roundTripper(func(r *http.Request) (*http.Response, error) {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w.Result(), nil
	})}
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// The cache keeps what the profiles service said for its TTL, and keeps
// no failure.
func TestCache(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var calls atomic.Int64
		rights := map[string]Rights{"p0010": {"kids", []string{"all"}}, "p0666": {"broken", nil}}
		c := &Cache{Client: fakeProfiles(&calls, rights), TTL: time.Minute}
		ctx := context.Background()
		for range 3 {
			r, err := c.Rights(ctx, "p0010")
			if err != nil || r.Maturity != "kids" || !r.Allows("all") || r.Allows("teen") {
				t.Fatalf("Rights(p0010) = %+v, %v", r, err)
			}
		}
		if n := calls.Load(); n != 1 {
			t.Errorf("%d calls for three lookups within the TTL, want 1", n)
		}
		time.Sleep(time.Minute) // fake time: the entry expires
		if _, err := c.Rights(ctx, "p0010"); err != nil || calls.Load() != 2 {
			t.Errorf("after the TTL: %v, %d calls, want 2", err, calls.Load())
		}
		if _, err := c.Rights(ctx, "p9999"); !errors.Is(err, ErrNotFound) {
			t.Errorf("unknown profile: %v, want ErrNotFound", err)
		}
		for range 2 {
			if _, err := c.Rights(ctx, "p0666"); err == nil || errors.Is(err, ErrNotFound) {
				t.Errorf("failing profiles service: %v", err)
			}
		}
		if n := calls.Load(); n != 5 {
			t.Errorf("%d calls: failures must not be cached", n)
		}
	})
}
