package manifest

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/shoal-dev/shoal/client"
)

// checker collects the problems of decoded settings, each placed at the
// setting it concerns. Its src is nil for settings built in code.
type checker struct {
	src  *source
	errs []error
}

func (c *checker) errorf(p, format string, args ...any) {
	c.errs = append(c.errs, c.src.errorf(p, format, args...))
}

// manifest checks m as decoded from c.src and fills in its defaults.
func (c *checker) manifest(m *Manifest, needServices bool) {
	if c.src.ok("name") && (m.Name == "" || strings.ContainsAny(m.Name, "\r\n")) {
		c.errorf("name", "must be one line of text, e.g. name: flix")
	}
	if m.Name == "" {
		m.Name = filepath.Base(m.Dir)
	}
	if c.src.ok("drain_timeout") && m.DrainTimeout <= 0 {
		c.errorf("drain_timeout", "must be positive, e.g. drain_timeout: 10s")
	}
	if m.DrainTimeout <= 0 {
		m.DrainTimeout = DefaultDrainTimeout
	}
	switch {
	case !c.src.has("services"):
		if needServices && !c.src.strayUnder[""] { // else the unknown key was probably meant
			c.errorf("services", "is missing; list your services under it, e.g.\n\nservices:\n  web:\n    build: ./cmd/web")
		}
	case c.src.ok("services") && len(m.Services) == 0 && !c.src.badUnder("services"):
		c.errorf("services", "is empty; add at least one, e.g.\n\nservices:\n  web:\n    build: ./cmd/web")
	}
	ports := map[int]string{} // port → "service/index", across services
	for _, s := range m.Services {
		sp := child("services", s.Name)
		c.service(s, sp)
		if c.src.bad[sp+".port"] {
			continue
		}
		for i, p := range s.Port {
			if other, taken := ports[p]; taken {
				c.errorf(sp+".port", "port %d is already used by %s; give each instance its own port", p, other)
				continue
			}
			ports[p] = fmt.Sprintf("%s/%d", s.Name, i+1) // instances count from 1
		}
	}
	if m.Gateway != nil {
		m.Gateway.src = c.src
		c.gateway("gateway", m.Gateway)
	}
	c.authorization(m)
	c.callees(m)
	if m.Chaos != nil {
		names := make([]string, len(m.Services))
		for i, s := range m.Services {
			names[i] = s.Name
		}
		c.chaos("chaos", m.Chaos, names)
	}
}

// service checks one service and fills in its defaults.
func (c *checker) service(s *Service, sp string) {
	name := s.Name
	if !ValidServiceName(name) {
		c.errorf(sp, "%q is not a service name: use a lowercase DNS label (letters a-z, digits and '-', starting with a letter, at most 63), e.g. %s; it is the host name callers use (http://%s/)",
			name, suggestName(name), suggestName(name))
	}
	if Reserved(name) {
		c.errorf(sp, "%q is reserved: names starting with shoal- belong to Shoal itself (the supervisor's gossip member is shoal-supervisor); pick another", name)
	}
	haveBuild, haveCommand := c.src.has(sp+".build"), c.src.has(sp+".command")
	switch {
	case haveBuild && haveCommand:
		c.errorf(sp, "has both build: and command:; keep build: for a Go package shoal compiles, or command: for a program it runs as is")
	case !haveBuild && !haveCommand:
		c.errorf(sp, "needs build: (a Go package, e.g. build: ./cmd/%s) or command: (any program, e.g. command: [python3, app.py])", name)
	}
	if c.src.ok(sp+".build") && strings.TrimSpace(s.Build) == "" {
		c.errorf(sp+".build", "is empty; give a Go package path, e.g. build: ./cmd/%s", name)
	}
	if c.src.ok(sp + ".command") {
		switch {
		case len(s.Command) == 0:
			c.errorf(sp+".command", "is empty; give the program and its arguments, e.g. command: [python3, app.py]")
		case strings.TrimSpace(s.Command[0]) == "":
			c.errorf(sp+".command", "starts with an empty program name; e.g. command: [python3, app.py]")
		}
	}
	if c.src.has(sp+".args") && haveCommand && !haveBuild {
		c.errorf(sp+".args", "is for build: services; with command:, put the arguments in the command list, e.g. command: [python3, app.py, --verbose]")
	}
	instancesOK := true
	switch {
	case !c.src.has(sp + ".instances"):
		s.Instances = defaultInstances
	case !c.src.ok(sp + ".instances"):
		instancesOK = false
	case s.Instances < 1 || s.Instances > MaxInstances:
		c.errorf(sp+".instances", "%s is out of range; use 1 to %d (to stop a service, remove it or comment it out)",
			c.src.written(sp+".instances", fmt.Sprint(s.Instances)), MaxInstances)
		instancesOK = false
	}
	for k := range s.Env {
		if !validEnvName(k) {
			c.errs = append(c.errs, c.src.keyErrorf(child(sp+".env", k), "%q is not a variable name: use letters, digits and '_', not starting with a digit, e.g. LOG_LEVEL", k))
		}
	}
	if c.src.ok(sp+".health") && (!strings.HasPrefix(s.Health, "/") || strings.ContainsAny(s.Health, " \t\r\n")) {
		c.errorf(sp+".health", "%q must be a URL path starting with /, e.g. health: /healthz", s.Health)
	}
	switch s.Register {
	case RegisterSDK, RegisterSupervisor:
	case "":
		s.Register = RegisterSDK
		if haveCommand && !haveBuild {
			s.Register = RegisterSupervisor
		}
	default:
		c.errorf(sp+".register", "%q: use sdk (the program joins discovery itself with the shoal SDK) or supervisor (shoal registers it once its health check passes)", string(s.Register))
	}
	if !c.src.has(sp + ".health") {
		s.Health = defaultHealthOther
		if s.Register == RegisterSDK {
			s.Health = defaultHealthSDK
		}
	}
	c.ports(s, sp+".port", instancesOK)
	c.dependencies(s, sp+".dependencies")
}

// ports checks a service's port: list.
func (c *checker) ports(s *Service, pp string, instancesOK bool) {
	if !c.src.ok(pp) {
		return
	}
	seen := map[int]bool{}
	for i, p := range s.Port {
		ip := item(pp, i)
		if p < 1 || p > 65535 {
			c.errorf(ip, "%s is not a TCP port; use 1 to 65535 (e.g. 8080)", c.src.written(ip, fmt.Sprint(p)))
			c.src.bad[pp] = true
			return
		}
		if seen[p] {
			c.errorf(ip, "port %d is listed twice; give each instance its own port", p)
			c.src.bad[pp] = true
			return
		}
		seen[p] = true
	}
	if instancesOK && len(s.Port) != s.Instances {
		c.errorf(pp, "lists %d port(s) but instances is %d; give one port per instance, e.g. %s",
			len(s.Port), s.Instances, portExample(s.Port, s.Instances))
	}
	if len(s.Port) == 0 {
		s.Port = nil
	}
}

// portExample suggests a port list of the right length.
func portExample(have []int, n int) string {
	if n < 1 || n > 10 {
		return "port: [8080, 8081]"
	}
	base := 8080
	if len(have) > 0 && have[0]+n-1 <= 65535 {
		base = have[0]
	}
	ps := make([]string, n)
	for i := range ps {
		ps[i] = fmt.Sprint(base + i)
	}
	return fmt.Sprintf("instances: %d with port: [%s]", n, strings.Join(ps, ", "))
}

// dependencies checks the client policies a service sets for the
// services it calls, as the client will.
func (c *checker) dependencies(s *Service, dp string) {
	for name, cfg := range s.Dependencies {
		p := child(dp, name)
		if !ValidServiceName(name) {
			c.errs = append(c.errs, c.src.keyErrorf(p, "%q is not a service name", name))
			continue
		}
		if c.src.badUnder(p) {
			continue
		}
		if err := (client.Config{Dependencies: map[string]client.Config{name: cfg}}).Validate(); err != nil {
			msg := strings.TrimPrefix(err.Error(), "client: ")
			msg = strings.TrimPrefix(msg, "dependencies."+name+": ")
			c.errorf(p, "%s", msg)
		}
	}
}

// buildDirs reports local build: paths (./x, ../x or absolute) that are
// not folders, so that a typo fails before anything is built.
func (c *checker) buildDirs(m *Manifest) {
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
			c.errorf(child("services", s.Name)+".build", "%s is not a folder (looked for %s); give the Go package's path relative to %s", b, dir, filepath.Base(m.Path))
		}
	}
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

// Reserved reports whether the service name belongs to Shoal itself (the
// supervisor's gossip member and control API): no service of a manifest
// may take it, and the gateway never routes to it.
func Reserved(name string) bool { return strings.HasPrefix(name, "shoal-") }

// suggestName turns s into a valid service name for a message's example.
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

func validEnvName(s string) bool {
	if s == "" || s[0] >= '0' && s[0] <= '9' {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_') {
			return false
		}
	}
	return true
}
