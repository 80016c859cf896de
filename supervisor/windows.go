package supervisor

import (
	"cmp"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Rolling windows of the scraped metrics: it is a dashboard, not a TSDB.
// Every round (scrapeEvery) each instance's counters are turned into
// deltas; rates, error ratios and quantiles are read over the last
// windowRounds rounds, and each service keeps historyLen such points for
// its sparklines.
const (
	scrapeEvery  = 2 * time.Second
	windowRounds = 5   // 10 s: what "now" means for rates and quantiles
	historyLen   = 150 // 5 minutes of points per service
)

// num is a float that marshals to JSON rounded to 4 significant digits,
// and NaN (no data) as null.
type num float64

func (n num) MarshalJSON() ([]byte, error) {
	f := float64(n)
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return []byte("null"), nil
	}
	return strconv.AppendFloat(nil, f, 'g', 4, 64), nil
}

// Rates are a service's or an instance's traffic over the last window.
type Rates struct {
	Rate       num `json:"rate"`        // requests per second
	ErrorRatio num `json:"error_ratio"` // 5xx (or failed calls) / requests
	P50        num `json:"p50"`         // seconds
	P99        num `json:"p99"`
}

// Series are a service's Rates over the last minutes, oldest first, one
// point per scrape round.
type Series struct {
	Rate       []num `json:"rate"`
	ErrorRatio []num `json:"error_ratio"`
	P50        []num `json:"p50"`
	P99        []num `json:"p99"`
}

// InstanceMetrics is what an instance's metrics, and its callers' metrics
// about it, say over the last window. Per-second figures are rates.
type InstanceMetrics struct {
	ScrapeError string `json:"scrape_error,omitempty"`
	Rates
	// Its own admission control.
	InFlight   num  `json:"in_flight"`
	Limit      num  `json:"limit"`      // adaptive concurrency limit; null without admission control
	Queued     num  `json:"queued"`     // requests waiting for a slot
	Overloaded bool `json:"overloaded"` // more requests arrive than it completes: the excess is refused at once
	Rejected   num  `json:"rejected"`   // admission refusals per second
	CPU        num  `json:"cpu"`        // cores
	RSS        num  `json:"rss"`        // bytes

	// How its callers' balancers see it (worst caller for EWMA and the
	// breaker).
	EWMA           num    `json:"ewma"` // seconds
	CallerInFlight num    `json:"caller_in_flight"`
	Breaker        string `json:"breaker,omitempty"` // closed, half_open, open
	Ejected        bool   `json:"ejected"`
	Ejections      num    `json:"ejections"` // total, summed over callers

	// Its own calls to every dependency.
	Retries      num `json:"retries"`
	Hedges       num `json:"hedges"`
	HedgeWins    num `json:"hedge_wins"`
	Throttled    num `json:"throttled"`
	ThrottleRate num `json:"throttle_rate"` // highest over its dependencies
	BulkheadFull num `json:"bulkhead_full"`
}

// Edge is the calls of one service to another over the last window, from
// the callers' client metrics (and seen in traces when Traced).
type Edge struct {
	From string `json:"from"`
	To   string `json:"to"`
	Rates
	Retries         num  `json:"retries"`
	Hedges          num  `json:"hedges"`
	HedgeWins       num  `json:"hedge_wins"`
	Throttled       num  `json:"throttled"`
	ThrottleRate    num  `json:"throttle_rate"` // highest over the callers
	BulkheadFull    num  `json:"bulkhead_full"`
	BudgetExhausted num  `json:"budget_exhausted"`
	BudgetLeft      num  `json:"budget_left"` // lowest over the callers
	InFlight        num  `json:"in_flight"`
	MaxInFlight     num  `json:"max_in_flight"` // per caller instance
	Open            int  `json:"open"`          // callee instances some caller's breaker has open
	HalfOpen        int  `json:"half_open"`
	Metrics         bool `json:"metrics"` // seen in client metrics
	Traced          bool `json:"traced"`  // seen in traces
}

// delta is what one instance did during one round.
type delta struct {
	dt                         float64 // seconds
	requests, errors, rejected float64
	cpu                        float64
	latency                    histogram
	deps                       map[string]*depDelta
}

type depDelta struct {
	calls, failures, retries, exhausted, throttled, full, hedges, wins float64
}

// slotWindow is the recent history of one slot (service/index).
type slotWindow struct {
	id     string  // instance ID of last
	last   *sample // last successful scrape
	deltas []delta // the last windowRounds rounds, oldest first
}

// sum adds the deltas of the window.
func (w *slotWindow) sum() delta {
	var s delta
	for _, d := range w.deltas {
		s.dt += d.dt
		s.requests += d.requests
		s.errors += d.errors
		s.rejected += d.rejected
		s.cpu += d.cpu
		if d.latency.total() > 0 {
			s.latency.add(d.latency.bounds, d.latency.counts)
		}
		for svc, dd := range d.deps {
			if s.deps == nil {
				s.deps = map[string]*depDelta{}
			}
			a := s.deps[svc]
			if a == nil {
				a = &depDelta{}
				s.deps[svc] = a
			}
			a.calls += dd.calls
			a.failures += dd.failures
			a.retries += dd.retries
			a.exhausted += dd.exhausted
			a.throttled += dd.throttled
			a.full += dd.full
			a.hedges += dd.hedges
			a.wins += dd.wins
		}
	}
	return s
}

// scraped is one instance's result in one round.
type scraped struct {
	st InstanceStatus
	s  *sample // nil: not scraped (a program without /metrics)
}

// windows turns rounds of scrapes into the dashboard's figures. It is used
// by the collector's loop only (under collector.mu).
type windows struct {
	slots   map[string]*slotWindow // by "service/index"
	history map[string]*Series     // by service
	last    time.Time              // of the previous round

	// Derived at the end of each round.
	instances map[string]*InstanceMetrics // by slot
	services  map[string]Rates
	edges     []Edge

	breakers map[string]string  // callee instance ID → worst breaker state seen by a caller
	refused  map[string]float64 // callee instance ID → ejections refused, summed over callers
}

func newWindows() *windows {
	return &windows{slots: map[string]*slotWindow{}, history: map[string]*Series{},
		breakers: map[string]string{}, refused: map[string]float64{}}
}

func slotName(service string, index int) string { return service + "/" + strconv.Itoa(index) }

// round takes one round of scrapes at now, recomputes every figure and
// returns the events it derived (breaker transitions, refused ejections).
// services lists every service in manifest order; traced holds the
// caller→callee pairs seen in traces.
func (w *windows) round(now time.Time, services []string, got []scraped, traced map[[2]string]bool) []Event {
	dt := scrapeEvery.Seconds()
	if !w.last.IsZero() {
		dt = now.Sub(w.last).Seconds()
	}
	w.last = now
	live := map[string]bool{}
	for _, g := range got {
		if g.s == nil {
			continue
		}
		key := slotName(g.st.Service, g.st.Index)
		live[key] = true
		sw := w.slots[key]
		if sw == nil {
			sw = &slotWindow{}
			w.slots[key] = sw
		}
		d := delta{dt: dt}
		if g.s.err == "" {
			d = diff(sw, g.st, g.s, dt)
			sw.id, sw.last = g.st.ID, g.s
		}
		sw.deltas = append(sw.deltas, d)
		if len(sw.deltas) > windowRounds {
			sw.deltas = slices.Delete(sw.deltas, 0, 1)
		}
	}
	for key := range w.slots {
		if !live[key] {
			delete(w.slots, key) // scaled away
		}
	}
	w.derive(services, got, traced)
	return w.transitions(now, got)
}

// diff is what an instance did since its last scrape. A process seen for
// the first time counts from zero if it started within the round, else
// (the window has just begun) its first scrape is only a baseline; a
// counter that went down is a reset, counting from zero.
func diff(sw *slotWindow, st InstanceStatus, s *sample, dt float64) delta {
	prev := sw.last
	switch {
	case prev == nil || sw.id != st.ID:
		if st.Uptime.Seconds() > dt {
			return delta{dt: dt}
		}
		prev = &sample{}
	case s.requests < prev.requests:
		prev = &sample{}
	}
	d := delta{
		dt:       dt,
		requests: s.requests - prev.requests,
		errors:   max(0, s.errors-prev.errors),
		rejected: max(0, s.rejected-prev.rejected),
		latency:  s.latency.sub(prev.latency),
	}
	if prev.cpu > 0 {
		d.cpu = max(0, s.cpu-prev.cpu)
	}
	for svc, ds := range s.deps {
		old := prev.deps[svc]
		if old == nil || ds.calls < old.calls {
			old = &depSample{}
		}
		if d.deps == nil {
			d.deps = map[string]*depDelta{}
		}
		d.deps[svc] = &depDelta{
			calls:     ds.calls - old.calls,
			failures:  max(0, ds.failures-old.failures),
			retries:   max(0, ds.retries-old.retries),
			exhausted: max(0, ds.budgetExhausted-old.budgetExhausted),
			throttled: max(0, ds.throttled-old.throttled),
			full:      max(0, ds.full-old.full),
			hedges:    max(0, ds.hedges-old.hedges),
			wins:      max(0, ds.hedgeWins-old.hedgeWins),
		}
	}
	return d
}

func ratio(a, b float64) num {
	if b == 0 {
		return num(math.NaN())
	}
	return num(a / b)
}

func rates(d delta) Rates {
	return Rates{
		Rate:       ratio(d.requests, d.dt),
		ErrorRatio: ratio(d.errors, d.requests),
		P50:        num(d.latency.quantile(0.5)),
		P99:        num(d.latency.quantile(0.99)),
	}
}

// derive recomputes instances, services and edges from the windows.
func (w *windows) derive(services []string, got []scraped, traced map[[2]string]bool) {
	w.instances = map[string]*InstanceMetrics{}
	type svcAcc struct {
		rate    float64
		errs    float64
		reqs    float64
		latency histogram
		any     bool
	}
	acc := map[string]*svcAcc{}
	edges := map[[2]string]*Edge{}
	edgeCalls := map[[2]string][2]float64{} // calls, failures
	callee := map[string]*InstanceMetrics{} // by instance ID: what callers see
	for _, g := range got {
		if g.s == nil {
			continue
		}
		key := slotName(g.st.Service, g.st.Index)
		sw := w.slots[key]
		im := &InstanceMetrics{Rates: Rates{num(math.NaN()), num(math.NaN()), num(math.NaN()), num(math.NaN())},
			Limit: num(math.NaN()), EWMA: num(math.NaN()), ThrottleRate: num(math.NaN())}
		w.instances[key] = im
		callee[g.st.ID] = im
		if g.s.err != "" {
			im.ScrapeError = g.s.err
		}
		if sw == nil || sw.last == nil {
			continue
		}
		sum := sw.sum()
		if sum.dt == 0 {
			continue
		}
		im.Rates = rates(sum)
		im.Rejected = ratio(sum.rejected, sum.dt)
		im.CPU = ratio(sum.cpu, sum.dt)
		last := sw.last
		im.InFlight, im.RSS = num(last.inFlight), num(last.rss)
		if last.server {
			im.Limit, im.Queued, im.Overloaded = num(last.limit), num(last.queued), last.overloaded
		}
		a := acc[g.st.Service]
		if a == nil {
			a = &svcAcc{}
			acc[g.st.Service] = a
		}
		a.any = true
		a.rate += sum.requests / sum.dt
		a.reqs += sum.requests
		a.errs += sum.errors
		if sum.latency.total() > 0 {
			a.latency.add(sum.latency.bounds, sum.latency.counts)
		}
		var retries, hedges, wins, throttled, full, throttle float64
		for dep, dd := range sum.deps {
			retries += dd.retries
			hedges += dd.hedges
			wins += dd.wins
			throttled += dd.throttled
			full += dd.full
			k := [2]string{g.st.Service, dep}
			e := edges[k]
			if e == nil {
				e = &Edge{From: k[0], To: k[1], Metrics: true, BudgetLeft: num(math.Inf(1))}
				edges[k] = e
			}
			c := edgeCalls[k]
			edgeCalls[k] = [2]float64{c[0] + dd.calls, c[1] + dd.failures}
			e.Rate += num(dd.calls / sum.dt)
			e.Retries += num(dd.retries / sum.dt)
			e.Hedges += num(dd.hedges / sum.dt)
			e.HedgeWins += num(dd.wins / sum.dt)
			e.Throttled += num(dd.throttled / sum.dt)
			e.BulkheadFull += num(dd.full / sum.dt)
			e.BudgetExhausted += num(dd.exhausted / sum.dt)
		}
		for dep, ds := range last.deps {
			throttle = max(throttle, ds.throttleRate)
			k := [2]string{g.st.Service, dep}
			e := edges[k]
			if e == nil {
				continue
			}
			e.ThrottleRate = max(e.ThrottleRate, num(ds.throttleRate))
			e.InFlight += num(ds.inFlight)
			e.MaxInFlight = max(e.MaxInFlight, num(ds.maxInFlight))
			e.BudgetLeft = min(e.BudgetLeft, num(ds.budgetLeft))
		}
		im.Retries, im.Hedges, im.HedgeWins = num(retries/sum.dt), num(hedges/sum.dt), num(wins/sum.dt)
		im.Throttled, im.BulkheadFull, im.ThrottleRate = num(throttled/sum.dt), num(full/sum.dt), num(throttle)
	}
	// What every caller's balancer says about each callee instance.
	for _, g := range got {
		if g.s == nil || g.s.err != "" {
			continue
		}
		for _, ds := range g.s.deps {
			for id, h := range ds.hosts {
				im := callee[id]
				if im == nil {
					continue
				}
				if h.ewma > 0 && (math.IsNaN(float64(im.EWMA)) || num(h.ewma) > im.EWMA) {
					im.EWMA = num(h.ewma)
				}
				im.CallerInFlight += num(h.inFlight)
				im.Ejected = im.Ejected || h.ejected == 1
				im.Ejections += num(h.ejections)
				if breakerRank(h.breaker) > breakerRank(im.Breaker) {
					im.Breaker = h.breaker
				}
			}
		}
	}
	w.services = map[string]Rates{}
	for _, name := range services {
		r := Rates{num(math.NaN()), num(math.NaN()), num(math.NaN()), num(math.NaN())}
		if a := acc[name]; a != nil && a.any {
			r = Rates{Rate: num(a.rate), ErrorRatio: ratio(a.errs, a.reqs), P50: num(a.latency.quantile(0.5)), P99: num(a.latency.quantile(0.99))}
		} else {
			// A program without metrics: what its callers saw.
			var calls, fails, rate float64
			for k, e := range edges {
				if k[1] == name {
					c := edgeCalls[k]
					calls, fails, rate = calls+c[0], fails+c[1], rate+float64(e.Rate)
				}
			}
			if calls > 0 {
				r.Rate, r.ErrorRatio = num(rate), ratio(fails, calls)
			}
		}
		w.services[name] = r
		h := w.history[name]
		if h == nil {
			h = &Series{}
			w.history[name] = h
		}
		h.Rate = pushPoint(h.Rate, r.Rate)
		h.ErrorRatio = pushPoint(h.ErrorRatio, r.ErrorRatio)
		h.P50 = pushPoint(h.P50, r.P50)
		h.P99 = pushPoint(h.P99, r.P99)
	}
	for k := range traced {
		if edges[k] == nil {
			nan := num(math.NaN())
			edges[k] = &Edge{From: k[0], To: k[1], Rates: Rates{nan, nan, nan, nan}, BudgetLeft: nan}
		}
		edges[k].Traced = true
	}
	w.edges = w.edges[:0]
	for k, e := range edges {
		c := edgeCalls[k]
		if e.Metrics {
			e.ErrorRatio = ratio(c[1], c[0])
			e.P50, e.P99 = num(math.NaN()), num(math.NaN())
		}
		if math.IsInf(float64(e.BudgetLeft), 1) {
			e.BudgetLeft = num(math.NaN())
		}
		w.edges = append(w.edges, *e)
	}
	slices.SortFunc(w.edges, func(a, b Edge) int {
		return cmp.Or(cmp.Compare(a.From, b.From), cmp.Compare(a.To, b.To))
	})
	// Breaker counts per edge: the callee instances some caller of that
	// service has open or half-open.
	for i := range w.edges {
		e := &w.edges[i]
		seen := map[string]string{}
		for _, g := range got {
			if g.s == nil || g.st.Service != e.From {
				continue
			}
			if ds := g.s.deps[e.To]; ds != nil {
				for id, h := range ds.hosts {
					if breakerRank(h.breaker) > breakerRank(seen[id]) {
						seen[id] = h.breaker
					}
				}
			}
		}
		for _, st := range seen {
			switch st {
			case "open":
				e.Open++
			case "half_open":
				e.HalfOpen++
			}
		}
	}
}

func pushPoint(s []num, v num) []num {
	s = append(s, v)
	if len(s) > historyLen {
		s = slices.Delete(s, 0, len(s)-historyLen)
	}
	return s
}

// breakerRank orders breaker states from healthy to broken.
func breakerRank(state string) int {
	switch state {
	case "closed":
		return 1
	case "half_open":
		return 2
	case "open":
		return 3
	}
	return 0
}

// transitions compares what callers' breakers say about each instance
// with the previous round and reports changes as events.
func (w *windows) transitions(now time.Time, got []scraped) []Event {
	slotOf := map[string]string{}
	for _, g := range got {
		slotOf[g.st.ID] = slotName(g.st.Service, g.st.Index)
	}
	type view struct {
		worst, service string
		open           []string // callers with it open
		refused        float64
	}
	views := map[string]*view{}
	for _, g := range got {
		if g.s == nil || g.s.err != "" {
			continue
		}
		caller := slotName(g.st.Service, g.st.Index)
		for svc, ds := range g.s.deps {
			for id, h := range ds.hosts {
				v := views[id]
				if v == nil {
					v = &view{service: svc}
					views[id] = v
				}
				if breakerRank(h.breaker) > breakerRank(v.worst) {
					v.worst = h.breaker
				}
				if h.breaker == "open" {
					v.open = append(v.open, caller)
				}
				v.refused += h.refused
			}
		}
	}
	var out []Event
	for _, id := range slices.Sorted(maps.Keys(views)) {
		v := views[id]
		name := slotOf[id]
		if name == "" {
			name = id // an instance the supervisor does not run, or an old process
		}
		prev, known := w.breakers[id]
		if v.worst != prev && (known || v.worst == "open" || v.worst == "half_open") && v.worst != "" {
			ev := Event{Time: now, Kind: EventBreaker, Service: v.service, Instance: slotOf[id], Level: "info"}
			switch v.worst {
			case "open":
				slices.Sort(v.open)
				ev.Level = "warn"
				ev.Message = fmt.Sprintf("%s ejected: breaker open at %s", name, strings.Join(v.open, ", "))
			case "half_open":
				ev.Message = name + " on probation: breaker half-open"
			default:
				ev.Message = name + " back in rotation: breakers closed"
			}
			out = append(out, ev)
		}
		w.breakers[id] = v.worst
		if old, ok := w.refused[id]; ok && v.refused > old {
			out = append(out, Event{Time: now, Kind: EventEjection, Service: v.service, Instance: slotOf[id], Level: "warn",
				Message: fmt.Sprintf("ejection of %s refused %.0f time(s): too many %s instances are ejected already", name, v.refused-old, v.service)})
		}
		w.refused[id] = v.refused
	}
	for id := range w.breakers {
		if views[id] == nil {
			delete(w.breakers, id)
			delete(w.refused, id)
		}
	}
	return out
}
