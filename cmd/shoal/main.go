// Command shoal runs a Shoal system on one machine and operates it.
//
// shoal up reads a manifest (shoal.yaml), builds the Go services it lists,
// starts several instances of each, waits until they are ready and streams
// their logs; Ctrl-C stops them all gracefully. From a second terminal, ps,
// scale, restart, kill, logs and down reach that running supervisor through
// its control API on loopback (found via .shoal/state.json next to the
// manifest). shoal gateway is the front door: an SDK service that routes
// /<service>/<path> to that service through the resilient client.
//
// The work is done by the supervisor and gateway packages; this command only
// parses arguments and wires them up.
package main

import (
	"context"
	"os"
)

func main() {
	os.Exit(run(context.Background(), osEnv(), os.Args[1:]))
}
