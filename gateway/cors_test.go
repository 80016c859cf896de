package gateway

import (
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestCORSHandle(t *testing.T) {
	site := &CORS{
		AllowOrigins:     []string{"https://app.example.com", "http://localhost:3000"},
		AllowMethods:     []string{"GET", "POST", "DELETE"},
		AllowHeaders:     []string{"Authorization", "Content-Type"},
		ExposeHeaders:    []string{"RateLimit-Remaining", "Retry-After"},
		AllowCredentials: true,
		MaxAge:           10 * time.Minute,
	}
	public := &CORS{AllowOrigins: []string{"*"}}

	type want map[string]string // response headers; "" means absent
	corsHeaders := []string{"Access-Control-Allow-Origin", "Access-Control-Allow-Methods", "Access-Control-Allow-Headers",
		"Access-Control-Expose-Headers", "Access-Control-Allow-Credentials", "Access-Control-Max-Age"}
	for _, tc := range []struct {
		name     string
		c        *CORS
		method   string
		header   map[string]string
		done     bool
		status   int // when done
		want     want
		wantVary string
	}{
		{name: "preflight allowed", c: site, method: "OPTIONS",
			header: map[string]string{"Origin": "https://app.example.com", "Access-Control-Request-Method": "DELETE", "Access-Control-Request-Headers": "authorization"},
			done:   true, status: 204, wantVary: "Origin, Access-Control-Request-Method, Access-Control-Request-Headers",
			want: want{"Access-Control-Allow-Origin": "https://app.example.com", "Access-Control-Allow-Methods": "GET, POST, DELETE",
				"Access-Control-Allow-Headers": "Authorization, Content-Type", "Access-Control-Allow-Credentials": "true", "Access-Control-Max-Age": "600"}},
		{name: "preflight origin case-insensitive", c: site, method: "OPTIONS",
			header: map[string]string{"Origin": "HTTPS://APP.example.com", "Access-Control-Request-Method": "GET"},
			done:   true, status: 204, wantVary: "Origin, Access-Control-Request-Method, Access-Control-Request-Headers",
			want: want{"Access-Control-Allow-Origin": "HTTPS://APP.example.com", "Access-Control-Allow-Methods": "GET, POST, DELETE",
				"Access-Control-Allow-Headers": "Authorization, Content-Type", "Access-Control-Allow-Credentials": "true", "Access-Control-Max-Age": "600"}},
		{name: "preflight denied origin", c: site, method: "OPTIONS",
			header: map[string]string{"Origin": "https://evil.example.com", "Access-Control-Request-Method": "GET"},
			done:   true, status: 204, wantVary: "Origin, Access-Control-Request-Method, Access-Control-Request-Headers", want: want{}},
		{name: "preflight lookalike origin", c: site, method: "OPTIONS",
			header: map[string]string{"Origin": "https://app.example.com.evil.com", "Access-Control-Request-Method": "GET"},
			done:   true, status: 204, wantVary: "Origin, Access-Control-Request-Method, Access-Control-Request-Headers", want: want{}},
		{name: "preflight method not allowed", c: site, method: "OPTIONS",
			header: map[string]string{"Origin": "https://app.example.com", "Access-Control-Request-Method": "PUT"},
			done:   true, status: 204, wantVary: "Origin, Access-Control-Request-Method, Access-Control-Request-Headers", want: want{}},
		{name: "preflight wildcard, default methods", c: public, method: "OPTIONS",
			header: map[string]string{"Origin": "https://anyone.example", "Access-Control-Request-Method": "POST"},
			done:   true, status: 204, wantVary: "Origin, Access-Control-Request-Method, Access-Control-Request-Headers",
			want: want{"Access-Control-Allow-Origin": "*", "Access-Control-Allow-Methods": "POST"}},
		{name: "preflight wildcard, method outside defaults", c: public, method: "OPTIONS",
			header: map[string]string{"Origin": "https://anyone.example", "Access-Control-Request-Method": "DELETE"},
			done:   true, status: 204, wantVary: "Origin, Access-Control-Request-Method, Access-Control-Request-Headers", want: want{}},
		{name: "OPTIONS without Origin goes to the service", c: site, method: "OPTIONS",
			header:   map[string]string{"Access-Control-Request-Method": "GET"},
			wantVary: "Origin", want: want{}},
		{name: "plain OPTIONS goes to the service", c: site, method: "OPTIONS",
			header:   map[string]string{"Origin": "https://app.example.com"},
			wantVary: "Origin",
			want: want{"Access-Control-Allow-Origin": "https://app.example.com", "Access-Control-Expose-Headers": "RateLimit-Remaining, Retry-After",
				"Access-Control-Allow-Credentials": "true"}},
		{name: "simple request allowed", c: site, method: "GET",
			header:   map[string]string{"Origin": "http://localhost:3000"},
			wantVary: "Origin",
			want: want{"Access-Control-Allow-Origin": "http://localhost:3000", "Access-Control-Expose-Headers": "RateLimit-Remaining, Retry-After",
				"Access-Control-Allow-Credentials": "true"}},
		{name: "simple request denied", c: site, method: "POST",
			header: map[string]string{"Origin": "http://localhost:3001"}, wantVary: "Origin", want: want{}},
		{name: "same-origin request", c: site, method: "GET", wantVary: "Origin", want: want{}},
		{name: "simple request wildcard", c: public, method: "GET",
			header: map[string]string{"Origin": "https://anyone.example"}, wantVary: "Origin",
			want: want{"Access-Control-Allow-Origin": "*"}},
		{name: "credentials with wildcard fail closed", c: &CORS{AllowOrigins: []string{"*"}, AllowCredentials: true}, method: "GET",
			header: map[string]string{"Origin": "https://anyone.example"}, wantVary: "Origin", want: want{}},
		{name: "nil policy", c: nil, method: "OPTIONS",
			header: map[string]string{"Origin": "https://app.example.com", "Access-Control-Request-Method": "GET"}, want: want{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(tc.method, "/svc/x", nil)
			for k, v := range tc.header {
				r.Header.Set(k, v)
			}
			w := httptest.NewRecorder()
			if done := applyCORS(tc.c, w, r); done != tc.done {
				t.Fatalf("done = %v, want %v", done, tc.done)
			}
			if tc.done && w.Code != tc.status {
				t.Errorf("status = %d, want %d", w.Code, tc.status)
			}
			if !tc.done && w.Body.Len() > 0 {
				t.Errorf("wrote a body without being done")
			}
			for _, h := range corsHeaders {
				if got := w.Header().Get(h); got != tc.want[h] {
					t.Errorf("%s = %q, want %q", h, got, tc.want[h])
				}
			}
			if got := strings.Join(w.Header().Values("Vary"), ", "); got != tc.wantVary {
				t.Errorf("Vary = %q, want %q", got, tc.wantVary)
			}
		})
	}
}

func TestCORSValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		c    CORS
		want string
	}{
		{name: "zero", c: CORS{}},
		{name: "wildcard", c: CORS{AllowOrigins: []string{"*"}, AllowHeaders: []string{"*"}, ExposeHeaders: []string{"*"}}},
		{name: "origins", c: CORS{AllowOrigins: []string{"https://a.example", "http://localhost:8080", "app://x"}, AllowMethods: []string{"GET", "PATCH"},
			AllowHeaders: []string{"Authorization"}, AllowCredentials: true, MaxAge: time.Hour}},
		{name: "wildcard with credentials", c: CORS{AllowOrigins: []string{"*"}, AllowCredentials: true}, want: "allow_credentials"},
		{name: "settings without origins", c: CORS{AllowMethods: []string{"GET"}}, want: "allow_origins is required"},
		{name: "trailing slash", c: CORS{AllowOrigins: []string{"https://a.example/"}}, want: "no path"},
		{name: "path", c: CORS{AllowOrigins: []string{"https://a.example/app"}}, want: "no path"},
		{name: "no scheme", c: CORS{AllowOrigins: []string{"a.example"}}, want: "scheme://host"},
		{name: "null", c: CORS{AllowOrigins: []string{"null"}}, want: "sandboxed"},
		{name: "user", c: CORS{AllowOrigins: []string{"https://u@a.example"}}, want: "no path"},
		{name: "pattern", c: CORS{AllowOrigins: []string{"https://*.example.com"}}, want: "allow_origins"},
		{name: "bad method", c: CORS{AllowOrigins: []string{"*"}, AllowMethods: []string{"GET POST"}}, want: "allow_methods"},
		{name: "bad header", c: CORS{AllowOrigins: []string{"*"}, AllowHeaders: []string{"X-A, X-B"}}, want: "allow_headers"},
		{name: "bad expose", c: CORS{AllowOrigins: []string{"*"}, ExposeHeaders: []string{""}}, want: "expose_headers"},
		{name: "negative max_age", c: CORS{AllowOrigins: []string{"*"}, MaxAge: -time.Second}, want: "max_age"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.c.Validate()
			if (err == nil) != (tc.want == "") || err != nil && !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate = %v, want %q", err, tc.want)
			}
		})
	}
}

func TestCORSYAML(t *testing.T) {
	const doc = `
gateway:
  routes:
    - path: /svc/
      service: svc
      cors:
        allow_origins: [https://app.example.com]
        allow_methods: [GET, POST]
        allow_headers: [Authorization]
        expose_headers: [RateLimit-Remaining]
        allow_credentials: true
        max_age: 10m
`
	c := *parseGateway(t, doc).Routes[0].CORS
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.MaxAge != 10*time.Minute || !c.AllowCredentials || len(c.AllowMethods) != 2 || c.ExposeHeaders[0] != "RateLimit-Remaining" {
		t.Fatalf("decoded %+v", c)
	}
	r := httptest.NewRequest("OPTIONS", "/svc/x", nil)
	r.Header.Set("Origin", "https://app.example.com")
	r.Header.Set("Access-Control-Request-Method", "POST")
	w := httptest.NewRecorder()
	if !applyCORS(&c, w, r) || w.Header().Get("Access-Control-Max-Age") != "600" {
		t.Fatalf("preflight: %v", w.Header())
	}
}
