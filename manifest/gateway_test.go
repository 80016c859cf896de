package manifest

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// goodGateway sets every gateway: setting.
const goodGateway = `name: flix
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

func TestParseGateway(t *testing.T) {
	cfg, err := ParseGateway("shoal.yaml", []byte(goodGateway))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Timeout != 5*time.Second || cfg.MaxBody != 2_000_000 || !cfg.AccessLog || cfg.DefaultRoutes != nil || !cfg.DefaultRouting() {
		t.Errorf("config %+v", cfg)
	}
	if len(cfg.Routes) != 3 {
		t.Fatalf("%d routes", len(cfg.Routes))
	}
	r := cfg.Routes[0]
	if r.Path != "/v1/titles/" || r.Host != "API.example.com" || r.Service != "catalog" || r.Prefix() != "/v1/titles" ||
		r.Rewrite != "/titles/" || r.Timeout != 2*time.Second || r.MaxAttempts != 2 || r.Hedge == nil || *r.Hedge ||
		r.MaxBody != 1<<20 || r.RateLimit == nil || r.RateLimit.Rate != 100 || r.CORS == nil || r.CORS.MaxAge != 10*time.Minute {
		t.Errorf("route 0: %+v", r)
	}
	if !cfg.Routes[1].Strip || cfg.Routes[2].MaxBody != 512 || cfg.Routes[2].Prefix() != "" {
		t.Errorf("routes 1, 2: %+v %+v", cfg.Routes[1], cfg.Routes[2])
	}
	// Problems the gateway finds later are placed where the file set them.
	if e := cfg.Errorf("routes[1]", "x"); e.Error() != "shoal.yaml:21:7: gateway.routes[1]: x" {
		t.Errorf("Errorf: %v", e)
	}

	// No gateway: key, or an empty one: default routes only; the file may
	// lack services: (a gateway's own file).
	for _, doc := range []string{"", "# routes to come\n", "services:\n  a:\n    build: ./a\n", "gateway:\n", "gateway: {}\n", "gateway:\n  timeout: 1s\n"} {
		cfg, err := ParseGateway("shoal.yaml", []byte(doc))
		if err != nil || len(cfg.Routes) != 0 || cfg.DefaultRoutes != nil {
			t.Errorf("%q: %+v, %v", doc, cfg, err)
		}
	}
	// The rest of the file is checked too.
	if _, err := ParseGateway("shoal.yaml", []byte("gateway: {}\nservices:\n  web: {build: ./w, instance: 2}\n")); err == nil || !strings.Contains(err.Error(), "did you mean instances?") {
		t.Errorf("a mistake outside gateway: not reported: %v", err)
	}
}

func TestParseGatewayErrors(t *testing.T) {
	// gateway: on line 4; the services the routes below name.
	const head = "services: {catalog: {build: ./c}, a: {build: ./a}, b: {build: ./b}, other: {build: ./o}}\n\n\ngateway:\n"
	tests := []struct {
		name, yaml string
		want       []string // every problem, in order
	}{
		{"unknown key", "  tiemout: 1s\n", []string{`shoal.yaml:5:3: gateway.tiemout: unknown key; did you mean timeout?`}},
		{"unknown route key", "  routes:\n    - path: /a/\n      service: a\n      strp: true\n",
			[]string{`shoal.yaml:8:7: gateway.routes[0].strp: unknown key; did you mean strip?`}},
		{"bad duration", "  routes:\n    - {path: /a/, service: a}\n    - path: /b/\n      service: b\n      timeout: fast\n",
			[]string{`shoal.yaml:9:16: gateway.routes[1].timeout: "fast" is not a duration; write a number with a unit (ms, s, m), e.g. timeout: 2s`}},
		{"key after routes", "  routes:\n    - {path: /a/, service: a}\n  timeout: x\n",
			[]string{`shoal.yaml:7:12: gateway.timeout: "x" is not a duration; write a number with a unit (ms, s, m), e.g. timeout: 5s`}},
		{"duration without unit", "  timeout: 10\n", []string{"shoal.yaml:5:12: gateway.timeout: needs a unit: timeout: 10ms or timeout: 10s?"}},
		{"bad size", "  max_body: 10 parsecs\n", []string{`shoal.yaml:5:13: gateway.max_body: size "10 parsecs": write a number of bytes, optionally with a unit (KB, MB, GB, KiB, MiB, GiB), e.g. 10MB`}},
		{"not a mapping", "  - a\n", []string{"shoal.yaml:4:1: gateway: must be a mapping of settings, e.g. gateway: {routes: [{path: /v1/titles/, service: catalog}]}"}},
		{"missing path and service", "  routes:\n    - strip: true\n",
			[]string{"shoal.yaml:6:7: gateway.routes[0]: path is required, e.g. path: /v1/titles/",
				"shoal.yaml:6:7: gateway.routes[0]: service is required: the service the requests go to, e.g. service: catalog"}},
		{"relative path", "  routes:\n    - {path: v1/, service: a}\n", []string{`shoal.yaml:6:14: gateway.routes[0].path: "v1/" must start with /`}},
		{"unclean path", "  routes:\n    - {path: /v1//x/, service: a}\n",
			[]string{`shoal.yaml:6:14: gateway.routes[0].path: "/v1//x/" is not clean (doubled slashes or . and .. segments); write /v1/x/`}},
		{"bad service", "  routes:\n    - {path: /a/, service: Catalog_1}\n",
			[]string{`shoal.yaml:6:28: gateway.routes[0].service: "Catalog_1" is not a service name (a lowercase DNS label, e.g. catalog)`}},
		{"unknown service", "  routes:\n    - {path: /a/, service: catalgo}\n",
			[]string{`shoal.yaml:6:28: gateway.routes[0].service: "catalgo" is not a service of this manifest; did you mean catalog?`}},
		{"internal service", "  routes:\n    - {path: /a/, service: shoal-supervisor}\n",
			[]string{`shoal.yaml:6:28: gateway.routes[0].service: "shoal-supervisor" belongs to shoal itself and is never routed`}},
		{"strip and rewrite", "  routes:\n    - {path: /a/, service: a, strip: true, rewrite: /b/}\n",
			[]string{"shoal.yaml:6:7: gateway.routes[0]: strip and rewrite both change the prefix; keep one"}},
		{"attempts", "  routes:\n    - {path: /a/, service: a, max_attempts: 9}\n", []string{"shoal.yaml:6:45: gateway.routes[0].max_attempts: 9 is out of range [1, 8]"}},
		{"auth mode", "  routes:\n    - {path: /a/, service: a, auth: jtw}\n", []string{`shoal.yaml:6:37: gateway.routes[0].auth: "jtw": use none, jwt, api_key or any`}},
		{"jwt not configured", "  routes:\n    - {path: /a/, service: a, auth: jwt}\n",
			[]string{"shoal.yaml:6:37: gateway.routes[0].auth: jwt needs gateway.auth.jwt configured (the keys tokens are checked with)"}},
		{"api key not configured", "  routes:\n    - {path: /a/, service: a, auth: any}\n",
			[]string{"shoal.yaml:6:37: gateway.routes[0].auth: any needs gateway.auth.jwt or gateway.auth.api_keys configured"}},
		{"rate", "  routes:\n    - {path: /a/, service: a, rate_limit: {rate: 0, burst: 3}}\n",
			[]string{"shoal.yaml:6:50: gateway.routes[0].rate_limit.rate: 0 must be a positive number of requests per second"}},
		{"rate per", "  routes:\n    - {path: /a/, service: a, rate_limit: {rate: 1, per: ip}}\n", []string{`shoal.yaml:6:58: gateway.routes[0].rate_limit.per: "ip": want client or route`}},
		{"method", "  routes:\n    - {path: /a/, service: a, methods: [GET, \"BAD METHOD\"]}\n",
			[]string{`shoal.yaml:6:46: gateway.routes[0].methods[1]: "BAD METHOD" is not an HTTP method, e.g. methods: [GET, HEAD]`}},
		{"negative timeout", "  routes:\n    - {path: /a/, service: a, timeout: -1s}\n", []string{"shoal.yaml:6:40: gateway.routes[0].timeout: -1s must not be negative"}},
		{"conflict", "  routes:\n    - path: /v1/titles/\n      service: catalog\n      methods: [GET, POST]\n    - path: /v1/titles\n      service: other\n      methods: [get]\n",
			[]string{"shoal.yaml:9:7: gateway.routes[1]: route /v1/titles conflicts with the route on line 6 (same path, host and method GET); give them different methods or hosts, or remove one"}},
		{"conflict, all methods", "  routes:\n    - {path: /a/, service: a}\n    - {path: /a/, service: b}\n",
			[]string{"shoal.yaml:7:7: gateway.routes[1]: route /a/ conflicts with the route on line 6 (same path, host and every method); give them different methods or hosts, or remove one"}},
		{"no conflict: methods", "  routes:\n    - {path: /a/, service: a, methods: [GET]}\n    - {path: /a/, service: b, methods: [POST]}\n", nil},
		{"no conflict: hosts", "  routes:\n    - {path: /a/, service: a, host: x.example}\n    - {path: /a/, service: b}\n", nil},
		{"auth", "  auth:\n    jwt: {algorithms: [none], audience: x}\n    api_keys: [{name: a, sha256: secret}]\n",
			[]string{"shoal.yaml:6:5: gateway.auth.jwt: one of key_file or jwks_file is required",
				`shoal.yaml:6:24: gateway.auth.jwt.algorithms[0]: "none" would accept unsigned tokens`,
				`shoal.yaml:7:34: gateway.auth.api_keys[0].sha256: must be 64 hex digits (printf %s "$KEY" | sha256sum), the key's hash, never the key`}},
		{"syntax", "  routes: [\n", []string{"shoal.yaml:5:11: invalid YAML: sequence end token ']' not found"}},
		{"trusted proxies", "  trusted_proxies: [10.0.0.0/8, 192.0.2.7, \"::ffff:10.0.0.0/104\", proxy.example, 10.0.0.1/8, \"fe80::1%eth0\"]\n",
			[]string{`shoal.yaml:5:67: gateway.trusted_proxies[3]: "proxy.example" is neither an IP address nor a CIDR prefix (e.g. 10.0.0.0/8)`,
				`shoal.yaml:5:82: gateway.trusted_proxies[4]: "10.0.0.1/8" has bits set past its prefix length; write 10.0.0.0/8`,
				`shoal.yaml:5:94: gateway.trusted_proxies[5]: "fe80::1%eth0": an address with a zone cannot be matched`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseGateway("shoal.yaml", []byte(head+tt.yaml))
			if diff := cmp.Diff(tt.want, problemLines(err)); diff != "" {
				t.Errorf("problems (-want +got):\n%s", diff)
			}
		})
	}
}

// TrustedProxies are prefixes (an address its own full-length one, IPv4
// in IPv6 unmapped, as peers are read), and DevCredentials names what the
// file marks dev, where Errorf can place it.
func TestGatewayProxiesAndDevCredentials(t *testing.T) {
	cfg, err := ParseGateway("shoal.yaml", []byte(`gateway:
  trusted_proxies: [10.0.0.0/8, 192.0.2.7, "::ffff:172.16.0.0/108", "2001:db8::/32"]
  auth:
    jwt: {algorithms: [ES256], key_file: k.pub, audience: flix, dev: true}
    api_keys:
      - {name: ops, sha256: 2c0798bbed78e283bb7ba707831a2e7160753cd511f3bc9f96b0568da6430779}
      - {name: dev-admin, sha256: 1c0798bbed78e283bb7ba707831a2e7160753cd511f3bc9f96b0568da6430779, dev: true}
`))
	if err != nil {
		t.Fatal(err)
	}
	ps, err := cfg.ProxyPrefixes()
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(ps); got != "[10.0.0.0/8 192.0.2.7/32 172.16.0.0/12 2001:db8::/32]" {
		t.Errorf("prefixes %s", got)
	}
	dev := cfg.DevCredentials()
	if fmt.Sprint(dev) != "[auth.jwt auth.api_keys[1]]" {
		t.Fatalf("dev credentials %q", dev)
	}
	if e := cfg.Errorf(dev[1], "x"); e.Error() != "shoal.yaml:7:9: gateway.auth.api_keys[1]: x" {
		t.Errorf("Errorf: %v", e)
	}
}

// Mistakes in services: and in gateway: are reported together, in file
// order; the first is the one errors.As finds.
func TestParseReportsEverySection(t *testing.T) {
	_, err := Parse("shoal.yaml", []byte(`services:
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
	want := []string{
		"shoal.yaml:4:16: services.catalog.instances: 0 is out of range; use 1 to 100 (to stop a service, remove it or comment it out)",
		"shoal.yaml:9:13: gateway.routes[0].auth: jwt needs gateway.auth.jwt configured (the keys tokens are checked with)",
		"shoal.yaml:10:7: gateway.routes[1]: route /v1/titles conflicts with the route on line 7 (same path, host and every method); give them different methods or hosts, or remove one",
		`shoal.yaml:12:13: gateway.max_body: size "lots": write a number of bytes, optionally with a unit (KB, MB, GB, KiB, MiB, GiB), e.g. 10MB`,
	}
	if diff := cmp.Diff(want, problemLines(err)); diff != "" {
		t.Errorf("problems (-want +got):\n%s", diff)
	}
	var e *Error
	if !errors.As(err, &e) || e.Line != 4 || e.Column != 16 || e.Path != "services.catalog.instances" {
		t.Errorf("first problem %+v", e)
	}
}

// A badly broken file is reported in full up to MaxProblems.
func TestParseBoundsProblems(t *testing.T) {
	var b strings.Builder
	b.WriteString("services:\n")
	for i := range MaxProblems + 5 {
		fmt.Fprintf(&b, "  s%d: {build: ./s, instance: 1}\n", i)
	}
	_, err := Parse("m.yaml", []byte(b.String()))
	got := problemLines(err)
	if len(got) != MaxProblems+1 || got[MaxProblems] != "m.yaml: 5 more problems not shown" {
		t.Errorf("%d problems, last %q", len(got), got[len(got)-1])
	}
}

func TestParseSize(t *testing.T) {
	tests := []struct {
		in   string
		want Size
		ok   bool
	}{
		{"1024", 1024, true}, {"10MB", 10_000_000, true}, {"512KB", 512_000, true}, {"1MiB", 1 << 20, true},
		{"1.5KiB", 1536, true}, {"2 GiB", 2 << 30, true}, {"3gb", 3e9, true}, {"0", 0, true}, {"7B", 7, true},
		{"", 0, false}, {"MB", 0, false}, {"-1", 0, false}, {"1.2.3MB", 0, false}, {"10 parsecs", 0, false},
		{"99999999999GiB", 0, false},
	}
	re := regexp.MustCompile(sizePattern)
	for _, tt := range tests {
		got, err := ParseSize(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d, ok %v", tt.in, got, err, tt.want, tt.ok)
		}
		// The JSON Schema's pattern takes what ParseSize reads (all but
		// the too large, which a pattern cannot tell).
		if want := tt.ok || tt.in == "99999999999GiB"; re.MatchString(tt.in) != want {
			t.Errorf("sizePattern matches %q: %v, want %v", tt.in, !want, want)
		}
	}
	if s := Size(10 << 20).String(); s != "10MiB" {
		t.Errorf("String: %s", s)
	}
}
