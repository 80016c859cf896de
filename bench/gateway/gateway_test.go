package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const wrkOutput = `Running 10s test @ http://127.0.0.1:40000/echo/work
  2 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     6.02ms   10.11ms 150.20ms   91.00%
    Req/Sec     5.12k   600.00     6.50k    70.00%
  Latency Distribution
     50%    3.10ms
     75%    5.00ms
     90%   12.00ms
     99%  750.00us
  101234 requests in 10.00s, 120.50MB read
  Socket errors: connect 0, read 2, write 0, timeout 3
  Non-2xx or 3xx responses: 7
Requests/sec:  10123.40
Transfer/sec:     12.05MB
`

func TestParseWrk(t *testing.T) {
	p, err := parseWrk(wrkOutput)
	if err != nil {
		t.Fatal(err)
	}
	want := peak{rps: 10123.40, requests: 101234, failed: 12, p50: 3100 * time.Microsecond, p99: 750 * time.Microsecond}
	if p != want {
		t.Errorf("parseWrk = %+v, want %+v", p, want)
	}
	if _, err := parseWrk("unable to connect to 127.0.0.1:1 Connection refused\n"); err == nil {
		t.Error("parseWrk of a failed run: no error")
	}
}

func TestParseWrkLatency(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Duration
	}{
		{"512.00us", 512 * time.Microsecond},
		{"1.50ms", 1500 * time.Microsecond},
		{"2.00s", 2 * time.Second},
		{"1.00m", time.Minute},
	} {
		got, err := parseWrkLatency(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("parseWrkLatency(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
	if _, err := parseWrkLatency("3.0xs"); err == nil {
		t.Error("parseWrkLatency(3.0xs): no error")
	}
}

// TestTemplates renders every checked-in peer config and the shoal-auth
// config, so that a placeholder typo fails here and not in a run by hand.
func TestTemplates(t *testing.T) {
	c := peerConf{Prefix: "/tmp/p", Listen: "127.0.0.1:8000", Port: "8000",
		Upstreams: []string{"127.0.0.1:9001", "127.0.0.1:9002", "127.0.0.1:9003"}}
	for arm, file := range peerFiles {
		text, err := os.ReadFile(filepath.Join("..", "peers", file))
		if err != nil {
			t.Fatal(err)
		}
		out, err := render(string(text), c)
		if err != nil {
			t.Errorf("%s: %v", file, err)
			continue
		}
		for _, u := range c.Upstreams {
			if !strings.Contains(string(out), u) {
				t.Errorf("%s (%s): upstream %s missing", file, arm, u)
			}
		}
		if strings.Contains(string(out), "{{") || !strings.Contains(string(out), "8000") {
			t.Errorf("%s: not fully rendered:\n%s", file, out)
		}
	}
	out, err := render(authTemplate, map[string]string{"KeySHA256": "ab12"})
	if err != nil || !strings.Contains(string(out), `sha256: "ab12"`) {
		t.Errorf("shoal-auth.yaml: %v\n%s", err, out)
	}
}

// TestReport checks the per-round comparisons and the goals' verdicts.
func TestReport(t *testing.T) {
	arms := []*arm{{name: armDirect}, {name: armShoal}, {name: armShoalAuth, unavailable: "no --config"}, {name: armNginx}, {name: armCaddy}, {name: armGoProxy}}
	r := newResults(arms)
	for round, load := range []float64{1, 0.5, 1} { // round 2 on a busy machine: everything halves
		r.add(armDirect, round, metrics{kRPS: 30000 * load, kP50: 300, kP99: 900, kP999: 2000})
		r.add(armShoal, round, metrics{kRPS: 9500 * load, kP50: 400, kP99: 1600, kP999: 3000, kCPU: 20 / load, kUp: 1.008})
		r.add(armNginx, round, metrics{kRPS: 10000 * load, kP50: 360, kP99: 1300, kP999: 2500, kCPU: 12 / load})
		r.add(armCaddy, round, metrics{kRPS: 7000 * load, kP50: 450, kP99: 2000, kP999: 4000})
		r.add(armGoProxy, round, metrics{kRPS: 5000 * load, kP50: 450, kP99: 2000, kP999: 4000})
	}
	b := &bench{rounds: 3, duration: 10 * time.Second, latDuration: 10 * time.Second, rate: 2000, conns: 64, admission: "off"}
	out := r.report(b, "go run ./bench/gateway", time.Minute)
	for _, want := range []string{
		"| shoal | 9,500 | 4,750–9,500 | 0.95× | 1.36× |",
		"| shoal | 400 µs | 1.60 ms | 3.00 ms | +100 µs | +700 µs | +1.00 ms |",
		"throughput ≥ 0.6× nginx: **met**",
		"throughput ≥ 1.5× the bare ReverseProxy (go-proxy): **met** (shoal 9,500/s, go-proxy 5,000/s: 1.90×",
		"(≤ 2.08× nginx's, same round): **met** (shoal 20 µs, nginx 12 µs: 1.67×)",
		"added p50 at the fixed rate ≤ 150 µs: **met**",
		"added p99 ≤ 1.5× nginx's added p99: **not met** (shoal +700 µs, nginx +400 µs, limit 600 µs)",
		"upstream/req ≤ 1.005 at peak: **not met** (shoal 1.0080)",
		"| shoal-auth | unavailable: no --config |",
		"with auth + rate limit on: throughput ≥ 0.55× nginx: not measured",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
}
