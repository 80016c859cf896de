package e2e

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	fault "github.com/shoal-dev/shoal/chaos"
	"github.com/shoal-dev/shoal/chaos/experiment"
	"github.com/shoal-dev/shoal/chaos/monkey"
	"github.com/shoal-dev/shoal/e2e/flixedge"
	"github.com/shoal-dev/shoal/shoaltest"
)

// rehearse is failure rehearsal against the running reference system:
// faults from outside are ignored, faults the operator signs reach the
// hop they name, and flix's shipped experiments (examples/flix/
// experiments) give their expected verdicts, through package shoaltest
// as a user's test would run them, and through shoal experiment run.
func rehearse(t *testing.T, sys *system, fl *flixedge.Edge) {
	t.Run("a fault from outside is ignored", func(t *testing.T) { outsideFaults(t, sys) })
	t.Run("a signed fault reaches its hop", func(t *testing.T) { signedFaults(t, sys) })

	s := shoaltest.Attach(t, sys.manifest)
	s.WaitServing(t, time.Minute)
	t.Run("ratings-latency holds", func(t *testing.T) {
		rep := s.Experiment(t, "../examples/flix/experiments/ratings-latency.yaml")
		shoaltest.RequireVerdict(t, rep, experiment.Held)
		for _, c := range rep.Checks {
			if strings.Contains(c.Name, "drop the rating") && c.Control > 0.1 {
				t.Errorf("%s: the control cohort was degraded too (%v): the fault reached requests without its token", c.Name, c.Control)
			}
		}
	})
	t.Run("catalog-down aborts within 10s", func(t *testing.T) {
		rep := s.Experiment(t, "../examples/flix/experiments/catalog-down.yaml")
		shoaltest.RequireVerdict(t, rep, experiment.Aborted)
		if rep.AbortedAfter > 10*time.Second {
			t.Errorf("aborted %v after the fault began, want within 10s", rep.AbortedAfter)
		}
	})
	t.Run("shoal experiment run", func(t *testing.T) {
		cmd := exec.Command(filepath.Join(binDir, "shoal"), "-f", sys.manifest, "experiment", "run", "-q", "-o", "json",
			"../examples/flix/experiments/catalog-down.yaml")
		out, err := cmd.Output()
		var rep experiment.Report
		if jerr := json.Unmarshal(out, &rep); jerr != nil {
			t.Fatalf("shoal experiment run -o json: %v, %v:\n%s", err, jerr, out)
		}
		if cmd.ProcessState.ExitCode() != 1 || rep.Verdict != experiment.Aborted || len(rep.Checks) < 2 {
			t.Errorf("shoal experiment run catalog-down: status %d, verdict %s, %d checks; want status 1, aborted", cmd.ProcessState.ExitCode(), rep.Verdict, len(rep.Checks))
		}
	})
	// Last: the monkey leaves restarted instances behind.
	t.Run("steady load under the monkey", func(t *testing.T) { steadyUnderMonkey(t, sys, fl) })
	s.WaitServing(t, time.Minute)
}

// Monkey run parameters: the issue asks for one kill every 2 s; the
// load is reads of every kind, through both gateways, at a rate the loaded
// 2-core CI machine serves with room to spare.
const (
	monkeyLoadFor  = 30 * time.Second
	monkeyLoadRate = 30 // requests per second
	monkeyEvery    = 2 * time.Second
)

// steadyUnderMonkey sends a steady load of reads through both gateways
// (as a device would: a request that cannot reach one gateway goes to the
// other) while the chaos monkey kills a random instance of any service,
// gateways included, every 2 s: no request may fail.
func steadyUnderMonkey(t *testing.T, sys *system, fl *flixedge.Edge) {
	token, err := fl.SignIn(7, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	reads := func(i int) flixedge.Request {
		r := flixedge.Request{Method: "GET", Retry: true}
		switch i % 6 {
		case 0:
			r.Path = fmt.Sprintf("/titles/%d", i%2000+1)
		case 1:
			r.Path = fmt.Sprintf("/catalog/titles/%d", i%2000+1)
		case 2:
			r.Path = "/search?q=harbor"
		case 3:
			r.Path, r.Token = "/home", token
		case 4:
			r.Path, r.Token = "/recommendations/p0007", token
		default:
			r.Path, r.Token = "/history/p0007/continue", token
		}
		return r
	}
	s := shoaltest.Attach(t, sys.manifest)
	stop := s.Monkey(t, monkey.Config{Every: monkeyEvery, Actions: []string{"kill"}})
	rs := run(monkeyLoadRate, monkeyLoadFor, func(i int) result {
		r := result{start: time.Now()}
		req := reads(i)
		a, err := fl.Do(req, 5*time.Second)
		// Counted per kind of read (summarize's "instance").
		kind := strings.FieldsFunc(req.Path, func(c rune) bool { return c == '/' || c == '?' })[0]
		r.latency, r.status, r.err, r.instance = time.Since(r.start), a.Status, err, kind
		return r
	})
	var kills []string
	for _, a := range stop() {
		if a.Err == nil {
			kills = append(kills, fmt.Sprintf("%s/%d", a.Action.Service, a.Action.Index))
		}
	}
	sum := summarize(rs)
	t.Logf("under the monkey: %v\n%d instances killed: %s", sum, len(kills), strings.Join(kills, " "))
	if sum.failed > 0 {
		t.Errorf("%d of %d requests failed under the monkey", sum.failed, sum.total)
	}
	if len(kills) < int(monkeyLoadFor/monkeyEvery)/2 {
		t.Errorf("the monkey killed %d instances in %v at one every %v", len(kills), monkeyLoadFor, monkeyEvery)
	}
}

// titleAnswer is GET /titles/1 through the gateway with a Shoal-Fault
// header.
func titleAnswer(t *testing.T, sys *system, header string) (status int, injected, body string) {
	t.Helper()
	req, _ := http.NewRequest("GET", sys.gateway+"/titles/1", nil)
	if header != "" {
		req.Header.Set(fault.Header, header)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get(fault.InjectedHeader), string(b)
}

// An anonymous request carrying a fault, whether a plain description or a
// token signed by some other key, is served normally: the gateway drops
// the header (and counts it), no service sees it.
func outsideFaults(t *testing.T, sys *system) {
	_, other, _ := ed25519.GenerateKey(rand.Reader)
	faults, _ := fault.Parse("api:error=503;catalog:error=503")
	forged, err := fault.NewSigner(other).Faults(faults, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	admin := sys.gatewayAdmin(t)
	refused := func() int {
		resp, err := http.Get("http://" + admin + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		m := regexp.MustCompile(`(?m)^shoal_chaos_tokens_refused_total (\d+)`).FindSubmatch(b)
		if m == nil {
			t.Fatalf("the gateway's metrics lack shoal_chaos_tokens_refused_total")
		}
		n, _ := strconv.Atoi(string(m[1]))
		return n
	}
	before := refused()
	for _, header := range []string{"api:error=503;catalog:error=503", forged} {
		status, injected, body := titleAnswer(t, sys, header)
		if status != 200 || injected != "" || !strings.Contains(body, `"id":1`) {
			t.Errorf("GET /titles/1 with Shoal-Fault %.40q: %d (injected %q) %s; want it served normally", header, status, injected, body)
		}
	}
	if after := refused(); after-before != 2 {
		t.Errorf("the gateway counted %d refused fault tokens, want 2", after-before)
	}
}

// The operator's token, from shoal chaos token, makes the named hop fail,
// wherever it is: the api (the gateway's callee) or the catalog behind it.
func signedFaults(t *testing.T, sys *system) {
	for _, tt := range []struct {
		fault    string
		status   int
		injected string
	}{
		{"api:error=503", 503, "api:error=503"},
		{"catalog:error=503", 502, ""}, // the api's answer without the catalog
		{"gateway>api:error=504", 504, "gateway>api:error=504"},
	} {
		tok, err := sys.shoal(t, "chaos", "token", tt.fault, "--for", "1m")
		if err != nil {
			t.Fatalf("shoal chaos token: %v\n%s", err, tok)
		}
		status, injected, body := titleAnswer(t, sys, strings.TrimSpace(tok))
		if status != tt.status || injected != tt.injected {
			t.Errorf("GET /titles/1 with a signed %s: %d (injected %q) %s; want %d (%q)", tt.fault, status, injected, body, tt.status, tt.injected)
		}
	}
}
