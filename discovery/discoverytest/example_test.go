package discoverytest_test

import (
	"fmt"
	"time"

	"github.com/shoal-dev/shoal/discovery/discoverytest"
)

// In a test, pass the *testing.T; this example stands in a minimal TB.
func ExampleNewCluster() {
	t := &exampleTB{}
	defer t.cleanup()

	c := discoverytest.NewCluster(t, 3, discoverytest.WithService("ratings"))
	fmt.Println("running:", c.IDs())

	crashed := c.Members()[1]
	c.Kill(t, crashed) // no leave message: peers must detect the failure
	c.WaitFor(t, 30*time.Second, "crash detected", discoverytest.Lacks(crashed.Self().ID))
	fmt.Println("after crash:", c.IDs())
	// Output:
	// running: [ratings-1 ratings-2 ratings-3]
	// after crash: [ratings-1 ratings-3]
}

type exampleTB struct{ cleanups []func() }

func (t *exampleTB) Helper()                   {}
func (t *exampleTB) Cleanup(f func())          { t.cleanups = append(t.cleanups, f) }
func (t *exampleTB) Logf(string, ...any)       {}
func (t *exampleTB) Errorf(f string, a ...any) { panic(fmt.Sprintf(f, a...)) }
func (t *exampleTB) Fatalf(f string, a ...any) { panic(fmt.Sprintf(f, a...)) }
func (t *exampleTB) cleanup() {
	for i := len(t.cleanups) - 1; i >= 0; i-- {
		t.cleanups[i]()
	}
}
