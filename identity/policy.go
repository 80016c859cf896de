package identity

import (
	"errors"
	"fmt"
	"maps"
	"slices"
)

// Any, as a caller, allows every service of the system; as a callee, its
// callers may call every service.
const Any = "*"

// Policy says which services may call which. The manifest carries one per
// system; the SDK checks every call against it ([Guard]) once the caller's
// identity is verified. A nil *Policy allows any service of the system to
// call any other (authentication without authorization); once a Policy is
// given, whatever it does not allow is denied, including calls to a service
// it does not mention.
//
// In YAML:
//
//	allow:
//	  profiles: [gateway, api]        # profiles may be called by gateway and api
//	  ratings: [gateway, recommendations]
//	  search: ["*"]                   # by any service of the system
//	  "*": [shoal]                    # every service by the supervisor
type Policy struct {
	// Allow maps a callee service to the services that may call it.
	Allow map[string][]string `json:"allow" yaml:"allow"`
}

// Allows reports whether caller may call callee. It does not allocate.
func (p *Policy) Allows(caller, callee string) bool {
	if p == nil {
		return true
	}
	ok := func(callers []string) bool {
		return slices.Contains(callers, caller) || slices.Contains(callers, Any)
	}
	return ok(p.Allow[callee]) || ok(p.Allow[Any])
}

// Validate reports every name that is neither a valid service name nor "*".
func (p *Policy) Validate() error {
	if p == nil {
		return nil
	}
	var errs []error
	for _, callee := range slices.Sorted(maps.Keys(p.Allow)) {
		callers := p.Allow[callee]
		if callee != Any {
			if err := CheckService(callee); err != nil {
				errs = append(errs, fmt.Errorf("identity: policy: callee %w", err))
			}
		}
		for _, c := range callers {
			if c == Any {
				continue
			}
			if err := CheckService(c); err != nil {
				errs = append(errs, fmt.Errorf("identity: policy: caller of %q: %w", callee, err))
			}
		}
	}
	return errors.Join(errs...)
}
