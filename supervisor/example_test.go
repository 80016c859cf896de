package supervisor_test

import (
	"errors"
	"fmt"

	"github.com/shoal-dev/shoal/supervisor"
)

// FindRunning is how the CLI's ps, scale, kill, logs and down reach the
// supervisor that shoal up started for a folder.
func ExampleFindRunning() {
	_, err := supervisor.FindRunning("testdata/nothing-here")
	fmt.Println(errors.Is(err, supervisor.ErrNotRunning))
	fmt.Println(err)
	// Output:
	// true
	// no shoal up running for testdata/nothing-here: start one with `shoal up`
}
