package experiment

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/shoal-dev/shoal/chaos"
	"github.com/shoal-dev/shoal/chaos/monkey"
	"github.com/shoal-dev/shoal/gateway"
	"github.com/shoal-dev/shoal/manifest"
	"github.com/shoal-dev/shoal/supervisor"
)

// System is the running system an experiment acts on: a
// *supervisor.Remote, or a *supervisor.Supervisor in this process.
type System = monkey.Target

// Runner runs experiments against one system.
type Runner struct {
	System System
	// Dir is the manifest's folder: the operator's key is where its
	// supervisor keeps it (supervisor.OperatorKeyFile), and shoal up's
	// Prometheus targets are in its .shoal folder.
	Dir string
	// Gateways are the base URLs synthetic traffic goes to and live
	// experiments are started at; default http:// and the address of each
	// serving instance of the experiment's gateway service.
	Gateways []string
	// Log, if set, gets a line as each phase begins, and the abort.
	Log io.Writer
}

// minAbortSamples is how many requests each side of a route check needs
// in the abort window before it can abort the run.
const minAbortSamples = 5

// Run runs e to its verdict. An error means the experiment could not run
// (or ctx ended): no verdict. The fault is removed before Run returns,
// whatever happens.
func (r *Runner) Run(ctx context.Context, e *Experiment) (*Report, error) {
	if err := e.Validate(); err != nil {
		return nil, err
	}
	key, err := chaos.LoadKey(supervisor.OperatorKeyFile(r.Dir))
	if err != nil {
		return nil, fmt.Errorf("experiment: the operator's key (shoal up makes it): %w", err)
	}
	signer := chaos.NewSigner(key)
	if err := r.checkFaultServices(ctx, e); err != nil {
		return nil, err
	}
	gateways := r.Gateways
	if len(gateways) == 0 {
		if gateways, err = r.gateways(ctx, e.Traffic.Gateway); err != nil {
			return nil, err
		}
	}
	rep := &Report{Experiment: e.Name, Description: e.Description, Fault: describeFault(e), Traffic: describeTraffic(e)}
	m := &measurer{name: e.Name}
	var checks []*Check
	for i := range e.Hypothesis {
		checks = append(checks, &e.Hypothesis[i])
	}
	for i := range e.Abort {
		checks = append(checks, &e.Abort[i])
	}
	var names []string
	var scrapes *scraper
	for _, c := range checks {
		switch {
		case c.Match != nil && !slices.Contains(m.bodies, c.Match.Body):
			m.bodies = append(m.bodies, c.Match.Body)
		case c.Expr != nil:
			names = append(names, metrics(c.Expr.expr)...)
		}
	}
	if e.Traffic.Live != nil {
		names = append(names, liveMetrics...)
	}

	// The scraper, the traffic and the fault all end before Run returns,
	// whatever happens: each stop runs once, at the end of the fault
	// phase or when Run returns early.
	run, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	if len(names) > 0 {
		scrapes = newScraper(filepath.Join(r.Dir, filepath.FromSlash(supervisor.TargetsFile)), names)
		m.store, m.scrapes = scrapes.store, scrapes.err
		wg.Go(func() { scrapes.run(run) }) // owned by Run: ends with run
	}
	rep.Started = time.Now()
	stopLoad := func() {}
	if sy := e.Traffic.Synthetic; sy != nil {
		m.load = newLoad(sy, gateways, m.bodies)
		if err := m.load.setup(ctx); err != nil {
			return nil, fmt.Errorf("experiment %s: %w", e.Name, err)
		}
		stopLoad = sync.OnceFunc(m.load.start())
		defer stopLoad()
	}
	r.logf("%s: warming up for %v", e.Name, e.Warmup)
	if err := chaos.Wait(ctx, e.Warmup); err != nil {
		return nil, err
	}
	r.logf("%s: measuring the baseline for %v", e.Name, e.Baseline)
	baseline := window{from: time.Now()}
	if err := chaos.Wait(ctx, e.Baseline); err != nil {
		return nil, err
	}
	baseline.to = time.Now()

	r.logf("%s: fault on for %v: %s", e.Name, e.Duration, rep.Fault)
	var actions []monkey.Result
	stopFault, err := r.startFault(run, e, signer, gateways, m, &actions)
	if err != nil {
		return nil, err
	}
	stopFault = sync.OnceFunc(stopFault)
	defer stopFault()
	// The fault phase begins once the fault is on: a request started
	// while the token was being signed went without it.
	fault := window{from: time.Now()}
	rep.FaultAt = fault.from

	// The fault phase, checked every second for an abort.
	requestFault := e.Fault.Request != ""
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	end := time.NewTimer(e.Duration)
	defer end.Stop()
	var abort *CheckResult
phase:
	for {
		select {
		case <-ctx.Done():
			return nil, context.Cause(ctx)
		case <-end.C:
			break phase
		case <-tick.C:
			now := time.Now()
			recent := window{from: now.Add(-e.AbortWindow), to: now}
			if recent.from.Before(fault.from) {
				recent.from = fault.from
			}
			for i := range e.Abort {
				if res, tripped := m.abortCheck(&e.Abort[i], requestFault, baseline, recent); tripped {
					abort = &res
					break phase
				}
			}
		}
	}
	fault.to = time.Now()
	rep.Ended = fault.to
	// The fault goes first; then the requests in flight end, and the
	// scrapes, before anything is measured.
	stopFault()
	stopLoad()
	cancel()
	wg.Wait()
	if scrapes != nil {
		// The metrics as the fault phase ends, not up to a second
		// before: what came since the last round is the phase's too.
		scrapes.round(ctx, fault.to)
	}

	for _, c := range e.Hypothesis {
		rep.Checks = append(rep.Checks, m.result(&c, requestFault, baseline, fault))
	}
	if m.load != nil {
		rep.Requests = m.load.counts()
	} else {
		rep.Requests = m.liveCounts(e, fault)
	}
	for _, a := range actions {
		if a.Err == nil {
			rep.Actions = append(rep.Actions, a.Time.Format("15:04:05.000")+" "+a.Done.Message)
		}
	}
	switch {
	case abort != nil:
		rep.Verdict, rep.AbortedAfter = Aborted, fault.to.Sub(fault.from)
		rep.Reason = fmt.Sprintf("%s: experiment %s, control %s (%s)", abort.Name,
			format(abort.Experiment, abort.Unit, false), format(abort.Control, abort.Unit, false), abort.Tolerance)
		rep.Checks = append(rep.Checks, *abort)
		r.logf("%s: aborted %v after the fault began: %s", e.Name, rep.AbortedAfter.Round(100*time.Millisecond), rep.Reason)
	default:
		rep.Verdict = Held
		var failed []string
		for _, c := range rep.Checks {
			if !c.Held {
				failed = append(failed, c.Name)
			}
		}
		if len(failed) > 0 {
			rep.Verdict, rep.Reason = Failed, "did not hold: "+strings.Join(failed, "; ")
		}
	}
	return rep, nil
}

// startFault puts e's fault on and returns the function that takes it
// off: for a request-scoped fault, the experiment cohort's token (or the
// gateways' live experiment); for instance faults, a monkey for the fault
// phase, whose results go to actions once it has stopped.
func (r *Runner) startFault(ctx context.Context, e *Experiment, signer *chaos.Signer, gateways []string, m *measurer, actions *[]monkey.Result) (stop func(), err error) {
	ttl := e.Duration + time.Minute // a run that dies leaves nothing behind for long
	if e.Fault.Request == "" {
		cfg := *e.Fault.Instances
		cfg.For = min(cmp.Or(cfg.For, e.Duration), e.Duration)
		mk := &monkey.Monkey{Config: cfg, Target: r.System, By: "experiment " + e.Name,
			Report: func(res monkey.Result) {
				if res.Err == nil {
					r.logf("%s: %s", e.Name, res.Done.Message)
				}
			}}
		mctx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { // owned by the returned stop: ends with mctx
			defer close(done)
			*actions, _ = mk.Run(mctx)
		}()
		return func() { cancel(); <-done }, nil
	}
	faults, _ := chaos.Parse(e.Fault.Request) // checked by Validate
	tok, err := signer.Faults(faults, ttl)
	if err != nil {
		return nil, err
	}
	if e.Traffic.Live == nil {
		m.load.token.Store(&tok)
		return func() { m.load.token.Store(nil) }, nil
	}
	rule, err := signer.Experiment(e.Name, e.Traffic.Live.By, e.Traffic.Live.Share, tok, ttl)
	if err != nil {
		return nil, err
	}
	if err := r.startLive(ctx, gateways, rule); err != nil {
		return nil, err
	}
	return func() { r.stopLive(gateways, rule) }, nil
}

// result measures and judges a hypothesis check at the end of a run.
func (m *measurer) result(c *Check, requestFault bool, baseline, fault window) CheckResult {
	cs, es := sides(c, requestFault, baseline, fault)
	ctl, _, cerr := m.measure(c, cs)
	exp, _, eerr := m.measure(c, es)
	j := judge(c, ctl, exp)
	res := CheckResult{Name: c.Name, Metric: c.metric(), Unit: c.unit(), Control: Number(ctl), Experiment: Number(exp),
		Difference: Number(exp - ctl), Tolerance: j.rule, Held: j.held}
	for _, err := range []error{eerr, cerr} {
		if err != nil && !j.held {
			res.Note = err.Error()
			break
		}
	}
	if res.Note != "" && c.Expr != nil && m.scrapes != nil {
		if err := m.scrapes(); err != nil {
			res.Note += ": " + err.Error()
		}
	}
	return res
}

// abortCheck judges an abort condition over the recent window: tripped
// once it fails with enough data on both sides.
func (m *measurer) abortCheck(c *Check, requestFault bool, baseline, recent window) (CheckResult, bool) {
	cs, es := sides(c, requestFault, baseline, recent)
	ctl, nc, cerr := m.measure(c, cs)
	exp, ne, eerr := m.measure(c, es)
	if cerr != nil || eerr != nil || math.IsNaN(ctl) || math.IsNaN(exp) {
		return CheckResult{}, false
	}
	if c.Expr == nil && (ne < minAbortSamples || cs.cohort != "" && nc < minAbortSamples) {
		return CheckResult{}, false
	}
	j := judge(c, ctl, exp)
	return CheckResult{Name: c.Name, Metric: c.metric(), Unit: c.unit(), Control: Number(ctl), Experiment: Number(exp),
		Difference: Number(exp - ctl), Tolerance: j.rule, Held: j.held, Abort: true}, !j.held
}

// liveCounts are the requests the gateways put in each cohort during the
// fault.
func (m *measurer) liveCounts(e *Experiment, w window) map[string]int {
	m.store.mu.Lock()
	defer m.store.mu.Unlock()
	out := map[string]int{}
	for _, sr := range m.store.byName[cohortRequests] {
		if sr.labels.get("experiment") == e.Name {
			out[sr.labels.get("cohort")] += int(math.Round(increaseFromZero(sr.points, w)))
		}
	}
	return out
}

// checkFaultServices refuses a fault that names a service the running
// system does not have: a request fault on it would never fire, a monkey
// would find nothing to pick there (or not spare the service meant), and
// the experiment would hold without testing anything.
func (r *Runner) checkFaultServices(ctx context.Context, e *Experiment) error {
	named := map[string][]string{} // setting → the services it names
	if e.Fault.Request != "" {
		faults, err := chaos.Parse(e.Fault.Request)
		if err != nil {
			return err // Validate has said so already
		}
		named["fault.request"] = chaos.Services(faults)
	}
	if mk := e.Fault.Instances; mk != nil {
		named["fault.instances.services"], named["fault.instances.exclude"] = mk.Services, mk.Exclude
	}
	st, err := r.System.PS(ctx)
	if err != nil {
		return fmt.Errorf("experiment: %w", err)
	}
	var services []string
	for _, s := range st {
		if !slices.Contains(services, s.Service) {
			services = append(services, s.Service)
		}
	}
	var errs []error
	for _, setting := range slices.Sorted(maps.Keys(named)) {
		for _, msg := range manifest.NotServices(named[setting], services, "the running system") {
			errs = append(errs, e.errorf(setting, "%s", msg))
		}
	}
	return errors.Join(errs...)
}

// gateways are the base URLs of the serving instances of service.
func (r *Runner) gateways(ctx context.Context, service string) ([]string, error) {
	st, err := r.System.PS(ctx)
	if err != nil {
		return nil, fmt.Errorf("experiment: %w", err)
	}
	var out []string
	for _, s := range st {
		if s.Service == service && s.State == supervisor.StateServing {
			out = append(out, "http://"+s.Addr)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("experiment: no instance of %s serves: set traffic.gateway to the gateway's service", service)
	}
	return out, nil
}

// startLive starts the experiment at every gateway instance.
func (r *Runner) startLive(ctx context.Context, gateways []string, rule string) error {
	var errs []error
	for _, g := range gateways {
		if err := experimentRequest(ctx, http.MethodPut, g, rule); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) == len(gateways) {
		return fmt.Errorf("experiment: no gateway took the experiment: %w", errors.Join(errs...))
	}
	for _, err := range errs {
		r.logf("warning: %v", err)
	}
	return nil
}

// stopLive ends the experiment at every gateway instance (it would end
// with its token anyway). A gateway answers once its cohorts' requests in
// flight have ended (at most 30 s), so the metrics read next count them.
func (r *Runner) stopLive(gateways []string, rule string) {
	ctx, cancel := context.WithTimeout(context.Background(), 35*time.Second)
	defer cancel()
	for _, g := range gateways {
		if err := experimentRequest(ctx, http.MethodDelete, g, rule); err != nil {
			r.logf("warning: %v (it ends with its token)", err)
		}
	}
}

func experimentRequest(ctx context.Context, method, base, rule string) error {
	req, err := http.NewRequestWithContext(ctx, method, base+gateway.ExperimentPath, strings.NewReader(rule))
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, base, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s %s%s: %s %s", method, base, gateway.ExperimentPath, resp.Status, strings.TrimSpace(string(body)))
	}
	return nil
}

func (r *Runner) logf(format string, args ...any) {
	if r.Log != nil {
		fmt.Fprintf(r.Log, time.Now().Format("15:04:05.000")+" "+format+"\n", args...)
	}
}

func describeFault(e *Experiment) string {
	if e.Fault.Request != "" {
		return e.Fault.Request + " on the experiment cohort's requests"
	}
	mk := e.Fault.Instances
	actions := mk.Actions
	if len(actions) == 0 {
		actions = []string{supervisor.ActionKill}
	}
	every := "every " + cmp.Or(mk.Every, monkey.DefaultEvery).String()
	if mk.Rate > 0 {
		every = fmt.Sprintf("%g a second at random", mk.Rate)
	}
	what := "any service"
	if len(mk.Services) > 0 {
		what = strings.Join(mk.Services, ", ")
	}
	return fmt.Sprintf("%s an instance of %s %s", strings.Join(actions, " or "), what, every)
}

func describeTraffic(e *Experiment) string {
	if s := e.Traffic.Synthetic; s != nil {
		return fmt.Sprintf("synthetic, %g requests/s per cohort through %s", s.Rate, e.Traffic.Gateway)
	}
	l := e.Traffic.Live
	return fmt.Sprintf("live, %g of %s's requests in each cohort, by %s", l.Share, e.Traffic.Gateway, l.By)
}
