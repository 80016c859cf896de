package manifest

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/shoal-dev/shoal/client"
)

func TestParseValid(t *testing.T) {
	abs, err := filepath.Abs("shoal.yaml")
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Dir(abs)
	tests := []struct {
		name string
		yaml string
		want *Manifest
	}{
		{
			name: "defaults",
			yaml: "services:\n  web:\n    build: ./cmd/web\n  py:\n    command: [python3, app.py]\n",
			want: &Manifest{Name: filepath.Base(dir), DrainTimeout: 10 * time.Second, Services: Services{
				{Name: "web", Build: "./cmd/web", Instances: 1, Register: RegisterSDK, Health: "/readyz"},
				{Name: "py", Command: []string{"python3", "app.py"}, Instances: 1, Register: RegisterSupervisor, Health: "/"},
			}},
		},
		{
			name: "everything set, file order kept",
			yaml: `name: flix
drain_timeout: 1m30s
services:
  zeta:
    build: ./z
    args: [serve, --port, 8080, true]
    instances: 2
    port: [8080, 8081]
    env: {LOG_LEVEL: debug, WORKERS: 4, EMPTY: ""}
    health: /healthz
    register: supervisor
  alpha:
    command: [./alpha]
    register: sdk
`,
			want: &Manifest{Name: "flix", DrainTimeout: 90 * time.Second, Services: Services{
				{Name: "zeta", Build: "./z", Args: []string{"serve", "--port", "8080", "true"}, Instances: 2,
					Port: Ports{8080, 8081}, Env: map[string]string{"LOG_LEVEL": "debug", "WORKERS": "4", "EMPTY": ""},
					Health: "/healthz", Register: RegisterSupervisor},
				{Name: "alpha", Command: []string{"./alpha"}, Instances: 1, Register: RegisterSDK, Health: "/readyz"},
			}},
		},
		{
			name: "flow style",
			yaml: "services:\n  gateway: {build: ./cmd/shoal, args: [gateway], instances: 2, port: [8080, 8081]}\n",
			want: &Manifest{Name: filepath.Base(dir), DrainTimeout: 10 * time.Second, Services: Services{
				{Name: "gateway", Build: "./cmd/shoal", Args: []string{"gateway"}, Instances: 2, Port: Ports{8080, 8081}, Register: RegisterSDK, Health: "/readyz"},
			}},
		},
		{
			name: "single port as a number",
			yaml: "services:\n  web: {build: ./web, port: 9000}\n",
			want: &Manifest{Name: filepath.Base(dir), DrainTimeout: 10 * time.Second, Services: Services{
				{Name: "web", Build: "./web", Instances: 1, Port: Ports{9000}, Register: RegisterSDK, Health: "/readyz"},
			}},
		},
		{
			name: "merge from an anchor defined inside services",
			yaml: `services:
  a: &base
    build: ./a
    instances: 3
  b:
    <<: *base
    build: ./b
    health: !!str /ok
`,
			want: &Manifest{Name: filepath.Base(dir), DrainTimeout: 10 * time.Second, Services: Services{
				{Name: "a", Build: "./a", Instances: 3, Register: RegisterSDK, Health: "/readyz"},
				{Name: "b", Build: "./b", Instances: 3, Register: RegisterSDK, Health: "/ok"},
			}},
		},
		{
			name: "authorization and a plaintext program",
			yaml: `services:
  gateway: {build: ./cmd/shoal, args: [gateway]}
  web: {build: ./web, dependencies: {db: {timeout: 1s}}}
  db: {build: ./db}
  py: {command: [python3, app.py], plaintext: true}
gateway:
  routes: [{path: /x, service: web}, {path: /py, service: py}]
authorization:
  allow:
    web: [gateway]
    db: [web, "*"]
`,
			want: &Manifest{Name: filepath.Base(dir), DrainTimeout: 10 * time.Second, Services: Services{
				{Name: "gateway", Build: "./cmd/shoal", Args: []string{"gateway"}, Instances: 1, Register: RegisterSDK, Health: "/readyz"},
				{Name: "web", Build: "./web", Instances: 1, Register: RegisterSDK, Health: "/readyz",
					Dependencies: map[string]client.Config{"db": {Timeout: time.Second}}},
				{Name: "db", Build: "./db", Instances: 1, Register: RegisterSDK, Health: "/readyz"},
				{Name: "py", Command: []string{"python3", "app.py"}, Instances: 1, Register: RegisterSupervisor, Health: "/", Plaintext: true},
			},
				Gateway:       &Gateway{Routes: []Route{{Path: "/x", Service: "web"}, {Path: "/py", Service: "py"}}},
				Authorization: &Authorization{Allow: map[string][]string{"web": {"gateway"}, "db": {"web", "*"}}}},
		},
		{
			name: "comments and document marker",
			yaml: "---\n# the system\nservices: # all of them\n  web:\n    build: ./web # here\n",
			want: &Manifest{Name: filepath.Base(dir), DrainTimeout: 10 * time.Second, Services: Services{
				{Name: "web", Build: "./web", Instances: 1, Register: RegisterSDK, Health: "/readyz"},
			}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := Parse("shoal.yaml", []byte(tt.yaml))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			tt.want.Path, tt.want.Dir = abs, dir
			if diff := cmp.Diff(tt.want, m, cmpopts.EquateEmpty(), cmpopts.IgnoreUnexported(Gateway{})); diff != "" {
				t.Errorf("manifest (-want +got):\n%s", diff)
			}
			checkInvariants(t, m)
		})
	}
}

// Every mistake is reported at once, each at its place with its key
// path, in file order.
func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want []string // the first line of every problem, in order
	}{
		{"empty file", "",
			[]string{
				"m.yaml:1: the manifest is empty; list your services, e.g.",
			}},
		{"only comments", "# nothing yet\n",
			[]string{
				"m.yaml:1: the manifest is empty; list your services, e.g.",
			}},
		{"unknown service key", "services:\n  web:\n    build: ./web\n    instance: 3\n",
			[]string{
				"m.yaml:4:5: services.web.instance: unknown key; did you mean instances?",
			}},
		{"synonym from compose", "services:\n  web:\n    build: ./web\n    replicas: 3\n    environment: {A: b}\n",
			[]string{
				"m.yaml:4:5: services.web.replicas: unknown key; did you mean instances?",
				"m.yaml:5:5: services.web.environment: unknown key; did you mean env?",
			}},
		{"unknown top-level key", "servcies:\n  web: {build: ./web}\n",
			[]string{
				"m.yaml:1:1: servcies: unknown key; did you mean services?",
			}},
		{"service at top level", "web:\n  build: ./web\n",
			[]string{
				"m.yaml:1:1: web: unknown key; services go under services:, e.g.",
			}},
		{"no services", "name: flix\n",
			[]string{
				"m.yaml:1:1: services: is missing; list your services under it, e.g.",
			}},
		{"top-level key in a service", "services:\n  web:\n    build: ./web\n    drain_timeout: 5s\n",
			[]string{
				"m.yaml:4:5: services.web.drain_timeout: unknown key; drain_timeout is set once for the whole system, at the top level (no indentation)",
			}},
		{"instances not a number", "services:\n  web:\n    build: ./web\n    instances: three\n",
			[]string{
				"m.yaml:4:16: services.web.instances: must be a whole number, e.g. instances: 3",
			}},
		{"instances quoted", "services:\n  web:\n    build: ./web\n    instances: \"3\"\n",
			[]string{
				"m.yaml:4:16: services.web.instances: must be a whole number, e.g. instances: 3",
			}},
		{"instances fraction", "services:\n  web: {build: ./web, instances: 2.5}\n",
			[]string{
				"m.yaml:2:34: services.web.instances: must be a whole number, e.g. instances: 3",
			}},
		{"instances zero", "services:\n  web:\n    build: ./web\n    instances: 0\n",
			[]string{
				"m.yaml:4:16: services.web.instances: 0 is out of range; use 1 to 100 (to stop a service, remove it or comment it out)",
			}},
		{"instances too many", "services:\n  web:\n    build: ./web\n    instances: 101\n",
			[]string{
				"m.yaml:4:16: services.web.instances: 101 is out of range; use 1 to 100 (to stop a service, remove it or comment it out)",
			}},
		{"instances huge", "services:\n  web: {build: ./web, instances: 99999999999999999999}\n",
			[]string{
				"m.yaml:2:34: services.web.instances: 99999999999999999999 is out of range; use 1 to 100 (to stop a service, remove it or comment it out)",
			}},
		{"both build and command", "services:\n  web:\n    build: ./web\n    command: [./web]\n",
			[]string{
				"m.yaml:2:3: services.web: has both build: and command:; keep build: for a Go package shoal compiles, or command: for a program it runs as is",
			}},
		{"neither build nor command", "services:\n  web:\n    instances: 2\n",
			[]string{
				"m.yaml:2:3: services.web: needs build: (a Go package, e.g. build: ./cmd/web) or command: (any program, e.g. command: [python3, app.py])",
			}},
		{"service with no settings", "services:\n  web:\n",
			[]string{
				"m.yaml:2:3: services.web: has no settings; give it build: (a Go package) or command: (any program), e.g.",
			}},
		{"command as a string", "services:\n  py:\n    command: python3 app.py\n",
			[]string{
				"m.yaml:3:14: services.py.command: must be a list, one item per element (a string is not split at spaces), e.g. command: [python3, app.py]",
			}},
		{"command empty", "services:\n  py:\n    command: []\n",
			[]string{
				"m.yaml:3:5: services.py.command: is empty; give the program and its arguments, e.g. command: [python3, app.py]",
			}},
		{"command item a mapping", "services:\n  py:\n    command:\n      - python3\n      - {a: b}\n",
			[]string{
				"m.yaml:5:9: services.py.command[1]: must be a single value (quote it if needed), e.g. command: [python3, app.py]",
			}},
		{"args with command", "services:\n  py:\n    command: [python3]\n    args: [app.py]\n",
			[]string{
				"m.yaml:4:5: services.py.args: is for build: services; with command:, put the arguments in the command list, e.g. command: [python3, app.py, --verbose]",
			}},
		{"build not a string", "services:\n  web:\n    build: [./web]\n",
			[]string{
				"m.yaml:3:5: services.web.build: must be a string, e.g. build: ./cmd/web",
			}},
		{"port count differs", "services:\n  gateway:\n    build: ./gw\n    instances: 3\n    port: [8080, 8081]\n",
			[]string{
				"m.yaml:5:5: services.gateway.port: lists 2 port(s) but instances is 3; give one port per instance, e.g. instances: 3 with port: [8080, 8081, 8082]",
			}},
		{"port count with default instances", "services:\n  gateway:\n    build: ./gw\n    port: [8080, 8081]\n",
			[]string{
				"m.yaml:4:5: services.gateway.port: lists 2 port(s) but instances is 1; give one port per instance, e.g. instances: 1 with port: [8080]",
			}},
		{"port out of range", "services:\n  web:\n    build: ./web\n    instances: 2\n    port:\n      - 8080\n      - 70000\n",
			[]string{
				"m.yaml:7:9: services.web.port[1]: 70000 is not a TCP port; use 1 to 65535 (e.g. 8080)",
			}},
		{"port zero", "services:\n  web: {build: ./web, port: [0]}\n",
			[]string{
				"m.yaml:2:30: services.web.port[0]: 0 is not a TCP port; use 1 to 65535 (e.g. 8080)",
			}},
		{"port not a number", "services:\n  web: {build: ./web, port: [http]}\n",
			[]string{
				"m.yaml:2:30: services.web.port[0]: must be a whole number, e.g. port: [8080, 8081]",
			}},
		{"port twice in a service", "services:\n  web: {build: ./web, instances: 2, port: [8080, 8080]}\n",
			[]string{
				"m.yaml:2:50: services.web.port[1]: port 8080 is listed twice; give each instance its own port",
			}},
		{"port shared across services", "services:\n  a: {build: ./a, port: [8080]}\n  b: {build: ./b, instances: 2, port: [9000, 8080]}\n",
			[]string{
				"m.yaml:3:33: services.b.port: port 8080 is already used by a/1; give each instance its own port",
			}},
		{"health without slash", "services:\n  web:\n    build: ./web\n    health: healthz\n",
			[]string{
				"m.yaml:4:13: services.web.health: \"healthz\" must be a URL path starting with /, e.g. health: /healthz",
			}},
		{"register unknown", "services:\n  web:\n    build: ./web\n    register: gossip\n",
			[]string{
				"m.yaml:4:15: services.web.register: \"gossip\": use sdk (the program joins discovery itself with the shoal SDK) or supervisor (shoal registers it once its health check passes)",
			}},
		{"service name uppercase", "services:\n  Catalog:\n    build: ./c\n",
			[]string{
				"m.yaml:2:3: services.Catalog: \"Catalog\" is not a service name: use a lowercase DNS label (letters a-z, digits and '-', starting with a letter, at most 63), e.g. catalog; it is the host name callers use (http://catalog/)",
			}},
		{"service name underscore", "services:\n  my_api:\n    build: ./c\n",
			[]string{
				"m.yaml:2:3: services.my_api: \"my_api\" is not a service name: use a lowercase DNS label (letters a-z, digits and '-', starting with a letter, at most 63), e.g. my-api; it is the host name callers use (http://my-api/)",
			}},
		{"service name a number", "services:\n  8080:\n    build: ./c\n",
			[]string{
				"m.yaml:2:3: services.8080: \"8080\" is not a service name: use a lowercase DNS label (letters a-z, digits and '-', starting with a letter, at most 63), e.g. web; it is the host name callers use (http://web/)",
			}},
		{"reserved name", "services:\n  shoal-supervisor:\n    build: ./s\n",
			[]string{
				"m.yaml:2:3: services.shoal-supervisor: \"shoal-supervisor\" is reserved: names starting with shoal- belong to Shoal itself (the supervisor's gossip member is shoal-supervisor); pick another",
			}},
		{"service twice", "services:\n  web:\n    build: ./a\n  web:\n    build: ./b\n",
			[]string{
				"m.yaml:4:3: services.web: is set twice (first on line 2); keep one",
			}},
		{"key twice", "services:\n  web:\n    build: ./a\n    instances: 2\n    instances: 3\n",
			[]string{
				"m.yaml:5:5: services.web.instances: is set twice (first on line 4); keep one",
			}},
		{"drain_timeout bare number", "drain_timeout: 10\nservices:\n  web: {build: ./web}\n",
			[]string{
				"m.yaml:1:16: drain_timeout: needs a unit: drain_timeout: 10ms or drain_timeout: 10s?",
			}},
		{"drain_timeout garbage", "drain_timeout: soon\nservices:\n  web: {build: ./web}\n",
			[]string{
				"m.yaml:1:16: drain_timeout: \"soon\" is not a duration; write a number with a unit (ms, s, m), e.g. drain_timeout: 10s",
			}},
		{"drain_timeout negative", "drain_timeout: -5s\nservices:\n  web: {build: ./web}\n",
			[]string{
				"m.yaml:1:16: drain_timeout: must be positive, e.g. drain_timeout: 10s",
			}},
		{"services a list", "services:\n  - web:\n      build: ./web\n",
			[]string{
				"m.yaml:1:1: services: is a mapping from name to service, not a list: write",
			}},
		{"services empty", "name: x\nservices:\n",
			[]string{
				"m.yaml:2:1: services: is empty; add at least one, e.g.",
			}},
		{"not a mapping", "- web\n- api\n",
			[]string{
				"m.yaml:1:1: a manifest is a mapping with a services: key, e.g.",
			}},
		{"two documents", "services:\n  a: {build: ./a}\n---\nservices:\n  b: {build: ./b}\n",
			[]string{
				"m.yaml:4:1: a manifest is one YAML document; remove the second '---' and merge the services into one services: mapping",
			}},
		{"syntax error", "services:\n  web: {build: ./web\n",
			[]string{
				"m.yaml:2:8: invalid YAML: could not find flow mapping end token '}'",
			}},
		{"tabs", "services:\n\tweb:\n\t\tbuild: ./web\n",
			[]string{
				"m.yaml:2:1: invalid YAML: found character '\t' that cannot start any token; indent with spaces, not tabs",
			}},
		{"undefined alias", "services:\n  web:\n    build: ./web\n    env: *missing\n",
			[]string{
				"m.yaml:4:10: alias *missing refers to no anchor; define it first with &missing",
			}},
		{"env bad name", "services:\n  web:\n    build: ./web\n    env:\n      LOG-LEVEL: debug\n",
			[]string{
				"m.yaml:5:7: services.web.env.LOG-LEVEL: \"LOG-LEVEL\" is not a variable name: use letters, digits and '_', not starting with a digit, e.g. LOG_LEVEL",
			}},
		{"env null value", "services:\n  web:\n    build: ./web\n    env:\n      TOKEN:\n",
			[]string{
				"m.yaml:5:7: services.web.env.TOKEN: has no value; write TOKEN: \"\" for an empty one",
			}},
		{"env a list", "services:\n  web:\n    build: ./web\n    env: [A=b]\n",
			[]string{
				"m.yaml:4:5: services.web.env: must be a mapping, e.g. env: {LOG_LEVEL: debug}",
			}},
		{"several errors at once, sorted by line", "services:\n  Web:\n    build: ./web\n    instance: 2\n  api:\n    health: ready\n",
			[]string{
				"m.yaml:2:3: services.Web: \"Web\" is not a service name: use a lowercase DNS label (letters a-z, digits and '-', starting with a letter, at most 63), e.g. web; it is the host name callers use (http://web/)",
				"m.yaml:4:5: services.Web.instance: unknown key; did you mean instances?",
				"m.yaml:5:3: services.api: needs build: (a Go package, e.g. build: ./cmd/api) or command: (any program, e.g. command: [python3, app.py])",
				"m.yaml:6:13: services.api.health: \"ready\" must be a URL path starting with /, e.g. health: /healthz",
			}},
		{"alias of its own value", "services:\n  api:\n    build: ./a\n    dependencies: &d\n      x: {dependencies: *d}\n",
			[]string{
				"m.yaml:5:25: services.api.dependencies.x.dependencies: alias *d refers to a value that contains it; write the value out",
			}},
		{"authorization names what is not there, and forbids what the manifest does",
			`services:
  gateway: {build: ./cmd/shoal}
  web: {build: ./web, dependencies: {db: {timeout: 1s}}}
  db: {build: ./db}
gateway:
  routes: [{path: /x, service: web}, {path: /y, service: db}]
authorization:
  allow:
    web: [gateway, wbe]
    dbb: [web]
`,
			[]string{
				"m.yaml:3:38: services.web.dependencies.db: web calls db, but authorization.allow.db does not list web; add it: db: [web, ...]",
				"m.yaml:6:58: gateway.routes[1].service: the gateway routes to db, but authorization.allow.db does not list gateway; add it: db: [gateway, ...]",
				"m.yaml:9:20: authorization.allow.web[1]: \"wbe\" is not a service of this manifest; did you mean web?",
				"m.yaml:10:5: authorization.allow.dbb: \"dbb\" is not a service of this manifest; did you mean db?",
			}},
		{"anchors in an unknown key", "x-common: &common\n  instances: 3\nservices:\n  a:\n    <<: *common\n    build: ./a\n",
			[]string{
				"m.yaml:1:1: x-common: unknown key; known keys are name, services, drain_timeout, gateway, authorization, chaos",
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := Parse("m.yaml", []byte(tt.yaml))
			if err == nil {
				t.Fatalf("Parse succeeded (%+v); want errors:\n%s", m, strings.Join(tt.want, "\n"))
			}
			if m != nil {
				t.Errorf("Parse returned a manifest with an error")
			}
			var e *Error
			if !errors.As(err, &e) || e.File != "m.yaml" {
				t.Errorf("error %T is not an *Error with the file", err)
			}
			got := problemLines(err)
			if len(got) != len(tt.want) {
				t.Fatalf("got %d problems, want %d:\n%s", len(got), len(tt.want), err)
			}
			for i := range got {
				if first, _, _ := strings.Cut(got[i], "\n"); first != tt.want[i] {
					t.Errorf("problem %d:\n got: %s\nwant: %s", i, first, tt.want[i])
				}
			}
		})
	}
}

// A few lines of aliases of aliases stand for a huge file: the decode
// stops, and says why, instead of taking the machine.
func TestParseBoundsAliases(t *testing.T) {
	lines := []string{"services:", "  api:", "    build: ./api", "    dependencies:", "      a0: &a0 {timeout: 1s}"}
	for i := 1; i < 40; i++ {
		lines = append(lines, fmt.Sprintf("      a%d: &a%d {dependencies: {x: *a%d, y: *a%d}}", i, i, i-1, i-1))
	}
	start := time.Now()
	_, err := Parse("m.yaml", []byte(strings.Join(lines, "\n")))
	if err == nil || !strings.Contains(err.Error(), "the file stands for more than 20000 values (aliases of aliases?); write the values out") {
		t.Errorf("Parse = %v", err)
	}
	// 2^40 values unbounded; a few tenths of a second bounded (wide margin
	// for a busy machine).
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("Parse took %v", d)
	}
}

// problemLines returns each problem's message (messages may span lines,
// e.g. to show an example, so the error's lines are not the problems).
func problemLines(err error) []string {
	var out []string
	for _, e := range flatten(err) {
		out = append(out, e.Error())
	}
	return out
}

func TestLoadReferenceManifest(t *testing.T) {
	m, err := Load("../shoal.yaml")
	if err != nil {
		t.Fatalf("Load(../shoal.yaml):\n%v", err)
	}
	checkInvariants(t, m)
	var names []string
	for _, s := range m.Services {
		names = append(names, s.Name)
	}
	if diff := cmp.Diff([]string{"gateway", "catalog", "ratings", "profiles", "search", "history", "recommendations", "playback", "api", "trailers"}, names); diff != "" {
		t.Errorf("services (-want +got):\n%s", diff)
	}
	gw := m.Services[0]
	if gw.Instances != 2 || !cmp.Equal(gw.Port, Ports{8080, 8081}) || !cmp.Equal(gw.Args, []string{"gateway", "--config", "shoal.yaml"}) {
		t.Errorf("gateway = %+v; want 2 instances on 8080, 8081 with args [gateway --config shoal.yaml]", gw)
	}
	if m.Gateway == nil || len(m.Gateway.Routes) == 0 {
		t.Errorf("gateway: routes missing from the reference manifest")
	}
	tr := m.Services[len(m.Services)-1]
	if tr.Register != RegisterSupervisor || tr.Health != "/healthz" || tr.Instances != 2 {
		t.Errorf("trailers = %+v; want register supervisor, health /healthz, 2 instances", tr)
	}
	if m.Name != "flix" || m.DrainTimeout != 10*time.Second {
		t.Errorf("name %q, drain_timeout %v; want flix, 10s", m.Name, m.DrainTimeout)
	}
	wantDir, _ := filepath.Abs("..")
	if m.Dir != wantDir || m.Path != filepath.Join(wantDir, "shoal.yaml") {
		t.Errorf("Dir %q Path %q; want %q and its shoal.yaml", m.Dir, m.Path, wantDir)
	}
}

func TestLoadChecksBuildFolders(t *testing.T) {
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "web"), 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "shoal.yaml")
	data := "services:\n  web:\n    build: ./web\n  api:\n    build: ./cmd/api\n  remote:\n    build: example.com/x/cmd/y\n"
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Load(path)
	want := path + ":5:12: services.api.build: ./cmd/api is not a folder (looked for " + filepath.Join(dir, "cmd", "api") + ")"
	if err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("Load: %v\nwant: %s...", err, want)
	}
	if _, err := Load(filepath.Join(dir, "missing.yaml")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Load(missing) = %v; want an error wrapping os.ErrNotExist", err)
	}
}

func TestSuggestKey(t *testing.T) {
	tests := []struct{ in, want string }{
		{"instance", "instances"},
		{"Instances", "instances"},
		{"ports", "port"},
		{"comand", "command"},
		{"Health", "health"},
		{"drain-timeout", "drain_timeout"},
		{"cmd", "command"},
		{"volumes", ""},
	}
	known := append(append([]string{}, fieldsOf(serviceType).names...), fieldsOf(manifestType).names...)
	for _, tt := range tests {
		if got := suggestKey(tt.in, known); got != tt.want {
			t.Errorf("suggestKey(%q) = %q; want %q", tt.in, got, tt.want)
		}
	}
}

// checkInvariants fails t unless m is what Load promises its callers.
func checkInvariants(t testing.TB, m *Manifest) {
	t.Helper()
	if m == nil {
		t.Fatal("nil manifest without an error")
	}
	if !filepath.IsAbs(m.Path) || m.Dir != filepath.Dir(m.Path) {
		t.Errorf("Path %q, Dir %q: want an absolute path and its folder", m.Path, m.Dir)
	}
	if m.Name == "" || m.DrainTimeout <= 0 || len(m.Services) == 0 {
		t.Errorf("name %q, drain timeout %v, %d services: want a name, a positive timeout, services", m.Name, m.DrainTimeout, len(m.Services))
	}
	names, ports := map[string]bool{}, map[int]bool{}
	for _, s := range m.Services {
		if !ValidServiceName(s.Name) || names[s.Name] {
			t.Errorf("service name %q invalid or repeated", s.Name)
		}
		names[s.Name] = true
		if (s.Build == "") == (len(s.Command) == 0) {
			t.Errorf("%s: build %q, command %q: want exactly one", s.Name, s.Build, s.Command)
		}
		if len(s.Command) > 0 && s.Command[0] == "" {
			t.Errorf("%s: empty program name", s.Name)
		}
		if s.Instances < 1 || s.Instances > MaxInstances {
			t.Errorf("%s: %d instances", s.Name, s.Instances)
		}
		if len(s.Port) != 0 && len(s.Port) != s.Instances {
			t.Errorf("%s: %d ports for %d instances", s.Name, len(s.Port), s.Instances)
		}
		for _, p := range s.Port {
			if p < 1 || p > 65535 || ports[p] {
				t.Errorf("%s: port %d out of range or repeated", s.Name, p)
			}
			ports[p] = true
		}
		if !strings.HasPrefix(s.Health, "/") {
			t.Errorf("%s: health %q", s.Name, s.Health)
		}
		if s.Register != RegisterSDK && s.Register != RegisterSupervisor {
			t.Errorf("%s: register %q", s.Name, s.Register)
		}
	}
}

// FuzzParseManifest feeds Parse arbitrary bytes: it must not panic (nor
// hang on self-referencing anchors), every problem must be an *Error naming
// the file, and what it accepts must hold what callers rely on.
func FuzzParseManifest(f *testing.F) {
	seeds := []string{
		"",
		"services:\n  web:\n    build: ./web\n",
		"name: flix\ndrain_timeout: 10s\nservices:\n  gateway: {build: ./cmd/shoal, args: [gateway], instances: 2, port: [8080, 8081]}\n  trailers: {command: [python3, t.py], instances: 2, health: /healthz}\n",
		"services:\n  a: &b\n    build: ./a\n  b:\n    <<: *b\n    env: {A: 1}\n",
		"services:\n  a: &x {<<: *x}\n",
		"services:\n  web:\n    instance: three\n    port: [0, 70000]\n",
		"a: *b\n",
		"services: [1, 2]\n---\nx: 1\n",
		"services:\n  w:\n    command: !!str 3\n    register: !!binary x\n",
		"services:\n  api:\n    build: ./api\n    dependencies:\n      ratings: {timeout: 300ms, hedge: {disabled: true}, max_in_flight: 64}\n",
		"gateway:\n  routes:\n    - {path: /a/, service: a, auth: jwt}\n",
		"gateway: &g\n  timeout: 1s\nother: *g\n",
		goodGateway,
	}
	if data, err := os.ReadFile("../shoal.yaml"); err == nil {
		seeds = append(seeds, string(data))
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := Parse("f.yaml", data)
		if err != nil {
			if m != nil {
				t.Errorf("manifest and error both returned")
			}
			for _, e := range flatten(err) {
				var me *Error
				if !errors.As(e, &me) || me.File != "f.yaml" {
					t.Errorf("problem %q is not an *Error naming the file", e)
				}
				if strings.Contains(e.Error(), "decoder failed") {
					t.Errorf("the decoder panicked: %v", e) // a bug of ours
				}
			}
			return
		}
		checkInvariants(t, m)
		if m.Gateway != nil {
			if err := m.Gateway.Validate(); err != nil {
				t.Errorf("Parse accepted a gateway: section Validate refuses: %v", err)
			}
		}
		if _, err := ParseGateway("f.yaml", data); err != nil {
			t.Errorf("ParseGateway refused what Parse accepted: %v", err)
		}
	})
}

func TestSystemName(t *testing.T) {
	for in, want := range map[string]string{"flix": "flix", "My Shop!": "my-shop", "9lives": "shoal-9lives", "__": "shoal", "a--b": "a-b"} {
		if got := SystemName(in); got != want {
			t.Errorf("SystemName(%q) = %q, want %q", in, got, want)
		}
	}
}
