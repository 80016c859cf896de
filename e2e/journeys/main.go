// Command journeys drives flix journeys through its gateways and writes
// what it saw as JSON: the end-to-end chaos test runs it as a process of its
// own so that the load it offers is not slowed by the race detector the
// tests run under.
//
//	journeys -gateways http://127.0.0.1:8080,http://127.0.0.1:8081 -rate 50 -duration 60s -out report.json
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/shoal-dev/shoal/e2e/flixedge"
)

func main() {
	gateways := flag.String("gateways", "http://127.0.0.1:8080,http://127.0.0.1:8081", "gateway base URLs, comma-separated")
	rate := flag.Int("rate", 50, "journeys started per second")
	duration := flag.Duration("duration", 60*time.Second, "how long journeys are started for")
	out := flag.String("out", "", "file for the JSON report (default stdout)")
	flag.Parse()
	if *rate <= 0 || *duration <= 0 {
		fmt.Fprintln(os.Stderr, "journeys: -rate and -duration must be positive")
		os.Exit(2)
	}
	n := int(duration.Seconds() * float64(*rate))
	r := flixedge.RunJourneys(flixedge.New(strings.Split(*gateways, ",")...), *rate, n)
	b, _ := json.MarshalIndent(r, "", "  ")
	if *out == "" {
		os.Stdout.Write(append(b, '\n'))
		return
	}
	if err := os.WriteFile(*out, b, 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "journeys:", err)
		os.Exit(1)
	}
}
