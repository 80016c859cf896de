package e2e

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/shoal-dev/shoal/e2e/flixedge"
	"github.com/shoal-dev/shoal/supervisor"
)

var screenshots = flag.String("screenshots", "", "write PNG screenshots of the dashboard's main views to this `folder` (e.g. ../docs)")

// newBrowser starts headless Chromium (Debian's chromium package) with a
// fresh profile. The flags keep it from reaching for the network, which
// this machine does not have (it would hang on those connections).
func newBrowser(t *testing.T) context.Context {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatalf("the dashboard test drives Debian's chromium: apt-get install chromium (.ci/run does): %v", err)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.NoSandbox, // Chromium refuses to run as root with its sandbox
		chromedp.Headless,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.WindowSize(1500, 1100),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
	})
	if err := chromedp.Do(ctx); err != nil { // starts the browser
		t.Fatalf("start chromium: %v", err)
	}
	return ctx
}

// waitJS evaluates the JavaScript expression expr in the page every 100 ms
// until it is true, failing the test after within.
func waitJS(t *testing.T, ctx context.Context, within time.Duration, what, expr string) {
	t.Helper()
	deadline := time.Now().Add(within)
	var ok bool
	var err error
	for time.Now().Before(deadline) {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		ok, err = chromedp.Run(cctx, chromedp.Evaluate[bool](expr))
		cancel()
		if err == nil && ok {
			return
		}
		time.Sleep(100 * time.Millisecond) // polling interval of the page's DOM
	}
	t.Fatalf("page: %s: not within %v (last error: %v)", what, within, err)
}

func evalJS[T any](t *testing.T, ctx context.Context, expr string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// screenshot saves the page as name.png in the -screenshots folder.
func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	if *screenshots == "" {
		return
	}
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	path := filepath.Join(*screenshots, name+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("wrote %s", path)
}

// dashboardAPI calls the dashboard's JSON API as a script would.
type dashboardAPI struct {
	base, token string
}

func (d dashboardAPI) get(t *testing.T, path string, v any) int {
	t.Helper()
	req, _ := http.NewRequest("GET", d.base+path, nil)
	req.Header.Set("Authorization", "Bearer "+d.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == 200 && v != nil {
		if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
	}
	return resp.StatusCode
}

// TestDashboard opens the dashboard of the reference system in Chromium
// as a person would: every instance is on the page; one killed through
// the page turns red and then serves again; the trace of a /home request
// shows the gateway, the api and the services behind it.
func TestDashboard(t *testing.T) {
	text, ports := referenceManifest(t)
	sys := startSystem(t, text, ports[0], "/titles/1", 240*time.Second)
	out, err := sys.shoal(t, "dashboard")
	if err != nil {
		t.Fatalf("shoal dashboard: %v\n%s", err, out)
	}
	link, err := url.Parse(strings.TrimSpace(out))
	if err != nil || link.Hostname() != "127.0.0.1" || link.Query().Get("token") == "" {
		t.Fatalf("shoal dashboard printed %q, want http://127.0.0.1:PORT/?token=...", out)
	}
	waitFor(t, 10*time.Second, "shoal up to print the dashboard's URL", func() bool {
		return strings.Contains(sys.up.out.String(), "dashboard: "+link.String())
	})
	api := dashboardAPI{base: "http://" + link.Host, token: link.Query().Get("token")}
	resp, err := http.Get(api.base + "/api/overview")
	if err != nil {
		t.Fatalf("GET /api/overview without the token: %v", err)
	}
	resp.Body.Close() // else its connection, and two goroutines, outlive the test
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("GET /api/overview without the token: %s, want 403", resp.Status)
	}

	ps := sys.ps(t)
	ctx := newBrowser(t)
	if err := chromedp.Do(ctx, chromedp.Navigate(link.String())); err != nil {
		t.Fatalf("open %s: %v", link, err)
	}

	t.Run("every instance is shown", func(t *testing.T) {
		waitJS(t, ctx, 30*time.Second, fmt.Sprintf("%d instances in the graph, all serving", len(ps)),
			fmt.Sprintf(`document.querySelectorAll('#graph circle.inst[data-state="serving"][data-down="0"]').length === %d`, len(ps)))
		for _, e := range ps {
			sel := fmt.Sprintf(`#services tr[data-slot="%s/%d"]`, e.Service, e.Index)
			if !evalJS[bool](t, ctx, fmt.Sprintf(`!!document.querySelector('%s')`, sel)) {
				t.Errorf("no row for %s/%d", e.Service, e.Index)
			}
		}
		// The whole graph is in its panel, and the page needs no
		// sideways scrolling (a new-user trial found one service and the
		// event feed off-screen at 1,400 px).
		if !evalJS[bool](t, ctx, `document.querySelector('#graph').getBoundingClientRect().right <= document.querySelector('.graph-box').getBoundingClientRect().right + 1 &&
			document.documentElement.scrollWidth <= window.innerWidth`) {
			t.Errorf("the graph (%v px wide) overflows its panel (%v px) or the page scrolls sideways",
				evalJS[float64](t, ctx, `document.querySelector('#graph').getBoundingClientRect().width`),
				evalJS[float64](t, ctx, `document.querySelector('.graph-box').clientWidth`))
		}
		// Let a few scrape rounds fill the sparklines before the picture.
		drive(sys, 5*time.Second)
		screenshot(t, ctx, "dashboard-overview")
	})

	t.Run("an instance killed from the page turns red and serves again", func(t *testing.T) {
		var before psEntry
		for _, e := range sys.ps(t) {
			if e.Service == "catalog" && e.Index == 1 {
				before = e
			}
		}
		if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`#services button[data-signal="KILL"][data-slot="catalog/1"]`))); err != nil {
			t.Fatalf("click kill: %v", err)
		}
		const dot = `document.querySelector('#graph circle.inst[data-slot="catalog/1"]')`
		waitJS(t, ctx, 15*time.Second, "catalog/1 red", dot+`.dataset.down === "1"`)
		waitJS(t, ctx, 60*time.Second, "catalog/1 serving again", dot+`.dataset.down === "0" && `+dot+`.dataset.state === "serving"`)
		waitJS(t, ctx, 10*time.Second, "the kill and the exit in the event feed",
			`[...document.querySelectorAll('#feed-short li')].some(li => li.textContent.includes('sent SIGKILL to catalog/1')) &&
			 [...document.querySelectorAll('#feed-short li')].some(li => li.textContent.includes('catalog/1 exited'))`)
		for _, e := range sys.ps(t) {
			if e.Service == "catalog" && e.Index == 1 && (e.PID == before.PID || e.Restarts != before.Restarts+1) {
				t.Errorf("catalog/1 after the kill: pid %d (was %d), restarts %d (was %d)", e.PID, before.PID, e.Restarts, before.Restarts)
			}
		}
	})

	t.Run("waterfall of a trace across services", func(t *testing.T) {
		// Spans a test sends to the supervisor's OTLP receiver through the
		// real exporter, as instances do: the page must make the attempts,
		// the hedge and the fallback visible.
		r, err := supervisor.FindRunning(filepath.Dir(sys.manifest))
		if err != nil || r.OTLP == "" {
			t.Fatalf("state file: %v, OTLP %q", err, r.OTLP)
		}
		// Spans from a process that does not hold the token are refused:
		// loopback is not a credential.
		if resp, err := http.Post(r.OTLP+"/v1/traces", "application/x-protobuf", strings.NewReader("")); err != nil {
			t.Fatal(err)
		} else if resp.Body.Close(); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("spans without the token: %s, want 401", resp.Status)
		}
		id := injectTrace(t, r.OTLP, r.OTLPToken)
		if _, err := chromedp.Run(ctx, chromedp.Evaluate[string](`location.hash = '#/trace/`+id+`'`)); err != nil {
			t.Fatal(err)
		}
		waitJS(t, ctx, 10*time.Second, "the waterfall", `document.querySelectorAll('#waterfall .wf-row').length === 8`)
		for _, want := range []string{`.badge.retry`, `.badge.hedge`, `.wf-bar.hedge`, `.wf-bar.error`} {
			if !evalJS[bool](t, ctx, fmt.Sprintf(`!!document.querySelector('#waterfall %s')`, want)) {
				t.Errorf("waterfall has no %s", want)
			}
		}
		label := evalJS[string](t, ctx, `document.querySelector('#waterfall').textContent`)
		for _, want := range []string{"fallback: popular", "→ catalog/2", "retry: refused"} {
			if !strings.Contains(label, want) {
				t.Errorf("waterfall lacks %q: %s", want, label)
			}
		}
		// The picture of a waterfall, until a real /home trace replaces it
		// below.
		if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`#waterfall .wf-row:nth-child(4)`))); err != nil {
			t.Fatal(err)
		}
		waitJS(t, ctx, 5*time.Second, "the span's details", `!document.querySelector('#span-detail').hidden`)
		screenshot(t, ctx, "dashboard-trace")
	})

	t.Run("trace of a /home request", func(t *testing.T) {
		// The instances export their spans (the SDK's OpenTelemetry
		// instrumentation, configured by the OTEL_* environment shoal up
		// gives them): the gateway, the api and the services the home page
		// reads must all be in one trace.
		since := time.Now()
		fl := flixedge.New(sys.gateway)
		token, err := fl.SignIn(7, 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		tid := homeRequest(t, sys.gateway, token)
		var found string
		deadline := time.Now().Add(30 * time.Second)
		for found == "" && time.Now().Before(deadline) {
			var got struct {
				Spans []struct{ Service string } `json:"spans"`
			}
			if api.get(t, "/api/traces/"+tid, &got) == 200 && servicesOf(got.Spans) >= 4 {
				found = tid
				break
			}
			found = findHomeTrace(t, api, since)
			time.Sleep(500 * time.Millisecond) // spans arrive in the exporters' batches
		}
		if found == "" {
			var ov struct {
				Traces struct{ Traces int } `json:"traces"`
			}
			api.get(t, "/api/overview", &ov)
			t.Fatalf("no trace of GET /home with the gateway, the api and two more services within 30 s (%d traces kept)", ov.Traces.Traces)
		}
		if _, err := chromedp.Run(ctx, chromedp.Evaluate[string](`location.hash = '#/trace/`+found+`'`)); err != nil {
			t.Fatal(err)
		}
		waitJS(t, ctx, 10*time.Second, "spans of gateway, api and two more services in the waterfall", `(() => {
			const s = new Set([...document.querySelectorAll('#waterfall .wf-row')].map(r => r.dataset.service));
			return s.has('gateway') && s.has('api') && s.size >= 4; })()`)
		waitJS(t, ctx, 10*time.Second, "the trace's log lines", `document.querySelector('#trace-logs').textContent !== ''`)
		screenshot(t, ctx, "dashboard-trace")
	})

	t.Run("views", func(t *testing.T) {
		for _, v := range []struct{ hash, name, ready string }{
			{"#/traces", "dashboard-traces", `!document.querySelector('#view-traces').hidden`},
			{"#/events", "dashboard-events", `document.querySelectorAll('#feed li').length > 0`},
		} {
			if _, err := chromedp.Run(ctx, chromedp.Evaluate[string](`location.hash = '`+v.hash+`'`)); err != nil {
				t.Fatal(err)
			}
			waitJS(t, ctx, 10*time.Second, v.hash, v.ready)
			screenshot(t, ctx, v.name)
		}
	})
}

// drive sends a little traffic through the gateway for d.
func drive(sys *system, d time.Duration) {
	end := time.Now().Add(d)
	for i := 0; time.Now().Before(end); i++ {
		for _, p := range []string{fmt.Sprintf("/titles/%d", i%50+1), "/search?q=the", fmt.Sprintf("/trailers/%d", i%9+1)} {
			if resp, err := http.Get(sys.gateway + p); err == nil {
				resp.Body.Close()
			}
		}
		time.Sleep(20 * time.Millisecond) // a gentle rate
	}
}

// homeRequest reads the home page with a traceparent of a new trace and
// returns its trace ID.
func homeRequest(t *testing.T, gateway, token string) string {
	t.Helper()
	var tid [16]byte
	var sid [8]byte
	_, _ = rand.Read(tid[:])
	_, _ = rand.Read(sid[:])
	req, _ := http.NewRequest("GET", gateway+"/home", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("traceparent", "00-"+hex.EncodeToString(tid[:])+"-"+hex.EncodeToString(sid[:])+"-01")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET /home: %s", resp.Status)
	}
	return hex.EncodeToString(tid[:])
}

func servicesOf(spans []struct{ Service string }) int {
	seen := map[string]bool{}
	for _, s := range spans {
		seen[s.Service] = true
	}
	if !seen["gateway"] || !seen["api"] {
		return 0
	}
	return len(seen)
}

// findHomeTrace looks for a recent trace of GET /home that started after
// since (the gateway may start a new trace rather than continue the
// caller's).
func findHomeTrace(t *testing.T, api dashboardAPI, since time.Time) string {
	var lists struct {
		Recent []supervisor.TraceSummary `json:"recent"`
	}
	api.get(t, "/api/traces", &lists)
	for _, tr := range lists.Recent {
		if tr.Start.After(since) && strings.Contains(tr.Root, "/home") {
			var got struct {
				Spans []struct{ Service string } `json:"spans"`
			}
			if api.get(t, "/api/traces/"+tr.TraceID, &got) == 200 && servicesOf(got.Spans) >= 4 {
				return tr.TraceID
			}
		}
	}
	return ""
}

// injectTrace sends, through the real OTLP exporter, a /home trace with a
// failed attempt failed over to another instance, a hedge and a fallback,
// and returns its ID.
func injectTrace(t *testing.T, otlp, token string) string {
	t.Helper()
	tracer := func(service, id string) trace.Tracer {
		exp, err := otlptracehttp.New(context.Background(), otlptracehttp.WithEndpointURL(otlp+"/v1/traces"),
			otlptracehttp.WithHeaders(map[string]string{"Authorization": "Bearer " + token}))
		if err != nil {
			t.Fatal(err)
		}
		tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp), sdktrace.WithResource(resource.NewSchemaless(
			attribute.String("service.name", service), attribute.String("service.instance.id", id))))
		t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
		return tp.Tracer("e2e")
	}
	gw, api, cat, rat := tracer("gateway", "gateway-1-0000"), tracer("api", "api-2-0000"), tracer("catalog", "catalog-2-0000"), tracer("ratings", "ratings-1-0000")
	ctx, root := gw.Start(context.Background(), "GET /home", trace.WithSpanKind(trace.SpanKindServer))
	actx, home := api.Start(ctx, "GET /home", trace.WithSpanKind(trace.SpanKindServer))
	attempt := func(n int, reason, target, outcome string) (context.Context, trace.Span) {
		return api.Start(actx, "attempt", trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(
			attribute.Int("shoal.attempt", n), attribute.String("shoal.attempt.reason", reason),
			attribute.String("shoal.instance", target), attribute.String("shoal.outcome", outcome)))
	}
	_, a1 := attempt(1, "first", "catalog-1-0000", "refused")
	a1.SetStatus(codes.Error, "connection refused")
	a1.End()
	c2, a2 := attempt(2, "retry: refused", "catalog-2-0000", "ok")
	_, srv := cat.Start(c2, "GET /titles/7", trace.WithSpanKind(trace.SpanKindServer))
	time.Sleep(2 * time.Millisecond) // spans with a visible length
	srv.End()
	a2.End()
	_, h1 := attempt(1, "first", "ratings-1-0000", "canceled")
	h2c, h2 := attempt(2, "hedge", "ratings-3-0000", "ok")
	_, rs := rat.Start(h2c, "GET /top", trace.WithSpanKind(trace.SpanKindServer))
	time.Sleep(time.Millisecond)
	rs.End()
	h2.End()
	h1.End()
	home.SetAttributes(attribute.String("shoal.fallback", "popular"))
	home.End()
	root.End()
	return root.SpanContext().TraceID().String()
}
