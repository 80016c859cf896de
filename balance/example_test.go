package balance_test

import (
	"errors"
	"fmt"

	"github.com/shoal-dev/shoal/balance"
	"github.com/shoal-dev/shoal/discovery"
)

// A call with failover: pick, record the outcome, and pick again excluding
// the instances already tried until none is left.
func Example() {
	bal := balance.New(balance.DefaultConfig())
	instances := []discovery.Instance{ // as the discovery catalog returns them
		{ID: "ratings-1", Service: "ratings", Addr: "127.0.0.1:8081", State: discovery.StateServing},
		{ID: "ratings-2", Service: "ratings", Addr: "127.0.0.1:8082", State: discovery.StateDraining},
	}
	var tried []string
	for {
		h, err := bal.Pick(instances, tried)
		if errors.Is(err, balance.ErrNoInstance) {
			fmt.Println("no instance left after", len(tried), "attempts")
			break
		}
		in := h.Instance()
		start := h.Start()
		// ... send the request to in.Addr; here every attempt fails.
		h.Finish(start, balance.ConnectFailure)
		fmt.Println("tried", in.ID, in.State)
		tried = append(tried, in.ID)
	}
	s := bal.Stats()[0]
	fmt.Println(s.ID, "consecutive failures:", s.ConsecutiveFailures)
	// Output:
	// tried ratings-1 serving
	// tried ratings-2 draining
	// no instance left after 2 attempts
	// ratings-1 consecutive failures: 1
}
