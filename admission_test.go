package shoal

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"

	"github.com/shoal-dev/shoal/client"
	"github.com/shoal-dev/shoal/resilience"
)

// verifyNoLeaks fails t if goroutines started during the test outlive it,
// after the test's other cleanups (such as stopping a service) have run.
// Call it first: cleanups run last-registered first. The grace period covers
// memberlist's in-flight probes, which end only at their deadline.
func verifyNoLeaks(t *testing.T) {
	t.Helper()
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() {
		deadline := time.Now().Add(5 * time.Second)
		for {
			err := goleak.Find(ignore)
			if err == nil {
				return
			}
			if time.Now().After(deadline) {
				t.Errorf("goroutines still running after the test: %v", err)
				return
			}
			time.Sleep(100 * time.Millisecond) // polling interval
		}
	})
}

type admissionResult struct {
	status     int
	retryAfter string
	body       []byte
	took       time.Duration
	err        error
}

func TestAdmissionRejectsOverLimit(t *testing.T) {
	verifyNoLeaks(t)
	const limit = 3
	entered := make(chan struct{})
	release := make(chan struct{})
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case entered <- struct{}{}:
		case <-r.Context().Done():
			return
		}
		select {
		case <-release:
			io.WriteString(w, "done")
		case <-r.Context().Done():
		}
	})
	// MaxLimit alone fixes the limit: min and initial default to it.
	// No queue: every request over the limit is refused at once.
	svc, _, _ := start(t, Config{Name: "admit", Admission: resilience.LimiterConfig{MaxLimit: limit, NoQueue: true}}, handler)
	base := "http://" + svc.Addr()
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	released := false
	defer func() {
		if !released { // a failed assertion must not leave handlers blocked
			close(release)
		}
	}()

	var wg sync.WaitGroup
	defer wg.Wait()
	get := func(path string, out chan<- admissionResult) {
		wg.Go(func() {
			begin := time.Now()
			resp, err := hc.Get(base + path)
			if err != nil {
				out <- admissionResult{err: err}
				return
			}
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			out <- admissionResult{resp.StatusCode, resp.Header.Get("Retry-After"), body, time.Since(begin), err}
		})
	}

	admitted := make(chan admissionResult, limit)
	for range limit {
		get("/work", admitted)
	}
	for range limit {
		select {
		case <-entered:
		case <-time.After(10 * time.Second):
			t.Fatal("admitted requests did not reach the handler")
		}
	}

	const excess = 5
	rejected := make(chan admissionResult, excess)
	for range excess {
		get("/work", rejected)
	}
	for range excess {
		res := <-rejected
		if res.err != nil {
			t.Fatal(res.err)
		}
		if res.status != http.StatusServiceUnavailable || res.retryAfter != "1" {
			t.Errorf("over the limit: status %d, Retry-After %q; want 503 and 1", res.status, res.retryAfter)
		}
		if res.took > 500*time.Millisecond {
			t.Errorf("rejection took %v, want well under 500ms", res.took)
		}
		var e ErrorBody
		if err := json.Unmarshal(res.body, &e); err != nil {
			t.Fatalf("rejection body %q: %v", res.body, err)
		}
		if e.Error.Code != "overloaded" || !strings.Contains(e.Error.Message, "limit of "+strconv.Itoa(limit)) {
			t.Errorf("rejection body %+v, want code overloaded and a message naming the limit %d", e, limit)
		}
	}

	// Saturated, the instance still answers its admin paths, on their
	// own listener.
	for _, path := range []string{PathHealth, PathReady, PathInfo} {
		resp, err := hc.Get("http://" + svc.AdminAddr() + path)
		if err != nil {
			t.Fatal(err)
		}
		var info Info
		if path == PathInfo {
			if err := json.NewDecoder(resp.Body).Decode(&info); err != nil {
				t.Fatal(err)
			}
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s while saturated = %d, want 200", path, resp.StatusCode)
		}
		if want := (resilience.LimiterStats{Limit: limit, InFlight: limit, Admitted: limit, Rejected: excess}); path == PathInfo && info.Admission != want {
			t.Errorf("/infoz admission = %+v, want %+v", info.Admission, want)
		}
	}

	close(release)
	released = true
	for range limit {
		res := <-admitted
		if res.err != nil || res.status != http.StatusOK || string(res.body) != "done" {
			t.Errorf("admitted request: status %d, body %q, err %v; want 200 done", res.status, res.body, res.err)
		}
	}
	// Each permit is given back before its response is flushed.
	if got, want := svc.Admission(), (resilience.LimiterStats{Limit: limit, Admitted: limit, Rejected: excess}); got != want {
		t.Errorf("Admission() after the release = %+v, want %+v", got, want)
	}
	if got := svc.Info().Requests; got != limit {
		t.Errorf("requests handled = %d, want %d (rejected ones never reach the handler)", got, limit)
	}
}

func TestAdmissionDisabledAdmitsAll(t *testing.T) {
	const depth = 5
	var svc *Service
	var codes []int
	calls := 0
	// Each request makes the next from inside the handler, so all of them
	// are in flight at once, over a limit of 1 were it enabled.
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls++
		if got := svc.Admission().InFlight; got != calls {
			t.Errorf("%d in flight inside call %d", got, calls)
		}
		if calls < depth {
			rec := httptest.NewRecorder()
			svc.ServeHTTP(rec, httptest.NewRequest("GET", "/x", nil))
			codes = append(codes, rec.Code)
		}
		w.WriteHeader(http.StatusNoContent)
	})
	svc, err := New(Config{Name: "open", Admission: resilience.LimiterConfig{Disabled: true, MaxLimit: 1}}, h)
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	svc.ServeHTTP(rec, httptest.NewRequest("GET", "/x", nil))
	codes = append(codes, rec.Code)
	for _, c := range codes {
		if c != http.StatusNoContent {
			t.Fatalf("statuses %v, want all 204: disabled admission must admit everything", codes)
		}
	}
	if got, want := svc.Admission(), (resilience.LimiterStats{Admitted: depth}); got != want {
		t.Fatalf("Admission() = %+v, want %+v", got, want)
	}
}

// TestAdmissionLearnsOnlyFromFinishedRequests checks which requests feed the
// limit. A limiter that has seen a window of requests, never more than one
// at a time, lowers its limit from the initial 20 toward 5× the
// concurrency it saw; requests whose callers hung up must not count.
func TestAdmissionLearnsOnlyFromFinishedRequests(t *testing.T) {
	tests := []struct {
		name      string
		timeout   string        // client.TimeoutHeader, in ms
		hangUp    time.Duration // when the caller cancels: never if 0, at once if < 0
		wantLower bool
	}{
		{"finished", "", 0, true},
		{"finished within its deadline", "1000", 0, true},
		{"ran out its deadline", "10", 0, true},
		// As when a client gives up at its deadline, just after the server did.
		{"ran out its deadline, then caller hung up", "10", 15 * time.Millisecond, true},
		{"caller hung up", "", -1, false},
		{"caller hung up midway", "", 15 * time.Millisecond, false},
		{"caller hung up before its deadline", "1000", 15 * time.Millisecond, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					time.Sleep(25 * time.Millisecond)
				})
				svc, err := New(Config{Name: "learner", Logger: slog.New(slog.DiscardHandler)}, h)
				if err != nil {
					t.Fatal(err)
				}
				initial := svc.Admission().Limit
				for range 60 {
					ctx, cancel := context.WithCancel(context.Background())
					switch {
					case tt.hangUp < 0:
						cancel()
					case tt.hangUp > 0:
						time.AfterFunc(tt.hangUp, cancel)
					}
					r := httptest.NewRequest("GET", "/x", nil).WithContext(ctx)
					if tt.timeout != "" {
						r.Header.Set(client.TimeoutHeader, tt.timeout)
					}
					svc.ServeHTTP(httptest.NewRecorder(), r)
					cancel()
				}
				got := svc.Admission()
				if lower := got.Limit < initial; lower != tt.wantLower {
					t.Fatalf("limit %d after 60 requests (initial %d); want lowered = %v", got.Limit, initial, tt.wantLower)
				}
				if got.Admitted != 60 || got.InFlight != 0 {
					t.Fatalf("Admission() = %+v, want 60 admitted, none in flight", got)
				}
			})
		})
	}
}

func TestConfigAdmissionFromEnv(t *testing.T) {
	tests := []struct {
		value    string
		disabled bool
		wantErr  string
	}{
		{"", false, ""},
		{"off", true, ""},
		{"on", false, ""},
		{"no", false, `SHOAL_ADMISSION="no": want on or off`},
	}
	for _, tt := range tests {
		for _, was := range []bool{false, true} {
			c := Config{Name: "a", Admission: resilience.LimiterConfig{Disabled: was, MaxLimit: 7}}
			err := c.FromEnv(func(k string) string { return map[string]string{EnvAdmission: tt.value}[k] })
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("%s=%q: err = %v, want %s", EnvAdmission, tt.value, err, tt.wantErr)
				}
				continue
			}
			want := tt.disabled
			if tt.value == "" {
				want = was // unset leaves the file's choice alone
			}
			if err != nil || c.Admission.Disabled != want || c.Admission.MaxLimit != 7 {
				t.Errorf("%s=%q over disabled=%v: err %v, admission %+v; want disabled=%v, max_limit kept", EnvAdmission, tt.value, was, err, c.Admission, want)
			}
		}
	}
}

func TestConfigValidateAdmission(t *testing.T) {
	err := Config{Name: "a", Admission: resilience.LimiterConfig{MinLimit: 4, MaxLimit: 3}}.withDefaults().Validate()
	if err == nil || !strings.Contains(err.Error(), "admission: resilience: limiter.max_limit 3 is less than min_limit 4") {
		t.Fatalf("Validate() = %v, want the admission problem named", err)
	}
	if _, err := New(Config{Name: "a", Admission: resilience.LimiterConfig{MaxWait: -time.Second}}, http.NotFoundHandler()); err == nil {
		t.Fatal("New accepted a negative admission max_wait")
	}
}
