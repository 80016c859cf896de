package supervisor

import (
	"cmp"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/goccy/go-yaml/ast"

	"github.com/shoal-dev/shoal/gateway"
)

// Limits and defaults of the manifest.
const (
	// MaxInstances bounds instances: per service; a laptop runs a few.
	MaxInstances         = 100
	manifestInstances    = 1
	manifestDrainTimeout = 10 * time.Second
	manifestHealthSDK    = "/readyz"
	manifestHealthOther  = "/"
	// maxLoadProblems keeps a badly broken file from flooding the terminal.
	maxLoadProblems = 20
	// maxAliasDepth bounds alias and merge-key resolution, which would loop
	// forever on a self-referencing anchor.
	maxAliasDepth = 16
)

// A Problem is one mistake in a manifest: where it is and what to write
// instead. Load returns every Problem it finds, joined with errors.Join, so
// errors.As finds the first one and the message lists one per line.
type Problem struct {
	File string // the manifest's name as given to Load
	Line int    // 1-based; 0 when the problem concerns the whole file
	Msg  string
}

func (p *Problem) Error() string {
	if p.Line <= 0 {
		return p.File + ": " + p.Msg
	}
	return fmt.Sprintf("%s:%d: %s", p.File, p.Line, p.Msg)
}

// Load reads, checks and completes the manifest at path (usually
// shoal.yaml). Every mistake is reported, as "file:line: message", before
// anything is built or started. Besides what LoadBytes checks, Load checks
// that local build: folders exist.
func Load(path string) (*Manifest, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	}
	return load(path, data, true)
}

// LoadBytes is Load for a manifest already in memory; name is used in
// messages and, made absolute, as Manifest.Path. It reads no files.
func LoadBytes(name string, data []byte) (*Manifest, error) {
	return load(name, data, false)
}

// Keys known at each level, in the order the docs list them; used for
// "did you mean" suggestions.
var (
	topKeys     = []string{"name", "services", "drain_timeout", "gateway"}
	serviceKeys = []string{"build", "command", "args", "instances", "env", "health", "port", "register", "dependencies"}
	// Names other tools use for the same thing (Compose, Procfile, k8s).
	keyAliases = map[string]string{
		"replicas":     "instances",
		"scale":        "instances",
		"count":        "instances",
		"cmd":          "command",
		"run":          "command",
		"exec":         "command",
		"environment":  "env",
		"healthcheck":  "health",
		"health_check": "health",
		"readiness":    "health",
		"ports":        "port",
		"package":      "build",
		"arguments":    "args",
		"drain":        "drain_timeout",
		"timeout":      "drain_timeout",
	}
)

// loader holds the state of one load: the file's anchors and the problems
// found so far.
type loader struct {
	file     string
	anchors  map[string]ast.Node
	problems []*Problem
	// haveGateway: the manifest has a gateway: key.
	haveGateway bool
}

func (l *loader) errorf(line int, format string, args ...any) {
	l.problems = append(l.problems, &Problem{File: l.file, Line: line, Msg: fmt.Sprintf(format, args...)})
}

// err returns the problems found, sorted by line and without repeats (an
// anchor merged into several services reports its mistakes once).
func (l *loader) err() error {
	if len(l.problems) == 0 {
		return nil
	}
	slices.SortStableFunc(l.problems, func(a, b *Problem) int { return cmp.Compare(a.Line, b.Line) })
	seen := map[Problem]bool{}
	var errs []error
	for _, p := range l.problems {
		if seen[*p] {
			continue
		}
		seen[*p] = true
		errs = append(errs, p)
	}
	if n := len(errs); n > maxLoadProblems {
		errs = append(errs[:maxLoadProblems], &Problem{File: l.file, Msg: fmt.Sprintf("%d more problems not shown", n-maxLoadProblems)})
	}
	return errors.Join(errs...)
}

func load(name string, data []byte, checkFS bool) (*Manifest, error) {
	l := &loader{file: name}
	abs, err := filepath.Abs(name)
	if err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	}
	f, err := parseYAML(data)
	if err != nil {
		return nil, l.syntaxError(err, data)
	}
	var docs []*ast.DocumentNode
	for _, d := range f.Docs {
		if d != nil && d.Body != nil {
			docs = append(docs, d)
		}
	}
	if len(docs) == 0 {
		l.errorf(1, "the manifest is empty; list your services, e.g.\n\nservices:\n  web:\n    build: ./cmd/web\n    instances: 2")
		return nil, l.err()
	}
	if len(docs) > 1 {
		l.errorf(nodeLine(docs[1].Body), "a manifest is one YAML document; remove the second '---' and merge the services into one services: mapping")
		return nil, l.err()
	}
	l.collectAnchors(docs[0].Body)
	m := &Manifest{Path: abs, Dir: filepath.Dir(abs)}
	l.manifest(m, docs[0].Body)
	if l.haveGateway {
		l.gateway(m, name, data, checkFS)
	}
	if checkFS {
		l.checkBuildDirs(m)
	}
	if err := l.err(); err != nil {
		return nil, err
	}
	return m, nil
}

func (l *loader) manifest(m *Manifest, body ast.Node) {
	root, ok := l.resolve(body).(*ast.MappingNode)
	if !ok {
		l.errorf(nodeLine(body), "a manifest is a mapping with a services: key, e.g.\n\nservices:\n  web:\n    build: ./cmd/web")
		return
	}
	var services []mapEntry
	var servicesLine int
	haveServices, unknownTop := false, false
	for _, e := range l.entries(root, "manifest", func(key string, first int) string {
		return fmt.Sprintf("%s: is set twice (first on line %d); keep one", key, first)
	}) {
		switch e.key {
		case "name":
			if s, ok := l.str(e, "name", "name: flix"); ok {
				if s == "" || strings.ContainsAny(s, "\r\n") {
					l.errorf(e.line, "name must be one line of text, e.g. name: flix")
				}
				m.Name = s
			}
		case "drain_timeout":
			m.DrainTimeout = l.duration(e)
		case "services":
			haveServices, servicesLine = true, e.line
			services = l.serviceEntries(e)
		case "gateway":
			// Read by the gateway package: see loader.gateway.
			l.haveGateway = true
		default:
			unknownTop = true
			l.unknownKey(e, topKeys, "")
		}
	}
	if !haveServices && !unknownTop { // else the unknown key was probably meant
		l.errorf(nodeLine(root), "services: is missing; list your services under it, e.g.\n\nservices:\n  web:\n    build: ./cmd/web")
	} else if services != nil && len(services) == 0 {
		l.errorf(servicesLine, "services: is empty; add at least one, e.g.\n\nservices:\n  web:\n    build: ./cmd/web")
	}
	if m.Name == "" {
		m.Name = filepath.Base(m.Dir)
	}
	if m.DrainTimeout == 0 {
		m.DrainTimeout = manifestDrainTimeout
	}
	ports := map[int]string{} // port → "service/index", across services
	for _, e := range services {
		s := l.service(e)
		if s == nil {
			continue
		}
		for i, p := range s.Port {
			if other, taken := ports[p]; taken {
				l.errorf(s.Line, "%s: port %d is already used by %s; give each instance its own port", s.Name, p, other)
				continue
			}
			ports[p] = fmt.Sprintf("%s/%d", s.Name, i+1) // instances count from 1
		}
		m.Services = append(m.Services, s)
	}
}

// gateway reads the gateway: key with the gateway package, which checks it
// as the gateway will when it loads it, and adds its problems to the
// others. With checkFS, the key files it names are read too.
func (l *loader) gateway(m *Manifest, name string, data []byte, checkFS bool) {
	cfg, err := gateway.ParseManifest(name, data)
	if err == nil && checkFS {
		err = cfg.Check(m.Dir)
	}
	if err == nil {
		m.Gateway = cfg
		return
	}
	errs := []error{err}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	}
	for _, e := range errs {
		var ce *gateway.ConfigError
		if errors.As(e, &ce) {
			l.errorf(ce.Line, "%s", ce.Msg)
		} else {
			l.errorf(0, "gateway: %v", e)
		}
	}
}

// serviceEntries returns the entries of services:, or nil after reporting
// that it is not a mapping (an empty mapping is an empty, non-nil slice).
func (l *loader) serviceEntries(e mapEntry) []mapEntry {
	switch v := l.resolve(e.value).(type) {
	case *ast.MappingNode:
		es := l.entries(v, "services", func(key string, first int) string {
			return fmt.Sprintf("service %q is defined twice (first on line %d); rename or remove one", key, first)
		})
		if es == nil {
			es = []mapEntry{}
		}
		return es
	case *ast.NullNode, nil:
		return []mapEntry{}
	case *ast.SequenceNode:
		l.errorf(e.line, "services is a mapping from name to service, not a list: write\n\nservices:\n  web:\n    build: ./cmd/web\n\n(no '-' before the names)")
	default:
		l.errorf(e.line, "services is a mapping from name to service, e.g.\n\nservices:\n  web:\n    build: ./cmd/web")
	}
	return nil
}

// service reads one service; nil if it is unusable.
func (l *loader) service(e mapEntry) *ServiceSpec {
	s := &ServiceSpec{Name: e.key, Line: e.line}
	if !ValidServiceName(e.key) {
		l.errorf(e.line, "service name %q: use a lowercase DNS label (letters a-z, digits and '-', starting with a letter, at most 63), e.g. %s; it is the host name callers use (http://%s/)",
			e.key, suggestName(e.key), suggestName(e.key))
	}
	if e.key == SupervisorService {
		l.errorf(e.line, "service name %q is reserved: the supervisor itself is a gossip member by that name; pick another", e.key)
	}
	var body *ast.MappingNode
	switch v := l.resolve(e.value).(type) {
	case *ast.MappingNode:
		body = v
	case *ast.NullNode:
		l.errorf(e.line, "%s: has no settings; give it build: (a Go package) or command: (any program), e.g.\n\n  %s:\n    build: ./cmd/%s", e.key, e.key, e.key)
		return nil
	case nil:
		return nil
	default:
		l.errorf(e.line, "%s: a service is a mapping of settings, e.g.\n\n  %s:\n    build: ./cmd/%s\n    instances: 2", e.key, e.key, e.key)
		return nil
	}
	var (
		haveBuild, haveCommand, haveArgs, haveHealth bool
		instancesLine, portLine, argsLine            int
	)
	what := e.key
	for _, kv := range l.entries(body, what, func(key string, first int) string {
		return fmt.Sprintf("%s: %s is set twice (first on line %d); keep one", what, key, first)
	}) {
		switch kv.key {
		case "build":
			haveBuild = true
			if b, ok := l.str(kv, what+": build", "build: ./cmd/"+what); ok {
				if strings.TrimSpace(b) == "" {
					l.errorf(kv.line, "%s: build is empty; give a Go package path, e.g. build: ./cmd/%s", what, what)
				}
				s.Build = b
			}
		case "command":
			haveCommand = true
			s.Command = l.strList(kv, what+": command", "command: [python3, app.py]", true)
			if s.Command != nil && strings.TrimSpace(s.Command[0]) == "" {
				l.errorf(kv.line, "%s: command starts with an empty program name; e.g. command: [python3, app.py]", what)
			}
		case "args":
			haveArgs, argsLine = true, kv.line
			s.Args = l.strList(kv, what+": args", "args: [--verbose]", false)
		case "instances":
			instancesLine = kv.line
			n, text, ok := l.intNode(l.resolve(kv.value), kv.line, fmt.Sprintf("%s: instances must be a whole number, e.g. instances: 3", what))
			if ok {
				if n < 1 || n > MaxInstances {
					l.errorf(kv.line, "%s: instances: %s is out of range; use 1 to %d (to stop a service, remove it or comment it out)", what, text, MaxInstances)
					n = 0
				}
				s.Instances = int(n)
			}
		case "env":
			s.Env = l.env(kv, what)
		case "health":
			haveHealth = true
			if h, ok := l.str(kv, what+": health", "health: /healthz"); ok {
				if !strings.HasPrefix(h, "/") || strings.ContainsAny(h, " \t\r\n") {
					l.errorf(kv.line, "%s: health %q must be a URL path starting with /, e.g. health: /healthz", what, h)
				}
				s.Health = h
			}
		case "port":
			portLine = kv.line
			s.Port = l.ports(kv, what)
		case "register":
			if r, ok := l.str(kv, what+": register", "register: supervisor"); ok {
				switch Register(r) {
				case RegisterSDK, RegisterSupervisor:
					s.Register = Register(r)
				default:
					l.errorf(kv.line, "%s: register %q: use sdk (the program joins discovery itself with the shoal SDK) or supervisor (shoal registers it once its health check passes)", what, r)
				}
			}
		case "dependencies":
			s.Dependencies = l.dependencies(kv, what)
		default:
			l.unknownKey(kv, serviceKeys, what)
		}
	}
	switch {
	case haveBuild && haveCommand:
		l.errorf(e.line, "%s: has both build: and command:; keep build: for a Go package shoal compiles, or command: for a program it runs as is", what)
	case !haveBuild && !haveCommand:
		l.errorf(e.line, "%s: needs build: (a Go package, e.g. build: ./cmd/%s) or command: (any program, e.g. command: [python3, app.py])", what, what)
	}
	if haveArgs && haveCommand && !haveBuild {
		l.errorf(argsLine, "%s: args: is for build: services; with command:, put the arguments in the command list, e.g. command: [python3, app.py, --verbose]", what)
	}

	// Defaults.
	if s.Instances == 0 && instancesLine == 0 {
		s.Instances = manifestInstances
	}
	if s.Register == "" {
		s.Register = RegisterSDK
		if haveCommand && !haveBuild {
			s.Register = RegisterSupervisor
		}
	}
	if !haveHealth {
		s.Health = manifestHealthOther
		if s.Register == RegisterSDK {
			s.Health = manifestHealthSDK
		}
	}
	if s.Port != nil && s.Instances >= 1 && s.Instances <= MaxInstances && len(s.Port) != s.Instances {
		l.errorf(portLine, "%s: port lists %d port(s) but instances is %d; give one port per instance, e.g. %s",
			what, len(s.Port), s.Instances, portExample(s.Port, s.Instances))
	}
	if s.Port != nil && len(s.Port) == 0 {
		s.Port = nil
	}
	return s
}

// unknownKey reports a key that is not in known, suggesting the nearest.
// service is the service the key is in, "" at the top level.
func (l *loader) unknownKey(e mapEntry, known []string, service string) {
	var msg string
	if service == "" {
		msg = fmt.Sprintf("unknown key %q", e.key)
	} else {
		msg = fmt.Sprintf("%s: unknown key %q", service, e.key)
	}
	switch s := suggestKey(e.key, known); {
	case s != "":
		msg += fmt.Sprintf("; did you mean %s?", s)
	case service == "" && slices.Contains(serviceKeys, e.key):
		msg += fmt.Sprintf("; %s is a per-service setting: move it under a service in services:", e.key)
	case service != "" && slices.Contains(topKeys, e.key):
		msg += fmt.Sprintf("; %s is set once for the whole system, at the top level (no indentation)", e.key)
	case service == "" && looksLikeService(l.resolve(e.value)):
		msg += fmt.Sprintf("; services go under services:, e.g.\n\nservices:\n  %s:\n    ...", e.key)
	default:
		msg += "; known keys are " + strings.Join(known, ", ")
	}
	l.errorf(e.line, "%s", msg)
}

// looksLikeService says whether v is a mapping with build: or command:.
func looksLikeService(v ast.Node) bool {
	m, ok := v.(*ast.MappingNode)
	if !ok {
		return false
	}
	for _, mv := range m.Values {
		if mv == nil || mv.Key == nil {
			continue
		}
		if k, ok := keyText(mv.Key); ok && (k == "build" || k == "command") {
			return true
		}
	}
	return false
}

// suggestKey returns the known key nearest to key: a synonym from another
// tool, a case or separator slip, or an edit distance of at most 2.
func suggestKey(key string, known []string) string {
	norm := strings.ToLower(strings.ReplaceAll(key, "-", "_"))
	if a, ok := keyAliases[norm]; ok && slices.Contains(known, a) {
		return a
	}
	best, bestD := "", 3
	for _, k := range known {
		if k == norm {
			return k
		}
		if d := editDistance(norm, k); d < bestD {
			best, bestD = k, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance between a and b (bytes).
func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return max(len(a), len(b))
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			c := 1
			if a[i-1] == b[j-1] {
				c = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+c)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// ValidServiceName reports whether s may name a service: a lowercase DNS
// label that starts with a letter, since callers use it as a host name
// (http://catalog/).
func ValidServiceName(s string) bool {
	if len(s) == 0 || len(s) > 63 || s[0] < 'a' || s[0] > 'z' || s[len(s)-1] == '-' {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') {
			return false
		}
	}
	return true
}

// suggestName turns s into a valid service name for the message's example.
func suggestName(s string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(s) {
		switch {
		case r >= 'a' && r <= 'z' || r >= '0' && r <= '9':
			b.WriteRune(r)
		case b.Len() > 0 && (r == '-' || r == '_' || r == ' ' || r == '.'):
			b.WriteByte('-')
		}
	}
	out := strings.Trim(b.String(), "-0123456789")
	if len(out) > 63 {
		out = strings.TrimRight(out[:63], "-")
	}
	if out == "" || !ValidServiceName(out) {
		return "web"
	}
	return out
}

// checkBuildDirs reports local build: paths (./x, ../x or absolute) that
// are not folders, so a typo fails before anything is built.
func (l *loader) checkBuildDirs(m *Manifest) {
	for _, s := range m.Services {
		b := s.Build
		if b == "" || !(filepath.IsAbs(b) || b == "." || b == ".." || strings.HasPrefix(b, "./") || strings.HasPrefix(b, "../")) {
			continue
		}
		dir := b
		if !filepath.IsAbs(dir) {
			dir = filepath.Join(m.Dir, dir)
		}
		if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
			l.errorf(s.Line, "%s: build: %s is not a folder (looked for %s); give the Go package's path relative to %s", s.Name, b, dir, filepath.Base(m.Path))
		}
	}
}
