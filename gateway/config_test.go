package gateway_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shoal-dev/shoal/gateway"
	"github.com/shoal-dev/shoal/manifest"
)

// Check adds the gateway's own checks to the manifest's: routes to the
// services' admin paths, key files. Its problems are placed in the file.
func TestCheck(t *testing.T) {
	const head = "services:\n  a:\n    build: ./a\ngateway:\n  routes:\n" // the first route on line 6
	tests := []struct{ name, yaml, want string }{
		{"fine", "    - {path: /v1/, service: a, strip: true}\n    - {path: /, service: a, max_body: 1MB}\n", ""},
		{"admin rewrite", "    - {path: /health, service: a, rewrite: /healthz}\n",
			"shoal.yaml:6:7: gateway.routes[0]: the requests would go to /healthz, an admin path of the service"},
		{"admin path", "    - {path: /v1/, service: a}\n    - {path: /Metrics/, service: a}\n", "shoal.yaml:7:7: gateway.routes[1]: the requests would go to /Metrics"},
		{"events inbox", "    - {path: /in/, service: a, rewrite: /_events/x}\n", "/_events/x, an admin path"},
		{"admin strip", "    - {path: /readyz, service: a, strip: true}\n", ""}, // goes to /: fine
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := manifest.ParseGateway("shoal.yaml", []byte(head+tt.yaml))
			if err != nil {
				t.Fatalf("ParseGateway: %v", err)
			}
			err = gateway.Check(cfg, t.TempDir())
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Check: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Check = %v, want %q", err, tt.want)
			}
			if me := (*manifest.Error)(nil); !errors.As(err, &me) || me.File != "shoal.yaml" {
				t.Errorf("not a *manifest.Error with the file: %#v", err)
			}
		})
	}
}

// Key files are read by Check, and a missing one is reported at auth:.
func TestCheckKeyFiles(t *testing.T) {
	dir := t.TempDir()
	doc := "gateway:\n  auth:\n    jwt: {algorithms: [HS256], key_file: keys/jwt.key, audience: flix}\n  routes:\n    - {path: /v1/, service: catalog, auth: jwt}\n"
	cfg, err := manifest.ParseGateway("shoal.yaml", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	err = gateway.Check(cfg, dir)
	if err == nil || !strings.HasPrefix(err.Error(), "shoal.yaml:2:3: gateway.auth: ") || !strings.Contains(err.Error(), filepath.Join(dir, "keys", "jwt.key")) {
		t.Errorf("Check = %v; want the missing key file at the auth: line", err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "keys"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "keys", "jwt.key"), []byte(strings.Repeat("k", 32)), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := gateway.Check(cfg, dir); err != nil {
		t.Errorf("Check with the key file: %v", err)
	}
}

// Validate works on a Config built in code: problems have a path, no place.
func TestValidateInCode(t *testing.T) {
	cfg := &gateway.Config{Routes: []gateway.Route{{Path: "/a/", Service: "a"}, {Path: "/a", Service: "b"}}}
	err := cfg.Validate()
	if err == nil || err.Error() != "gateway.routes[1]: route /a conflicts with routes[0] (same path, host and every method); give them different methods or hosts, or remove one" {
		t.Errorf("err = %v", err)
	}
	if err := (&gateway.Config{}).Validate(); err != nil {
		t.Errorf("zero Config: %v", err)
	}
	err = gateway.Check(&gateway.Config{Routes: []gateway.Route{{Path: "/x/", Service: "a", Rewrite: "/infoz"}}}, "")
	if err == nil || err.Error() != "gateway.routes[0]: the requests would go to /infoz, an admin path of the service, which the gateway never serves" {
		t.Errorf("Check = %v", err)
	}
}
