package resilience_test

import (
	"fmt"
	"time"

	"github.com/shoal-dev/shoal/resilience"
)

func ExampleBudget() {
	// 20% of requests may be retried, with no floor, over a 10 s window.
	b := resilience.NewBudget(resilience.BudgetConfig{Ratio: 0.2, Window: 10 * time.Second})
	for range 10 {
		b.Request()
	}
	fmt.Println(b.TryRetry(), b.TryRetry(), b.TryRetry())
	// Output: true true false
}
