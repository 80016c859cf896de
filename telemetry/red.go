package telemetry

import (
	"context"
	"errors"
	"maps"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/shoal-dev/shoal/internal/statuswriter"
)

// durationBuckets suit services that answer in milliseconds: 1-2-5 steps
// from 0.5 ms to 10 s. Scrapers that negotiate protobuf also get a native
// histogram, at about 10% resolution, with no bucket layout to choose.
var durationBuckets = []float64{
	.0005, .001, .002, .005, .01, .02, .05, .1, .2, .5, 1, 2, 5, 10,
}

// methods are the values of the method label: the standard methods, and
// "other" for any method a client may invent, so the label stays bounded.
var methods = [...]string{
	http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut,
	http.MethodPatch, http.MethodDelete, http.MethodOptions,
	http.MethodConnect, http.MethodTrace, "other",
}

func methodIndex(m string) int {
	switch m {
	case http.MethodGet:
		return 0
	case http.MethodHead:
		return 1
	case http.MethodPost:
		return 2
	case http.MethodPut:
		return 3
	case http.MethodPatch:
		return 4
	case http.MethodDelete:
		return 5
	case http.MethodOptions:
		return 6
	case http.MethodConnect:
		return 7
	case http.MethodTrace:
		return 8
	}
	return len(methods) - 1
}

// StatusClientClosed (499, nginx's "client closed request") is what the RED
// metrics, server spans and the gateway's route metrics record for a
// request that ended in a 5xx because its caller went away first: a hedge
// that lost the race, a client that gave up. Nobody reads that answer;
// counted as the server's error, it would show errors no caller saw (a
// new-user trial found 16 "503"s at api for 798 requests all answered 200,
// every one a hedge the gateway had canceled).
const StatusClientClosed = 499

// Recorded is the status to record for a request whose handler wrote code
// and returned: StatusClientClosed for a 5xx to a caller that had gone.
func Recorded(r *http.Request, code int) int {
	if code >= 500 && CallerGone(r) {
		return StatusClientClosed
	}
	return code
}

// CallerGone reports whether r's caller has gone: its connection closed or
// its stream was reset. Servers cancel the request's context then, with
// whatever cause (net/http none, the gateway's engine its own), so the
// context's error, not its cause, tells.
func CallerGone(r *http.Request) bool { return errors.Is(r.Context().Err(), context.Canceled) }

// codeSlots maps a status code below 600 that net/http knows (has a
// StatusText for), or StatusClientClosed, to its slot in red.series plus
// one; 0 means unknown. Unknown codes still get their exact label, on a
// slower path.
var codeSlots, numCodeSlots = func() (t [600]uint8, n int) {
	for c := range t {
		if http.StatusText(c) != "" || c == StatusClientClosed {
			n++
			t[c] = uint8(n)
		}
	}
	return t, n
}()

// maxCodeSlots bounds numCodeSlots at compile time (net/http names 63).
const maxCodeSlots = 80

// red holds the RED metrics of the service's own handler.
type red struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec

	// unrouted and routes cache the children of requests and duration: for
	// requests no route named (route ""), and per route template. Routes
	// are few (a router's patterns) and added once, so the map is replaced
	// whole when one is (copy on write) and read without a lock.
	unrouted seriesTable
	routes   atomic.Pointer[map[string]*seriesTable]
	mu       sync.Mutex // serialises adding a route
}

// seriesTable caches the children of one route for each method and known
// code, created on first use so only the combinations seen are exported.
// With it the hot path does no label hashing and no allocation: a map
// lookup, an array index and an atomic load.
type seriesTable struct {
	series [len(methods)][maxCodeSlots]atomic.Pointer[redSeries]
}

type redSeries struct {
	requests prometheus.Counter
	duration prometheus.Observer
}

func newRED() *red {
	if numCodeSlots > maxCodeSlots {
		panic("telemetry: maxCodeSlots is too small for net/http's status codes")
	}
	labels := []string{"method", "route", "code"}
	return &red{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shoal_http_requests_total",
			Help: "Requests the service's handler finished, by method, route template (empty if no route of the service's Router served it) and exact status code (a handler panic counts as 500).",
		}, labels),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:                            "shoal_http_request_duration_seconds",
			Help:                            "Time from the request reaching the service's handler to the handler returning, by method, route template and exact status code.",
			Buckets:                         durationBuckets,
			NativeHistogramBucketFactor:     1.1,
			NativeHistogramMaxBucketNumber:  160,
			NativeHistogramMinResetDuration: time.Hour,
		}, labels),
	}
}

// seriesFor returns the children for method, route and code.
func (r *red) seriesFor(method, route string, code int) *redSeries {
	mi := methodIndex(method)
	t := r.table(route)
	if code < 0 || code >= len(codeSlots) || codeSlots[code] == 0 {
		return r.newSeries(mi, route, code) // an unknown code: rare, so not cached
	}
	p := &t.series[mi][codeSlots[code]-1]
	if s := p.Load(); s != nil {
		return s
	}
	// Racing first uses build equal values: the vecs return the same child
	// for the same labels.
	s := r.newSeries(mi, route, code)
	p.Store(s)
	return s
}

// table returns the cache of route's children, adding it on first use.
func (r *red) table(route string) *seriesTable {
	if route == "" {
		return &r.unrouted
	}
	if m := r.routes.Load(); m != nil {
		if t := (*m)[route]; t != nil {
			return t
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	old := r.routes.Load()
	if old != nil && (*old)[route] != nil {
		return (*old)[route]
	}
	m := make(map[string]*seriesTable, 1)
	if old != nil {
		maps.Copy(m, *old)
	}
	t := &seriesTable{}
	m[route] = t
	r.routes.Store(&m)
	return t
}

func (r *red) newSeries(mi int, route string, code int) *redSeries {
	c := strconv.Itoa(code)
	return &redSeries{
		requests: r.requests.WithLabelValues(methods[mi], route, c),
		duration: r.duration.WithLabelValues(methods[mi], route, c),
	}
}

// Middleware returns next instrumented with the RED metrics: it counts
// every request in shoal_http_requests_total and observes its duration in
// shoal_http_request_duration_seconds, labelled by method (the nine
// standard methods, else "other"), route and the exact status code. The
// route is the template of the SDK Router's (shoal.Router) pattern that served the
// request ("/titles/{id}": the pattern without its method), so a service's
// routes are told apart with a label that stays bounded whatever the paths;
// it is empty for a request no route served (a 404, a refusal before the
// handler, a handler that is not a Router).
//
// The code is exact rather than a class (2xx, 5xx) because the codes that
// matter to resilience differ within a class: 503 is a shed or draining
// instance, 429 a rate limit, 504 a spent deadline, 500 a bug. The set is
// small in practice, and a class is one regex away (code=~"5..").
//
// The writer passed to next keeps http.Flusher, http.Hijacker and
// io.ReaderFrom, and unwraps for http.ResponseController. A request whose
// handler panics is recorded as 500 (its response was cut short) and the
// panic goes on up to net/http; a 5xx to a caller that had gone, as
// StatusClientClosed. Mount the /metrics handler outside
// Middleware so scrapes are not counted as traffic.
func (m *Metrics) Middleware(next http.Handler) http.Handler {
	r := m.red
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		start := time.Now()
		sw := &statuswriter.Writer{ResponseWriter: w}
		finished := false
		defer func() {
			code := sw.Status()
			if !finished {
				code = http.StatusInternalServerError
			} else {
				code = Recorded(req, code)
			}
			s := r.seriesFor(req.Method, sw.Route, code)
			s.requests.Inc()
			s.duration.Observe(time.Since(start).Seconds())
		}()
		next.ServeHTTP(sw, req)
		finished = true
	})
}
