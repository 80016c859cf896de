package discovery_test

import (
	"context"
	"fmt"
	"time"

	"github.com/shoal-dev/shoal/discovery"
)

func ExampleCatalog() {
	c := discovery.NewCatalog()
	c.Upsert(discovery.Instance{ID: "ratings-2", Service: "ratings", Addr: "10.0.0.2:8080", State: discovery.StateServing})
	c.Upsert(discovery.Instance{ID: "ratings-1", Service: "ratings", Addr: "10.0.0.1:8080", State: discovery.StateServing})
	c.Upsert(discovery.Instance{ID: "users-1", Service: "users", Addr: "10.0.0.3:8080", State: discovery.StateServing})

	// The request path reads the current instances without locking.
	before := c.Instances("ratings")

	// ratings-2 is shutting down.
	c.Upsert(discovery.Instance{ID: "ratings-2", Service: "ratings", Addr: "10.0.0.2:8080", State: discovery.StateDraining})

	for _, inst := range c.Instances("ratings") {
		fmt.Println(inst.ID, inst.Addr, inst.State)
	}
	s := c.Snapshot()
	fmt.Println("services:", s.Services(), "version:", s.Version())
	fmt.Println("ratings changed:", &before[0] != &c.Instances("ratings")[0])
	// Output:
	// ratings-1 10.0.0.1:8080 serving
	// ratings-2 10.0.0.2:8080 draining
	// services: [ratings users] version: 4
	// ratings changed: true
}

// Two members on loopback: the second joins through the first, and each
// sees both in its catalog.
func ExampleMember() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	run := func(m *discovery.Member) (stop func()) {
		runCtx, stopRun := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- m.Run(runCtx) }()
		return func() { stopRun(); <-done }
	}

	cfg := discovery.LocalConfig()
	first, err := discovery.New(cfg, discovery.Instance{ID: "ratings-1", Service: "ratings", Addr: "127.0.0.1:8081"})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer run(first)()
	<-first.Ready()

	cfg.Seeds = []string{first.GossipAddr()}
	second, err := discovery.New(cfg, discovery.Instance{ID: "ratings-2", Service: "ratings", Addr: "127.0.0.1:8082"})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer run(second)()

	watchCtx, stopWatch := context.WithCancel(ctx)
	for snap := range first.Catalog().Watch(watchCtx) {
		if snap.Len() == 2 {
			break
		}
	}
	stopWatch()
	for _, inst := range first.Catalog().Instances("ratings") {
		fmt.Println(inst.ID, inst.Addr, inst.State)
	}
	// Output:
	// ratings-1 127.0.0.1:8081 serving
	// ratings-2 127.0.0.1:8082 serving
}
