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

	"github.com/shoal-dev/shoal/identity"
	"github.com/shoal-dev/shoal/identity/identitytest"
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
// the signed-in one, or the signed-in one; the signed-in one is the user
// of the request's verified user token, and nothing else (finding 2 of
// issue 13: no header, and no call without a user, stands for one).
func TestOf(t *testing.T) {
	users, err := identitytest.NewUsers("flix", "gateway")
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	serve := func(w http.ResponseWriter, r *http.Request) {
		if id, ok := Of(w, r, "profile"); ok {
			w.Write([]byte(id))
		}
	}
	mux.HandleFunc("GET /home/{profile}", serve)
	mux.HandleFunc("GET /home", serve)
	guarded := users.Guard("api").Wrap(mux)
	token := func(sub, auth string) string {
		tok, err := users.Token(sub, auth)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	tests := []struct {
		name, path string
		header     http.Header
		want       int
		wantBody   string
	}{
		{"signed in", "/home/p0001", http.Header{identity.UserTokenHeader: {token("p0001", SignIn)}}, 200, "p0001"},
		{"another one", "/home/p0001", http.Header{identity.UserTokenHeader: {token("p0002", SignIn)}}, 403, "forbidden"},
		{"no user", "/home/p0001", nil, 401, "unauthenticated"},
		{"a header is no sign-in", "/home/p0001", http.Header{"Shoal-Subject": {"p0001"}}, 401, "unauthenticated"},
		{"an API key is no profile", "/home/p0001", http.Header{identity.UserTokenHeader: {token("p0001", "api_key:p0001")}}, 401, "unauthenticated"},
		{"bad id", "/home/p%201", http.Header{identity.UserTokenHeader: {token("p0001", SignIn)}}, 400, "invalid_argument"},
		{"own home", "/home", http.Header{identity.UserTokenHeader: {token("p0002", SignIn)}}, 200, "p0002"},
		{"home for no one", "/home", nil, 401, "unauthenticated"},
		{"home for a header", "/home", http.Header{"Shoal-Subject": {"p0002"}}, 401, "unauthenticated"},
		{"malformed signed-in id", "/home", http.Header{identity.UserTokenHeader: {token("p 2", SignIn)}}, 400, "invalid_argument"},
	}
	for _, tt := range tests {
		r := httptest.NewRequest("GET", tt.path, nil)
		r.Header = tt.header
		if r.Header == nil {
			r.Header = http.Header{}
		}
		w := httptest.NewRecorder()
		guarded := guarded
		if r.Header[identity.UserTokenHeader] == nil {
			// What a Guard passes on from a service calling with its
			// certificate and no user token.
			guarded = mux
		}
		guarded.ServeHTTP(w, r)
		if w.Code != tt.want || !strings.Contains(w.Body.String(), tt.wantBody) {
			t.Errorf("%s: GET %s = %d %s, want %d %s", tt.name, tt.path, w.Code, w.Body, tt.want, tt.wantBody)
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
