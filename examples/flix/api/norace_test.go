//go:build !race

package main

import "time"

// timeScale and slack: see race_test.go. Without the race detector,
// scheduling on a loaded machine still takes some milliseconds.
const timeScale = 1

const slack = 50 * time.Millisecond
