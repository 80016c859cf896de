package main

import (
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/goccy/go-yaml"
	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/shoal-dev/shoal/manifest"
)

const schemaFile = "../../shoal.schema.json"

func TestSchemaUpToDate(t *testing.T) {
	want, err := generate()
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(schemaFile)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != want {
		t.Errorf("manifest/shoal.schema.json is out of date: run go generate ./manifest")
	}
}

// compile compiles the shipped schema with a validator of its own.
func compile(t *testing.T) *jsonschema.Schema {
	t.Helper()
	f, err := os.Open(schemaFile)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	doc, err := jsonschema.UnmarshalJSON(f)
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource("shoal.schema.json", doc); err != nil {
		t.Fatal(err)
	}
	s, err := c.Compile("shoal.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// validate checks a YAML document against s, as editors do: the YAML's
// values (anchors and merges resolved) as JSON.
func validate(t *testing.T, s *jsonschema.Schema, doc string) error {
	t.Helper()
	var v any
	if err := yaml.Unmarshal([]byte(doc), &v); err != nil {
		t.Fatalf("YAML: %v", err)
	}
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("JSON: %v", err)
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	return s.Validate(inst)
}

func TestReferenceManifestValidates(t *testing.T) {
	data, err := os.ReadFile("../../../shoal.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(data), "# yaml-language-server: $schema=manifest/shoal.schema.json\n") {
		t.Errorf("shoal.yaml does not name its schema on its first line")
	}
	if err := validate(t, compile(t), string(data)); err != nil {
		t.Errorf("shoal.yaml does not validate against the schema:\n%v", err)
	}
}

// The schema and Parse agree: what one accepts the other does, and a
// mistake the schema can see is refused by both.
func TestSchemaAgreesWithParse(t *testing.T) {
	s := compile(t)
	tests := []struct {
		name, yaml string
		ok         bool
	}{
		{"minimal", "services:\n  web: {build: ./web}\n", true},
		{"everything", `name: flix
drain_timeout: 1m30s
services:
  zeta: &z
    build: ./z
    args: [serve, --port, 8080, true]
    instances: 2
    port: [8080, 8081]
    env: {LOG_LEVEL: debug, WORKERS: 4, EMPTY: ""}
    health: /healthz
    register: supervisor
    dependencies:
      one: {timeout: 300ms, hedge: {disabled: true, min_delay: 20ms}, max_in_flight: 64, balance: {ejection: {base_time: 10s}}}
  one: {command: [./one], port: 9000}
  alpha:
    <<: *z
    port: [9001, 9002]
gateway:
  default_routes: false
  timeout: 5s
  max_body: 10MB
  access_log: true
  auth:
    jwt: {algorithms: [ES256], key_file: k.pub, issuer: i, audience: a, leeway: 45s}
    api_keys: [{name: ops, sha256: 2c0798bbed78e283bb7ba707831a2e7160753cd511f3bc9f96b0568da6430779}]
  routes:
    - {path: /a/, service: one, strip: true, max_body: 512, auth: any, hedge: false, max_attempts: 2}
    - path: /b/
      host: b.example
      methods: [GET]
      service: alpha
      rewrite: /x/
      timeout: 2s
      max_body: 1.5KiB
      rate_limit: {rate: 0.5, burst: 2, per: route}
      cors: {allow_origins: ["*"], max_age: 10m, allow_headers: [Authorization]}
`, true},
		{"typo at the top", "servcies:\n  web: {build: ./web}\n", false},
		{"typo in a service", "services:\n  web: {build: ./web, instance: 2}\n", false},
		{"typo in a route", "services:\n  web: {build: ./web}\ngateway:\n  routes:\n    - {path: /a/, service: web, tiemout: 1s}\n", false},
		{"typo in a dependency", "services:\n  web:\n    build: ./web\n    dependencies: {ratings: {timout: 1s}}\n", false},
		{"duration without unit", "drain_timeout: 10\nservices:\n  web: {build: ./web}\n", false},
		{"duration garbage", "drain_timeout: soon\nservices:\n  web: {build: ./web}\n", false},
		{"size garbage", "services:\n  web: {build: ./web}\ngateway:\n  max_body: lots\n", false},
		{"instances a string", "services:\n  web: {build: ./web, instances: \"3\"}\n", false},
		{"build a number", "services:\n  web: {build: 3}\n", false},
		{"command a string", "services:\n  py: {command: python3 app.py}\n", false},
		{"port out of range", "services:\n  web: {build: ./web, port: [70000]}\n", false},
		{"register unknown", "services:\n  web: {build: ./web, register: gossip}\n", false},
		{"auth mode unknown", "services:\n  web: {build: ./web}\ngateway:\n  routes:\n    - {path: /a/, service: web, auth: jtw}\n", false},
		{"per unknown", "services:\n  web: {build: ./web}\ngateway:\n  routes:\n    - {path: /a/, service: web, rate_limit: {rate: 1, per: ip}}\n", false},
		{"service name", "services:\n  My_Web: {build: ./web}\n", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, perr := manifest.Parse("shoal.yaml", []byte(tt.yaml))
			serr := validate(t, s, tt.yaml)
			if (perr == nil) != tt.ok || (serr == nil) != tt.ok {
				t.Errorf("Parse: %v\nschema: %v\nwant valid: %v", perr, serr, tt.ok)
			}
		})
	}
}
