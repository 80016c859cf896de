//go:build blackhole

package client

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"
)

func TestExploreBlackhole(t *testing.T) {
	n, k := envInt("BH_N", 3), envInt("BH_K", 1)
	delay := time.Duration(envInt("BH_DELAY_US", 0)) * time.Microsecond
	hs := make([]http.HandlerFunc, n)
	for i := range hs {
		hs[i] = func(w http.ResponseWriter, r *http.Request) { time.Sleep(delay); ok(w, r) }
	}
	f := newFleet(t, hs...)
	hn := &holeNet{victims: map[string]bool{}}
	for i := range k {
		hn.victims[f.instances[i].Addr] = true
	}
	var mu sync.Mutex
	var onVictims []time.Time
	outcomes := map[string]int{}
	const bin = 250 * time.Millisecond
	for _, workers := range []int{envInt("BH_W1", 8), envInt("BH_W2", 32)} {
		base := newBaseTransport()
		base.DialContext = hn.dial
		tr := newTransport(t, f, Config{Base: base, Observer: observerFunc(func(_ string, a Attempt) {
			key := a.Instance + " ok"
			if a.Err != nil {
				key = a.Instance + " " + a.Err.Error()
				if len(key) > 60 {
					key = key[:60]
				}
			}
			mu.Lock()
			if hn.victims[a.Addr] {
				onVictims = append(onVictims, a.Start)
			}
			if a.Duration >= 100*time.Millisecond && os.Getenv("BH_TRACE") != "" {
				fmt.Printf("attempt %s at %v took %v: %v\n", a.Instance, a.Start.Format("05.000"), a.Duration.Round(time.Millisecond), a.Err)
			}
			outcomes[key]++
			mu.Unlock()
		})})
		c := tr.Client()
		hn.cut.Store(false)
		begin := time.Now()
		const before, during = time.Second, 6 * time.Second
		type res struct {
			start time.Time
			took  time.Duration
			err   error
		}
		var rs []res
		var wg sync.WaitGroup
		for range workers {
			wg.Go(func() {
				for time.Since(begin) < before+during {
					ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
					req, _ := http.NewRequestWithContext(ctx, "GET", "http://svc/x", nil)
					s := time.Now()
					resp, err := c.Do(req)
					if err == nil {
						resp.Body.Close()
					}
					cancel()
					mu.Lock()
					rs = append(rs, res{s, time.Since(s), err})
					mu.Unlock()
				}
			})
		}
		time.Sleep(before)
		hn.cut.Store(os.Getenv("BH_NOCUT") == "")
		wg.Wait()
		nb := int((before+during)/bin) + 1
		picks := make([]int, nb)
		mu.Lock()
		for _, at := range onVictims {
			if i := int(at.Sub(begin) / bin); i >= 0 && i < nb {
				picks[i]++
			}
		}
		onVictims = nil
		mu.Unlock()
		done := make([]int, nb)
		lat := make([][]time.Duration, nb)
		fails := 0
		for _, r := range rs {
			if r.err != nil {
				fails++
				t.Logf("failed at %v: %v", r.start.Sub(begin).Round(time.Millisecond), r.err)
			}
			if e := int(r.start.Add(r.took).Sub(begin) / bin); e < nb {
				done[e]++
			}
			s := int(r.start.Sub(begin) / bin)
			lat[s] = append(lat[s], r.took)
		}
		out := fmt.Sprintf("%d workers, cut at %v, %d failed\n%6s %7s %8s %8s %6s\n", workers, before, fails, "t", "ok/s", "p50", "max", "victim attempts")
		for i := range nb {
			slices.Sort(lat[i])
			var p50, mx time.Duration
			if l := lat[i]; len(l) > 0 {
				p50, mx = l[len(l)/2], l[len(l)-1]
			}
			out += fmt.Sprintf("%6.2f %7.0f %8v %8v %6d\n", (time.Duration(i) * bin).Seconds(), float64(done[i])/bin.Seconds(), p50.Round(10*time.Microsecond), mx.Round(time.Millisecond), picks[i])
		}
		var inCut, slow, slow5 int
		var stuck time.Duration
		for _, r := range rs {
			if r.start.Sub(begin) < before {
				continue
			}
			inCut++
			if r.took >= 100*time.Millisecond {
				if os.Getenv("BH_TRACE") != "" {
					fmt.Printf("call at %v took %v\n", r.start.Format("05.000"), r.took.Round(time.Millisecond))
				}
				slow++
				stuck += r.took
			}
			if r.took >= 4*time.Second {
				slow5++
			}
		}
		out += fmt.Sprintf("SUMMARY %d workers: %d calls in the cut, %d took >= 100ms (%v in all), %d >= 4s\n", workers, inCut, slow, stuck.Round(time.Millisecond), slow5)
		t.Log(out)
		mu.Lock()
		t.Logf("outcomes: %v", outcomes)
		clear(outcomes)
		mu.Unlock()
		for _, d := range tr.Dependencies() {
			t.Logf("%+v", d)
		}
	}
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil {
		return v
	}
	return def
}
