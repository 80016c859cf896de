package shoal

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// echo answers with the pattern that routed the request and its wildcard.
func echo(w http.ResponseWriter, r *http.Request) {
	WriteJSON(w, http.StatusOK, map[string]string{"pattern": r.Pattern, "id": r.PathValue("id")})
}

type routed struct {
	status int
	allow  string
	ctype  string
	body   string
}

// send serves one request with h and returns the answer.
func send(h http.Handler, method, path string) routed {
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(method, path, nil))
	return routed{w.Code, w.Header().Get("Allow"), w.Header().Get("Content-Type"), w.Body.String()}
}

func TestRouter(t *testing.T) {
	var rt Router
	rt.HandleFunc("GET /titles", echo)
	rt.HandleFunc("POST /titles", echo)
	rt.HandleFunc("GET /titles/{id}", echo)
	rt.HandleFunc("GET /items/{id}", echo)
	rt.HandleFunc("PUT /items/special", echo)
	rt.HandleFunc("/any", echo)
	rt.HandleFunc("GET /static/", echo)

	tests := []struct {
		name, method, path string
		want               int
		wantBody           string // a part of the body
		wantAllow          string
	}{
		{"routed", "GET", "/titles/7", 200, `"id":"7"`, ""},
		{"HEAD with GET", "HEAD", "/titles/7", 200, "", ""},
		{"second method", "POST", "/titles", 200, `"pattern":"POST /titles"`, ""},
		{"subtree", "GET", "/static/a/b", 200, `"pattern":"GET /static/"`, ""},
		{"any method", "DELETE", "/any", 200, `"pattern":"/any"`, ""},
		{"unknown path", "GET", "/nope", 404, `{"error":{"code":"not_found","message":"no route for GET /nope; see /openapi.json"}}`, ""},
		{"unknown path, other method", "DELETE", "/nope", 404, `"code":"not_found"`, ""},
		{"wrong method", "POST", "/titles/7", 405, `"message":"POST is not allowed on /titles/7; use GET, HEAD"`, "GET, HEAD"},
		{"wrong method, two patterns", "DELETE", "/titles", 405, `"code":"method_not_allowed"`, "GET, HEAD, POST"},
		// Both patterns match /items/special: the Allow header names
		// every method either serves, as a ServeMux's would.
		{"methods of several patterns", "DELETE", "/items/special", 405, `"code":"method_not_allowed"`, "GET, HEAD, PUT"},
		{"document", "GET", "/openapi.json", 200, `"openapi":"3.1.0"`, ""},
		{"document, wrong method", "POST", "/openapi.json", 405, `"code":"method_not_allowed"`, "GET, HEAD"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := send(&rt, tt.method, tt.path)
			if got.status != tt.want || !strings.Contains(got.body, tt.wantBody) || got.allow != tt.wantAllow {
				t.Errorf("%s %s = %d Allow %q %s; want %d Allow %q with %s",
					tt.method, tt.path, got.status, got.allow, got.body, tt.want, tt.wantAllow, tt.wantBody)
			}
			if got.ctype != "application/json" {
				t.Errorf("Content-Type %q, want application/json", got.ctype)
			}
		})
	}
}

func TestRouterZeroValue(t *testing.T) {
	var rt Router
	if got := send(&rt, "GET", "/"); got.status != 404 || !strings.Contains(got.body, `"not_found"`) {
		t.Fatalf("empty router: %d %s, want a JSON 404", got.status, got.body)
	}
}

func TestRouterRootPattern(t *testing.T) {
	var rt Router
	rt.HandleFunc("GET /titles/{id}", echo)
	// The user's "/" serves what no other pattern does, as in a ServeMux:
	// then there is no 404 nor 405 of the router's.
	rt.Handle("/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "root "+r.Method)
	}))
	for _, tt := range []struct{ method, path, want string }{
		{"GET", "/elsewhere", "root GET"},
		{"POST", "/titles/1", "root POST"},
	} {
		if got := send(&rt, tt.method, tt.path); got.status != 200 || got.body != tt.want {
			t.Errorf("%s %s = %d %q, want %q", tt.method, tt.path, got.status, got.body, tt.want)
		}
	}
	defer func() {
		if recover() == nil {
			t.Error(`registering "/" twice did not panic`)
		}
	}()
	rt.HandleFunc("/", echo)
}

func TestRouterPanicsLikeServeMux(t *testing.T) {
	for _, tt := range []struct {
		name     string
		register func(rt *Router)
	}{
		{"conflict", func(rt *Router) { rt.HandleFunc("GET /a/{x}", echo); rt.HandleFunc("GET /a/{y}", echo) }},
		{"bad pattern", func(rt *Router) { rt.HandleFunc("GET /a/{", echo) }},
		{"nil handler", func(rt *Router) { rt.Handle("GET /a", nil) }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Error("no panic")
				}
			}()
			tt.register(new(Router))
		})
	}
}

// Routes may be added while the router serves, as a program does when it
// hands the router to New before it has the client its handlers need.
func TestRouterRegisterWhileServing(t *testing.T) {
	var rt Router
	rt.HandleFunc("GET /first", echo)
	srv := httptest.NewServer(&rt)
	defer srv.Close()
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			rt.HandleFunc(fmt.Sprintf("PUT /r%d", i), echo)
		})
		wg.Go(func() {
			resp, err := srv.Client().Post(srv.URL+"/first", "", nil)
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
			if resp.StatusCode != 405 {
				t.Errorf("POST /first = %d, want 405", resp.StatusCode)
			}
		})
	}
	wg.Wait()
	if n := len(rt.Routes()); n != 21 {
		t.Fatalf("%d routes, want 21", n)
	}
	if got := send(&rt, "GET", "/r7"); got.status != 405 || got.allow != "PUT" {
		t.Fatalf("GET /r7 = %d Allow %q, want 405 Allow PUT", got.status, got.allow)
	}
}

func TestParseRoute(t *testing.T) {
	for _, tt := range []struct {
		pattern string
		want    Route
	}{
		{"GET /titles/{id}", Route{Method: "GET", Path: "/titles/{id}"}},
		{"/static/", Route{Path: "/static/"}},
		{"POST \t example.com/x", Route{Method: "POST", Host: "example.com", Path: "/x"}},
		{"example.com/", Route{Host: "example.com", Path: "/"}},
	} {
		tt.want.Pattern = tt.pattern
		if got := parseRoute(tt.pattern); got != tt.want {
			t.Errorf("parseRoute(%q) = %+v, want %+v", tt.pattern, got, tt.want)
		}
	}
}

func BenchmarkRouter(b *testing.B) {
	var rt Router
	mux := http.NewServeMux()
	for _, p := range []string{"GET /titles", "POST /titles", "GET /titles/{id}", "GET /titles/{id}/episodes", "GET /genres"} {
		rt.HandleFunc(p, func(http.ResponseWriter, *http.Request) {})
		mux.HandleFunc(p, func(http.ResponseWriter, *http.Request) {})
	}
	for _, bb := range []struct {
		name string
		h    http.Handler
		path string
	}{
		{"routed/Router", &rt, "/titles/7"},
		{"routed/ServeMux", mux, "/titles/7"},
		{"405/Router", &rt, "/genres"},
	} {
		b.Run(bb.name, func(b *testing.B) {
			method := "GET"
			if strings.HasPrefix(bb.name, "405") {
				method = "DELETE"
			}
			r := httptest.NewRequest(method, bb.path, nil)
			w := httptest.NewRecorder()
			b.ReportAllocs()
			for b.Loop() {
				bb.h.ServeHTTP(w, r)
			}
		})
	}
}
