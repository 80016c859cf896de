package shoal

import (
	"io"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/client"
	"github.com/shoal-dev/shoal/resilience"
)

// Over the concurrency limit, a request waits for a slot while its
// deadline (Shoal-Timeout-Ms) allows the expected wait and service time, and
// is refused at once, unprocessed, when it does not.
func TestAdmissionQueuesWhatFitsItsDeadline(t *testing.T) {
	const work = 200 * time.Millisecond
	release := make(chan struct{})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/hold" {
			<-release
		} else {
			time.Sleep(work)
		}
		io.WriteString(w, "done")
	})
	svc, _, _ := start(t, Config{Name: "queued", Admission: resilience.LimiterConfig{MaxLimit: 1}}, h)
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	hc := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	get := func(path string, budget time.Duration) (int, time.Duration) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, "http://"+svc.Addr()+path, nil)
		req.Header.Set(client.TimeoutHeader, strconv.Itoa(int(budget/time.Millisecond)))
		begin := time.Now()
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode, time.Since(begin)
	}
	// One request teaches the limiter the service time.
	if code, _ := get("/work", 5*time.Second); code != http.StatusOK {
		t.Fatalf("first request: %d", code)
	}

	held := make(chan int)
	go func() {
		code, _ := get("/hold", 10*time.Second)
		held <- code
	}()
	deadline := time.Now().Add(5 * time.Second)
	for svc.Admission().InFlight != 1 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond) // until /hold has the slot
	}
	waited := make(chan int)
	go func() {
		code, _ := get("/work", 5*time.Second)
		waited <- code
	}()
	for svc.Admission().Queued != 1 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond) // until the second request waits
	}

	// A deadline shorter than the service time: refused at once.
	code, took := get("/work", work/2)
	if code != http.StatusServiceUnavailable || took > 100*time.Millisecond {
		t.Errorf("request with %v left, over the limit: %d after %v, want 503 at once", work/2, code, took)
	}
	close(release)
	if code := <-held; code != http.StatusOK {
		t.Errorf("holding request: %d", code)
	}
	if code := <-waited; code != http.StatusOK {
		t.Errorf("request with 5s left, over the limit: %d, want 200 once the slot freed", code)
	}
	if st := svc.Admission(); st.Waited != 1 || st.Rejected != 1 || st.Late != 0 {
		t.Errorf("Admission() = %+v, want 1 waited, 1 rejected at once", st)
	}
}
