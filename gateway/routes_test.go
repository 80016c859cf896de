package gateway

import "testing"

func mustCompile(t testing.TB, routes ...Route) *table {
	t.Helper()
	tb, err := compile(&Config{Routes: routes}, "")
	if err != nil {
		t.Fatal(err)
	}
	return tb
}

var matchRoutes = []Route{
	{Path: "/v1/titles/", Service: "catalog", Methods: []string{"GET", "HEAD"}},
	{Path: "/v1/titles/", Service: "writer", Methods: []string{"POST"}},
	{Path: "/v1/titles/", Host: "admin.example.com", Service: "backoffice"},
	{Path: "/v1/titles/popular", Service: "popular"},
	{Path: "/v1", Service: "v1"},
	{Path: "/static/", Host: "cdn.example.com:8443", Service: "cdn"},
	{Path: "/", Host: "www.example.com", Service: "web"},
}

func TestMatch(t *testing.T) {
	tb := mustCompile(t, matchRoutes...)
	tests := []struct {
		host, path, method string
		want               string // service; "" for none
		wrongMethod        bool
	}{
		{"api.example.com", "/v1/titles/7", "GET", "catalog", false},
		{"api.example.com", "/v1/titles", "HEAD", "catalog", false},
		{"api.example.com", "/v1/titles/", "POST", "writer", false},
		{"api.example.com", "/v1/titles/7", "DELETE", "", true},
		{"api.example.com", "/v1/titlesx", "GET", "v1", false}, // segment-wise
		{"api.example.com", "/v1/titles/popular", "DELETE", "popular", false},
		{"api.example.com", "/v1/titles/popularity", "GET", "catalog", false},
		{"api.example.com", "/v1/titles/popular/7", "GET", "popular", false},
		{"ADMIN.example.com:8080", "/v1/titles/7", "DELETE", "backoffice", false}, // host beats, port and case ignored
		{"admin.example.com", "/v1/titles/7", "GET", "backoffice", false},
		{"api.example.com", "/v1", "PUT", "v1", false},
		{"api.example.com", "/v2", "GET", "", false},
		{"cdn.example.com:8443", "/static/a.css", "GET", "cdn", false},
		{"cdn.example.com", "/static/a.css", "GET", "", false}, // the route names a port
		{"www.example.com", "/anything", "GET", "web", false},
		{"www.example.com", "/v1/titles/7", "GET", "catalog", false}, // longest prefix first
		{"[::1]:80", "/v1", "GET", "v1", false},
		{"", "/", "GET", "", false},
	}
	for _, tt := range tests {
		rt, wrong := tb.match(tt.host, tt.path, tt.method)
		got := ""
		if rt != nil {
			got = rt.service
		}
		if got != tt.want || wrong != tt.wrongMethod {
			t.Errorf("match(%q, %q, %s) = %q, wrong method %v; want %q, %v", tt.host, tt.path, tt.method, got, wrong, tt.want, tt.wrongMethod)
		}
	}
	if a := tb.allow("api.example.com", "/v1/titles/7"); a != "GET, HEAD, POST" {
		t.Errorf("Allow = %q", a)
	}
}

func TestTarget(t *testing.T) {
	tests := []struct {
		route         Route
		path, raw     string
		want, wantRaw string
	}{
		{Route{Path: "/v1/titles/"}, "/v1/titles/7", "", "/v1/titles/7", ""},
		{Route{Path: "/v1/titles/", Strip: true}, "/v1/titles/7", "", "/7", ""},
		{Route{Path: "/v1/titles/", Strip: true}, "/v1/titles", "", "/", ""},
		{Route{Path: "/v1/titles/", Strip: true}, "/v1/titles/", "", "/", ""},
		{Route{Path: "/v1/titles/", Rewrite: "/titles/"}, "/v1/titles/7", "", "/titles/7", ""},
		{Route{Path: "/v1/titles", Rewrite: "/titles"}, "/v1/titles/7", "", "/titles/7", ""},
		{Route{Path: "/v1/titles/", Rewrite: "/titles/"}, "/v1/titles", "", "/titles/", ""},
		{Route{Path: "/", Rewrite: "/api/"}, "/x/y", "", "/api/x/y", ""},
		{Route{Path: "/files/", Strip: true}, "/files/a/b", "/files/a%2Fb", "/a/b", "/a%2Fb"},
		{Route{Path: "/files/", Rewrite: "/f/"}, "/files/a/b", "/files/a%2Fb", "/f/a/b", "/f/a%2Fb"},
	}
	for _, tt := range tests {
		tt.route.Service = "svc"
		tb := mustCompile(t, tt.route)
		got, raw := tb.routes[0].target(tt.path, tt.raw)
		if got != tt.want || raw != tt.wantRaw {
			t.Errorf("%+v: target(%q, %q) = %q, %q; want %q, %q", tt.route, tt.path, tt.raw, got, raw, tt.want, tt.wantRaw)
		}
	}
}

func TestCleanPath(t *testing.T) {
	for in, want := range map[string]string{
		"/a/b": "/a/b", "/a/b/": "/a/b/", "": "/", "//a": "/a", "/a/../b": "/b", "/a/./b/": "/a/b/",
		"/a/..": "/", "/..": "/", "a": "/a",
	} {
		if got := cleanPath(in); got != want {
			t.Errorf("cleanPath(%q) = %q, want %q", in, got, want)
		}
	}
}

func FuzzMatch(f *testing.F) {
	tb := mustCompile(f, matchRoutes...)
	f.Add("api.example.com", "/v1/titles/7", "GET")
	f.Add("admin.example.com:1", "/v1/titles", "PATCH")
	f.Add("", "", "")
	f.Add("cdn.example.com:8443", "/static", "GET")
	f.Fuzz(func(t *testing.T, host, p, method string) {
		p = cleanPath(p)
		rt, wrong := tb.match(host, p, method)
		if rt != nil && wrong {
			t.Fatal("a route and a wrong method")
		}
		longest := -1 // length of the longest prefix that takes path and host
		for _, r := range tb.routes {
			if prefixMatch(p, r.prefix) && hostMatch(r.host, host) {
				longest = max(longest, len(r.prefix))
			}
		}
		switch {
		case rt != nil:
			if !prefixMatch(p, rt.prefix) || !hostMatch(rt.host, host) || !methodMatch(rt.methods, method) {
				t.Fatalf("chose %q (host %q) for %s %q %q", rt.prefix, rt.host, method, host, p)
			}
			if len(rt.prefix) != longest {
				t.Fatalf("chose %q for %q; a longer prefix matches", rt.prefix, p)
			}
		case wrong:
			if longest < 0 || tb.allow(host, p) == "" {
				t.Fatalf("405 for %q %q with no route or no Allow", host, p)
			}
		default:
			if longest >= 0 {
				t.Fatalf("no route for %s %q %q, but a prefix of length %d matches", method, host, p, longest)
			}
		}
	})
}

func BenchmarkMatch(b *testing.B) {
	routes := append([]Route(nil), matchRoutes...)
	for _, s := range []string{"users", "orders", "payments", "search", "ratings", "history", "playback", "profiles"} {
		routes = append(routes, Route{Path: "/v1/" + s + "/", Service: s}, Route{Path: "/v2/" + s + "/", Service: s, Strip: true})
	}
	tb := mustCompile(b, routes...)
	b.ReportAllocs()
	for b.Loop() {
		if rt, _ := tb.match("api.example.com:8080", "/v2/profiles/42/avatar", "GET"); rt == nil {
			b.Fatal("no match")
		}
	}
}
