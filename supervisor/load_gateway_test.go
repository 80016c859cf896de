package supervisor

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestLoadGateway(t *testing.T) {
	m, err := LoadBytes("shoal.yaml", []byte(`services:
  catalog:
    build: ./catalog
gateway:
  timeout: 3s
  routes:
    - {path: /v1/titles/, service: catalog, rewrite: /titles/}
`))
	if err != nil {
		t.Fatal(err)
	}
	if g := m.Gateway; g == nil || g.Timeout != 3*time.Second || len(g.Routes) != 1 || g.Routes[0].Line != 7 {
		t.Fatalf("Gateway = %+v", m.Gateway)
	}
	m, err = LoadBytes("shoal.yaml", []byte("services:\n  catalog:\n    build: ./catalog\n"))
	if err != nil || m.Gateway != nil {
		t.Fatalf("without gateway: %+v, %v", m, err)
	}
}

// Gateway mistakes are reported with the others, in line order, before
// anything starts.
func TestLoadGatewayErrors(t *testing.T) {
	_, err := LoadBytes("shoal.yaml", []byte(`services:
  catalog:
    build: ./catalog
    instances: 0
gateway:
  routes:
    - path: /v1/titles/
      service: catalog
      auth: jwt
    - path: /v1/titles
      service: catalog
  max_body: lots
`))
	if err == nil {
		t.Fatal("no error")
	}
	want := []string{
		"shoal.yaml:4: catalog: instances: 0 is out of range",
		"shoal.yaml:12: gateway: max_body: size \"lots\"",
	}
	got := err.Error()
	for _, w := range want {
		if !strings.Contains(got, w) {
			t.Errorf("error:\n%s\nwant it to contain %q", got, w)
		}
	}
	if strings.Index(got, want[0]) > strings.Index(got, want[1]) {
		t.Errorf("problems out of line order:\n%s", got)
	}
	var p *Problem
	if !errors.As(err, &p) || p.Line != 4 {
		t.Errorf("first problem %+v", p)
	}

	// Semantic problems, once the settings decode.
	_, err = LoadBytes("shoal.yaml", []byte(`services:
  catalog:
    build: ./catalog
gateway:
  routes:
    - path: /v1/titles/
      service: catalog
      auth: jwt
    - path: /v1/titles
      service: catalog
`))
	for _, w := range []string{
		"shoal.yaml:6: gateway: routes[0] (/v1/titles/): auth: jwt needs gateway: auth: jwt: configured",
		"shoal.yaml:9: gateway: route /v1/titles conflicts with the route on line 6 (same path, host and every method)",
	} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("error:\n%v\nwant it to contain %q", err, w)
		}
	}
}

// Load (not LoadBytes) also reads the key files the gateway names.
func TestLoadGatewayKeyFiles(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "catalog"), 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "shoal.yaml")
	manifest := `services:
  catalog:
    build: ./catalog
gateway:
  auth:
    jwt: {algorithms: [HS256], key_file: keys/missing.key, audience: flix}
  routes:
    - {path: /v1/, service: catalog, auth: jwt}
`
	if err := os.WriteFile(path, []byte(manifest), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Load(path)
	if err == nil || !strings.Contains(err.Error(), path+":5: gateway: auth:") || !strings.Contains(err.Error(), "missing.key") {
		t.Errorf("err = %v, want the missing key file at the auth: line", err)
	}
	if _, err := LoadBytes(path, []byte(manifest)); err != nil {
		t.Errorf("LoadBytes reads no files: %v", err)
	}
}
