package manifest

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"time"

	"github.com/goccy/go-yaml/ast"

	"github.com/shoal-dev/shoal/client"
	"github.com/shoal-dev/shoal/identity"
)

// Limits and defaults of the manifest.
const (
	// MaxInstances bounds instances: per service; a laptop runs a few.
	MaxInstances = 100
	// DefaultDrainTimeout is drain_timeout when the file does not set it.
	DefaultDrainTimeout = 10 * time.Second
	defaultInstances    = 1
	defaultHealthSDK    = "/readyz"
	defaultHealthOther  = "/"
)

// Manifest is a decoded, checked shoal.yaml: the system's services and its
// gateway's routes. Load and Parse fill in the defaults.
type Manifest struct {
	// Name of the system, shown by ps and up; default: the folder's name.
	Name string `yaml:"name" example:"flix"`
	// Services in the order the file lists them (start order), keyed by
	// their names, which callers use as host names (http://catalog/).
	Services Services `yaml:"services" example:"{web: {build: ./cmd/web}}"`
	// DrainTimeout is how long an instance may take to drain (finish
	// in-flight requests, leave gossip) after SIGTERM before it is killed;
	// default 10s. It reaches instances as SHOAL_DRAIN_TIMEOUT.
	DrainTimeout time.Duration `yaml:"drain_timeout" example:"10s"`
	// Gateway is the front door's configuration: routes, auth, limits,
	// CORS. nil without a gateway: key (default routes only).
	Gateway *Gateway `yaml:"gateway" example:"{routes: [{path: /v1/titles/, service: catalog}]}"`
	// Authorization says which services may call which. nil without an
	// authorization: key: any service of the system may call any other
	// (each still only with a certificate of the system).
	Authorization *Authorization `yaml:"authorization" example:"{allow: {ratings: [gateway, api]}}"`
	// Chaos is failure rehearsal: the chaos monkey's settings. nil without
	// a chaos: key.
	Chaos *Chaos `yaml:"chaos" example:"{monkey: {every: 2s}}"`

	// Path is the manifest file, absolute; Dir its folder, against which
	// build paths and the .shoal state folder are resolved.
	Path string `yaml:"-"`
	Dir  string `yaml:"-"`
}

// Register says who announces an instance in gossip discovery.
type Register string

const (
	// RegisterSDK: the program uses the shoal SDK and joins gossip itself.
	RegisterSDK Register = "sdk"
	// RegisterSupervisor: the supervisor joins gossip on the program's
	// behalf once its health check passes (any program that speaks HTTP).
	RegisterSupervisor Register = "supervisor"
)

// Services lists a manifest's services in file order. In YAML it is a
// mapping from each service's name to its settings.
type Services []*Service

// Service is one service of the manifest. Exactly one of Build and
// Command is set.
type Service struct {
	// Name is the key under services:.
	Name string `yaml:"-"`

	// Build is a Go package path (e.g. ./examples/flix/catalog), relative to
	// the manifest's folder, built once with go build into .shoal/bin.
	Build string `yaml:"build" example:"./cmd/web"`
	// Command is any program and its arguments (e.g. [python3, trailers.py]),
	// run from the manifest's folder.
	Command []string `yaml:"command" example:"[python3, app.py]"`
	// Args are appended to the built binary's command line.
	Args []string `yaml:"args" example:"[--verbose]"`
	// Instances to run, 1 to 100; default 1.
	Instances int `yaml:"instances" example:"3"`
	// Env is added to every instance's environment.
	Env map[string]string `yaml:"env" example:"{LOG_LEVEL: debug}"`
	// Health is the path polled for readiness; default /readyz for SDK
	// programs, / for others.
	Health string `yaml:"health" example:"/healthz"`
	// Port fixes the instances' ports, one per instance (e.g. the gateway's
	// 8080 and 8081); otherwise the supervisor assigns free ones.
	Port Ports `yaml:"port" example:"[8080, 8081]"`
	// Register defaults to sdk for build:, supervisor for command:.
	Register Register `yaml:"register" example:"supervisor"`
	// Store says the service keeps data with the store package (its own
	// SQLite file under .shoal/data with shoal up). Pods keep no files, so
	// on Kubernetes (shoal export kubernetes) such a service gets
	// SHOAL_DATABASE_URL, a PostgreSQL database shared by the system's
	// services, each in its own schema.
	Store bool `yaml:"store" example:"true"`
	// Dependencies sets the client policy for the services this one calls,
	// by service name, with the keys of client.Config (timeout, hedge,
	// throttle, max_in_flight...). It reaches SDK programs as
	// SHOAL_DEPENDENCIES and overrides what their code sets, field by field.
	Dependencies map[string]client.Config `yaml:"dependencies" example:"{ratings: {timeout: 300ms}}"`
	// Plaintext: the program gets no certificate and serves plain HTTP,
	// and the others call it so. Only for a program that cannot serve TLS:
	// anyone who reaches its port may call it, it sees no caller's
	// identity, and it cannot call services that have one.
	Plaintext bool `yaml:"plaintext" example:"true"`
}

// Authorization is a manifest's authorization: section. shoal up gives
// every instance its policy (SHOAL_POLICY), and the SDK refuses, with 403,
// a call from a service the policy does not allow; event deliveries are
// calls from their publisher to the subscriber.
type Authorization struct {
	// Allow maps a service to the services that may call it. "*" as a
	// caller means any service of the system; as a key, every service. A
	// service it does not name may be called by no one ("*" aside).
	Allow map[string][]string `yaml:"allow" example:"{ratings: [gateway, api], search: [\"*\"]}"`
}

// Policy returns the section as the identity package's Policy; nil for a
// nil Authorization.
func (a *Authorization) Policy() *identity.Policy {
	if a == nil {
		return nil
	}
	return &identity.Policy{Allow: a.Allow}
}

// SystemName returns a system's name (Manifest.Name) as a DNS label:
// lowercase letters, digits and '-', starting with a letter ("shoal-" is
// put before a name that would not). It is the trust domain of the
// system's identities (spiffe://<system>/<service>) and the prefix of its
// Kubernetes objects and images (flix-catalog).
func SystemName(name string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(name) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
		case b.Len() > 0 && !strings.HasSuffix(b.String(), "-"):
			b.WriteByte('-')
		}
	}
	s := strings.Trim(b.String(), "-")
	if s == "" || s[0] < 'a' {
		s = strings.TrimSuffix("shoal-"+s, "-")
	}
	return s
}

// Ports are a service's fixed ports. In YAML a list of port numbers, or
// one number for a single instance.
type Ports []int

// Load reads and checks the manifest at path (usually shoal.yaml): every
// mistake is reported, each as an *Error, before anything is built or
// started. Besides what Parse checks, Load checks that local build:
// folders exist.
func Load(path string) (*Manifest, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	}
	m, c := parse(path, data, true)
	if m != nil {
		c.buildDirs(m)
	}
	if err := Join(c.errs...); err != nil {
		return nil, err
	}
	return m, nil
}

// Parse checks a manifest already in memory; name is used in messages
// and, made absolute, as Manifest.Path. It reads no files.
func Parse(name string, data []byte) (*Manifest, error) {
	m, c := parse(name, data, true)
	if err := Join(c.errs...); err != nil {
		return nil, err
	}
	return m, nil
}

// ParseGateway checks a manifest as Parse does and returns its gateway:
// section; without one, the zero Gateway (default routes only). The file
// may leave out services: a gateway run by hand may have a file of its
// own. It reads no files.
func ParseGateway(name string, data []byte) (*Gateway, error) {
	m, c := parse(name, data, false)
	if err := Join(c.errs...); err != nil {
		return nil, err
	}
	if m.Gateway == nil {
		return &Gateway{}, nil
	}
	return m.Gateway, nil
}

// parse decodes and checks data; the manifest is nil if it could not be
// decoded at all. needServices: a file without services: is a mistake.
func parse(name string, data []byte, needServices bool) (*Manifest, *checker) {
	src := newSource(name)
	c := &checker{src: src}
	abs, err := filepath.Abs(name)
	if err != nil {
		c.errs = append(c.errs, fmt.Errorf("manifest: %w", err))
		return nil, c
	}
	f, err := parseYAML(data)
	if err != nil {
		c.errs = append(c.errs, syntaxError(name, err, data))
		return nil, c
	}
	var docs []*ast.DocumentNode
	for _, d := range f.Docs {
		if d != nil && d.Body != nil {
			docs = append(docs, d)
		}
	}
	switch {
	case len(docs) == 0 && !needServices:
		return &Manifest{Path: abs, Dir: filepath.Dir(abs)}, c // a gateway's file, empty: default routes
	case len(docs) == 0:
		c.errs = append(c.errs, &Error{File: name, Line: 1, Msg: "the manifest is empty; list your services, e.g.\n\nservices:\n  web:\n    build: ./cmd/web\n    instances: 2"})
		return nil, c
	case len(docs) > 1:
		at := nodePos(docs[1].Body)
		c.errs = append(c.errs, &Error{File: name, Line: at.line, Column: at.col, Msg: "a manifest is one YAML document; remove the second '---' and merge the services into one services: mapping"})
		return nil, c
	}
	d := &decoder{file: name, src: src, anchors: anchors(docs[0].Body)}
	body := docs[0].Body
	if root, _ := d.resolve(body); root != nil {
		switch root.(type) {
		case *ast.MappingNode, *ast.MappingValueNode:
		default:
			at := nodePos(body)
			c.errs = append(c.errs, &Error{File: name, Line: at.line, Column: at.col, Msg: "a manifest is a mapping with a services: key, e.g.\n\nservices:\n  web:\n    build: ./cmd/web"})
			return nil, c
		}
	}
	m := &Manifest{Path: abs, Dir: filepath.Dir(abs)}
	if err := d.decode(body, m); err != nil {
		c.errs = append(c.errs, err)
		return nil, c
	}
	c.errs = append(c.errs, d.errs...)
	c.manifest(m, needServices)
	return m, c
}

// unmarshalYAML reads the services mapping, keeping the file's order.
func (s *Services) unmarshalYAML(d *decoder, n ast.Node, p string, _ field) {
	switch n.(type) {
	case *ast.MappingNode, *ast.MappingValueNode:
	case *ast.NullNode:
		*s = Services{} // empty: the checks say so
		return
	case *ast.SequenceNode:
		d.failAt(p, "is a mapping from name to service, not a list: write\n\nservices:\n  web:\n    build: ./cmd/web\n\n(no '-' before the names)")
		return
	default:
		d.failAt(p, "is a mapping from name to service, e.g.\n\nservices:\n  web:\n    build: ./cmd/web")
		return
	}
	out := Services{}
	for _, e := range d.entries(n, p) {
		sp := child(p, e.key)
		if v, _ := d.resolve(e.value); v == nil {
			continue // reported
		} else if null(v) {
			d.fail(e.at, sp, "has no settings; give it build: (a Go package) or command: (any program), e.g.\n\n  %s:\n    build: ./cmd/%s", e.key, e.key)
			continue
		}
		svc := &Service{Name: e.key}
		d.value(e.value, reflect.ValueOf(svc).Elem(), sp, field{key: e.key, example: "{build: ./cmd/" + e.key + "}"}, e.at)
		d.src.at[sp] = e.at // the service's problems point at its name
		out = append(out, svc)
	}
	*s = out
}

// unmarshalYAML reads a list of ports, or one port.
func (ps *Ports) unmarshalYAML(d *decoder, n ast.Node, p string, f field) {
	switch n.(type) {
	case *ast.NullNode:
		d.failAt(p, "has no value%s", writeEg(f))
	case *ast.SequenceNode:
		d.resolved(n, false, reflect.ValueOf((*[]int)(ps)).Elem(), p, f)
	case *ast.IntegerNode:
		var one int
		d.resolved(n, false, reflect.ValueOf(&one).Elem(), p, f)
		*ps = Ports{one}
	default:
		d.failAt(p, "must be a list of port numbers, one per instance%s", f.eg())
	}
}
