package manifest

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/shoal-dev/shoal/identity"
)

// gatewayService is the service a manifest's gateway: section configures:
// the one the supervisor prints the URLs of.
const gatewayService = "gateway"

// authorization checks the authorization: section: every name is a
// service of the manifest (or "*"), and the calls the manifest itself
// declares (the gateway's routes, the services' dependencies) are allowed,
// since a policy that forbids them is a system that cannot work.
func (c *checker) authorization(m *Manifest) {
	a := m.Authorization
	if a == nil || c.src.badUnder("authorization") {
		return
	}
	var names []string
	plaintext := map[string]bool{}
	for _, s := range m.Services {
		names = append(names, s.Name)
		plaintext[s.Name] = s.Plaintext
	}
	known := func(n string) bool { return n == identity.Any || slices.Contains(names, n) }
	ap := "authorization.allow"
	for _, callee := range slices.Sorted(maps.Keys(a.Allow)) {
		kp := child(ap, callee)
		if !known(callee) {
			c.errs = append(c.errs, c.src.keyErrorf(kp, "%s", notAService(callee, names)))
		}
		for i, caller := range a.Allow[callee] {
			if !known(caller) {
				c.errorf(item(kp, i), "%s", notAService(caller, names))
			}
		}
	}
	pol := a.Policy()
	// A plaintext service has no Guard: the policy cannot apply to it.
	callable := func(caller, callee string) bool {
		return !known(callee) || plaintext[callee] || pol.Allows(caller, callee)
	}
	if m.Gateway != nil && slices.Contains(names, gatewayService) {
		for i, r := range m.Gateway.Routes {
			if r.Service != "" && !callable(gatewayService, r.Service) {
				c.errorf(item("gateway.routes", i)+".service", "the gateway routes to %s, but %s.%s does not list %s; add it: %s: [%s, ...]",
					r.Service, ap, r.Service, gatewayService, r.Service, gatewayService)
			}
		}
	}
	for _, s := range m.Services {
		for _, dep := range slices.Sorted(maps.Keys(s.Dependencies)) {
			if !callable(s.Name, dep) {
				c.errorf(child(child("services", s.Name)+".dependencies", dep), "%s calls %s, but %s.%s does not list %s; add it: %s: [%s, ...]",
					s.Name, dep, ap, dep, s.Name, dep, s.Name)
			}
		}
	}
}

// callees checks that the services the gateway's routes and the services'
// dependencies: name are services of the manifest. A typo there would not
// fail until used, and then as something else: a route answering 503 "no
// instance available right now" forever, a dependency's settings never
// applied. A file with no services (a gateway's own routes file) has
// nothing to check against.
func (c *checker) callees(m *Manifest) {
	if len(m.Services) == 0 || c.src.badUnder("services") {
		return
	}
	names := make([]string, len(m.Services))
	for i, s := range m.Services {
		names[i] = s.Name
	}
	if m.Gateway != nil {
		for i, r := range m.Gateway.Routes {
			if ValidServiceName(r.Service) && !Reserved(r.Service) && !slices.Contains(names, r.Service) {
				c.errorf(item("gateway.routes", i)+".service", "%s", notAService(r.Service, names))
			}
		}
	}
	for _, s := range m.Services {
		for _, dep := range slices.Sorted(maps.Keys(s.Dependencies)) {
			if ValidServiceName(dep) && !slices.Contains(names, dep) { // an invalid name is reported as such
				dp := child(child("services", s.Name)+".dependencies", dep)
				c.errs = append(c.errs, c.src.keyErrorf(dp, "%s", notAService(dep, names)))
			}
		}
	}
}

// notAService says that name is not one of the manifest's services.
func notAService(name string, names []string) string {
	return NotAService(name, names, "this manifest")
}

// NotServices says, for each of names that is not one of services (those
// of where), that it is not (NotAService); nil if all are.
func NotServices(names, services []string, where string) []string {
	var out []string
	for _, n := range names {
		if !slices.Contains(services, n) {
			out = append(out, NotAService(n, services, where))
		}
	}
	return out
}

// NotAService says that name is not one of services, those of where ("this
// manifest", "the running system"), with the nearest one if name looks
// like a typo of it, else the list.
func NotAService(name string, services []string, where string) string {
	if s := suggestKey(name, services); s != "" {
		return fmt.Sprintf("%q is not a service of %s; did you mean %s?", name, where, s)
	}
	return fmt.Sprintf("%q is not a service of %s; the services are %s", name, where, strings.Join(services, ", "))
}
