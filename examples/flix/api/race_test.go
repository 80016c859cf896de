//go:build race

package main

import "time"

// timeScale stretches the tests' budgets and margins: under the race
// detector, on a machine whose cores also run other test binaries, a fake
// dependency that answers at once can take a second to be scheduled.
const timeScale = 3

// slack is what a test allows over a deadline it checks to the millisecond.
const slack = 150 * time.Millisecond
