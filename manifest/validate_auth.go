package manifest

import (
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
	unknown := func(n string) string {
		if s := suggestKey(n, names); s != "" {
			return "; did you mean " + s + "?"
		}
		return "; the services are " + strings.Join(names, ", ")
	}
	ap := "authorization.allow"
	for _, callee := range slices.Sorted(maps.Keys(a.Allow)) {
		kp := child(ap, callee)
		if !known(callee) {
			c.errs = append(c.errs, c.src.keyErrorf(kp, "%q is not a service of this manifest%s", callee, unknown(callee)))
		}
		for i, caller := range a.Allow[callee] {
			if !known(caller) {
				c.errorf(item(kp, i), "%q is not a service of this manifest%s", caller, unknown(caller))
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
