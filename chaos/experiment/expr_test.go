package experiment

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"
)

func TestParseExpr(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"1 + 2 * 3", "(1 + (2 * 3))"},
		{"(1 + 2) * 3", "((1 + 2) * 3)"},
		{"a - b + c", "((a - b) + c)"},
		{"a / b * c / d", "(((a / b) * c) / d)"},
		{"-a * -b - -c", "((-a * -b) - -c)"},
		{"-x", "-x"},
		{`rate(shoal_http_requests_total{code=~"5..", shoal_service='api'}[30s])`, `rate(shoal_http_requests_total{code=~"5..",shoal_service="api"}[30s])`},
		{`sum by (code) (increase(x))`, `sum by (code) (increase(x))`},
		{`sum(increase(x)) by (code)`, `sum by (code) (increase(x))`},
		{`sum(bytes_total)`, `sum by () (bytes_total)`},
		{`histogram_quantile(0.99, sum by (le) (rate(h_bucket)))`, `histogram_quantile(0.99, sum by (le) (rate(h_bucket)))`},
		{`a / b - 1e-3`, `((a / b) - 0.001)`},
		{`x{a!="b",c!~"d|e",}`, `x{a!="b",c!~"d|e"}`},
	} {
		n, err := parseExpr(tt.in)
		if err != nil {
			t.Errorf("parseExpr(%q): %v", tt.in, err)
			continue
		}
		if got := n.String(); got != tt.want {
			t.Errorf("parseExpr(%q) = %s, want %s", tt.in, got, tt.want)
		}
	}
	for _, in := range []string{"", "1 +", "sum(", "rate(1)", "x{a=b}", `x{a="b"`, "x[5]", "histogram_quantile(2, x)",
		"foo(x)", "x y", `x{a=~"("}`, strings.Repeat("(", 100) + "1" + strings.Repeat(")", 100)} {
		if _, err := parseExpr(in); err == nil {
			t.Errorf("parseExpr(%q) succeeded", in)
		}
	}
}

func FuzzParseExpr(f *testing.F) {
	for _, s := range []string{`sum(rate(x{a="b"}[5s]))`, `histogram_quantile(0.5, sum by (le) (increase(h_bucket)))`, "-(1+2)*x/y"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := parseExpr(s)
		if err != nil {
			return
		}
		again, err := parseExpr(n.String())
		if err != nil || again.String() != n.String() {
			t.Fatalf("%q parses as %s, which parses as %v (%v)", s, n, again, err)
		}
	})
}

// storeAt fills a store with series scraped each second from t0.
func storeAt(t0 time.Time, series map[string][]float64) *store {
	s := newStore()
	for k, vals := range series {
		name, rest, _ := strings.Cut(k, "{")
		var ls labels
		for kv := range strings.SplitSeq(strings.TrimSuffix(rest, "}"), ",") {
			if k, v, ok := strings.Cut(kv, "="); ok {
				ls = append(ls, label{k, v})
			}
		}
		for i, v := range vals {
			s.add(t0.Add(time.Duration(i)*time.Second), name, ls, v)
		}
	}
	return s
}

func TestEval(t *testing.T) {
	t0 := time.Unix(1000, 0)
	s := storeAt(t0, map[string][]float64{
		"req{code=200,svc=api}": {0, 10, 20, 30, 40, 50},
		"req{code=500,svc=api}": {0, 0, 1, 2, 3, 4},
		"req{code=200,svc=db}":  {100, 110, 5, 15, 25, 35}, // restarted at 2s
		"inflight{svc=api}":     {1, 2, 3, 4, 5, 6},
		"h_bucket{le=0.1}":      {0, 50, 100, 150, 200, 250},
		"h_bucket{le=0.5}":      {0, 90, 180, 270, 360, 450},
		"h_bucket{le=+Inf}":     {0, 100, 200, 300, 400, 500},
	})
	all := window{t0, t0.Add(5 * time.Second)}
	for _, tt := range []struct {
		expr string
		w    window
		want float64
		err  string
	}{
		{`sum(increase(req{svc="api"}))`, all, 54, ""},
		{`sum(rate(req{svc="api"}))`, all, 54.0 / 5, ""},
		{`sum(increase(req{code="500"})) / sum(increase(req))`, all, 4.0 / (50 + 4 + 10 + 35), ""}, // db: 10 then reset to 5, +30
		{`increase(req{svc="db"})`, all, 45, ""},
		{`sum(increase(req{code=~"5.."}[2s]))`, all, 2, ""},
		{`inflight`, window{t0, t0.Add(2500 * time.Millisecond)}, 3, ""},
		{`max(inflight) * 2 + 1`, all, 13, ""},
		{`count(req)`, all, 3, ""},
		{`histogram_quantile(0.5, sum by (le) (increase(h_bucket)))`, all, 0.1, ""},
		{`histogram_quantile(0.9, sum by (le) (increase(h_bucket)))`, all, 0.5, ""},
		{`histogram_quantile(0.95, sum by (le) (increase(h_bucket)))`, all, 0.5, ""}, // in +Inf: the highest finite bound
		{`histogram_quantile(0.7, sum by (le) (increase(h_bucket)))`, all, 0.1 + 0.4*(350-250)/(450.0-250), ""},
		{`sum by (svc) (increase(req))`, all, 0, "2 series"},
		{`increase(nothing)`, all, 0, "no data"},
		{`inflight`, window{t0.Add(10 * time.Second), t0.Add(20 * time.Second)}, 0, "no data"},
	} {
		n, err := parseExpr(tt.expr)
		if err != nil {
			t.Fatalf("%s: %v", tt.expr, err)
		}
		got, err := s.evalNumber(n, tt.w)
		switch {
		case tt.err != "":
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%s = %v, %v; want an error with %q", tt.expr, got, err, tt.err)
			}
		case err != nil:
			t.Errorf("%s: %v", tt.expr, err)
		case math.Abs(got-tt.want) > 1e-9:
			t.Errorf("%s = %v, want %v", tt.expr, got, tt.want)
		}
	}
	// A point dated earlier than the last one added takes its place in
	// time.
	s.add(t0.Add(4500*time.Millisecond), "late", nil, 7)
	s.add(t0.Add(4*time.Second), "late", nil, 5)
	s.add(t0.Add(3*time.Second), "late", nil, 1)
	if got, err := s.evalNumber(rangeFunc{"increase", &selectorNode{name: "late"}}, all); err != nil || got != 6 {
		t.Errorf("increase of points added out of order = %v, %v; want 6", got, err)
	}
	if _, err := s.evalNumber(&selectorNode{name: "nothing"}, all); !errors.Is(err, ErrNoData) {
		t.Errorf("no series: %v, want ErrNoData", err)
	}
}
