package balance_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/balance"
	"github.com/shoal-dev/shoal/discovery"
)

// warmBalancer returns a Balancer whose n hosts all have latency estimates
// between 1 and 2ms, and their candidate slice.
func warmBalancer(b *testing.B, n int) (*balance.Balancer, []discovery.Instance) {
	var ids []string
	for i := range n {
		ids = append(ids, fmt.Sprintf("h%03d", i))
	}
	c := serving(ids...)
	bal := balance.New(balance.DefaultConfig())
	for i, id := range ids {
		h := hostOf(b, bal, c, id)
		start := h.Start()
		// A start in the past stands for the request's latency.
		h.Finish(start.Add(-time.Millisecond-time.Duration(i)*time.Microsecond), balance.Success)
	}
	return bal, c
}

func BenchmarkPick(b *testing.B) {
	for _, n := range []int{3, 10, 100} {
		for _, tried := range []int{0, 1} {
			b.Run(fmt.Sprintf("hosts=%d/tried=%d", n, tried), func(b *testing.B) {
				bal, c := warmBalancer(b, n)
				var tr []string
				for i := range tried {
					tr = append(tr, c[i].ID)
				}
				b.ReportAllocs()
				for b.Loop() {
					if _, err := bal.Pick(c, tr); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkPickDraining: most hosts draining, so Pick's fast path fails and
// it scans.
func BenchmarkPickDraining(b *testing.B) {
	bal, c := warmBalancer(b, 10)
	c = withState(c, discovery.StateDraining, "h000", "h001", "h002", "h003", "h004", "h005", "h006", "h007", "h008")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := bal.Pick(c, nil); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPickStartFinish is the balancer's whole cost per attempt.
func BenchmarkPickStartFinish(b *testing.B) {
	bal, c := warmBalancer(b, 10)
	b.ReportAllocs()
	for b.Loop() {
		h, err := bal.Pick(c, nil)
		if err != nil {
			b.Fatal(err)
		}
		h.Finish(h.Start(), balance.Success)
	}
}

func BenchmarkPickParallel(b *testing.B) {
	bal, c := warmBalancer(b, 10)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := bal.Pick(c, nil); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func BenchmarkPickStartFinishParallel(b *testing.B) {
	bal, c := warmBalancer(b, 10)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			h, err := bal.Pick(c, nil)
			if err != nil {
				b.Error(err)
				return
			}
			h.Finish(h.Start(), balance.Success)
		}
	})
}
