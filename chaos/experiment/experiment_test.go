package experiment

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/manifest"
)

func TestParseExperiment(t *testing.T) {
	e, err := Parse("dir/ratings-latency.yaml", []byte(`
description: ratings late
duration: 20s
traffic:
  synthetic:
    rate: 20
    setup:
      - {method: POST, path: /signin, body: '{"p": 1}', extract: {token: token}}
    requests:
      - {path: '/titles/${1..2000}', weight: 3}
      - {path: /home, headers: {Authorization: 'Bearer ${token}'}}
fault:
  request: ratings:delay=300ms
hypothesis:
  - route: GET /titles/
    success: {tolerance: 0.01}
  - name: home in time
    route: /home
    latency: {max: 1s}
  - expr: {query: 'sum(rate(x))', tolerance: 1}
abort:
  - route: /titles/
    success: {tolerance: 0.2}
`))
	if err != nil {
		t.Fatal(err)
	}
	if e.Name != "ratings-latency" || e.Duration != 20*time.Second || e.Warmup != DefaultWarmup || e.Baseline != DefaultBaseline ||
		e.AbortWindow != DefaultAbortWindow || e.Traffic.Gateway != "gateway" {
		t.Errorf("defaults: %+v", e)
	}
	s := e.Traffic.Synthetic
	if s.Timeout != DefaultTimeout || s.Requests[0].Method != "GET" || s.Requests[1].Weight != 1 || s.Setup[0].Method != "POST" {
		t.Errorf("request defaults: %+v", s)
	}
	names := []string{e.Hypothesis[0].Name, e.Hypothesis[1].Name, e.Hypothesis[2].Name}
	if names[0] != "success GET /titles/" || names[1] != "home in time" || names[2] != "sum(rate(x))" || e.Hypothesis[1].Latency.Quantile != 0.99 {
		t.Errorf("check names %q, quantile %v", names, e.Hypothesis[1].Latency.Quantile)
	}
}

func TestParseExperimentErrors(t *testing.T) {
	for _, tt := range []struct{ yaml, want string }{
		{"traffic: {}\nfault: {request: 'x:abort'}\nhypothesis: [{route: /, success: {min: 1}}]\n",
			"x.yaml:1:1: traffic: set exactly one of synthetic: (requests the experiment sends) and live: (the gateways' own traffic)"},
		{"traffic: {synthetic: {requests: [{path: /a}]}}\nfault: {request: 'x:explode'}\nhypothesis: [{route: /, success: {min: 1}}]\n",
			`x.yaml:2:18: fault.request: chaos: fault "x:explode": unknown action "explode"`},
		{"traffic: {synthetic: {requests: [{path: '/a/${id}'}]}}\nfault: {request: 'x:abort'}\nhypothesis: [{route: /, success: {min: 1}}]\n",
			`traffic.synthetic.requests[0]: ${id} is not a variable a setup request before it extracts`},
		{"traffic: {synthetic: {requests: [{path: /a}]}}\nfault: {request: 'x:abort'}\nhypothesis: [{route: /, success: {min: 1}, latency: {max: 1s}}]\n",
			"x.yaml:3:14: hypothesis[0]: set exactly one of success, latency, match and expr"},
		{"traffic: {synthetic: {requests: [{path: /a}]}}\nfault: {request: 'x:abort'}\nhypothesis: [{route: /, success: {}}]\n",
			"hypothesis[0].success: give tolerance (how far below the control) or min"},
		{"traffic: {live: {share: 0.7}}\nfault: {request: 'x:abort'}\nhypothesis: [{route: /, match: {body: a, min: 1}}]\n",
			"traffic.live.share: 0.7: want a share in (0, 0.5]"},
		{"traffic: {live: {}}\nfault: {request: 'x:abort'}\nhypothesis: [{route: /, match: {body: a, min: 1}}]\n",
			"hypothesis[0].match: needs synthetic traffic"},
		{"traffic: {synthetic: {requests: [{path: /a}]}}\nfault: {request: 'x:abort'}\nhypothesis: [{expr: {query: 'sum(', max: 1}}]\n",
			"hypothesis[0].expr.query: at "},
		{"traffic: {synthetic: {requests: [{path: /a}]}}\nfault: {instances: {every: 1s}}\nbaseline: 0s\nhypothesis: [{route: /, success: {min: 1}}]\n",
			"baseline: is 0, but the baseline is the control of instance faults"},
		{"traffic: {synthetic: {requests: [{path: /a}]}}\nfault: {request: 'x:abort'}\nhypothesis: []\nduraton: 1s\n",
			"x.yaml:4:1: duraton: unknown key; did you mean duration?"},
	} {
		_, err := Parse("x.yaml", []byte(tt.yaml))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Parse(%q):\n got %v\nwant %q", tt.yaml, err, tt.want)
		}
	}
}

// The shipped experiments parse.
func TestFlixExperimentsParse(t *testing.T) {
	for _, f := range []string{"ratings-latency.yaml", "catalog-down.yaml"} {
		e, err := Load("../../examples/flix/experiments/" + f)
		if err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		if e.Fault.Request == "" || len(e.Hypothesis) == 0 {
			t.Errorf("%s: %+v", f, e)
		}
	}
}

func TestJudge(t *testing.T) {
	f := func(v float64) *float64 { return &v }
	for _, tt := range []struct {
		name     string
		c        Check
		ctl, exp float64
		held     bool
		rule     string
	}{
		{"success within", Check{Success: &SuccessCheck{Tolerance: f(0.01)}}, 1, 0.995, true, "≥ control − 1%"},
		{"success below", Check{Success: &SuccessCheck{Tolerance: f(0.01)}}, 1, 0.98, false, "≥ control − 1%"},
		{"success min", Check{Success: &SuccessCheck{Min: f(0.99)}}, nan, 0.995, true, "≥ 99%"},
		{"no control", Check{Success: &SuccessCheck{Tolerance: f(0.01)}}, nan, 1, false, "≥ control − 1%"},
		{"no experiment", Check{Success: &SuccessCheck{Min: f(0.5)}}, 1, nan, false, "≥ 50%"},
		{"latency max", Check{Latency: &LatencyCheck{Max: time.Second}}, 0.1, 0.9, true, "≤ 1s"},
		{"latency tolerance", Check{Latency: &LatencyCheck{Tolerance: 100 * time.Millisecond, Max: time.Second}}, 0.1, 0.3, false, "≤ 1s, ≤ control + 100ms"},
		{"match min", Check{Match: &MatchCheck{Min: f(0.9)}}, 0, 0.95, true, "≥ 90%"},
		{"match either way", Check{Match: &MatchCheck{Tolerance: f(0.05)}}, 0.5, 0.4, false, "control ± 5%"},
		{"expr higher is worse", Check{Expr: &ExprCheck{Tolerance: f(1), Worse: "higher"}}, 2, 2.5, true, "≤ control + 1"},
		{"expr lower is worse", Check{Expr: &ExprCheck{Tolerance: f(1), Worse: "lower"}}, 2, 0.5, false, "≥ control − 1"},
		{"expr max", Check{Expr: &ExprCheck{Max: f(0), Worse: "higher"}}, 0, 0.1, false, "≤ 0"},
	} {
		j := judge(&tt.c, tt.ctl, tt.exp)
		if j.held != tt.held || j.rule != tt.rule {
			t.Errorf("%s: held %v rule %q, want %v %q", tt.name, j.held, j.rule, tt.held, tt.rule)
		}
	}
}

var nan = math.NaN()

// Problems of an experiment are manifest errors, with file and line.
func TestParseExperimentErrorType(t *testing.T) {
	_, err := Parse("x.yaml", []byte("nope: 1\n"))
	var me *manifest.Error
	if !errors.As(err, &me) || me.Line != 1 {
		t.Errorf("%v: want a *manifest.Error at line 1", err)
	}
}
