package shoal

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/shoal-dev/shoal/internal/statuswriter"
)

// PathOpenAPI is where a Router serves its OpenAPI document, unless a
// route of its own takes the path.
const PathOpenAPI = "/openapi.json"

// Router routes requests to handlers by method and path pattern, and answers
// what it does not route with the JSON error convention (see WriteError):
//
//   - a path no pattern matches: 404 not_found;
//   - a path some pattern matches, but not with the request's method: 405
//     method_not_allowed, with an Allow header listing the methods that are.
//
// Patterns are http.ServeMux's (Go 1.22): "GET /titles/{id}", "POST
// /titles", "/static/", with the same wildcards, precedence and conflicts;
// a GET pattern also serves HEAD, and r.PathValue reads the wildcards. A
// Router is a ServeMux inside: it only adds the answers above, computed
// when no pattern matched, so a routed request costs a ServeMux's routing
// and one atomic load (the same allocation, BenchmarkRouter). The answers come from a catch-all, the pattern "/": a Router
// given its own "/" hands it what no other pattern matches, as a mux does
// (a "/{path...}" conflicts with the catch-all; register "/" instead).
//
// It also serves its API's OpenAPI document at /openapi.json (see
// [Router.Document]).
//
// The zero value is ready to use. Routes may be added at any time, also
// while the router serves, so a program can hand a Router to [New] first
// and register its routes once it has the Service's client (in
// [Service.Prepare]). A Router must not be copied after first use.
type Router struct {
	// Info heads the OpenAPI document derived from the routes; its zero
	// value gives the title "API" and the version "0".
	Info OpenAPIInfo
	// OpenAPI, if set, is a hand-written OpenAPI 3 document (JSON) that is
	// served instead of the derived one. It must describe exactly the
	// routes: Document reports every route it misses and every operation
	// no route serves, /openapi.json answers 500 with that report, and
	// [Service.Run] refuses to start a Service whose handler is the Router.
	OpenAPI []byte

	once sync.Once
	mux  http.ServeMux
	// root is the handler of a pattern "/" of the user's own: the router's
	// catch-all holds that pattern, and hands requests to it.
	root atomic.Pointer[http.Handler]

	mu      sync.Mutex
	routes  []Route
	methods []string // every method a pattern names (HEAD with GET), sorted
	docs    map[string]routeDoc
}

// Route is one pattern a Router serves.
type Route struct {
	Pattern string // as registered: "GET /titles/{id}"
	Method  string // "GET"; "" for a pattern that serves every method
	Host    string // "" unless the pattern names a host
	Path    string // "/titles/{id}"
}

// routeDoc is what Describe says of a route.
type routeDoc struct{ summary, description string }

// Handle registers h for pattern. It panics, as http.ServeMux.Handle does,
// if the pattern is invalid or conflicts with one already registered.
func (rt *Router) Handle(pattern string, h http.Handler) {
	if h == nil {
		panic("shoal: Router.Handle(" + pattern + "): nil handler")
	}
	rt.init()
	route := parseRoute(pattern)
	rt.mu.Lock()
	defer rt.mu.Unlock()
	if route.Method == "" && route.Host == "" && route.Path == "/" {
		// The catch-all holds "/" already: it hands requests on.
		if !rt.root.CompareAndSwap(nil, &h) {
			panic("shoal: Router.Handle: pattern \"/\" registered twice")
		}
	} else {
		// panics on a bad or conflicting pattern
		rt.mux.Handle(pattern, routeHandler{route.Host + route.Path, h})
	}
	rt.routes = append(rt.routes, route)
	rt.addMethod(route.Method)
	if route.Method == http.MethodGet {
		rt.addMethod(http.MethodHead) // a GET pattern serves HEAD too
	}
}

// routeHandler is a registered handler that names its route template (the
// pattern without its method) for the RED metrics and the server span
// (statuswriter.SetRoute): a label that stays bounded whatever the paths.
type routeHandler struct {
	route string
	h     http.Handler
}

func (rd routeHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	statuswriter.SetRoute(w, rd.route)
	rd.h.ServeHTTP(w, r)
}

// addMethod notes that a pattern names m. rt.mu is held.
func (rt *Router) addMethod(m string) {
	if m != "" && !slices.Contains(rt.methods, m) {
		// A new slice: allowed reads the old one without the lock.
		methods := append(slices.Clone(rt.methods), m)
		slices.Sort(methods)
		rt.methods = methods
	}
}

// HandleFunc registers f for pattern, like Handle.
func (rt *Router) HandleFunc(pattern string, f func(http.ResponseWriter, *http.Request)) {
	if f == nil {
		panic("shoal: Router.HandleFunc(" + pattern + "): nil handler")
	}
	rt.Handle(pattern, http.HandlerFunc(f))
}

// Describe gives the operation of a registered pattern a summary (one
// line) and a description in the derived OpenAPI document. A pattern that
// is not registered is reported by Document.
func (rt *Router) Describe(pattern, summary, description string) {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	if rt.docs == nil {
		rt.docs = map[string]routeDoc{}
	}
	rt.docs[pattern] = routeDoc{summary, description}
}

// Routes returns the registered routes, in the order of registration. The
// document at /openapi.json is not among them unless a route serves it.
func (rt *Router) Routes() []Route {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	return slices.Clone(rt.routes)
}

// ServeHTTP hands r to the handler of the most specific pattern that
// matches it, or answers 404 or 405.
func (rt *Router) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rt.init()
	rt.mux.ServeHTTP(w, r)
}

// init installs the catch-all, which every request no other pattern
// matches reaches: for any method and path, "/" is the least specific
// pattern there is.
func (rt *Router) init() {
	rt.once.Do(func() { rt.mux.HandleFunc("/", rt.unrouted) })
}

// unrouted answers a request no pattern of the user's matched, unless the
// user registered "/" (then that handler serves everything else, as in a
// ServeMux).
func (rt *Router) unrouted(w http.ResponseWriter, r *http.Request) {
	if h := rt.root.Load(); h != nil {
		statuswriter.SetRoute(w, "/")
		(*h).ServeHTTP(w, r)
		return
	}
	allow := rt.allowed(r)
	if r.URL.Path == PathOpenAPI && len(allow) == 0 {
		if r.Method == http.MethodGet || r.Method == http.MethodHead {
			rt.serveDocument(w)
			return
		}
		allow = []string{http.MethodGet, http.MethodHead}
	}
	if len(allow) == 0 {
		WriteError(w, http.StatusNotFound, "not_found",
			fmt.Sprintf("no route for %s %s; see %s", r.Method, r.URL.Path, PathOpenAPI))
		return
	}
	methods := strings.Join(allow, ", ")
	w.Header().Set("Allow", methods)
	WriteError(w, http.StatusMethodNotAllowed, "method_not_allowed",
		fmt.Sprintf("%s is not allowed on %s; use %s", r.Method, r.URL.Path, methods))
}

// allowed returns the methods some pattern serves r's path with, sorted:
// each method a pattern names is tried against the mux. Only requests that
// are answered 404 or 405 pay for it.
func (rt *Router) allowed(r *http.Request) []string {
	rt.mu.Lock()
	methods := rt.methods
	rt.mu.Unlock()
	var allow []string
	for _, m := range methods {
		probe := *r
		probe.Method = m
		if _, pattern := rt.mux.Handler(&probe); pattern != "" && pattern != "/" {
			allow = append(allow, m)
		}
	}
	return allow
}

// parseRoute splits a ServeMux pattern, "[METHOD ][HOST]/[PATH]", which
// the mux has accepted or is about to check.
func parseRoute(pattern string) Route {
	r := Route{Pattern: pattern}
	rest := strings.TrimSpace(pattern)
	if i := strings.IndexAny(rest, " \t"); i >= 0 {
		r.Method, rest = rest[:i], strings.TrimLeft(rest[i:], " \t")
	}
	if i := strings.IndexByte(rest, '/'); i >= 0 {
		r.Host, r.Path = rest[:i], rest[i:]
	}
	return r
}
