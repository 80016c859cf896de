package telemetry_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
	dto "github.com/prometheus/client_model/go"

	"github.com/shoal-dev/shoal/internal/statuswriter"
	"github.com/shoal-dev/shoal/telemetry"
)

func TestMiddleware(t *testing.T) {
	// Under synctest the clock moves only when every goroutine is blocked,
	// so a handler's time.Sleep is exactly the duration observed.
	synctest.Test(t, func(t *testing.T) {
		m := telemetry.New("player", "player-1")
		h := m.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			switch r.URL.Path {
			case "/ok": // implicit 200
				time.Sleep(3 * time.Millisecond)
				io.WriteString(w, "ok")
			case "/hints": // 103 is informational: the status is the 200 after it
				w.WriteHeader(http.StatusEarlyHints)
				time.Sleep(4 * time.Millisecond)
				w.WriteHeader(http.StatusOK)
			case "/nothing": // no write at all: net/http sends 200
			case "/shed":
				w.WriteHeader(http.StatusServiceUnavailable)
				w.WriteHeader(http.StatusOK) // ignored by net/http, and here
			case "/missing":
				time.Sleep(30 * time.Millisecond)
				http.NotFound(w, r)
			case "/odd": // a code net/http has no name for
				w.WriteHeader(599)
			case "/gone": // a 503 to a caller that went away: nobody's error
				w.WriteHeader(http.StatusServiceUnavailable)
			case "/gone-ok": // the answer was made: it counts as it was
				w.WriteHeader(http.StatusOK)
			case "/titles/7": // a router names the route it served
				statuswriter.SetRoute(w, "/titles/{id}")
			case "/panic":
				time.Sleep(700 * time.Millisecond)
				w.WriteHeader(http.StatusOK)
				panic("boom")
			}
		}))
		gone, leave := context.WithCancel(context.Background())
		leave() // the caller of /gone and /gone-ok went away
		for _, req := range []struct{ method, path string }{
			{"GET", "/ok"}, {"GET", "/ok"}, {"GET", "/hints"}, {"HEAD", "/nothing"},
			{"POST", "/shed"}, {"POST", "/shed"}, {"POST", "/shed"},
			{"BREW", "/missing"}, {"get", "/missing"}, // not a standard method: other
			{"PUT", "/odd"}, {"DELETE", "/panic"}, {"GET", "/gone"}, {"GET", "/gone-ok"},
			{"GET", "/titles/7"},
		} {
			func() {
				defer func() {
					if p := recover(); p != nil && p != "boom" {
						panic(p)
					}
				}()
				r := httptest.NewRequest(req.method, req.path, nil)
				if strings.HasPrefix(req.path, "/gone") {
					r = r.WithContext(gone)
				}
				h.ServeHTTP(httptest.NewRecorder(), r)
			}()
		}

		got, err := m.Registry().Gather()
		if err != nil {
			t.Fatal(err)
		}
		mfs := make(map[string]*dto.MetricFamily)
		for _, mf := range got {
			mfs[mf.GetName()] = mf
		}
		wantCounts := `shoal_http_requests_total{code="200",method="GET",route=""} 4
shoal_http_requests_total{code="200",method="GET",route="/titles/{id}"} 1
shoal_http_requests_total{code="200",method="HEAD",route=""} 1
shoal_http_requests_total{code="404",method="other",route=""} 2
shoal_http_requests_total{code="499",method="GET",route=""} 1
shoal_http_requests_total{code="500",method="DELETE",route=""} 1
shoal_http_requests_total{code="503",method="POST",route=""} 3
shoal_http_requests_total{code="599",method="PUT",route=""} 1
`
		if diff := cmp.Diff(wantCounts, samples(t, mfs, "shoal_http_requests_total")); diff != "" {
			t.Errorf("requests (-want +got):\n%s", diff)
		}

		// count, sum, and the smallest bucket holding every observation.
		wantDurations := `code="200",method="GET",route="" count=4 sum=0.01 le=0.005
code="200",method="GET",route="/titles/{id}" count=1 sum=0 le=0.0005
code="200",method="HEAD",route="" count=1 sum=0 le=0.0005
code="404",method="other",route="" count=2 sum=0.06 le=0.05
code="499",method="GET",route="" count=1 sum=0 le=0.0005
code="500",method="DELETE",route="" count=1 sum=0.7 le=1
code="503",method="POST",route="" count=3 sum=0 le=0.0005
code="599",method="PUT",route="" count=1 sum=0 le=0.0005
`
		if diff := cmp.Diff(wantDurations, histograms(mfs["shoal_http_request_duration_seconds"])); diff != "" {
			t.Errorf("durations (-want +got):\n%s", diff)
		}
		// Scrapers that negotiate protobuf get native histograms too.
		for _, mt := range mfs["shoal_http_request_duration_seconds"].GetMetric() {
			if h := mt.GetHistogram(); h.Schema == nil || h.GetZeroCount()+sumDeltas(h.GetPositiveDelta()) != h.GetSampleCount() {
				t.Errorf("%v: native histogram missing or incomplete: schema %v, zero %d, positive %v",
					mt.GetLabel(), h.Schema, h.GetZeroCount(), h.GetPositiveDelta())
			}
		}
	})
}

func histograms(mf *dto.MetricFamily) string {
	var b strings.Builder
	for _, mt := range mf.GetMetric() {
		var labels []string
		for _, l := range mt.GetLabel() {
			labels = append(labels, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
		}
		h := mt.GetHistogram()
		le := "none"
		for _, bk := range h.GetBucket() {
			if bk.GetCumulativeCount() == h.GetSampleCount() {
				le = ftoa(bk.GetUpperBound())
				break
			}
		}
		fmt.Fprintf(&b, "%s count=%d sum=%s le=%s\n", strings.Join(labels, ","), h.GetSampleCount(), ftoa(h.GetSampleSum()), le)
	}
	return b.String()
}

func sumDeltas(d []int64) uint64 {
	var n, sum int64
	for _, v := range d {
		n += v
		sum += n
	}
	return uint64(sum)
}

// The writer handed to the handler keeps what streaming and upgrading
// handlers look for, over a real connection.
func TestMiddlewareWriterInterfaces(t *testing.T) {
	m := telemetry.New("player", "player-1")
	srv := httptest.NewServer(m.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, ok := w.(io.ReaderFrom); !ok {
			t.Error("writer is not an io.ReaderFrom")
		}
		// HTTP/1.1 over net/http can hijack; the check is that the wrapper
		// passes the capability on rather than hiding it.
		if _, ok := w.(http.Hijacker); !ok {
			t.Error("writer is not an http.Hijacker")
		}
		f, ok := w.(http.Flusher)
		if !ok {
			t.Error("writer is not an http.Flusher")
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "data: 1\n\n")
		f.Flush()
		if err := http.NewResponseController(w).SetWriteDeadline(time.Now().Add(time.Minute)); err != nil {
			t.Errorf("ResponseController through the wrapper: %v", err)
		}
		io.WriteString(w, "data: 2\n\n")
	})))
	defer srv.Close()
	resp, err := srv.Client().Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body) // to EOF: the handler has returned
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	if string(body) != "data: 1\n\ndata: 2\n\n" {
		t.Errorf("body %q", body)
	}
	got := samples(t, scrape(t, m.Handler()), "shoal_http_requests_total")
	if want := `shoal_http_requests_total{code="200",method="GET",route=""} 1` + "\n"; got != want {
		t.Errorf("got %swant %s", got, want)
	}
}

// Hijack reports a writer that cannot hijack as http.ErrNotSupported.
func TestMiddlewareHijackNotSupported(t *testing.T) {
	m := telemetry.New("player", "player-1")
	var err error
	m.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _, err = w.(http.Hijacker).Hijack()
	})).ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil))
	if !errors.Is(err, http.ErrNotSupported) {
		t.Errorf("Hijack on a recorder: %v, want http.ErrNotSupported", err)
	}
}

// discard is a minimal ResponseWriter, so the benchmark measures the
// middleware, not a recorder.
type discard struct{ h http.Header }

func (d discard) Header() http.Header       { return d.h }
func (discard) Write(b []byte) (int, error) { return len(b), nil }
func (discard) WriteHeader(int)             {}

func BenchmarkMiddleware(b *testing.B) {
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	})
	w := discard{h: make(http.Header)}
	r := httptest.NewRequest("GET", "/", nil)
	b.Run("bare", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			next.ServeHTTP(w, r)
		}
	})
	b.Run("instrumented", func(b *testing.B) {
		h := telemetry.New("player", "player-1").Middleware(next)
		b.ReportAllocs()
		for b.Loop() {
			h.ServeHTTP(w, r)
		}
	})
	b.Run("instrumented-route", func(b *testing.B) {
		h := telemetry.New("player", "player-1").Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			statuswriter.SetRoute(w, "/titles/{id}")
			next.ServeHTTP(w, r)
		}))
		b.ReportAllocs()
		for b.Loop() {
			h.ServeHTTP(w, r)
		}
	})
}
