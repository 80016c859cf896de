package experiment

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"

	"github.com/shoal-dev/shoal/chaos"
)

// Synthetic traffic: two open-loop attacks (vegeta), one per cohort, at
// the same rate and mix, through the system's gateways (round robin, no
// retry: what a simple client sees). Every request's outcome is kept for
// the run, with whether its body held each text a match check looks for;
// bodies are not kept.

// record is the outcome of one synthetic request.
type record struct {
	cohort  string
	method  string
	path    string
	start   time.Time
	latency time.Duration
	ok      bool // answered below 400, in time
	matched []bool
}

// maxRecords bounds what a run keeps (a long run at a high rate).
const maxRecords = 2_000_000

// maxBody bounds the part of an answer searched for match checks.
const maxBody = 256 << 10

// load is the synthetic traffic of one run.
type load struct {
	spec     *Synthetic
	gateways []string          // base URLs
	vars     map[string]string // from the setup requests
	bodies   []string          // texts the match checks look for
	hc       *http.Client
	token    atomic.Pointer[string] // the experiment cohort's fault token, while the fault is on

	mu      sync.Mutex
	records []record
	dropped int
}

func newLoad(spec *Synthetic, gateways, bodies []string) *load {
	tr := &http.Transport{MaxIdleConnsPerHost: 256, DisableCompression: true}
	return &load{spec: spec, gateways: gateways, bodies: bodies, vars: map[string]string{},
		hc: &http.Client{Transport: tr, Timeout: spec.Timeout,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

// setup sends the setup requests in order and extracts their variables.
func (l *load) setup(ctx context.Context) error {
	for i, r := range l.spec.Setup {
		req, err := http.NewRequestWithContext(ctx, r.Method, l.gateways[0]+l.expand(r.Path), strings.NewReader(l.expand(r.Body)))
		if err != nil {
			return fmt.Errorf("setup request %d: %w", i+1, err)
		}
		for k, v := range r.Headers {
			req.Header.Set(k, l.expand(v))
		}
		if r.Body != "" && req.Header.Get("Content-Type") == "" {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := l.hc.Do(req)
		if err != nil {
			return fmt.Errorf("setup request %d (%s %s): %w", i+1, r.Method, r.Path, err)
		}
		body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
		resp.Body.Close()
		if err != nil || resp.StatusCode >= 400 {
			return fmt.Errorf("setup request %d (%s %s): %s %s", i+1, r.Method, r.Path, resp.Status, bytes.TrimSpace(body))
		}
		if len(r.Extract) == 0 {
			continue
		}
		var fields map[string]any
		if err := json.Unmarshal(body, &fields); err != nil {
			return fmt.Errorf("setup request %d (%s %s): the answer is not a JSON object: %w", i+1, r.Method, r.Path, err)
		}
		for v, field := range r.Extract {
			x, ok := fields[field]
			if !ok {
				return fmt.Errorf("setup request %d (%s %s): the answer has no field %q", i+1, r.Method, r.Path, field)
			}
			if s, isString := x.(string); isString {
				l.vars[v] = s
			} else {
				b, _ := json.Marshal(x)
				l.vars[v] = string(b)
			}
		}
	}
	return nil
}

// expand replaces ${NAME} and ${A..B} in s.
func (l *load) expand(s string) string {
	if !strings.Contains(s, "${") {
		return s
	}
	return variable.ReplaceAllStringFunc(s, func(m string) string {
		name := m[2 : len(m)-1]
		if lo, hi, ok := strings.Cut(name, ".."); ok {
			a, _ := strconv.Atoi(lo)
			b, _ := strconv.Atoi(hi)
			if b < a {
				a, b = b, a
			}
			return strconv.Itoa(a + rand.IntN(b-a+1))
		}
		return l.vars[name]
	})
}

// pick draws a request of the mix by weight.
func (l *load) pick() *Request {
	total := 0
	for _, r := range l.spec.Requests {
		total += r.Weight
	}
	n := rand.IntN(max(total, 1))
	for i := range l.spec.Requests {
		if n -= l.spec.Requests[i].Weight; n < 0 {
			return &l.spec.Requests[i]
		}
	}
	return &l.spec.Requests[0]
}

// targeter makes cohort's requests.
func (l *load) targeter(cohort string) vegeta.Targeter {
	var n atomic.Uint64
	return func(t *vegeta.Target) error {
		r := l.pick()
		t.Method = r.Method
		t.URL = l.gateways[n.Add(1)%uint64(len(l.gateways))] + l.expand(r.Path)
		t.Body = nil
		if r.Body != "" {
			t.Body = []byte(l.expand(r.Body))
		}
		t.Header = make(http.Header, len(r.Headers)+1)
		for k, v := range r.Headers {
			t.Header.Set(k, l.expand(v))
		}
		if r.Body != "" && t.Header.Get("Content-Type") == "" {
			t.Header.Set("Content-Type", "application/json")
		}
		if tok := l.token.Load(); tok != nil && cohort == chaos.CohortExperiment {
			t.Header.Set(chaos.Header, *tok)
		}
		return nil
	}
}

// start sends both cohorts' traffic until stop is called; stop returns
// once every request sent has ended.
func (l *load) start() (stop func()) {
	freq := int(l.spec.Rate * 1000)
	rate := vegeta.Rate{Freq: max(freq, 1), Per: 1000 * time.Second}
	var wg sync.WaitGroup
	var attackers []*vegeta.Attacker
	for _, cohort := range []string{chaos.CohortControl, chaos.CohortExperiment} {
		a := vegeta.NewAttacker(vegeta.Client(l.hc), vegeta.Timeout(l.spec.Timeout), vegeta.MaxBody(maxBody),
			vegeta.Redirects(vegeta.NoFollow))
		attackers = append(attackers, a)
		results := a.Attack(l.targeter(cohort), rate, 0, cohort)
		wg.Go(func() { // owned by stop: ends when the attack's results are all in
			for res := range results {
				l.add(res)
			}
		})
	}
	return func() {
		for _, a := range attackers {
			a.Stop()
		}
		wg.Wait()
		l.hc.CloseIdleConnections()
	}
}

func (l *load) add(res *vegeta.Result) {
	r := record{cohort: res.Attack, method: res.Method, start: res.Timestamp, latency: res.Latency,
		ok: res.Error == "" && res.Code >= 200 && res.Code < 400}
	if u, err := url.Parse(res.URL); err == nil {
		r.path = u.Path
	}
	if len(l.bodies) > 0 {
		r.matched = make([]bool, len(l.bodies))
		for i, b := range l.bodies {
			r.matched[i] = bytes.Contains(res.Body, []byte(b))
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.records) >= maxRecords {
		l.dropped++
		return
	}
	l.records = append(l.records, r)
}

// select_ returns the records of cohort ("" for both) started in w whose
// method and path match route ([METHOD] path-prefix).
func (l *load) selectRecords(cohort, route string, w window) []record {
	method, prefix, ok := strings.Cut(route, " ")
	if !ok {
		method, prefix = "", route
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []record
	for _, r := range l.records {
		if (cohort == "" || r.cohort == cohort) && !r.start.Before(w.from) && r.start.Before(w.to) &&
			(method == "" || strings.EqualFold(method, r.method)) && strings.HasPrefix(r.path, strings.TrimSpace(prefix)) {
			out = append(out, r)
		}
	}
	return out
}

// counts returns the requests sent per cohort.
func (l *load) counts() map[string]int {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := map[string]int{}
	for _, r := range l.records {
		out[r.cohort]++
	}
	return out
}
