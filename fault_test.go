package shoal

import (
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/chaos"
	"github.com/shoal-dev/shoal/internal/testfault"
)

// faultSystem is api calling ratings, both real services on loopback that
// honour the operator's key; api answers with ratings' status, or 502 when
// the call failed, and ratings counts what reached its handler.
type faultSystem struct {
	api     *Service
	signer  *chaos.Signer
	reached atomic.Int64 // requests ratings' handler served
	leaked  atomic.Int64 // requests a handler saw with a Shoal-Fault header
}

func newFaultSystem(t *testing.T, apiKey string) *faultSystem {
	t.Helper()
	fs := &faultSystem{signer: testfault.NewSigner(t)}
	if apiKey == "signer" {
		apiKey = fs.signer.PublicKey()
	}
	ratings, _, _ := start(t, Config{Name: "ratings", FaultKey: fs.signer.PublicKey()}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get(chaos.Header) != "" {
			fs.leaked.Add(1)
		}
		fs.reached.Add(1)
		io.WriteString(w, "4.5")
	}))
	var api *Service
	api, _, _ = start(t, Config{Name: "api", FaultKey: apiKey, Seeds: []string{ratings.member.Load().GossipAddr()}},
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get(chaos.Header) != "" {
				fs.leaked.Add(1)
			}
			req, _ := http.NewRequestWithContext(r.Context(), "GET", "http://ratings/avg", nil)
			resp, err := api.Client().Do(req)
			if err != nil {
				WriteError(w, http.StatusBadGateway, "ratings", err.Error())
				return
			}
			defer resp.Body.Close()
			w.Header().Set("Ratings-Injected", resp.Header.Get(chaos.InjectedHeader))
			w.WriteHeader(resp.StatusCode)
			io.Copy(w, resp.Body)
		}))
	fs.api = api
	waitUntil(t, "api to see ratings", func() bool { return len(api.Instances("ratings")) > 0 })
	return fs
}

// get sends GET / to api with a Shoal-Fault header (none if "") and
// returns the status, the Shoal-Fault-Injected of api's and of ratings'
// answers, and how long it took.
func (fs *faultSystem) get(t *testing.T, fault string) (status int, injected, ratingsInjected string, took time.Duration) {
	t.Helper()
	req, _ := http.NewRequest("GET", "http://"+fs.api.Addr()+"/", nil)
	if fault != "" {
		req.Header.Set(chaos.Header, fault)
	}
	req.Header.Set("Shoal-Timeout-Ms", "2000")
	start := time.Now()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", "", time.Since(start) // api's own connection aborted
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, resp.Header.Get(chaos.InjectedHeader), resp.Header.Get("Ratings-Injected"), time.Since(start)
}

func TestFaultsTravelWithTheRequest(t *testing.T) {
	fs := newFaultSystem(t, "signer")
	tests := []struct {
		name, spec     string
		status         int    // api's answer; 0: the connection was aborted
		injected       string // api's Shoal-Fault-Injected
		ratingsInj     string
		reached        int64 // requests that reached ratings' handler
		atLeast, below time.Duration
	}{
		{name: "none", status: 200, reached: 1},
		{name: "error at the next hop", spec: "ratings:error=418", status: 418, ratingsInj: "ratings:error=418", reached: 0},
		{name: "error at the first hop", spec: "api:error=503", status: 503, injected: "api:error=503", reached: 0},
		{name: "delay at the next hop", spec: "ratings:delay=300ms", status: 200, ratingsInj: "ratings:delay=300ms", reached: 1, atLeast: 300 * time.Millisecond},
		{name: "error on the link", spec: "api>ratings:error=409", status: 409, ratingsInj: "api>ratings:error=409", reached: 0},
		{name: "abort at the next hop", spec: "ratings:abort", status: 502, reached: 0},
		{name: "abort at the first hop", spec: "api:abort", status: 0, injected: "", reached: 0},
		{name: "stall at the next hop", spec: "ratings:stall=300ms", status: 502, reached: 0, atLeast: 300 * time.Millisecond},
		{name: "another service's fault", spec: "search:error=500", status: 200, reached: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok := ""
			if tt.spec != "" {
				tok = testfault.Token(t, fs.signer, tt.spec)
			}
			before := fs.reached.Load()
			status, inj, rinj, took := fs.get(t, tok)
			if status != tt.status || inj != tt.injected || rinj != tt.ratingsInj {
				t.Errorf("answer %d, injected %q, ratings' injected %q; want %d, %q, %q", status, inj, rinj, tt.status, tt.injected, tt.ratingsInj)
			}
			if got := fs.reached.Load() - before; got != tt.reached {
				t.Errorf("%d requests reached ratings' handler, want %d", got, tt.reached)
			}
			if took < tt.atLeast {
				t.Errorf("answered in %v, want at least %v", took, tt.atLeast)
			}
		})
	}
	if n := fs.leaked.Load(); n > 0 {
		t.Errorf("handlers saw the Shoal-Fault header %d times: the SDK must take it off", n)
	}
}

// A delay lasts its whole length, past the request's deadline: a caller
// whose budget is the delay never gets its answer in time.
func TestFaultDelayOutlastsTheDeadline(t *testing.T) {
	fs := newFaultSystem(t, "signer")
	req, _ := http.NewRequest("GET", "http://"+fs.api.Addr()+"/", nil)
	req.Header.Set(chaos.Header, testfault.Token(t, fs.signer, "api:delay=300ms"))
	req.Header.Set("Shoal-Timeout-Ms", "100")
	start := time.Now()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if took := time.Since(start); took < 300*time.Millisecond || resp.StatusCode != http.StatusBadGateway {
		t.Errorf("answered %d after %v; want the handler's failure (no time left) after the whole 300ms", resp.StatusCode, took)
	}
}

// Only the operator's signature makes a fault: a description from anyone
// else, or a token of another key, is dropped and counted, and the request
// is served as if it had none.
func TestFaultsNeedTheOperatorsSignature(t *testing.T) {
	fs := newFaultSystem(t, "signer")
	forged := testfault.Token(t, testfault.NewSigner(t), "ratings:error=500")
	for _, fault := range []string{"ratings:error=500", "api:abort", forged, "garbage"} {
		if status, inj, rinj, _ := fs.get(t, fault); status != 200 || inj != "" || rinj != "" {
			t.Errorf("%.30q: answer %d (injected %q, %q), want 200 untouched", fault, status, inj, rinj)
		}
	}
	if n := fs.leaked.Load(); n > 0 {
		t.Errorf("handlers saw the Shoal-Fault header %d times", n)
	}
	if body := metricsOf(t, fs.api); !strings.Contains(body, "shoal_chaos_tokens_refused_total 4") {
		t.Errorf("api's metrics do not count the 4 refused tokens:\n%s", grepShoal(body))
	}

	// A service given no key honours no token, signed or not.
	none := newFaultSystem(t, "")
	if status, _, _, _ := none.get(t, testfault.Token(t, none.signer, "api:error=503")); status != 200 {
		t.Errorf("a service without a key applied a fault: %d", status)
	}
}

func TestFaultKeyConfig(t *testing.T) {
	var c Config
	if err := c.FromEnv(func(k string) string {
		return map[string]string{EnvFaultKey: "bm90IGEga2V5"}[k]
	}); err != nil {
		t.Fatal(err)
	}
	c.Name = "x"
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "fault_key") {
		t.Errorf("a bad fault key: %v", err)
	}
	c.FaultKey = testfault.NewSigner(t).PublicKey()
	if err := c.Validate(); err != nil {
		t.Error(err)
	}
}
