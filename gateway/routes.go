package gateway

import (
	"cmp"
	"fmt"
	"net/netip"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/shoal-dev/shoal/client"
	"github.com/shoal-dev/shoal/manifest"
)

// table is a compiled Config: immutable once built, shared by every
// request that loaded it, replaced as a whole by SetConfig.
type table struct {
	routes        []*compiledRoute // longest prefix first, then with host first, then file order
	groupEnd      []int            // groupEnd[i]: end of the routes sharing routes[i]'s prefix
	defaultRoutes bool
	timeout       time.Duration
	maxBody       int64
	accessLog     bool
	auth          *authenticator // nil when no credentials are configured
	proxies       []netip.Prefix // trusted to say who the client is
	devKeys       []string       // credentials marked dev (manifest.Gateway.DevCredentials)
	// guarded are the services some route requires credentials for:
	// default routes do not reach them, which would bypass the check.
	guarded map[string]bool
}

// compiledRoute is a Route ready to serve.
type compiledRoute struct {
	name    string // the path as written: the route label of logs and metrics
	prefix  string // cleaned, no trailing slash; "" for the root
	host    string // "" matches any host
	methods []string
	service string
	strip   bool
	rewrite string

	timeout   time.Duration
	maxBody   int64
	policy    client.CallPolicy
	hasPolicy bool
	auth      AuthMode
	limiter   *rateLimiter
	rl        RateLimit // what limiter enforces, to keep its state across reloads
	perRoute  bool      // one bucket for the route, not one per client
	cors      *CORS
}

// compile checks cfg and builds its table, reading the key files auth
// refers to (relative to baseDir). Every problem is a *manifest.Error,
// placed in the file cfg was read from.
func compile(cfg *Config, baseDir string) (*table, error) {
	errs := []error{cfg.Validate()}
	for i := range cfg.Routes {
		if p := target(&cfg.Routes[i]); p != "" && isAdminPath(p) {
			errs = append(errs, cfg.Errorf(fmt.Sprintf("routes[%d]", i),
				"the requests would go to %s, an admin path of the service, which the gateway never serves", path.Clean(p)))
		}
	}
	if err := manifest.Join(errs...); err != nil {
		return nil, err
	}
	t := &table{
		defaultRoutes: cfg.DefaultRouting(),
		timeout:       cfg.Timeout,
		maxBody:       int64(cfg.MaxBody),
		accessLog:     cfg.AccessLog,
	}
	if t.maxBody == 0 {
		t.maxBody = DefaultMaxBody
	}
	t.proxies, _ = cfg.ProxyPrefixes() // Validate checked them
	t.devKeys = cfg.DevCredentials()
	if cfg.Auth.JWT != nil || len(cfg.Auth.APIKeys) > 0 {
		a, err := newAuthenticator(cfg.Auth, baseDir)
		if err != nil {
			return nil, cfg.Errorf("auth", "%v", err)
		}
		t.auth = a
	}
	for i := range cfg.Routes {
		r := &cfg.Routes[i]
		cr := &compiledRoute{
			name:    r.Path,
			prefix:  r.Prefix(),
			host:    strings.ToLower(r.Host),
			methods: upperMethods(r.Methods),
			service: r.Service,
			strip:   r.Strip,
			rewrite: r.Rewrite,
			timeout: r.Timeout,
			maxBody: int64(r.MaxBody),
			auth:    r.Auth,
			cors:    r.CORS,
		}
		if cr.maxBody == 0 {
			cr.maxBody = t.maxBody
		}
		if cr.auth == "" {
			cr.auth = AuthNone
		}
		if cr.auth != AuthNone {
			if t.guarded == nil {
				t.guarded = map[string]bool{}
			}
			t.guarded[cr.service] = true
		}
		if r.MaxAttempts > 0 || r.Hedge != nil && !*r.Hedge || r.PerTryTimeout > 0 {
			cr.hasPolicy = true
			cr.policy = client.CallPolicy{MaxAttempts: r.MaxAttempts, NoHedge: r.Hedge != nil && !*r.Hedge, PerTryTimeout: r.PerTryTimeout}
		}
		if r.RateLimit != nil {
			cr.limiter = newRateLimiter(*r.RateLimit) // nil for the zero RateLimit: no limit
			cr.rl = *r.RateLimit
			cr.perRoute = r.RateLimit.Per == manifest.PerRoute
		}
		t.routes = append(t.routes, cr)
	}
	slices.SortStableFunc(t.routes, func(a, b *compiledRoute) int {
		if c := cmp.Compare(len(b.prefix), len(a.prefix)); c != 0 {
			return c
		}
		if c := strings.Compare(a.prefix, b.prefix); c != 0 {
			return c
		}
		return cmp.Compare(b2i(b.host != ""), b2i(a.host != "")) // with host first
	})
	t.groupEnd = make([]int, len(t.routes))
	for i := len(t.routes) - 1; i >= 0; i-- {
		if i+1 < len(t.routes) && t.routes[i+1].prefix == t.routes[i].prefix {
			t.groupEnd[i] = t.groupEnd[i+1]
		} else {
			t.groupEnd[i] = i + 1
		}
	}
	return t, nil
}

// Check checks cfg as SetConfig would, reading the key files it refers to
// (relative to baseDir), without serving it: shoal up runs it before it
// starts anything. Every problem is a *manifest.Error.
func Check(cfg *Config, baseDir string) error {
	_, err := compile(cfg, baseDir)
	return err
}

// match finds the route for a request. It returns the route, or nil and
// whether some route took the path and host but not the method (405). It
// does not allocate: it is on every request's path.
func (t *table) match(host, p, method string) (rt *compiledRoute, wrongMethod bool) {
	for i := 0; i < len(t.routes); {
		r := t.routes[i]
		end := t.groupEnd[i]
		if !prefixMatch(p, r.prefix) {
			i = end
			continue
		}
		// The longest matching prefix: routes with a host come first, so
		// the first that takes host and method wins.
		hostMatched := false
		for _, r := range t.routes[i:end] {
			if !hostMatch(r.host, host) {
				continue
			}
			hostMatched = true
			if methodMatch(r.methods, method) {
				return r, false
			}
		}
		if hostMatched {
			return nil, true
		}
		i = end
	}
	return nil, false
}

// allow is the Allow header for a request that got 405: the methods of the
// longest-prefix routes that take its host and path.
func (t *table) allow(host, p string) string {
	var ms []string
	for i := 0; i < len(t.routes); {
		end := t.groupEnd[i]
		if !prefixMatch(p, t.routes[i].prefix) {
			i = end
			continue
		}
		for _, r := range t.routes[i:end] {
			if hostMatch(r.host, host) {
				for _, m := range r.methods {
					if !slices.Contains(ms, m) {
						ms = append(ms, m)
					}
				}
			}
		}
		if len(ms) > 0 {
			break
		}
		i = end
	}
	slices.Sort(ms)
	return strings.Join(ms, ", ")
}

// prefixMatch reports whether p is prefix or under it, segment-wise.
func prefixMatch(p, prefix string) bool {
	if !strings.HasPrefix(p, prefix) {
		return false
	}
	return len(p) == len(prefix) || p[len(prefix)] == '/'
}

// hostMatch compares a route's host (lower case; "" for any) with the
// request's Host, whose port is ignored unless the route names one.
func hostMatch(want, host string) bool {
	if want == "" {
		return true
	}
	host = trimFQDNDot(host)
	if strings.EqualFold(want, host) {
		return true
	}
	return strings.EqualFold(want, stripPort(host))
}

// trimFQDNDot drops the trailing dot of a fully qualified host name
// ("example.com." or "example.com.:8080"), the same host to DNS and
// browsers, so that it cannot skip the routes naming that host.
func trimFQDNDot(h string) string {
	if i := strings.LastIndexByte(h, ':'); i > 0 && h[i-1] == '.' && strings.IndexByte(h[i:], ']') < 0 {
		return h[:i-1] + h[i:] // rare: allocating is fine
	}
	return strings.TrimSuffix(h, ".")
}

func stripPort(h string) string {
	i := strings.LastIndexByte(h, ':')
	if i < 0 || strings.IndexByte(h[i:], ']') >= 0 {
		return h
	}
	h = h[:i]
	if len(h) > 1 && h[0] == '[' && h[len(h)-1] == ']' {
		h = h[1 : len(h)-1]
	}
	return h
}

func methodMatch(ms []string, m string) bool {
	if len(ms) == 0 {
		return true
	}
	for _, x := range ms {
		if x == m {
			return true
		}
	}
	return false
}

// target returns the path (and escaped path, if it differs) at the
// service for a request path p under the route.
func (r *compiledRoute) target(p, raw string) (string, string) {
	rest := p[len(r.prefix):]
	restRaw := ""
	// The escaped rest must start at a segment boundary: /x%2Fabc matches
	// the prefix /x once decoded, but its escaped rest "%2Fabc" is no path.
	if raw != "" && strings.HasPrefix(raw, r.prefix) && (len(raw) == len(r.prefix) || raw[len(r.prefix)] == '/') {
		restRaw = raw[len(r.prefix):]
	}
	var base string
	switch {
	case r.rewrite != "":
		base = r.rewrite
		if rest != "" {
			base = strings.TrimSuffix(base, "/")
		}
	case r.strip:
		if rest == "" {
			return "/", ""
		}
	default:
		return p, raw
	}
	if restRaw == "" {
		return base + rest, ""
	}
	return base + rest, base + restRaw
}

// cleanPath cleans a request path for matching, keeping a trailing slash;
// clean paths (nearly all) are returned as they are, without allocating.
func cleanPath(p string) string {
	if p == "" {
		return "/"
	}
	if p[0] == '/' && !strings.Contains(p, "//") && !strings.Contains(p, "/./") && !strings.Contains(p, "/../") &&
		!strings.HasSuffix(p, "/.") && !strings.HasSuffix(p, "/..") {
		return p
	}
	c := path.Clean("/" + p)
	if strings.HasSuffix(p, "/") && c != "/" {
		c += "/"
	}
	return c
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// keepLimiters gives t's routes the rate limiters of old's routes that are
// the same route with the same limit, so that a reload (of any part of the
// manifest, or a forced one) does not refill every client's bucket.
func (t *table) keepLimiters(old *table) {
	if old == nil {
		return
	}
	for _, r := range t.routes {
		if r.limiter == nil {
			continue
		}
		for _, o := range old.routes {
			if o.limiter != nil && o.prefix == r.prefix && o.host == r.host && o.service == r.service &&
				o.rl == r.rl && slices.Equal(o.methods, r.methods) {
				r.limiter = o.limiter
				break
			}
		}
	}
}
