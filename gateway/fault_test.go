package gateway_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/chaos"
	"github.com/shoal-dev/shoal/client"
	"github.com/shoal-dev/shoal/discovery"
	"github.com/shoal-dev/shoal/gateway"
	"github.com/shoal-dev/shoal/internal/testfault"
)

// cohorts is a fake CohortObserver: requests per experiment/cohort/code.
type cohorts struct {
	mu sync.Mutex
	n  map[string]int
}

func (c *cohorts) ObserveCohort(experiment, cohort, route string, code int, d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n[fmt.Sprintf("%s/%s/%s/%d", experiment, cohort, route, code)]++
}

func (c *cohorts) get(k string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[k]
}

// faultFixture is a gateway in front of one catalog instance that records
// the Shoal-Fault header of each request it gets.
type faultFixture struct {
	front  *httptest.Server
	gw     *gateway.Gateway
	signer *chaos.Signer
	obs    *cohorts
	mu     sync.Mutex
	got    []string // Shoal-Fault of each request the backend got
}

func newFaultFixture(t *testing.T, verify bool) *faultFixture {
	t.Helper()
	f := &faultFixture{signer: testfault.NewSigner(t), obs: &cohorts{n: map[string]int{}}}
	cat := discovery.NewCatalog()
	cat.Upsert(discovery.Instance{ID: "catalog-1", Service: "catalog", State: discovery.StateServing,
		Addr: serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			f.mu.Lock()
			f.got = append(f.got, r.Header.Get(chaos.Header))
			f.mu.Unlock()
			io.WriteString(w, "{}")
		}))})
	f.gw = newGateway(t, cat, client.Config{})
	f.gw.CohortMetrics = f.obs
	if verify {
		var err error
		if f.gw.Chaos, err = chaos.NewVerifier(f.signer.PublicKey(), "gateway"); err != nil {
			t.Fatal(err)
		}
	}
	f.front = httptest.NewServer(f.gw)
	t.Cleanup(f.front.Close)
	return f
}

func (f *faultFixture) do(t *testing.T, method, path, body string, h map[string]string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, f.front.URL+path, strings.NewReader(body))
	for k, v := range h {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// A fault header from outside never reaches a service, signed or not: the
// gateway lets on only what the SDK's server verified (in the context).
func TestGatewayStripsFaults(t *testing.T) {
	f := newFaultFixture(t, true)
	for _, v := range []string{"catalog:error=503", testfault.Token(t, f.signer, "catalog:error=503")} {
		if status, _ := f.do(t, "GET", "/catalog/x", "", map[string]string{chaos.Header: v}); status != 200 {
			t.Errorf("status %d", status)
		}
	}
	for _, got := range f.got {
		if got != "" {
			t.Errorf("the backend got Shoal-Fault %.30q", got)
		}
	}
}

func TestGatewayExperiment(t *testing.T) {
	f := newFaultFixture(t, true)
	ftok := testfault.Token(t, f.signer, "catalog:delay=1ms;gateway>catalog:error=503,p=0.5")
	rule, err := f.signer.Experiment("exp1", chaos.ByRequest, 0.25, ftok, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	status, body := f.do(t, "PUT", gateway.ExperimentPath, rule, nil)
	var st gateway.ExperimentStatus
	if status != 200 || json.Unmarshal([]byte(body), &st) != nil || st.Experiment != "exp1" || st.Share != 0.25 {
		t.Fatalf("PUT experiment: %d %s", status, body)
	}
	// Requests by request ID: a quarter each in control and experiment;
	// the experiment's carry the fault token on, and half of them meet the
	// gateway>catalog link's 503.
	const n = 400
	for i := range n {
		f.do(t, "GET", "/catalog/x", "", map[string]string{"X-Request-Id": fmt.Sprint("r", i)})
	}
	f.mu.Lock()
	carried := 0
	for _, got := range f.got {
		if got == ftok {
			carried++
		}
	}
	f.mu.Unlock()
	ctl := f.obs.get("exp1/control/default/200")
	exp200, exp503 := f.obs.get("exp1/experiment/default/200"), f.obs.get("exp1/experiment/default/503")
	t.Logf("control %d; experiment %d answered, %d failed by the link; %d carried the token", ctl, exp200, exp503, carried)
	if ctl < n/8 || ctl > 3*n/8 || exp200+exp503 < n/8 || exp200+exp503 > 3*n/8 {
		t.Errorf("cohorts: control %d, experiment %d of %d requests, want about a quarter each", ctl, exp200+exp503, n)
	}
	if exp503 == 0 || exp200 == 0 || carried != exp200 {
		t.Errorf("experiment cohort: %d answered, %d refused by the link, %d reached the service with the token", exp200, exp503, carried)
	}

	// Older tokens do not replace a newer experiment; forged ones nothing.
	forged, _ := testfault.NewSigner(t).Experiment("exp1", chaos.ByRequest, 0.5, ftok, time.Minute)
	if status, _ := f.do(t, "PUT", gateway.ExperimentPath, forged, nil); status != http.StatusForbidden {
		t.Errorf("forged experiment: %d, want 403", status)
	}
	newer, _ := f.signer.Experiment("exp2", chaos.BySubject, 0.1, ftok, time.Minute)
	if status, _ := f.do(t, "PUT", gateway.ExperimentPath, newer, nil); status != 200 {
		t.Errorf("newer experiment: %d", status)
	}
	if status, body := f.do(t, "PUT", gateway.ExperimentPath, rule, nil); status != http.StatusConflict {
		t.Errorf("replayed older experiment: %d %s, want 409", status, body)
	}
	// DELETE with a token of the running experiment stops it.
	if status, body := f.do(t, "DELETE", gateway.ExperimentPath, newer, nil); status != 200 || strings.Contains(body, "exp2") {
		t.Errorf("DELETE: %d %s", status, body)
	}
	before := len(f.got)
	f.do(t, "GET", "/catalog/x", "", nil)
	if f.obs.get("exp2/control/default/200")+f.obs.get("exp2/experiment/default/200") != 0 || len(f.got) != before+1 {
		t.Error("a stopped experiment still assigned cohorts")
	}
}

// Without the operator's key the path is no different from any other.
func TestGatewayExperimentNeedsAVerifier(t *testing.T) {
	f := newFaultFixture(t, false)
	if status, _ := f.do(t, "PUT", gateway.ExperimentPath, "x", nil); status != http.StatusNotFound {
		t.Errorf("PUT %s without a verifier: %d, want routing's 404", gateway.ExperimentPath, status)
	}
}
