package dashboard

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/shoal-dev/shoal/supervisor"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const token = "0123456789abcdef0123456789abcdef"

// fakeSystem is a System whose state the test sets and whose controls it
// records.
type fakeSystem struct {
	mu      sync.Mutex
	ov      supervisor.Overview
	events  []supervisor.Event
	traces  map[string]supervisor.Trace
	calls   []string
	changed chan struct{}
	err     error // returned by the controls
}

func newFake() *fakeSystem {
	return &fakeSystem{
		ov: supervisor.Overview{System: "test", Services: []supervisor.ServiceView{{Name: "catalog", Kind: "sdk",
			Instances: []supervisor.InstanceView{{InstanceStatus: supervisor.InstanceStatus{Service: "catalog", Index: 1, ID: "catalog-1-abcd", State: "serving"}, Slot: "catalog/1"}}}}},
		traces:  map[string]supervisor.Trace{},
		changed: make(chan struct{}),
	}
}

func (f *fakeSystem) Overview() supervisor.Overview { f.mu.Lock(); defer f.mu.Unlock(); return f.ov }
func (f *fakeSystem) Traces(list string, limit int) []supervisor.TraceSummary {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []supervisor.TraceSummary
	for _, t := range f.traces {
		out = append(out, t.TraceSummary)
	}
	return out
}
func (f *fakeSystem) Trace(id string) (supervisor.Trace, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	t, ok := f.traces[id]
	return t, ok
}
func (f *fakeSystem) TraceLogs(id string) []supervisor.LogLine {
	return []supervisor.LogLine{{Seq: 1, Instance: "catalog/1", Text: `{"trace_id":"` + id + `"}`}}
}
func (f *fakeSystem) Events(after uint64, limit int) []supervisor.Event {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []supervisor.Event
	for _, e := range f.events {
		if e.Seq > after {
			out = append(out, e)
		}
	}
	return out
}
func (f *fakeSystem) Changed() <-chan struct{} { f.mu.Lock(); defer f.mu.Unlock(); return f.changed }

// change applies fn and wakes the streams.
func (f *fakeSystem) change(fn func()) {
	f.mu.Lock()
	fn()
	close(f.changed)
	f.changed = make(chan struct{})
	f.mu.Unlock()
}

func (f *fakeSystem) record(call string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, call)
	return f.err
}
func (f *fakeSystem) Signal(service string, index int, signal string) (supervisor.InstanceStatus, error) {
	err := f.record("signal " + service + "/" + string(rune('0'+index)) + " " + signal)
	return supervisor.InstanceStatus{Service: service, Index: index}, err
}
func (f *fakeSystem) Scale(ctx context.Context, service string, n int) error {
	return f.record("scale " + service + "=" + string(rune('0'+n)))
}
func (f *fakeSystem) Restart(ctx context.Context, service string) error {
	return f.record("restart " + service)
}

func (f *fakeSystem) recorded() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

func serve(t *testing.T, sys System) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(New(sys, token))
	t.Cleanup(srv.Close)
	return srv
}

// TestGuardRefuses: every way a request can lack the right to drive the
// supervisor is refused with 403 and nothing is done.
func TestGuardRefuses(t *testing.T) {
	sys := newFake()
	srv := serve(t, sys)
	host := strings.TrimPrefix(srv.URL, "http://")
	cookie := &http.Cookie{Name: "shoal_dashboard_" + host[strings.LastIndex(host, ":")+1:], Value: token}
	kill := "/api/instances/catalog/1/signal"
	for _, tc := range []struct {
		name   string
		method string
		path   string
		header map[string]string
		cookie *http.Cookie
		body   string
		want   int
	}{
		{"no token", "GET", "/api/overview", nil, nil, "", 403},
		{"wrong token", "GET", "/api/overview", map[string]string{"Authorization": "Bearer nope"}, nil, "", 403},
		{"wrong token in the URL", "GET", "/?token=nope", nil, nil, "", 403},
		{"wrong cookie", "GET", "/api/overview", nil, &http.Cookie{Name: cookie.Name, Value: "nope"}, "", 403},
		{"DNS rebinding: foreign Host", "GET", "/api/overview", map[string]string{"Authorization": "Bearer " + token, "Host": "evil.example:" + strings.Split(host, ":")[1]}, nil, "", 403},
		{"foreign Host with the cookie", "POST", kill, map[string]string{"Host": "evil.example", "Origin": "http://evil.example", "Content-Type": "application/json"}, cookie, `{"signal":"KILL"}`, 403},
		{"cross-site Origin", "POST", kill, map[string]string{"Origin": "http://evil.example", "Content-Type": "application/json"}, cookie, `{"signal":"KILL"}`, 403},
		{"cross-site Origin with the bearer token", "POST", kill, map[string]string{"Origin": "http://evil.example", "Authorization": "Bearer " + token, "Content-Type": "application/json"}, nil, `{"signal":"KILL"}`, 403},
		{"cookie POST without Origin", "POST", kill, map[string]string{"Content-Type": "application/json"}, cookie, `{"signal":"KILL"}`, 403},
		{"cookie POST from another site (Sec-Fetch-Site)", "POST", kill, map[string]string{"Origin": srv.URL, "Sec-Fetch-Site": "cross-site", "Content-Type": "application/json"}, cookie, `{"signal":"KILL"}`, 403},
		{"token in the URL of a POST", "POST", kill + "?token=" + token, map[string]string{"Content-Type": "application/json"}, nil, `{"signal":"KILL"}`, 403},
		{"a form post (no JSON)", "POST", kill, map[string]string{"Origin": srv.URL, "Content-Type": "application/x-www-form-urlencoded"}, cookie, `signal=KILL`, 415},
		// And what is allowed, for contrast.
		{"bearer token", "GET", "/api/overview", map[string]string{"Authorization": "Bearer " + token}, nil, "", 200},
		{"cookie", "GET", "/api/overview", nil, cookie, "", 200},
		{"localhost", "GET", "/api/overview", map[string]string{"Authorization": "Bearer " + token, "Host": "localhost:1"}, nil, "", 200},
		{"same-origin POST with the cookie", "POST", kill, map[string]string{"Origin": srv.URL, "Sec-Fetch-Site": "same-origin", "Content-Type": "application/json"}, cookie, `{"signal":"KILL"}`, 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := len(sys.recorded())
			req, _ := http.NewRequest(tc.method, srv.URL+tc.path, strings.NewReader(tc.body))
			for k, v := range tc.header {
				if k == "Host" {
					req.Host = v
				} else {
					req.Header.Set(k, v)
				}
			}
			if tc.cookie != nil {
				req.AddCookie(tc.cookie)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.want, body)
			}
			if tc.want != 200 && len(sys.recorded()) != before {
				t.Errorf("a refused request ran %v", sys.recorded()[before:])
			}
		})
	}
}

// TestTokenURLSetsCookie: opening the printed URL signs the browser in
// (an HttpOnly, SameSite=Strict cookie) and drops the token from the URL.
func TestTokenURLSetsCookie(t *testing.T) {
	srv := serve(t, newFake())
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar}
	resp, err := c.Get(srv.URL + "/?token=" + token)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Request.URL.RawQuery != "" || !strings.Contains(string(body), "<title>Shoal dashboard</title>") {
		t.Fatalf("GET /?token=: %s at %s", resp.Status, resp.Request.URL)
	}
	u, _ := url.Parse(srv.URL)
	cookies := jar.Cookies(u)
	if len(cookies) != 1 || cookies[0].Value != token {
		t.Fatalf("cookies %v", cookies)
	}
	// The cookie alone opens the API and the assets.
	for _, p := range []string{"/api/overview", "/ui/app.js", "/ui/style.css"} {
		resp, err := c.Get(srv.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("GET %s with the cookie: %s", p, resp.Status)
		}
	}
	// The header of the first answer says how the cookie is kept.
	req, _ := http.NewRequest("GET", srv.URL+"/?token="+token, nil)
	r2, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	r2.Body.Close()
	sc := r2.Header.Get("Set-Cookie")
	if !strings.Contains(sc, "HttpOnly") || !strings.Contains(sc, "SameSite=Strict") || r2.StatusCode != http.StatusSeeOther {
		t.Errorf("first answer %s, Set-Cookie %q", r2.Status, sc)
	}
}

func apiCall(t *testing.T, srv *httptest.Server, method, path, body string, out any) int {
	t.Helper()
	req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if out != nil {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
	}
	return resp.StatusCode
}

func TestAPI(t *testing.T) {
	sys := newFake()
	id := "4bf92f3577b34da6a3ce929d0e0e4736"
	sys.traces[id] = supervisor.Trace{TraceSummary: supervisor.TraceSummary{TraceID: id, Root: "GET /home", Spans: 1},
		SpanList: []supervisor.Span{{TraceID: id, SpanID: "00f067aa0ba902b7", Name: "GET /home", Service: "gateway", Instance: "gateway-1-abcd", Slot: "gateway/1"}}}
	sys.events = []supervisor.Event{{Seq: 1, Kind: supervisor.EventReady, Message: "catalog/1 serving"}, {Seq: 2, Kind: supervisor.EventExit, Message: "catalog/1 exited"}}
	srv := serve(t, sys)

	var tr struct {
		TraceID string `json:"trace_id"`
		Spans   []struct {
			Service, Instance, Slot string
		} `json:"spans"`
	}
	if code := apiCall(t, srv, "GET", "/api/traces/"+id, "", &tr); code != 200 || tr.TraceID != id || len(tr.Spans) != 1 ||
		tr.Spans[0].Service != "gateway" || tr.Spans[0].Instance != "gateway-1-abcd" || tr.Spans[0].Slot != "gateway/1" {
		t.Errorf("GET /api/traces/{id}: %d %+v", code, tr)
	}
	var e struct{ Error struct{ Code string } }
	if code := apiCall(t, srv, "GET", "/api/traces/ffffffffffffffffffffffffffffffff", "", &e); code != 404 || e.Error.Code != "unknown_trace" {
		t.Errorf("unknown trace: %d %+v", code, e)
	}
	var ov OverviewResponse
	if code := apiCall(t, srv, "GET", "/api/overview", "", &ov); code != 200 || ov.System != "test" || len(ov.Events) != 2 || len(ov.Services) != 1 {
		t.Errorf("overview: %d %+v", code, ov)
	}
	var evs struct{ Events []supervisor.Event }
	if code := apiCall(t, srv, "GET", "/api/events?after=1", "", &evs); code != 200 || len(evs.Events) != 1 || evs.Events[0].Seq != 2 {
		t.Errorf("events after 1: %d %+v", code, evs)
	}
	var lists TracesResponse
	if code := apiCall(t, srv, "GET", "/api/traces", "", &lists); code != 200 || len(lists.Recent) != 1 || lists.Failed == nil {
		t.Errorf("traces: %d %+v", code, lists)
	}
	var logs struct{ Lines []supervisor.LogLine }
	if code := apiCall(t, srv, "GET", "/api/traces/"+id+"/logs", "", &logs); code != 200 || len(logs.Lines) != 1 {
		t.Errorf("logs: %d %+v", code, logs)
	}

	for _, c := range []struct{ method, path, body, want string }{
		{"POST", "/api/instances/catalog/1/signal", `{"signal":"STOP"}`, "signal catalog/1 STOP"},
		{"POST", "/api/services/catalog/scale", `{"instances":5}`, "scale catalog=5"},
		{"POST", "/api/services/catalog/restart", `{}`, "restart catalog"},
	} {
		if code := apiCall(t, srv, c.method, c.path, c.body, nil); code != 200 {
			t.Errorf("%s %s: %d", c.method, c.path, code)
		}
		if got := sys.recorded(); got[len(got)-1] != c.want {
			t.Errorf("%s did %q, want %q", c.path, got[len(got)-1], c.want)
		}
	}
	if code := apiCall(t, srv, "POST", "/api/services/catalog/scale", `{"instances":5,"extra":1}`, nil); code != 400 {
		t.Errorf("unknown field: %d, want 400", code)
	}
	// No number, or the page's emptied field (null): refused, not scaled to 0.
	before := len(sys.recorded())
	for _, body := range []string{`{}`, `{"instances":null}`} {
		if code := apiCall(t, srv, "POST", "/api/services/catalog/scale", body, &e); code != 400 || e.Error.Code != "bad_request" {
			t.Errorf("scale %s: %d %+v, want 400", body, code, e)
		}
	}
	if got := sys.recorded(); len(got) != before {
		t.Errorf("scale without a number did %q", got[before:])
	}
	var bad struct{ Error struct{ Message string } }
	if code := apiCall(t, srv, "GET", "/api/traces?limit=abc", "", &bad); code != 400 || !strings.Contains(bad.Error.Message, `"abc"`) {
		t.Errorf("limit=abc: %d %+v, want 400 naming the value", code, bad)
	}
	if code := apiCall(t, srv, "POST", "/api/instances/catalog/x/signal", `{"signal":"STOP"}`, &bad); code != 400 || !strings.Contains(bad.Error.Message, `"x"`) {
		t.Errorf("index x: %d %+v, want 400 naming the value", code, bad)
	}
	// A control error keeps its status.
	sys.err = errors.New("boom")
	if code := apiCall(t, srv, "POST", "/api/services/catalog/restart", `{}`, &e); code != 500 {
		t.Errorf("failing restart: %d", code)
	}
}

// TestStream: the stream sends the overview, events and traces at once,
// then an update after a change, and nothing but heartbeats without one.
func TestStream(t *testing.T) {
	sys := newFake()
	s := New(sys, token)
	s.pushEvery = 10 * time.Millisecond
	srv := httptest.NewServer(s)
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/api/stream", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("Content-Type %q", ct)
	}
	lines := bufio.NewScanner(resp.Body)
	lines.Buffer(nil, 1<<20)
	next := func() (string, string) {
		var name string
		for lines.Scan() {
			l := lines.Text()
			if v, ok := strings.CutPrefix(l, "event: "); ok {
				name = v
			}
			if v, ok := strings.CutPrefix(l, "data: "); ok {
				return name, v
			}
		}
		t.Fatalf("stream ended: %v", lines.Err())
		return "", ""
	}
	for _, want := range []string{"overview", "traces"} {
		if name, _ := next(); name != want {
			t.Fatalf("got %q, want %q", name, want)
		}
	}
	sys.change(func() {
		sys.events = append(sys.events, supervisor.Event{Seq: 1, Kind: supervisor.EventExit, Message: "catalog/1 exited"})
		sys.ov.System = "changed"
	})
	name, data := next()
	if name != "overview" || !strings.Contains(data, `"system":"changed"`) {
		t.Fatalf("after a change: %s %s", name, data)
	}
	if name, data := next(); name != "events" || !strings.Contains(data, "catalog/1 exited") {
		t.Fatalf("after a change: %s %s", name, data)
	}
}
