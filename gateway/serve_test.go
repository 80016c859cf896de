package gateway_test

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/client"
	"github.com/shoal-dev/shoal/discovery"
	"github.com/shoal-dev/shoal/gateway"
	"github.com/shoal-dev/shoal/internal/syncbuf"
	"github.com/shoal-dev/shoal/resilience"
)

// headerEcho reports the path and some headers of the request it got.
type headerEcho struct {
	Service, Path, RawPath, Subject, Auth, RequestID, Traceparent string
	Body                                                          string
}

func echoAs(service string, hits *atomic.Int64) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Request-Id", r.Header.Get("X-Request-Id")) // as an SDK service does
		json.NewEncoder(w).Encode(headerEcho{
			Service: service, Path: r.URL.Path, RawPath: r.URL.RawPath,
			Subject: r.Header.Get(gateway.SubjectHeader), Auth: r.Header.Get(gateway.AuthHeader),
			RequestID: r.Header.Get("X-Request-Id"), Traceparent: r.Header.Get("Traceparent"),
			Body: string(body),
		})
	})
}

// routed is a gateway with configured routes in front of real backends.
type routed struct {
	gw    *gateway.Gateway
	front *httptest.Server
	hits  map[string]*atomic.Int64
	obs   *fakeObserver
}

// newRouted runs services a, b, metrics and infoz (echo), stuck (never
// answers) and flaky (two instances answering 503), and a gateway with cfg.
func newRouted(t *testing.T, cfg *gateway.Config) *routed {
	t.Helper()
	f := &routed{hits: map[string]*atomic.Int64{}, obs: &fakeObserver{}}
	cat := discovery.NewCatalog()
	add := func(service string, h http.Handler) {
		n := len(cat.Instances(service)) + 1
		cat.Upsert(discovery.Instance{ID: service + "-" + string(rune('0'+n)), Service: service, Addr: serve(t, h), State: discovery.StateServing})
	}
	for _, s := range []string{"a", "b", "flaky", "stuck", "metrics", "infoz"} {
		f.hits[s] = new(atomic.Int64)
	}
	// metrics and infoz are named like the gateway's own admin paths.
	for _, s := range []string{"a", "b", "metrics", "infoz"} {
		add(s, echoAs(s, f.hits[s]))
	}
	for range 2 {
		add("flaky", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			f.hits["flaky"].Add(1)
			w.WriteHeader(http.StatusServiceUnavailable)
		}))
	}
	add("stuck", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.hits["stuck"].Add(1)
		<-r.Context().Done()
	}))
	f.gw = newGateway(t, cat, client.Config{Hedge: hedgeOff})
	f.gw.Metrics = f.obs
	if cfg != nil {
		if err := f.gw.SetConfig(cfg, t.TempDir()); err != nil {
			t.Fatal(err)
		}
	}
	f.front = httptest.NewServer(f.gw)
	t.Cleanup(f.front.Close)
	return f
}

// fakeObserver keeps what the gateway reported.
type fakeObserver struct {
	mu   sync.Mutex
	seen []string // "route service code"
}

func (o *fakeObserver) ObserveRoute(route, service string, code int, d time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	text := http.StatusText(code)
	if text == "" {
		text = strconv.Itoa(code) // e.g. 499: the caller went away
	}
	o.seen = append(o.seen, route+" "+service+" "+text)
}

func (o *fakeObserver) last() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.seen) == 0 {
		return ""
	}
	return o.seen[len(o.seen)-1]
}

type call struct {
	method, host, path, body string
	header                   map[string]string
	chunked                  bool
}

func (f *routed) do(t *testing.T, c call) (*http.Response, []byte) {
	t.Helper()
	if c.method == "" {
		c.method = "GET"
	}
	var body io.Reader
	if c.body != "" {
		body = strings.NewReader(c.body)
		if c.chunked {
			body = io.MultiReader(strings.NewReader(c.body)) // unknown length: chunked
		}
	}
	req, err := http.NewRequest(c.method, f.front.URL+c.path, body)
	if err != nil {
		t.Fatal(err)
	}
	if c.host != "" {
		req.Host = c.host
	}
	for k, v := range c.header {
		req.Header.Set(k, v)
	}
	resp, err := f.front.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp, raw
}

var hedgeOff = resilience.HedgeConfig{Disabled: true}

func sha(key string) string {
	s := sha256.Sum256([]byte(key))
	return hex.EncodeToString(s[:])
}

func ptr[T any](v T) *T { return &v }

func TestConfiguredRoutes(t *testing.T) {
	f := newRouted(t, &gateway.Config{
		DefaultRoutes: ptr(false),
		Auth:          gateway.AuthConfig{APIKeys: []gateway.APIKey{{Name: "mobile", SHA256: sha("s3cret")}}},
		Routes: []gateway.Route{
			{Path: "/v1/titles/", Service: "a", Methods: []string{"GET", "HEAD"}, Rewrite: "/titles/"},
			{Path: "/v1/titles/", Service: "b", Methods: []string{"POST"}, MaxBody: 8},
			{Path: "/v1/titles/", Service: "b", Host: "admin.example.com"},
			{Path: "/ops/", Service: "a", Strip: true},
			{Path: "/private/", Service: "a", Auth: gateway.AuthAPIKey},
			{Path: "/limited/", Service: "a", RateLimit: &gateway.RateLimit{Rate: 0.001, Burst: 1}},
			{Path: "/slow/", Service: "stuck", Timeout: 100 * time.Millisecond},
			{Path: "/once/", Service: "flaky", MaxAttempts: 1},
			{Path: "/twice/", Service: "flaky"},
			{Path: "/web/", Service: "a", CORS: &gateway.CORS{AllowOrigins: []string{"https://app.example"}}},
			{Path: "/gone/", Service: "nosuch"},
		},
	})
	tests := []struct {
		name       string
		call       call
		wantStatus int
		wantCode   string     // for errors
		want       headerEcho // for answers; zero fields not checked
		check      func(t *testing.T, resp *http.Response)
	}{
		{name: "rewrite", call: call{path: "/v1/titles/7"}, wantStatus: 200, want: headerEcho{Service: "a", Path: "/titles/7"}},
		{name: "rewrite, prefix only", call: call{path: "/v1/titles"}, wantStatus: 200, want: headerEcho{Service: "a", Path: "/titles/"}},
		{name: "method picks the route", call: call{method: "POST", path: "/v1/titles/7", body: "{}"}, wantStatus: 200, want: headerEcho{Service: "b", Path: "/v1/titles/7", Body: "{}"}},
		{name: "405", call: call{method: "DELETE", path: "/v1/titles/7"}, wantStatus: 405, wantCode: "method_not_allowed",
			check: func(t *testing.T, resp *http.Response) {
				if a := resp.Header.Get("Allow"); a != "GET, HEAD, POST" {
					t.Errorf("Allow %q", a)
				}
			}},
		{name: "host route", call: call{method: "DELETE", host: "admin.example.com", path: "/v1/titles/7"}, wantStatus: 200, want: headerEcho{Service: "b"}},
		{name: "strip", call: call{path: "/ops/x%2Fy"}, wantStatus: 200, want: headerEcho{Path: "/x/y", RawPath: "/x%2Fy"}},
		{name: "admin after strip", call: call{path: "/ops/healthz"}, wantStatus: 404, wantCode: "not_found"},
		{name: "admin after strip, spelled oddly", call: call{path: "/ops/METRICS/"}, wantStatus: 404, wantCode: "not_found"},
		{name: "default routes off", call: call{path: "/a/x"}, wantStatus: 404, wantCode: "no_route"},
		{name: "no credentials", call: call{path: "/private/x"}, wantStatus: 401, wantCode: "unauthenticated",
			check: func(t *testing.T, resp *http.Response) {
				if resp.Header.Get("WWW-Authenticate") == "" {
					t.Error("no WWW-Authenticate")
				}
			}},
		{name: "API key", call: call{path: "/private/x", header: map[string]string{"X-API-Key": "s3cret", gateway.SubjectHeader: "root"}},
			wantStatus: 200, want: headerEcho{Subject: "mobile", Auth: "api_key:mobile"}},
		{name: "forged identity stripped", call: call{path: "/v1/titles/1", header: map[string]string{gateway.SubjectHeader: "root", gateway.AuthHeader: "jwt"}},
			wantStatus: 200, check: nil},
		{name: "body over the route's limit", call: call{method: "POST", path: "/v1/titles/", body: "0123456789"}, wantStatus: 413, wantCode: "too_large"},
		{name: "chunked body over the limit", call: call{method: "POST", path: "/v1/titles/", body: "0123456789", chunked: true}, wantStatus: 413, wantCode: "too_large"},
		{name: "route timeout", call: call{path: "/slow/x"}, wantStatus: 504, wantCode: "timeout"},
		{name: "service with no instance", call: call{path: "/gone/x"}, wantStatus: 503, wantCode: "unavailable"},
		{name: "CORS preflight", call: call{method: "OPTIONS", path: "/web/x", header: map[string]string{"Origin": "https://app.example", "Access-Control-Request-Method": "POST"}},
			wantStatus: 204, check: func(t *testing.T, resp *http.Response) {
				if resp.Header.Get("Access-Control-Allow-Origin") != "https://app.example" {
					t.Errorf("preflight headers %v", resp.Header)
				}
			}},
		{name: "CORS request", call: call{path: "/web/x", header: map[string]string{"Origin": "https://app.example"}},
			wantStatus: 200, check: func(t *testing.T, resp *http.Response) {
				if resp.Header.Get("Access-Control-Allow-Origin") != "https://app.example" {
					t.Errorf("headers %v", resp.Header)
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := f.hits["b"].Load()
			resp, raw := f.do(t, tt.call)
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tt.wantStatus, raw)
			}
			if tt.check != nil {
				tt.check(t, resp)
			}
			if tt.wantCode != "" {
				var e errorBody
				if err := json.Unmarshal(raw, &e); err != nil || e.Error.Code != tt.wantCode {
					t.Fatalf("error %s, want code %s", raw, tt.wantCode)
				}
				if tt.wantStatus == 413 && f.hits["b"].Load() != before && !tt.call.chunked {
					t.Errorf("a body over the limit reached the service")
				}
				return
			}
			if resp.StatusCode != 200 {
				return
			}
			var got headerEcho
			if err := json.Unmarshal(raw, &got); err != nil {
				t.Fatalf("%s: %v", raw, err)
			}
			w := tt.want
			if w.Service != "" && got.Service != w.Service || w.Path != "" && got.Path != w.Path || w.RawPath != "" && got.RawPath != w.RawPath ||
				got.Subject != w.Subject || got.Auth != w.Auth || w.Body != "" && got.Body != w.Body {
				t.Errorf("backend saw %+v, want %+v", got, w)
			}
		})
	}

	// Rate limit: one request, then 429 with the RateLimit headers.
	if resp, raw := f.do(t, call{path: "/limited/x"}); resp.StatusCode != 200 {
		t.Fatalf("first limited request: %d %s", resp.StatusCode, raw)
	}
	resp, raw := f.do(t, call{path: "/limited/x"})
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") == "" {
		t.Errorf("second limited request: %d %s", resp.StatusCode, raw)
	}
	if got := f.obs.last(); got != "/limited/ a Too Many Requests" {
		t.Errorf("metrics saw %q", got)
	}

	// max_attempts: 1 sends one attempt; the service's policy three (two
	// instances here, so two).
	f.hits["flaky"].Store(0)
	if resp, _ := f.do(t, call{path: "/once/x"}); resp.StatusCode != 503 || f.hits["flaky"].Load() != 1 {
		t.Errorf("max_attempts 1: status %d after %d attempts", resp.StatusCode, f.hits["flaky"].Load())
	}
	f.hits["flaky"].Store(0)
	if resp, _ := f.do(t, call{path: "/twice/x"}); resp.StatusCode != 503 || f.hits["flaky"].Load() != 2 {
		t.Errorf("default attempts: status %d after %d attempts", resp.StatusCode, f.hits["flaky"].Load())
	}
}

// Identity headers are stripped on default routes too, and the request ID
// and trace context are set or kept.
func TestRequestHeaders(t *testing.T) {
	f := newRouted(t, nil)
	const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	tests := []struct {
		name             string
		header           map[string]string
		wantID, wantTP   string // "" means a new one
		wantSubject      string
		keepsCallersOnes bool
	}{
		{name: "new ones", header: nil},
		{name: "kept", header: map[string]string{"X-Request-Id": "req-42", "Traceparent": tp}, wantID: "req-42", wantTP: tp},
		{name: "insane ID, bad traceparent", header: map[string]string{"X-Request-Id": strings.Repeat("x", 200), "Traceparent": "00-zz-yy-01"}},
		{name: "zero trace ID", header: map[string]string{"X-Request-Id": "a b", "Traceparent": "00-00000000000000000000000000000000-00f067aa0ba902b7-01"}},
		{name: "forged subject", header: map[string]string{gateway.SubjectHeader: "root", gateway.AuthHeader: "jwt"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, raw := f.do(t, call{path: "/a/x", header: tt.header})
			var got headerEcho
			if err := json.Unmarshal(raw, &got); err != nil {
				t.Fatalf("%d %s", resp.StatusCode, raw)
			}
			if got.Subject != "" || got.Auth != "" {
				t.Errorf("identity reached the service: %q %q", got.Subject, got.Auth)
			}
			if tt.wantID != "" && got.RequestID != tt.wantID || tt.wantID == "" && (len(got.RequestID) != 16 || got.RequestID == tt.header["X-Request-Id"]) {
				t.Errorf("request ID %q, want %q", got.RequestID, tt.wantID)
			}
			if ids := resp.Header.Values("X-Request-Id"); len(ids) != 1 || ids[0] != got.RequestID {
				t.Errorf("response X-Request-Id %q, want [%s]", ids, got.RequestID)
			}
			if tt.wantTP != "" && got.Traceparent != tt.wantTP {
				t.Errorf("traceparent %q, want %q", got.Traceparent, tt.wantTP)
			}
			if tt.wantTP == "" {
				parts := strings.Split(got.Traceparent, "-")
				if len(parts) != 4 || parts[0] != "00" || len(parts[1]) != 32 || len(parts[2]) != 16 || parts[3] != "01" || got.Traceparent == tt.header["Traceparent"] {
					t.Errorf("new traceparent %q", got.Traceparent)
				}
			}
		})
	}
}

func TestAccessLog(t *testing.T) {
	var buf syncbuf.Buffer
	f := newRouted(t, &gateway.Config{AccessLog: true, Routes: []gateway.Route{{Path: "/v1/", Service: "a", Strip: true}}})
	f.gw.AccessLogger = slog.New(slog.NewJSONHandler(&buf, nil))
	f.do(t, call{path: "/v1/x?q=1", header: map[string]string{"X-Request-Id": "log-1"}})
	f.do(t, call{path: "/nosuch/x"})
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d lines:\n%s", len(lines), buf.String())
	}
	var l struct {
		Time                                                     time.Time
		Msg, Method, Path, Route, Service, Request_ID, Client_IP string
		Status                                                   int
		Bytes                                                    int64
		Duration_MS                                              float64
	}
	if err := json.Unmarshal([]byte(lines[0]), &l); err != nil {
		t.Fatal(err)
	}
	if l.Msg != "access" || l.Method != "GET" || l.Path != "/v1/x" || l.Route != "/v1/" || l.Service != "a" || l.Status != 200 ||
		l.Bytes == 0 || l.Request_ID != "log-1" || l.Client_IP != "127.0.0.1" || l.Time.IsZero() || l.Duration_MS <= 0 {
		t.Errorf("access log line %s", lines[0])
	}
	if !strings.Contains(lines[1], `"route":"default","service":"","status":404`) {
		t.Errorf("second line %s", lines[1])
	}
}

// A bad configuration is refused and the table in use stays.
func TestSetConfigRefusesBadConfig(t *testing.T) {
	f := newRouted(t, &gateway.Config{Routes: []gateway.Route{{Path: "/v1/", Service: "a", Strip: true}}})
	err := f.gw.SetConfig(&gateway.Config{Routes: []gateway.Route{{Path: "/v1/", Service: "a", Auth: gateway.AuthJWT}}}, "")
	if err == nil || !strings.Contains(err.Error(), "auth: jwt needs") {
		t.Fatalf("err = %v", err)
	}
	if resp, raw := f.do(t, call{path: "/v1/x"}); resp.StatusCode != 200 || !strings.Contains(string(raw), `"Path":"/x"`) {
		t.Errorf("after a refused config: %d %s", resp.StatusCode, raw)
	}
}

// Default routes do not reach a service that a route requires credentials
// for: that would bypass the check.
func TestDefaultRoutesSkipGuardedServices(t *testing.T) {
	f := newRouted(t, &gateway.Config{
		Auth:   gateway.AuthConfig{APIKeys: []gateway.APIKey{{Name: "ops", SHA256: sha("k")}}},
		Routes: []gateway.Route{{Path: "/private/", Service: "a", Auth: gateway.AuthAny}},
	})
	if resp, raw := f.do(t, call{path: "/a/x"}); resp.StatusCode != 404 || !strings.Contains(string(raw), "only through its configured routes") {
		t.Errorf("default route to a guarded service: %d %s", resp.StatusCode, raw)
	}
	if resp, raw := f.do(t, call{path: "/b/x"}); resp.StatusCode != 200 {
		t.Errorf("default route to another service: %d %s", resp.StatusCode, raw)
	}
	if resp, raw := f.do(t, call{path: "/private/x", header: map[string]string{"Authorization": "ApiKey k"}}); resp.StatusCode != 200 {
		t.Errorf("the route itself: %d %s", resp.StatusCode, raw)
	}
}
