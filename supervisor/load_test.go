package supervisor

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func TestLoadBytesValid(t *testing.T) {
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
			want: &Manifest{Name: filepath.Base(dir), DrainTimeout: 10 * time.Second, Services: []*ServiceSpec{
				{Name: "web", Line: 2, Build: "./cmd/web", Instances: 1, Register: RegisterSDK, Health: "/readyz"},
				{Name: "py", Line: 4, Command: []string{"python3", "app.py"}, Instances: 1, Register: RegisterSupervisor, Health: "/"},
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
			want: &Manifest{Name: "flix", DrainTimeout: 90 * time.Second, Services: []*ServiceSpec{
				{Name: "zeta", Line: 4, Build: "./z", Args: []string{"serve", "--port", "8080", "true"}, Instances: 2,
					Port: []int{8080, 8081}, Env: map[string]string{"LOG_LEVEL": "debug", "WORKERS": "4", "EMPTY": ""},
					Health: "/healthz", Register: RegisterSupervisor},
				{Name: "alpha", Line: 12, Command: []string{"./alpha"}, Instances: 1, Register: RegisterSDK, Health: "/readyz"},
			}},
		},
		{
			name: "flow style",
			yaml: "services:\n  gateway: {build: ./cmd/shoal, args: [gateway], instances: 2, port: [8080, 8081]}\n",
			want: &Manifest{Name: filepath.Base(dir), DrainTimeout: 10 * time.Second, Services: []*ServiceSpec{
				{Name: "gateway", Line: 2, Build: "./cmd/shoal", Args: []string{"gateway"}, Instances: 2, Port: []int{8080, 8081}, Register: RegisterSDK, Health: "/readyz"},
			}},
		},
		{
			name: "single port as a number",
			yaml: "services:\n  web: {build: ./web, port: 9000}\n",
			want: &Manifest{Name: filepath.Base(dir), DrainTimeout: 10 * time.Second, Services: []*ServiceSpec{
				{Name: "web", Line: 2, Build: "./web", Instances: 1, Port: []int{9000}, Register: RegisterSDK, Health: "/readyz"},
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
			want: &Manifest{Name: filepath.Base(dir), DrainTimeout: 10 * time.Second, Services: []*ServiceSpec{
				{Name: "a", Line: 2, Build: "./a", Instances: 3, Register: RegisterSDK, Health: "/readyz"},
				{Name: "b", Line: 5, Build: "./b", Instances: 3, Register: RegisterSDK, Health: "/ok"},
			}},
		},
		{
			name: "comments and document marker",
			yaml: "---\n# the system\nservices: # all of them\n  web:\n    build: ./web # here\n",
			want: &Manifest{Name: filepath.Base(dir), DrainTimeout: 10 * time.Second, Services: []*ServiceSpec{
				{Name: "web", Line: 4, Build: "./web", Instances: 1, Register: RegisterSDK, Health: "/readyz"},
			}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := LoadBytes("shoal.yaml", []byte(tt.yaml))
			if err != nil {
				t.Fatalf("LoadBytes: %v", err)
			}
			tt.want.Path, tt.want.Dir = abs, dir
			if diff := cmp.Diff(tt.want, m, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("manifest (-want +got):\n%s", diff)
			}
			checkInvariants(t, m)
		})
	}
}

func TestLoadBytesErrors(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want []string // every line of the error, in order
	}{
		{"empty file", "", []string{"m.yaml:1: the manifest is empty; list your services, e.g."}},
		{"only comments", "# nothing yet\n", []string{"m.yaml:1: the manifest is empty; list your services, e.g."}},
		{"unknown service key", "services:\n  web:\n    build: ./web\n    instance: 3\n",
			[]string{`m.yaml:4: web: unknown key "instance"; did you mean instances?`}},
		{"synonym from compose", "services:\n  web:\n    build: ./web\n    replicas: 3\n    environment: {A: b}\n",
			[]string{
				`m.yaml:4: web: unknown key "replicas"; did you mean instances?`,
				`m.yaml:5: web: unknown key "environment"; did you mean env?`,
			}},
		{"unknown top-level key", "servcies:\n  web: {build: ./web}\n",
			[]string{`m.yaml:1: unknown key "servcies"; did you mean services?`}},
		{"service at top level", "web:\n  build: ./web\n",
			[]string{`m.yaml:1: unknown key "web"; services go under services:, e.g.`}},
		{"no services", "name: flix\n", []string{"m.yaml:1: services: is missing; list your services under it, e.g."}},
		{"top-level key in a service", "services:\n  web:\n    build: ./web\n    drain_timeout: 5s\n",
			[]string{`m.yaml:4: web: unknown key "drain_timeout"; drain_timeout is set once for the whole system, at the top level (no indentation)`}},
		{"instances not a number", "services:\n  web:\n    build: ./web\n    instances: three\n",
			[]string{"m.yaml:4: web: instances must be a whole number, e.g. instances: 3"}},
		{"instances quoted", "services:\n  web:\n    build: ./web\n    instances: \"3\"\n",
			[]string{"m.yaml:4: web: instances must be a whole number, e.g. instances: 3"}},
		{"instances fraction", "services:\n  web: {build: ./web, instances: 2.5}\n",
			[]string{"m.yaml:2: web: instances must be a whole number, e.g. instances: 3"}},
		{"instances zero", "services:\n  web:\n    build: ./web\n    instances: 0\n",
			[]string{"m.yaml:4: web: instances: 0 is out of range; use 1 to 100 (to stop a service, remove it or comment it out)"}},
		{"instances too many", "services:\n  web:\n    build: ./web\n    instances: 101\n",
			[]string{"m.yaml:4: web: instances: 101 is out of range; use 1 to 100 (to stop a service, remove it or comment it out)"}},
		{"instances huge", "services:\n  web: {build: ./web, instances: 99999999999999999999}\n",
			[]string{"m.yaml:2: web: instances: 99999999999999999999 is out of range; use 1 to 100 (to stop a service, remove it or comment it out)"}},
		{"both build and command", "services:\n  web:\n    build: ./web\n    command: [./web]\n",
			[]string{"m.yaml:2: web: has both build: and command:; keep build: for a Go package shoal compiles, or command: for a program it runs as is"}},
		{"neither build nor command", "services:\n  web:\n    instances: 2\n",
			[]string{"m.yaml:2: web: needs build: (a Go package, e.g. build: ./cmd/web) or command: (any program, e.g. command: [python3, app.py])"}},
		{"service with no settings", "services:\n  web:\n",
			[]string{"m.yaml:2: web: has no settings; give it build: (a Go package) or command: (any program), e.g."}},
		{"command as a string", "services:\n  py:\n    command: python3 app.py\n",
			[]string{"m.yaml:3: py: command must be a list, one item per argument (no shell splitting), e.g. command: [python3, app.py]"}},
		{"command empty", "services:\n  py:\n    command: []\n",
			[]string{"m.yaml:3: py: command is empty; give the program and its arguments, e.g. command: [python3, app.py]"}},
		{"command item a mapping", "services:\n  py:\n    command:\n      - python3\n      - {a: b}\n",
			[]string{"m.yaml:5: py: command: each item must be a string (quote it if needed), e.g. command: [python3, app.py]"}},
		{"args with command", "services:\n  py:\n    command: [python3]\n    args: [app.py]\n",
			[]string{"m.yaml:4: py: args: is for build: services; with command:, put the arguments in the command list, e.g. command: [python3, app.py, --verbose]"}},
		{"build not a string", "services:\n  web:\n    build: [./web]\n",
			[]string{"m.yaml:3: web: build must be a string, e.g. build: ./cmd/web"}},
		{"port count differs", "services:\n  gateway:\n    build: ./gw\n    instances: 3\n    port: [8080, 8081]\n",
			[]string{"m.yaml:5: gateway: port lists 2 port(s) but instances is 3; give one port per instance, e.g. instances: 3 with port: [8080, 8081, 8082]"}},
		{"port count with default instances", "services:\n  gateway:\n    build: ./gw\n    port: [8080, 8081]\n",
			[]string{"m.yaml:4: gateway: port lists 2 port(s) but instances is 1; give one port per instance, e.g. instances: 1 with port: [8080]"}},
		{"port out of range", "services:\n  web:\n    build: ./web\n    instances: 2\n    port:\n      - 8080\n      - 70000\n",
			[]string{"m.yaml:7: web: port 70000 is not a TCP port; use 1 to 65535 (e.g. 8080)"}},
		{"port zero", "services:\n  web: {build: ./web, port: [0]}\n",
			[]string{"m.yaml:2: web: port 0 is not a TCP port; use 1 to 65535 (e.g. 8080)"}},
		{"port not a number", "services:\n  web: {build: ./web, port: [http]}\n",
			[]string{"m.yaml:2: web: port must be a list of port numbers, one per instance, e.g. port: [8080, 8081]"}},
		{"port twice in a service", "services:\n  web: {build: ./web, instances: 2, port: [8080, 8080]}\n",
			[]string{"m.yaml:2: web: port 8080 is listed twice; give each instance its own port"}},
		{"port shared across services", "services:\n  a: {build: ./a, port: [8080]}\n  b: {build: ./b, instances: 2, port: [9000, 8080]}\n",
			[]string{"m.yaml:3: b: port 8080 is already used by a/1; give each instance its own port"}},
		{"health without slash", "services:\n  web:\n    build: ./web\n    health: healthz\n",
			[]string{`m.yaml:4: web: health "healthz" must be a URL path starting with /, e.g. health: /healthz`}},
		{"register unknown", "services:\n  web:\n    build: ./web\n    register: gossip\n",
			[]string{`m.yaml:4: web: register "gossip": use sdk (the program joins discovery itself with the shoal SDK) or supervisor (shoal registers it once its health check passes)`}},
		{"service name uppercase", "services:\n  Catalog:\n    build: ./c\n",
			[]string{`m.yaml:2: service name "Catalog": use a lowercase DNS label (letters a-z, digits and '-', starting with a letter, at most 63), e.g. catalog; it is the host name callers use (http://catalog/)`}},
		{"service name underscore", "services:\n  my_api:\n    build: ./c\n",
			[]string{`m.yaml:2: service name "my_api": use a lowercase DNS label (letters a-z, digits and '-', starting with a letter, at most 63), e.g. my-api; it is the host name callers use (http://my-api/)`}},
		{"service name a number", "services:\n  8080:\n    build: ./c\n",
			[]string{`m.yaml:2: service name "8080": use a lowercase DNS label (letters a-z, digits and '-', starting with a letter, at most 63), e.g. web; it is the host name callers use (http://web/)`}},
		{"reserved name", "services:\n  shoal-supervisor:\n    build: ./s\n",
			[]string{`m.yaml:2: service name "shoal-supervisor" is reserved: the supervisor itself is a gossip member by that name; pick another`}},
		{"service twice", "services:\n  web:\n    build: ./a\n  web:\n    build: ./b\n",
			[]string{`m.yaml:4: service "web" is defined twice (first on line 2); rename or remove one`}},
		{"key twice", "services:\n  web:\n    build: ./a\n    instances: 2\n    instances: 3\n",
			[]string{"m.yaml:5: web: instances is set twice (first on line 4); keep one"}},
		{"drain_timeout bare number", "drain_timeout: 10\nservices:\n  web: {build: ./web}\n",
			[]string{"m.yaml:1: drain_timeout needs a unit, e.g. drain_timeout: 10s"}},
		{"drain_timeout garbage", "drain_timeout: soon\nservices:\n  web: {build: ./web}\n",
			[]string{`m.yaml:1: drain_timeout "soon" is not a duration; write a number with a unit (ms, s, m), e.g. drain_timeout: 10s`}},
		{"drain_timeout negative", "drain_timeout: -5s\nservices:\n  web: {build: ./web}\n",
			[]string{"m.yaml:1: drain_timeout must be positive, e.g. drain_timeout: 10s"}},
		{"services a list", "services:\n  - web:\n      build: ./web\n",
			[]string{"m.yaml:1: services is a mapping from name to service, not a list: write"}},
		{"services empty", "name: x\nservices:\n",
			[]string{"m.yaml:2: services: is empty; add at least one, e.g."}},
		{"not a mapping", "- web\n- api\n",
			[]string{"m.yaml:1: a manifest is a mapping with a services: key, e.g."}},
		{"two documents", "services:\n  a: {build: ./a}\n---\nservices:\n  b: {build: ./b}\n",
			[]string{"m.yaml:4: a manifest is one YAML document; remove the second '---' and merge the services into one services: mapping"}},
		{"syntax error", "services:\n  web: {build: ./web\n",
			[]string{"m.yaml:2: invalid YAML: "}},
		{"tabs", "services:\n\tweb:\n\t\tbuild: ./web\n",
			[]string{"m.yaml:2: invalid YAML: "}},
		{"undefined alias", "services:\n  web:\n    build: ./web\n    env: *missing\n",
			[]string{"m.yaml:4: alias *missing refers to no anchor; define it first with &missing"}},
		{"env bad name", "services:\n  web:\n    build: ./web\n    env:\n      LOG-LEVEL: debug\n",
			[]string{`m.yaml:5: web: env name "LOG-LEVEL": use letters, digits and '_', not starting with a digit, e.g. LOG_LEVEL`}},
		{"env null value", "services:\n  web:\n    build: ./web\n    env:\n      TOKEN:\n",
			[]string{`m.yaml:5: web: env TOKEN has no value; write TOKEN: "" for an empty one`}},
		{"env a list", "services:\n  web:\n    build: ./web\n    env: [A=b]\n",
			[]string{"m.yaml:4: web: env must be a mapping of variable names to values, e.g. env: {LOG_LEVEL: debug}"}},
		{"several errors at once, sorted by line",
			"services:\n  Web:\n    build: ./web\n    instance: 2\n  api:\n    health: ready\n",
			[]string{
				`m.yaml:2: service name "Web": use a lowercase DNS label (letters a-z, digits and '-', starting with a letter, at most 63), e.g. web; it is the host name callers use (http://web/)`,
				`m.yaml:4: Web: unknown key "instance"; did you mean instances?`,
				"m.yaml:5: api: needs build: (a Go package, e.g. build: ./cmd/api) or command: (any program, e.g. command: [python3, app.py])",
				`m.yaml:6: api: health "ready" must be a URL path starting with /, e.g. health: /healthz`,
			}},
		{"anchors in an unknown key", "x-common: &common\n  instances: 3\nservices:\n  a:\n    <<: *common\n    build: ./a\n",
			[]string{`m.yaml:1: unknown key "x-common"; known keys are name, services, drain_timeout`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := LoadBytes("m.yaml", []byte(tt.yaml))
			if err == nil {
				t.Fatalf("LoadBytes succeeded (%+v); want errors:\n%s", m, strings.Join(tt.want, "\n"))
			}
			if m != nil {
				t.Errorf("LoadBytes returned a manifest with an error")
			}
			var p *Problem
			if !errors.As(err, &p) {
				t.Errorf("error %T is not a *Problem", err)
			}
			got := problemLines(err)
			if len(got) != len(tt.want) {
				t.Fatalf("got %d problems, want %d:\n%s", len(got), len(tt.want), err)
			}
			for i := range got {
				if !strings.HasPrefix(got[i], tt.want[i]) {
					t.Errorf("problem %d:\n got: %s\nwant: %s", i, got[i], tt.want[i])
				}
			}
		})
	}
}

// problemLines returns each problem's message (messages may span lines,
// e.g. to show an example, so the error's lines are not the problems).
func problemLines(err error) []string {
	var out []string
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range j.Unwrap() {
			out = append(out, e.Error())
		}
		return out
	}
	return []string{err.Error()}
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
	if gw.Instances != 2 || !cmp.Equal(gw.Port, []int{8080, 8081}) || !cmp.Equal(gw.Args, []string{"gateway", "--config", "shoal.yaml"}) {
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
	want := path + ":4: api: build: ./cmd/api is not a folder (looked for " + filepath.Join(dir, "cmd", "api") + ")"
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
	known := append(append([]string{}, serviceKeys...), topKeys...)
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
		if s.Line < 1 {
			t.Errorf("%s: line %d", s.Name, s.Line)
		}
	}
}

func FuzzLoad(f *testing.F) {
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
	}
	if data, err := os.ReadFile("../shoal.yaml"); err == nil {
		seeds = append(seeds, string(data))
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		// Load, not LoadBytes, so reading the file is covered too.
		path := filepath.Join(dir, "shoal.yaml")
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		m, err := Load(path)
		if err != nil {
			if m != nil {
				t.Errorf("manifest and error both returned")
			}
			for _, line := range problemLines(err) {
				if !strings.HasPrefix(line, path+":") {
					t.Errorf("problem %q does not start with the file name", line)
				}
			}
			return
		}
		checkInvariants(t, m)
	})
}
