package main

import (
	"fmt"
	"strings"
)

// goal is one target of a scenario, checked against every arm's metrics.
type goal struct {
	text    string                                          // as stated in the scenario list
	value   func(m metrics) float64                         // the measured value
	limit   func(m metrics, all map[string]metrics) float64 // the bound for that arm
	atLeast bool                                            // value ≥ limit passes; otherwise value ≤ limit
	format  func(float64) string
}

// verdict is a goal checked for one arm.
type verdict struct {
	arm          string
	value, limit float64
	met          bool
}

func (g goal) check(arm string, all map[string]metrics) verdict {
	m := all[arm]
	v := verdict{arm: arm, value: g.value(m), limit: g.limit(m, all)}
	if g.atLeast {
		v.met = v.value >= v.limit
	} else {
		v.met = v.value <= v.limit
	}
	return v
}

// line states the goal's verdict for the first arm (Shoal's) and what each
// other arm got against the same kind of bound.
func (g goal) line(arms []string, all map[string]metrics) string {
	var b strings.Builder
	op := "≤"
	if g.atLeast {
		op = "≥"
	}
	fmt.Fprintf(&b, "goal %s: ", g.text)
	for i, arm := range arms {
		if _, ok := all[arm]; !ok {
			continue
		}
		v := g.check(arm, all)
		if i == 1 {
			b.WriteString("; peers: ")
		} else if i > 1 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s %s (%s %s) %s", arm, g.format(v.value), op, g.format(v.limit), metText(v.met))
	}
	return b.String()
}

func metText(met bool) string {
	if met {
		return "MET"
	}
	return "NOT MET"
}

// Goal builders shared by the scenarios.

// key returns a metric by name.
func key(k string) func(metrics) float64 { return func(m metrics) float64 { return m[k] } }

// fixed is a bound that is the same for every arm.
func fixed(v float64) func(metrics, map[string]metrics) float64 {
	return func(metrics, map[string]metrics) float64 { return v }
}

// times is factor × the arm's own metric k.
func times(factor float64, k string) func(metrics, map[string]metrics) float64 {
	return func(m metrics, _ map[string]metrics) float64 { return factor * m[k] }
}

// timesArm is factor × metric k of another arm (the reference).
func timesArm(factor float64, arm, k string) func(metrics, map[string]metrics) float64 {
	return func(_ metrics, all map[string]metrics) float64 { return factor * all[arm][k] }
}
