package gateway_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/client"
	"github.com/shoal-dev/shoal/discovery"
	"github.com/shoal-dev/shoal/gateway"
	"github.com/shoal-dev/shoal/handoff/handofftest"
	"github.com/shoal-dev/shoal/internal/syncbuf"
)

// seen is what an echo backend reports about the request it got.
type seen struct {
	Method, Path, RawPath, Query, Host, Body string
	XFF, XFHost, XFProto, Timeout            string
}

// caseHeader names the test case a request belongs to, for echo to record.
const caseHeader = "X-Test-Case"

// echo answers what it saw; reached, if not nil, records the caseHeader of
// every request (by value, not by count: a hedge or a canceled attempt of
// an earlier case may arrive late).
func echo(reached *sync.Map) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if reached != nil {
			reached.Store(r.Header.Get(caseHeader), true)
		}
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(seen{
			Method: r.Method, Path: r.URL.Path, RawPath: r.URL.RawPath, Query: r.URL.RawQuery,
			Host: r.Host, Body: string(body),
			XFF: r.Header.Get("X-Forwarded-For"), XFHost: r.Header.Get("X-Forwarded-Host"),
			XFProto: r.Header.Get("X-Forwarded-Proto"), Timeout: r.Header.Get(client.TimeoutHeader),
		})
	})
}

func serve(t *testing.T, h http.Handler) string {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String()
}

type fixture struct {
	front      *httptest.Server
	gw         *gateway.Gateway
	reached    *sync.Map // cases (caseHeader) that reached the "catalog" backend
	stuckHits  *atomic.Int64
	stuckEnded *atomic.Int64 // stuck requests whose context ended
}

// newGateway returns a gateway over r that logs nothing and calls backends
// through a client.Transport with cfg, closed when the test ends.
func newGateway(t testing.TB, r client.Resolver, cfg client.Config) *gateway.Gateway {
	t.Helper()
	tr, err := client.New(r, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tr.CloseIdleConnections)
	gw := gateway.New(r, tr)
	gw.Logger = slog.New(slog.DiscardHandler)
	return gw
}

// newFixture runs a gateway in front of real backends:
//
//	catalog: two echo instances
//	pair:    one refused address and one echo instance (failover)
//	down:    two refused addresses
//	stuck:   an instance that answers only when the request is abandoned
//	ghost:   known to the gateway's resolver, not to the transport's (a
//	         service that vanished between the two looks)
func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{reached: new(sync.Map), stuckHits: new(atomic.Int64), stuckEnded: new(atomic.Int64)}
	stuck := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.stuckHits.Add(1)
		<-r.Context().Done()
		f.stuckEnded.Add(1)
	})
	cat := discovery.NewCatalog()
	add := func(c *discovery.Catalog, service, id, addr string) {
		c.Upsert(discovery.Instance{ID: id, Service: service, Addr: addr, State: discovery.StateServing})
	}
	add(cat, "catalog", "catalog-1", serve(t, echo(f.reached)))
	add(cat, "catalog", "catalog-2", serve(t, echo(f.reached)))
	add(cat, "pair", "pair-1", handofftest.Refused(t))
	add(cat, "pair", "pair-2", serve(t, echo(nil)))
	add(cat, "down", "down-1", handofftest.Refused(t))
	add(cat, "down", "down-2", handofftest.Refused(t))
	add(cat, "stuck", "stuck-1", serve(t, stuck))
	// Shoal's own entries (the supervisor's control API) are never routed;
	// this one points at the catalog backend, so routing it would count.
	add(cat, "shoal-supervisor", "shoal-supervisor-1", serve(t, echo(f.reached)))

	tr, err := client.New(cat, client.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tr.CloseIdleConnections)
	gwView := discovery.NewCatalog()
	for _, inst := range cat.Snapshot().All() {
		gwView.Upsert(inst)
	}
	add(gwView, "ghost", "ghost-1", handofftest.Refused(t))

	gw := gateway.New(gwView, tr)
	gw.Timeout = 300 * time.Millisecond
	gw.Logger = slog.New(slog.DiscardHandler)
	f.gw = gw
	f.front = httptest.NewServer(gw)
	t.Cleanup(f.front.Close)
	return f
}

type errorBody struct {
	Error struct{ Code, Message string } `json:"error"`
}

func TestRouting(t *testing.T) {
	f := newFixture(t)
	tests := []struct {
		name       string
		method     string
		path       string
		body       string
		wantStatus int
		wantCode   string   // error code, for errors
		wantMsg    []string // substrings of the error message
		check      func(t *testing.T, s seen)
	}{
		{name: "routes with query", path: "/catalog/titles/1?limit=5&offset=10", wantStatus: 200,
			check: func(t *testing.T, s seen) {
				if s.Path != "/titles/1" || s.Query != "limit=5&offset=10" || s.Method != "GET" {
					t.Errorf("backend saw %s %s ? %s", s.Method, s.Path, s.Query)
				}
				if s.Host != "catalog" {
					t.Errorf("backend saw Host %q, want the service name", s.Host)
				}
				if s.XFF != "127.0.0.1" || s.XFProto != "http" || !strings.HasPrefix(s.XFHost, "127.0.0.1:") {
					t.Errorf("X-Forwarded-*: for=%q host=%q proto=%q", s.XFF, s.XFHost, s.XFProto)
				}
				if s.Timeout == "" {
					t.Errorf("no %s header: deadline not propagated", client.TimeoutHeader)
				}
			}},
		{name: "service root", path: "/catalog", wantStatus: 200,
			check: func(t *testing.T, s seen) {
				if s.Path != "/" {
					t.Errorf("backend saw path %q, want /", s.Path)
				}
			}},
		{name: "escaping kept", path: "/catalog/files/a%2Fb", wantStatus: 200,
			check: func(t *testing.T, s seen) {
				if s.Path != "/files/a/b" || s.RawPath != "/files/a%2Fb" {
					t.Errorf("backend saw path %q raw %q", s.Path, s.RawPath)
				}
			}},
		{name: "post body", method: "POST", path: "/catalog/echo", body: `{"a":1}`, wantStatus: 200,
			check: func(t *testing.T, s seen) {
				if s.Body != `{"a":1}` || s.Method != "POST" {
					t.Errorf("backend saw %s body %q", s.Method, s.Body)
				}
			}},
		{name: "put body fails over", method: "PUT", path: "/pair/ratings/x", body: `{"score":4}`, wantStatus: 200,
			check: func(t *testing.T, s seen) {
				if s.Body != `{"score":4}` {
					t.Errorf("backend saw body %q after failover", s.Body)
				}
			}},
		{name: "root", path: "/", wantStatus: 404, wantCode: "no_route", wantMsg: []string{"/<service>/<path>"}},
		{name: "empty service", path: "//titles", wantStatus: 404, wantCode: "no_route", wantMsg: []string{"/<service>/<path>"}},
		{name: "unknown service", path: "/nosuch/titles/1", wantStatus: 404, wantCode: "unknown_service", wantMsg: []string{`"nosuch"`}},
		{name: "invalid service name", path: "/No_Such/x", wantStatus: 404, wantCode: "unknown_service", wantMsg: []string{`"No_Such"`}},
		{name: "shoal's own services", path: "/shoal-supervisor/v1/ps", wantStatus: 404, wantCode: "unknown_service", wantMsg: []string{`"shoal-supervisor"`}},
		{name: "healthz", path: "/catalog/healthz", wantStatus: 404, wantCode: "not_found", wantMsg: []string{"admin path", `"catalog"`}},
		{name: "readyz", path: "/catalog/readyz", wantStatus: 404, wantCode: "not_found"},
		{name: "infoz", path: "/catalog/infoz?x=1", wantStatus: 404, wantCode: "not_found"},
		{name: "metrics", path: "/catalog/metrics", wantStatus: 404, wantCode: "not_found"},
		{name: "infoz trailing slash", path: "/catalog/infoz/", wantStatus: 404, wantCode: "not_found"},
		{name: "healthz doubled slash", path: "/catalog//healthz", wantStatus: 404, wantCode: "not_found"},
		{name: "healthz dot segments", path: "/catalog/titles/../healthz", wantStatus: 404, wantCode: "not_found"},
		{name: "healthz escaped", path: "/catalog/%68ealthz", wantStatus: 404, wantCode: "not_found"},
		{name: "all instances refuse", path: "/down/x", wantStatus: 502, wantCode: "bad_gateway", wantMsg: []string{`"down"`, "attempts"}},
		{name: "deadline", path: "/stuck/x", wantStatus: 504, wantCode: "timeout", wantMsg: []string{`"stuck"`}},
		{name: "vanished", path: "/ghost/x", wantStatus: 503, wantCode: "unavailable", wantMsg: []string{`"ghost"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			method := tt.method
			if method == "" {
				method = "GET"
			}
			var body io.Reader
			if tt.body != "" {
				body = strings.NewReader(tt.body)
			}
			req, err := http.NewRequest(method, f.front.URL+tt.path, body)
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set(caseHeader, tt.name)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			raw, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("status %d, want %d; body %s", resp.StatusCode, tt.wantStatus, raw)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q", ct)
			}
			if tt.check != nil {
				var s seen
				if err := json.Unmarshal(raw, &s); err != nil {
					t.Fatalf("decoding %s: %v", raw, err)
				}
				tt.check(t, s)
				return
			}
			var e errorBody
			if err := json.Unmarshal(raw, &e); err != nil {
				t.Fatalf("error body %s: %v", raw, err)
			}
			if e.Error.Code != tt.wantCode || e.Error.Message == "" {
				t.Errorf("error %+v, want code %q", e.Error, tt.wantCode)
			}
			for _, w := range tt.wantMsg {
				if !strings.Contains(e.Error.Message, w) {
					t.Errorf("message %q lacks %q", e.Error.Message, w)
				}
			}
			if strings.Contains(string(raw), "127.0.0.1") {
				t.Errorf("error leaks an internal address: %s", raw)
			}
			if resp.StatusCode == 503 && resp.Header.Get("Retry-After") == "" {
				t.Errorf("503 without Retry-After")
			}
			if _, ok := f.reached.Load(tt.name); ok {
				t.Errorf("an error case reached the catalog backend")
			}
		})
	}
}

// The caller's own deadline, when shorter than Gateway.Timeout, bounds the
// proxied request too: the context is passed through, not replaced. The
// gateway's timeout is a minute here, so only the caller's giving up can end
// the backend's request within eventually's 10 s.
func TestCallerCancelStopsBackend(t *testing.T) {
	f := newFixture(t)
	f.gw.Timeout = time.Minute
	obs := &fakeObserver{}
	f.gw.Metrics = obs
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", f.front.URL+"/stuck/x", nil)
	done := make(chan error, 1)
	go func() { // ends when the caller gives up
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		done <- err
	}()
	eventually(t, "the request reached the backend", func() bool { return f.stuckHits.Load() > 0 })
	cancel()
	if err := <-done; err == nil {
		t.Fatal("the call succeeded although the caller gave up")
	}
	eventually(t, "the backend's request ended with the caller's", func() bool { return f.stuckEnded.Load() > 0 })
	// Recorded as the caller's leaving, not as the route's error.
	eventually(t, "the request recorded", func() bool { return obs.last() != "" })
	if got := obs.last(); !strings.HasSuffix(got, " stuck 499") {
		t.Errorf("recorded %q, want the stuck route's request as 499 (client closed request)", got)
	}
}

// A zero Timeout means DefaultTimeout: the backend is told the remaining
// budget, all of it (an attempt may use the whole deadline).
func TestZeroTimeoutMeansDefault(t *testing.T) {
	cat := discovery.NewCatalog()
	var got atomic.Value
	cat.Upsert(discovery.Instance{ID: "a-1", Service: "a", State: discovery.StateServing,
		Addr: serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			got.Store(r.Header.Get(client.TimeoutHeader))
		}))})
	gw := newGateway(t, cat, client.Config{})
	rec := httptest.NewRecorder()
	gw.ServeHTTP(rec, httptest.NewRequest("GET", "/a/x", nil))
	if rec.Code != 200 {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	ms, err := client.ParseTimeout(got.Load().(string))
	if want := gateway.DefaultTimeout; err != nil || ms > want || ms < want-time.Second {
		t.Errorf("backend budget %v (%v), want about %v", ms, err, want)
	}
}

// A failed proxy's log line names the service it could not reach as
// upstream: "service" is the gateway's own, as the SDK's logger says.
func TestProxyFailureLogNamesUpstream(t *testing.T) {
	cat := discovery.NewCatalog()
	cat.Upsert(discovery.Instance{ID: "down-1", Service: "down", State: discovery.StateServing, Addr: handofftest.Refused(t)})
	gw := newGateway(t, cat, client.Config{})
	var logs syncbuf.Buffer
	gw.Logger = slog.New(slog.NewJSONHandler(&logs, nil)).With("service", "gateway")
	rec := httptest.NewRecorder()
	gw.ServeHTTP(rec, httptest.NewRequest("GET", "/down/x", nil))
	if rec.Code != http.StatusBadGateway {
		t.Fatalf("status %d, want 502", rec.Code)
	}
	if got := logs.String(); !strings.Contains(got, `"msg":"proxy failed"`) ||
		strings.Count(got, `"service":`) != 1 || !strings.Contains(got, `"upstream":"down"`) {
		t.Errorf("logged %s; want a proxy failed line with one service key (the gateway's) and upstream down", got)
	}
}

// A service that had instances and now has none (scaled to zero, all
// crashed) is unavailable for now, not unknown: 503 with Retry-After.
func TestEmptiedServiceIsUnavailableNotUnknown(t *testing.T) {
	cat := discovery.NewCatalog()
	inst := discovery.Instance{ID: "a-1", Service: "a", State: discovery.StateServing, Addr: serve(t, echo(nil))}
	cat.Upsert(inst)
	gw := newGateway(t, cat, client.Config{})
	status := func() (int, string) {
		rec := httptest.NewRecorder()
		gw.ServeHTTP(rec, httptest.NewRequest("GET", "/a/x", nil))
		return rec.Code, rec.Header().Get("Retry-After")
	}
	if code, _ := status(); code != 200 {
		t.Fatalf("status %d with an instance", code)
	}
	cat.Remove(inst.ID)
	if code, retry := status(); code != 503 || retry == "" {
		t.Fatalf("after its last instance left: status %d, Retry-After %q; want 503 with Retry-After", code, retry)
	}
	rec := httptest.NewRecorder()
	gw.ServeHTTP(rec, httptest.NewRequest("GET", "/never/x", nil))
	if rec.Code != 404 {
		t.Fatalf("a service never seen: status %d, want 404", rec.Code)
	}
}
