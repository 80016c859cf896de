package experiment

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/shoal-dev/shoal/chaos"
)

// side is where one value of a check is measured: a cohort's requests
// ("" for both) in a window of time.
type side struct {
	cohort string
	w      window
}

// measurer measures checks for one run: over the synthetic traffic's
// records, or the gateways' cohort metrics and the instances' metrics in
// the store.
type measurer struct {
	name  string // the experiment's, as the gateways label their cohorts
	load  *load  // nil with live traffic
	store *store // nil without expressions or live traffic
	// bodies are the texts of the match checks, in load.bodies order.
	bodies []string
	// scrapes, if set, says why the last scrape round failed (the
	// targets file unreadable), nil if it did not.
	scrapes func() error
}

// measure returns a check's value on one side, and how many requests it
// is made of (0 for an expression).
func (m *measurer) measure(c *Check, s side) (float64, int, error) {
	if c.Expr != nil {
		v, err := m.store.evalNumber(c.Expr.expr, s.w)
		return v, 0, err
	}
	if m.load == nil {
		return m.measureLive(c, s)
	}
	rs := m.load.selectRecords(s.cohort, c.Route, s.w)
	if len(rs) == 0 {
		return math.NaN(), 0, fmt.Errorf("%w: no request matched %q", ErrNoData, c.Route)
	}
	switch {
	case c.Success != nil:
		ok := 0
		for _, r := range rs {
			if r.ok {
				ok++
			}
		}
		return float64(ok) / float64(len(rs)), len(rs), nil
	case c.Latency != nil:
		lat := make([]time.Duration, len(rs))
		for i, r := range rs {
			lat[i] = r.latency
		}
		slices.Sort(lat)
		// Nearest rank: the smallest latency with at least q of them at
		// or below it.
		rank := int(math.Ceil(c.Latency.Quantile * float64(len(lat))))
		return lat[min(max(rank, 1), len(lat))-1].Seconds(), len(rs), nil
	default:
		i := slices.Index(m.bodies, c.Match.Body)
		n := 0
		for _, r := range rs {
			if r.matched[i] {
				n++
			}
		}
		return float64(n) / float64(len(rs)), len(rs), nil
	}
}

// The gateways' cohort metrics (telemetry.CohortMetrics).
const (
	cohortRequests = "shoal_chaos_cohort_requests_total"
	cohortDuration = "shoal_chaos_cohort_request_duration_seconds"
)

// liveMetrics are the families live traffic is measured with.
var liveMetrics = []string{cohortRequests, cohortDuration + "_bucket"}

// measureLive measures a route check of live traffic from the gateways'
// cohort metrics, summed over every gateway instance. The cohorts' series
// begin with the experiment, so a series first seen inside the window
// counts from zero.
func (m *measurer) measureLive(c *Check, s side) (float64, int, error) {
	m.store.mu.Lock()
	defer m.store.mu.Unlock()
	match := func(sr *series) bool {
		return sr.labels.get("experiment") == m.name && sr.labels.get("route") == c.Route &&
			(s.cohort == "" || sr.labels.get("cohort") == s.cohort)
	}
	var total, failed float64
	for _, sr := range m.store.byName[cohortRequests] {
		if !match(sr) {
			continue
		}
		inc := increaseFromZero(sr.points, s.w)
		total += inc
		if code, _ := strconv.Atoi(sr.labels.get("code")); code < 200 || code >= 400 {
			failed += inc
		}
	}
	if total == 0 {
		return math.NaN(), 0, fmt.Errorf("%w: no request of route %q in cohort %s at the gateways", ErrNoData, c.Route, cmp.Or(s.cohort, "either"))
	}
	n := int(math.Round(total))
	if c.Success != nil {
		return 1 - failed/total, n, nil
	}
	var buckets []sample
	byLe := map[string]float64{}
	for _, sr := range m.store.byName[cohortDuration+"_bucket"] {
		if match(sr) {
			byLe[sr.labels.get("le")] += increaseFromZero(sr.points, s.w)
		}
	}
	for le, v := range byLe {
		buckets = append(buckets, sample{labels{{"le", le}}, v})
	}
	q := quantiles(c.Latency.Quantile, buckets)
	if len(q) == 0 {
		return math.NaN(), n, fmt.Errorf("%w: no latency of route %q", ErrNoData, c.Route)
	}
	return q[0].v, n, nil
}

// increaseFromZero is increase over w, counting a series' first point
// from zero when it falls inside w (it began there).
func increaseFromZero(ps []point, w window) float64 {
	inc, _, _ := increase(ps, w.from, w.to)
	if len(ps) > 0 && ps[0].t.After(w.from) && !ps[0].t.After(w.to) {
		inc += ps[0].v
	}
	return inc
}

// judgement is a check's values, the difference and whether it held.
type judgement struct {
	control, experiment float64
	rule                string // the tolerance, as a rule
	held                bool
}

// judge compares the experiment's value with the control's as c says.
func judge(c *Check, ctl, exp float64) judgement {
	j := judgement{control: ctl, experiment: exp, held: true}
	var rules []string
	need := func(ok bool, rule string, needsControl bool) {
		rules = append(rules, rule)
		if math.IsNaN(exp) || needsControl && math.IsNaN(ctl) {
			j.held = false
			return
		}
		j.held = j.held && ok
	}
	pct := func(v float64) string { return strconv.FormatFloat(v*100, 'g', 4, 64) + "%" }
	switch {
	case c.Success != nil:
		if t := c.Success.Tolerance; t != nil {
			need(exp >= ctl-*t-1e-9, "≥ control − "+pct(*t), true)
		}
		if v := c.Success.Min; v != nil {
			need(exp >= *v, "≥ "+pct(*v), false)
		}
	case c.Latency != nil:
		if d := c.Latency.Max; d > 0 {
			need(exp <= d.Seconds(), "≤ "+d.String(), false)
		}
		if d := c.Latency.Tolerance; d > 0 {
			need(exp <= ctl+d.Seconds(), "≤ control + "+d.String(), true)
		}
	case c.Match != nil:
		if v := c.Match.Min; v != nil {
			need(exp >= *v, "≥ "+pct(*v), false)
		}
		if v := c.Match.Max; v != nil {
			need(exp <= *v, "≤ "+pct(*v), false)
		}
		if t := c.Match.Tolerance; t != nil {
			need(math.Abs(exp-ctl) <= *t+1e-9, "control ± "+pct(*t), true)
		}
	default:
		x := c.Expr
		if t := x.Tolerance; t != nil {
			if x.Worse == "lower" {
				need(exp >= ctl-*t, "≥ control − "+formatValue(*t), true)
			} else {
				need(exp <= ctl+*t, "≤ control + "+formatValue(*t), true)
			}
		}
		if v := x.Min; v != nil {
			need(exp >= *v, "≥ "+formatValue(*v), false)
		}
		if v := x.Max; v != nil {
			need(exp <= *v, "≤ "+formatValue(*v), false)
		}
	}
	j.rule = strings.Join(rules, ", ")
	return j
}

// unit is how the report writes c's values: ratio, seconds or "".
func (c *Check) unit() string {
	switch {
	case c.Success != nil, c.Match != nil:
		return "ratio"
	case c.Latency != nil:
		return "seconds"
	}
	return ""
}

// sides are where the control and the experiment of c are measured: the
// two cohorts side by side in the fault window for a request-scoped fault;
// otherwise (instance faults, expressions) the baseline and the fault
// window, over all traffic.
func sides(c *Check, requestFault bool, baseline, fault window) (control, experiment side) {
	if c.Expr == nil && requestFault {
		return side{chaos.CohortControl, fault}, side{chaos.CohortExperiment, fault}
	}
	return side{w: baseline}, side{w: fault}
}
