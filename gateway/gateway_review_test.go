package gateway_test

import (
	"encoding/json"
	"net/http"
	"os"
	"testing"

	"github.com/shoal-dev/shoal/gateway"
	"github.com/shoal-dev/shoal/manifest"
)

// The events inbox (/_events) is an internal endpoint: producers reach it
// over the mesh, never from outside. Through the gateway anyone could forge
// events (the Inbox trusts Shoal-Event-Id/Topic and applies the payload).
func TestReviewEventsInboxNotReachable(t *testing.T) {
	f := newRouted(t, &gateway.Config{
		Routes: []gateway.Route{
			{Path: "/x/", Service: "a", Strip: true},
			{Path: "/y/", Service: "a", Rewrite: "/"},
		},
	})
	for _, p := range []string{"/a/_events", "/x/_events", "/y/_events", "/x/_events/", "/x/./_events", "/x/_EVENTS", "/x/%5fevents"} {
		resp, body := f.do(t, call{method: "POST", path: p, body: "{}",
			header: map[string]string{"Shoal-Event-Id": "forged-1", "Shoal-Event-Topic": "titles"}})
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("POST %s: %d %s; want 404 (the events inbox is internal)", p, resp.StatusCode, body)
		}
	}
	// Paths that merely start alike still go through.
	resp, body := f.do(t, call{path: "/x/_eventsx"})
	if resp.StatusCode != 200 {
		t.Errorf("GET /x/_eventsx: %d %s", resp.StatusCode, body)
	}
}

// Connection: Shoal-Subject makes httputil.ReverseProxy drop that header as
// hop-by-hop, after the gateway set it: the service then sees an
// authenticated route's request without its verified identity.
func TestReviewConnectionHeaderCannotDropIdentity(t *testing.T) {
	f := newRouted(t, &gateway.Config{
		Auth:   gateway.AuthConfig{APIKeys: []gateway.APIKey{{Name: "mobile", SHA256: sha("s3cret")}}},
		Routes: []gateway.Route{{Path: "/private/", Service: "a", Auth: gateway.AuthAPIKey}},
	})
	resp, body := f.do(t, call{path: "/private/x", header: map[string]string{
		"X-API-Key": "s3cret", "Connection": "Shoal-Subject, Shoal-Auth, X-Request-Id"}})
	if resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	var got headerEcho
	json.Unmarshal(body, &got)
	if got.Subject != "mobile" || got.Auth != "api_key:mobile" || got.RequestID == "" {
		t.Errorf("service saw subject %q auth %q request id %q; want mobile, api_key:mobile and an ID", got.Subject, got.Auth, got.RequestID)
	}
}

// A prefix that ends where the client escaped a slash (/x%2Fabc under the
// route /x/) must not give the service a path without a leading slash.
func TestReviewStripEncodedSlashBoundary(t *testing.T) {
	f := newRouted(t, &gateway.Config{
		Routes: []gateway.Route{
			{Path: "/x/", Service: "a", Strip: true},
			{Path: "/r/", Service: "a", Rewrite: "/titles"},
		},
	})
	for p, want := range map[string]string{"/x%2Fabc": "/abc", "/r%2Fabc": "/titles/abc"} {
		resp, body := f.do(t, call{path: p})
		var got headerEcho
		json.Unmarshal(body, &got)
		if resp.StatusCode != 200 || got.Path != want || got.RawPath != "" {
			t.Errorf("GET %s: %d, service saw path %q raw %q; want %q", p, resp.StatusCode, got.Path, got.RawPath, want)
		}
	}
}

// The reference manifest: GET /catalog/titles/7 must reach catalog (the
// e2e flix test does exactly that), but the POST-only /catalog/titles route
// is the longest prefix and answers 405.
func TestReviewReferenceManifestCatalogRead(t *testing.T) {
	data, err := os.ReadFile("../shoal.yaml")
	if err != nil {
		t.Skip(err)
	}
	cfg, err := manifest.ParseGateway("shoal.yaml", data)
	if err != nil {
		t.Fatal(err)
	}
	// Keep the routes, point catalog at the echo service "a", drop auth key files.
	cfg.Auth = gateway.AuthConfig{APIKeys: []gateway.APIKey{{Name: "k", SHA256: sha("k")}}}
	var routes []gateway.Route
	for _, r := range cfg.Routes {
		if r.Service == "catalog" {
			r.Service = "a"
			routes = append(routes, r)
		}
	}
	cfg.Routes = routes
	f := newRouted(t, cfg)
	resp, body := f.do(t, call{path: "/catalog/titles/7"})
	if resp.StatusCode != 200 {
		t.Errorf("GET /catalog/titles/7: %d %s; want 200 from catalog", resp.StatusCode, body)
	}
}

// A reload (any edit of the manifest, or SIGHUP) must not hand every client
// a fresh bucket: routes whose limit did not change keep their state.
func TestReviewReloadKeepsRateLimitState(t *testing.T) {
	cfg := &gateway.Config{Routes: []gateway.Route{
		{Path: "/limited/", Service: "a", RateLimit: &gateway.RateLimit{Rate: 0.001, Burst: 1}},
	}}
	f := newRouted(t, cfg)
	if resp, _ := f.do(t, call{path: "/limited/x"}); resp.StatusCode != 200 {
		t.Fatalf("first: %d", resp.StatusCode)
	}
	if resp, _ := f.do(t, call{path: "/limited/x"}); resp.StatusCode != 429 {
		t.Fatalf("second: %d", resp.StatusCode)
	}
	cfg2 := &gateway.Config{Routes: []gateway.Route{
		{Path: "/other/", Service: "b"},
		{Path: "/limited/", Service: "a", RateLimit: &gateway.RateLimit{Rate: 0.001, Burst: 1}},
	}}
	if err := f.gw.SetConfig(cfg2, t.TempDir()); err != nil {
		t.Fatal(err)
	}
	if resp, _ := f.do(t, call{path: "/limited/x"}); resp.StatusCode != 429 {
		t.Errorf("after a reload that did not touch the route: %d; want 429 (bucket kept)", resp.StatusCode)
	}
}

// A host route must not be skipped by spelling the host as an FQDN with a
// trailing dot (which DNS and browsers treat as the same host).
func TestReviewHostTrailingDot(t *testing.T) {
	f := newRouted(t, &gateway.Config{
		Auth: gateway.AuthConfig{APIKeys: []gateway.APIKey{{Name: "ops", SHA256: sha("s3cret")}}},
		Routes: []gateway.Route{
			{Path: "/", Host: "admin.example.com", Service: "a", Auth: gateway.AuthAPIKey},
			{Path: "/", Service: "a"},
		},
	})
	for _, h := range []string{"admin.example.com", "admin.example.com.", "ADMIN.example.com.:8080"} {
		if resp, body := f.do(t, call{path: "/users", host: h}); resp.StatusCode != 401 {
			t.Errorf("Host %q: %d %s; want 401 (the admin host's route)", h, resp.StatusCode, body)
		}
	}
}
