package gateway_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/gateway"
)

const goodManifest = `name: flix
services:
  catalog:
    build: ./catalog
gateway:
  timeout: 5s
  max_body: 2MB
  access_log: true
  routes:
    - path: /v1/titles/
      host: API.example.com
      methods: [GET, HEAD]
      service: catalog
      rewrite: /titles/
      timeout: 2s
      max_attempts: 2
      hedge: false
      max_body: 1MiB
      rate_limit: {rate: 100, burst: 200, per: client}
      cors: {allow_origins: ["https://flix.example"], max_age: 10m}
    - path: /v1/titles/
      methods: [POST]
      service: catalog
      strip: true
    - {path: /, service: catalog, max_body: 512}
`

func TestParseManifest(t *testing.T) {
	cfg, err := gateway.ParseManifest("shoal.yaml", []byte(goodManifest))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Timeout != 5*time.Second || cfg.MaxBody != 2_000_000 || !cfg.AccessLog || cfg.DefaultRoutes != nil {
		t.Errorf("config %+v", cfg)
	}
	if len(cfg.Routes) != 3 {
		t.Fatalf("%d routes", len(cfg.Routes))
	}
	r := cfg.Routes[0]
	if r.Line != 10 || r.Path != "/v1/titles/" || r.Host != "API.example.com" || r.Service != "catalog" ||
		r.Rewrite != "/titles/" || r.Timeout != 2*time.Second || r.MaxAttempts != 2 || r.Hedge == nil || *r.Hedge ||
		r.MaxBody != 1<<20 || r.RateLimit == nil || r.RateLimit.Rate != 100 || r.CORS == nil || r.CORS.MaxAge != 10*time.Minute {
		t.Errorf("route 0: %+v", r)
	}
	if cfg.Routes[1].Line != 21 || !cfg.Routes[1].Strip || cfg.Routes[2].Line != 25 || cfg.Routes[2].MaxBody != 512 {
		t.Errorf("routes 1, 2: %+v %+v", cfg.Routes[1], cfg.Routes[2])
	}
	if err := cfg.Check(t.TempDir()); err != nil {
		t.Errorf("Check: %v", err)
	}

	// No gateway: key, or an empty one: default routes only.
	for _, doc := range []string{"services:\n  a:\n    build: ./a\n", "gateway:\n", "gateway: {}\n"} {
		cfg, err := gateway.ParseManifest("shoal.yaml", []byte(doc))
		if err != nil || len(cfg.Routes) != 0 || cfg.DefaultRoutes != nil {
			t.Errorf("%q: %+v, %v", doc, cfg, err)
		}
	}
}

func TestParseManifestErrors(t *testing.T) {
	const head = "services:\n  catalog:\n    build: ./catalog\ngateway:\n" // gateway: on line 4
	tests := []struct {
		name, yaml string
		want       []string
	}{
		{"unknown key", "  tiemout: 1s\n", []string{`shoal.yaml:5: gateway: unknown field "tiemout"`}},
		{"unknown route key", "  routes:\n    - path: /a/\n      service: a\n      strp: true\n",
			[]string{`shoal.yaml:8: gateway: routes[0]: unknown field "strp"`}},
		{"bad duration", "  routes:\n    - {path: /a/, service: a}\n    - path: /b/\n      service: b\n      timeout: fast\n",
			[]string{`shoal.yaml:9: gateway: routes[1]: timeout "fast" is not a duration`}},
		{"key after routes", "  routes:\n    - {path: /a/, service: a}\n  timeout: x\n", []string{`shoal.yaml:7: gateway: timeout "x" is not a duration`}},
		{"duration without unit", "  timeout: 10\n", []string{"shoal.yaml:5: gateway: timeout needs a unit, e.g. timeout: 10s"}},
		{"bad size", "  max_body: 10 parsecs\n", []string{`shoal.yaml:5: gateway: max_body: size "10 parsecs"`}},
		{"not a mapping", "  - a\n", []string{"shoal.yaml:4: gateway: is a mapping of settings"}},
		{"missing path and service", "  routes:\n    - strip: true\n",
			[]string{"shoal.yaml:6: gateway: routes[0]: path is required", "shoal.yaml:6: gateway: routes[0]: service is required"}},
		{"relative path", "  routes:\n    - {path: v1/, service: a}\n", []string{`shoal.yaml:6: gateway: routes[0] (v1/): path "v1/" must start with /`}},
		{"unclean path", "  routes:\n    - {path: /v1//x/, service: a}\n", []string{"is not clean"}},
		{"bad service", "  routes:\n    - {path: /a/, service: Catalog_1}\n", []string{`routes[0] (/a/): service "Catalog_1" is not a service name`}},
		{"internal service", "  routes:\n    - {path: /a/, service: shoal-supervisor}\n", []string{"belongs to shoal itself"}},
		{"strip and rewrite", "  routes:\n    - {path: /a/, service: a, strip: true, rewrite: /b/}\n", []string{"strip and rewrite"}},
		{"admin rewrite", "  routes:\n    - {path: /health, service: a, rewrite: /healthz}\n",
			[]string{"shoal.yaml:6: gateway: routes[0] (/health): the requests would go to /healthz, an admin path"}},
		{"admin path", "  routes:\n    - {path: /Metrics/, service: a}\n", []string{"admin path"}},
		{"admin strip", "  routes:\n    - {path: /readyz, service: a, strip: true}\n", []string{}}, // goes to /: fine
		{"attempts", "  routes:\n    - {path: /a/, service: a, max_attempts: 9}\n", []string{"max_attempts 9 out of range [1, 8]"}},
		{"auth mode", "  routes:\n    - {path: /a/, service: a, auth: jtw}\n", []string{`auth "jtw": use none, jwt, api_key or any`}},
		{"jwt not configured", "  routes:\n    - {path: /a/, service: a, auth: jwt}\n", []string{"auth: jwt needs gateway: auth: jwt: configured"}},
		{"api key not configured", "  routes:\n    - {path: /a/, service: a, auth: any}\n", []string{"auth: any needs"}},
		{"rate", "  routes:\n    - {path: /a/, service: a, rate_limit: {rate: 0, burst: 3}}\n", []string{"shoal.yaml:6: gateway: routes[0] (/a/): rate_limit: rate 0 must be a positive"}},
		{"rate per", "  routes:\n    - {path: /a/, service: a, rate_limit: {rate: 1, per: ip}}\n", []string{`rate_limit: per "ip"`}},
		{"method", "  routes:\n    - {path: /a/, service: a, methods: [GET, \"BAD METHOD\"]}\n", []string{`method "BAD METHOD" is not an HTTP method`}},
		{"negative timeout", "  routes:\n    - {path: /a/, service: a, timeout: -1s}\n", []string{"timeout -1s must not be negative"}},
		{"conflict", "  routes:\n    - path: /v1/titles/\n      service: catalog\n      methods: [GET, POST]\n    - path: /v1/titles\n      service: other\n      methods: [get]\n",
			[]string{"shoal.yaml:9: gateway: route /v1/titles conflicts with the route on line 6 (same path, host and method GET)"}},
		{"conflict, all methods", "  routes:\n    - {path: /a/, service: a}\n    - {path: /a/, service: b}\n", []string{"shoal.yaml:7: gateway: route /a/ conflicts with the route on line 6 (same path, host and every method)"}},
		{"no conflict: methods", "  routes:\n    - {path: /a/, service: a, methods: [GET]}\n    - {path: /a/, service: b, methods: [POST]}\n", []string{}},
		{"no conflict: hosts", "  routes:\n    - {path: /a/, service: a, host: x.example}\n    - {path: /a/, service: b}\n", []string{}},
		{"syntax", "  routes: [\n", []string{"shoal.yaml:", "invalid YAML"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := gateway.ParseManifest("shoal.yaml", []byte(head+tt.yaml))
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("no error, want %q", tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error:\n%v\nwant it to contain %q", err, w)
				}
			}
			var ce *gateway.ConfigError
			if !errors.As(err, &ce) || ce.File != "shoal.yaml" {
				t.Errorf("not a *ConfigError with the file: %#v", err)
			}
		})
	}
}

func TestParseSize(t *testing.T) {
	tests := []struct {
		in   string
		want gateway.Size
		ok   bool
	}{
		{"1024", 1024, true}, {"10MB", 10_000_000, true}, {"512KB", 512_000, true}, {"1MiB", 1 << 20, true},
		{"1.5KiB", 1536, true}, {"2 GiB", 2 << 30, true}, {"3gb", 3e9, true}, {"0", 0, true}, {"7B", 7, true},
		{"", 0, false}, {"MB", 0, false}, {"-1", 0, false}, {"1.2.3MB", 0, false}, {"10 parsecs", 0, false},
		{"99999999999GiB", 0, false},
	}
	for _, tt := range tests {
		got, err := gateway.ParseSize(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d, ok %v", tt.in, got, err, tt.want, tt.ok)
		}
	}
	if s := gateway.Size(10 << 20).String(); s != "10MiB" {
		t.Errorf("String: %s", s)
	}
}

// Validate works on a Config built in code (no lines).
func TestValidateInCode(t *testing.T) {
	cfg := &gateway.Config{Routes: []gateway.Route{{Path: "/a/", Service: "a"}, {Path: "/a", Service: "b"}}}
	err := cfg.Validate()
	if err == nil || err.Error() != "gateway: route /a conflicts with routes[0] (same path, host and every method); give them different methods or hosts, or remove one" {
		t.Errorf("err = %v", err)
	}
	if err := (&gateway.Config{}).Validate(); err != nil {
		t.Errorf("zero Config: %v", err)
	}
}

func FuzzParseManifest(f *testing.F) {
	f.Add([]byte(goodManifest))
	f.Add([]byte("gateway:\n  routes:\n    - {path: /a/, service: a, auth: jwt}\n"))
	f.Add([]byte("gateway: &g\n  timeout: 1s\nother: *g\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := gateway.ParseManifest("f.yaml", data)
		if err != nil {
			return
		}
		if err := cfg.Validate(); err != nil {
			t.Fatalf("ParseManifest accepted a config Validate refuses: %v", err)
		}
	})
}
