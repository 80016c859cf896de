package main

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"
)

// peak is one closed-loop wrk run.
type peak struct {
	rps      float64       // Requests/sec as wrk prints it
	requests int           // completed
	failed   int           // non-2xx/3xx answers plus socket errors
	p50, p99 time.Duration // wrk's latency distribution (closed loop: queueing included)
}

// runWrk runs wrk -t2 -c<conns> -d<dur> --latency (keep-alive, wrk's only
// mode) at url, with header added to each request when not empty.
func runWrk(ctx context.Context, wrk, url, header string, conns int, dur time.Duration) (peak, error) {
	args := []string{"-t2", "-c" + strconv.Itoa(conns), "-d" + wrkDuration(dur), "--latency"}
	if header != "" {
		args = append(args, "-H", header)
	}
	out, err := exec.CommandContext(ctx, wrk, append(args, url)...).CombinedOutput()
	if err != nil {
		return peak{}, fmt.Errorf("wrk %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	p, err := parseWrk(string(out))
	if err != nil {
		return peak{}, fmt.Errorf("wrk output: %w\n%s", err, out)
	}
	return p, nil
}

// wrkDuration spells d for wrk, which takes whole seconds, minutes or hours.
func wrkDuration(d time.Duration) string {
	return strconv.Itoa(max(1, int(d.Round(time.Second)/time.Second))) + "s"
}

// parseWrk reads the numbers peak keeps from wrk's report.
func parseWrk(out string) (peak, error) {
	var p peak
	var haveRPS, haveReqs bool
	inDist := false
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		switch {
		case len(f) == 0:
		case f[0] == "Requests/sec:" && len(f) == 2:
			v, err := strconv.ParseFloat(f[1], 64)
			if err != nil {
				return p, fmt.Errorf("wrk Requests/sec %q: %w", f[1], err)
			}
			p.rps, haveRPS = v, true
		case len(f) >= 3 && f[1] == "requests" && f[2] == "in":
			n, err := strconv.Atoi(f[0])
			if err != nil {
				return p, fmt.Errorf("requests %q: %w", f[0], err)
			}
			p.requests, haveReqs = n, true
		case strings.HasPrefix(sc.Text(), "  Non-2xx or 3xx responses:"):
			n, err := strconv.Atoi(f[len(f)-1])
			if err != nil {
				return p, fmt.Errorf("non-2xx %q: %w", f[len(f)-1], err)
			}
			p.failed += n
		case f[0] == "Socket" && f[1] == "errors:":
			// Socket errors: connect 0, read 0, write 0, timeout 0
			for i := 2; i+1 < len(f); i += 2 {
				n, err := strconv.Atoi(strings.TrimSuffix(f[i+1], ","))
				if err != nil {
					return p, fmt.Errorf("socket errors %q: %w", sc.Text(), err)
				}
				p.failed += n
			}
		case f[0] == "Latency" && len(f) == 2 && f[1] == "Distribution":
			inDist = true
		case inDist && len(f) == 2 && strings.HasSuffix(f[0], "%"):
			d, err := parseWrkLatency(f[1])
			if err != nil {
				return p, err
			}
			switch f[0] {
			case "50%":
				p.p50 = d
			case "99%":
				p.p99 = d
			}
		default:
			inDist = false
		}
	}
	if !haveRPS || !haveReqs {
		return p, fmt.Errorf("no Requests/sec or request count")
	}
	return p, nil
}

// parseWrkLatency reads wrk's latencies: 512.00us, 1.20ms, 2.00s, 1.00m.
func parseWrkLatency(s string) (time.Duration, error) {
	units := []struct {
		suffix string
		unit   time.Duration
	}{{"us", time.Microsecond}, {"ms", time.Millisecond}, {"s", time.Second}, {"m", time.Minute}, {"h", time.Hour}}
	for _, u := range units {
		if v, ok := strings.CutSuffix(s, u.suffix); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				return 0, fmt.Errorf("wrk latency %q: %w", s, err)
			}
			return time.Duration(f * float64(u.unit)), nil
		}
	}
	return 0, fmt.Errorf("wrk latency %q: unknown unit", s)
}

var digits = regexp.MustCompile(`[0-9][0-9.]*`)

// fixed is one open-loop run at a fixed rate: every request's latency.
type fixed struct {
	sent, ok  int
	latencies []time.Duration // sorted, of every request answered or not
	failures  map[string]int  // by error or status
}

// attack sends rate requests per second for dur, open loop (each request
// leaves on schedule whether or not earlier ones have answered), spread
// round robin over urls, and records every request.
func attack(ctx context.Context, urls []string, header string, rate int, dur time.Duration) (fixed, error) {
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		MaxIdleConns:        1024,
		MaxIdleConnsPerHost: 256,
		DisableCompression:  true,
	}
	defer tr.CloseIdleConnections()
	a := vegeta.NewAttacker(vegeta.Client(&http.Client{Transport: tr, Timeout: 5 * time.Second}),
		vegeta.MaxBody(0), vegeta.Redirects(vegeta.NoFollow))
	stop := context.AfterFunc(ctx, func() { a.Stop() })
	defer stop()
	targets := make([]vegeta.Target, len(urls))
	for i, u := range urls {
		targets[i] = vegeta.Target{Method: http.MethodGet, URL: u}
		if header != "" {
			k, v, _ := strings.Cut(header, ":")
			targets[i].Header = http.Header{k: {strings.TrimSpace(v)}}
		}
	}
	f := fixed{failures: map[string]int{}}
	f.latencies = make([]time.Duration, 0, int(float64(rate)*dur.Seconds())+16)
	for res := range a.Attack(vegeta.NewStaticTargeter(targets...), vegeta.Rate{Freq: rate, Per: time.Second}, dur, "") {
		f.sent++
		if res.Code >= 200 && res.Code < 300 && res.Error == "" {
			f.ok++
		} else {
			kind := digits.ReplaceAllString(res.Error, "N") // by kind, not by port
			if res.Code != 0 {
				kind = strconv.Itoa(int(res.Code))
			}
			f.failures[kind]++
		}
		f.latencies = append(f.latencies, res.Latency)
	}
	slices.Sort(f.latencies)
	return f, ctx.Err()
}
