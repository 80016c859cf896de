// Package e2e holds end-to-end tests: real OS processes built from this
// repository, talking over loopback, killed, stopped and started with real
// signals. Its only non-test code drives flix from outside: flixedge (a
// client of the gateways) and journeys (a load driver built without the
// race detector).
package e2e
