package main

import (
	"strings"
	"testing"
)

func TestGoalCheck(t *testing.T) {
	all := map[string]metrics{
		armShoal:        {kP99: 11, kNoFaultP99: 10, kP999: 9, kSuccess: 0.9995},
		armShoalNoHedge: {kP999: 100},
		armNaive:        {kP99: 200, kNoFaultP99: 10, kP999: 200, kSuccess: 0.95},
	}
	for _, tc := range []struct {
		name      string
		g         goal
		arm       string
		value     float64
		limit     float64
		wantMet   bool
		wantInTxt string
	}{
		{"own ratio met", goal{value: key(kP99), limit: times(1.2, kNoFaultP99)}, armShoal, 11, 12, true, ""},
		{"own ratio not met", goal{value: key(kP99), limit: times(1.2, kNoFaultP99)}, armNaive, 200, 12, false, ""},
		{"reference arm", goal{value: key(kP999), limit: timesArm(0.1, armShoalNoHedge, kP999)}, armShoal, 9, 10, true, ""},
		{"at least", goal{value: key(kSuccess), limit: fixed(0.999), atLeast: true}, armShoal, 0.9995, 0.999, true, ""},
		{"at least not met", goal{value: key(kSuccess), limit: fixed(0.999), atLeast: true}, armNaive, 0.95, 0.999, false, ""},
		{"equal bound is met", goal{value: key(kP999), limit: fixed(9)}, armShoal, 9, 9, true, ""},
	} {
		v := tc.g.check(tc.arm, all)
		if v.value != tc.value || v.limit != tc.limit || v.met != tc.wantMet {
			t.Errorf("%s: check = %+v, want value %v limit %v met %v", tc.name, v, tc.value, tc.limit, tc.wantMet)
		}
	}
}

func TestGoalLine(t *testing.T) {
	g := goal{text: "p99 ≤ 1.2× no-fault p99", value: key(kP99), limit: times(1.2, kNoFaultP99), format: fMs}
	all := map[string]metrics{
		armShoal: {kP99: 11, kNoFaultP99: 10},
		armNaive: {kP99: 200, kNoFaultP99: 10},
	}
	got := g.line([]string{armShoal, armNaive, armNginx}, all) // nginx has no row: skipped
	want := "goal p99 ≤ 1.2× no-fault p99: shoal 11.0 ms (≤ 12.0 ms) MET; peers: naive 200.0 ms (≤ 12.0 ms) NOT MET"
	if got != want {
		t.Errorf("line =\n%s\nwant\n%s", got, want)
	}
	if strings.Contains(got, "nginx") {
		t.Error("an arm without metrics is in the line")
	}
}
