package main

import (
	"strings"
	"testing"
)

// With -solo=false nothing is measured alone, so the goals that need it
// must say so rather than judge zeros as met.
func TestReportWithoutSolo(t *testing.T) {
	r := &results{
		cfg:      config{solo: false, runs: 10, first: 3},
		services: []serviceResult{{name: "api", instances: 3}, {name: "trailers", instances: 1, command: []string{"python3", "trailers.py"}}},
	}
	md := r.markdown()
	for _, goal := range []string{"binary ≤ 15 MB per service", "time to ready ≤ 50 ms per service"} {
		line := lineWith(md, goal)
		if !strings.Contains(line, "not measured (-solo=false)") || strings.Contains(line, "**met**") {
			t.Errorf("goal %q with -solo=false: %q", goal, line)
		}
	}
	if line := lineWith(md, "| api | 3 |"); !strings.Contains(line, "| — | — | — | — |") {
		t.Errorf("api's row claims measurements it does not have: %q", line)
	}

	r.cfg.solo = true
	r.services[0].alone, r.services[1].alone = true, true
	r.services[0].size = 9e6
	if line := lineWith(r.markdown(), "binary ≤ 15 MB per service"); !strings.Contains(line, "**met**") {
		t.Errorf("binary goal with a 9 MB binary: %q", line)
	}
}

// lineWith returns the first line of s containing sub.
func lineWith(s, sub string) string {
	for line := range strings.SplitSeq(s, "\n") {
		if strings.Contains(line, sub) {
			return line
		}
	}
	return ""
}
