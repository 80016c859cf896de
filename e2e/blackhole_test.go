//go:build blackhole

package e2e

// A measurement, not a check: CI does not build it. It runs flix on the
// three hosts of TestHosts, drives GET /titles through the gateways of h1
// and h2, cuts h3's link for 10 s (packets to h3 vanish: a blackhole, no
// RST) and prints throughput and latency per 500 ms, for an open loop at a
// fixed rate and for a closed loop of a few workers:
//
//	sudo go test -tags blackhole ./e2e -run TestBlackhole -v -timeout 20m
//
// BH_CUT=pinned first makes h1's and h2's neighbour entries for h3
// permanent, so that the cut stays a blackhole throughout (as a hung host
// or a firewall's DROP): otherwise their ARP entries for h3 fail after a
// few seconds of silence and connects to h3 fail at once with
// EHOSTUNREACH. BH_RATE and BH_WORKERS change the loops.

import (
	"cmp"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

const (
	bhBefore = 4 * time.Second
	bhAfter  = 8 * time.Second
	bhBin    = 500 * time.Millisecond
)

func TestBlackhole(t *testing.T) {
	bhRate, _ := strconv.Atoi(cmp.Or(os.Getenv("BH_RATE"), "500"))
	bhWorkers, _ := strconv.Atoi(cmp.Or(os.Getenv("BH_WORKERS"), "32"))
	sys := startHosts(t)
	for _, r := range sys.rows {
		if r.Host == sys.h[2].ip && r.Admin != "" {
			if resp, err := sys.h[2].admin.Get("http://" + r.Admin + "/infoz"); err == nil {
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				t.Logf("on h3: %.200s", b)
			}
		}
	}
	get := func(i int) result { return getTitle(sys.client, sys.gateways[i%2], i, hostsDL) }
	cut := []event{
		{bhBefore, func() { sys.f.setLink("h3", "down") }},
		{bhBefore + cutFor, func() { sys.f.setLink("h3", "up") }},
	}
	if os.Getenv("BH_CUT") == "pinned" {
		// h1's and h2's neighbour entries for h3 made permanent: the cut
		// stays a blackhole (no ARP failure, so no EHOSTUNREACH).
		out, err := exec.Command("ip", "-n", sys.h[2].ns(), "-br", "link", "show", "eth0").Output()
		fields := strings.Fields(string(out))
		if err != nil || len(fields) < 3 {
			t.Fatalf("h3's MAC address: %v: %s", err, out)
		}
		for _, n := range sys.h[:2] {
			if err := ipCmd("-n", n.ns(), "neigh", "replace", sys.h[2].ip, "lladdr", fields[2], "nud", "permanent", "dev", "eth0"); err != nil {
				t.Fatal(err)
			}
		}
	}
	dur := bhBefore + cutFor + bhAfter
	settle := func() {
		c := <-converge(sys.hosts, sys.rows, sys.full, sys.sdk, 60*time.Second)
		if c.took < 0 {
			t.Fatalf("catalogs not converged 60s after the heal: %s", c.why)
		}
		time.Sleep(5 * time.Second) // ejections of h3 over, estimates settled
	}
	for _, mode := range []string{"open", "closed"} {
		var rs []result
		begin := time.Now()
		stop := sampleMetrics(t, sys, begin, "/tmp/bh-metrics-"+mode+".txt")
		if mode == "open" {
			rs = run(bhRate, dur, get, cut...)
		} else {
			rs = closedLoop(bhWorkers, dur, get, cut...)
		}
		t.Logf("%s loop (%s), h3 cut at %v for %v:\n%s", mode, map[string]string{"open": fmt.Sprintf("%d/s", bhRate), "closed": fmt.Sprintf("%d workers", bhWorkers)}[mode],
			bhBefore, cutFor, binTable(begin, rs, dur))
		stop()
		t.Logf("%s loop: %v", mode, summarize(rs))
		settle()
	}
}

// closedLoop runs workers goroutines, each calling do again as soon as its
// last call ended, for dur; events run at their offsets.
func closedLoop(workers int, dur time.Duration, do func(i int) result, events ...event) []result {
	begin := time.Now()
	var mu sync.Mutex
	var rs []result
	var wg sync.WaitGroup
	n := 0
	for range workers {
		wg.Go(func() {
			for time.Since(begin) < dur {
				mu.Lock()
				i := n
				n++
				mu.Unlock()
				r := do(i)
				mu.Lock()
				rs = append(rs, r)
				mu.Unlock()
			}
		})
	}
	for _, e := range events {
		time.Sleep(time.Until(begin.Add(e.at)))
		e.do()
	}
	wg.Wait()
	return rs
}

// binTable prints, per bhBin from begin: the requests that ended there
// (ok and failed: throughput) and the latencies of those that started
// there (p50, p99, max).
func binTable(begin time.Time, rs []result, dur time.Duration) string {
	nb := int(dur/bhBin) + 1
	done, failed := make([]int, nb), make([]int, nb)
	lat := make([][]time.Duration, nb)
	for _, r := range rs {
		if e := int(r.start.Add(r.latency).Sub(begin) / bhBin); e >= 0 && e < nb {
			if r.err != nil || r.status != 200 {
				failed[e]++
			} else {
				done[e]++
			}
		}
		if s := int(r.start.Sub(begin) / bhBin); s >= 0 && s < nb {
			lat[s] = append(lat[s], r.latency)
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%7s %7s %6s %7s %8s %8s %8s\n", "t(s)", "ok/s", "fail", "started", "p50", "p99", "max")
	for i := range nb {
		l := lat[i]
		slices.Sort(l)
		var p50, p99, mx time.Duration
		if len(l) > 0 {
			p50, p99, mx = l[len(l)/2], l[len(l)*99/100], l[len(l)-1]
		}
		fmt.Fprintf(&b, "%7.1f %7.0f %6d %7d %8v %8v %8v\n", (time.Duration(i) * bhBin).Seconds(), float64(done[i])/bhBin.Seconds(), failed[i], len(l),
			p50.Round(time.Millisecond), p99.Round(time.Millisecond), mx.Round(time.Millisecond))
	}
	return b.String()
}

// sampleMetrics polls /metrics of the SDK instances of h1 and h2 every
// 250 ms and writes the lines about calls in flight, queues, hedges,
// retries and ejections, each prefixed with its time since begin and
// instance, to file, until the returned func is called.
func sampleMetrics(t *testing.T, sys *hostsSystem, begin time.Time, file string) func() {
	out, err := os.Create(file)
	if err != nil {
		t.Fatal(err)
	}
	var watched []hostRow // the gateways and apis of h1 and h2
	for _, r := range sys.rows {
		if r.Admin != "" && sys.hosts[r.Host] != sys.h[2] && (r.Service == "gateway" || r.Service == "api") {
			watched = append(watched, r)
		}
	}
	keep := regexp.MustCompile(`^shoal_(client_instance_in_flight|client_in_flight|server_in_flight|server_queued|client_hedges_total|client_retries_total|client_instance_ejected|client_failures_total|client_budget_exhausted_total|server_rejected_total|server_concurrency_limit|client_instance_ewma)`)
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-done:
				return
			case <-time.After(250 * time.Millisecond):
			}
			at := time.Since(begin).Seconds()
			if b, err := os.ReadFile("/proc/stat"); err == nil {
				line, _, _ := strings.Cut(string(b), "\n")
				fmt.Fprintf(out, "%6.2f machine %s\n", at, line)
			}
			for host, cat := range catalogs(sys.hosts, watched) {
				fmt.Fprintf(out, "%6.2f %s catalog %v\n", at, host, cat)
			}
			for _, r := range watched {
				resp, err := sys.hosts[r.Host].admin.Get("http://" + r.Admin + "/metrics")
				if err != nil {
					fmt.Fprintf(out, "%6.2f %s error %v\n", at, r.Host+"/"+r.Service, err)
					continue
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				for line := range strings.Lines(string(b)) {
					if keep.MatchString(line) {
						fmt.Fprintf(out, "%6.2f %s %s", at, r.Host+"/"+r.Service, line)
					}
				}
			}
		}
	})
	return func() {
		close(done)
		wg.Wait()
		out.Close()
	}
}
