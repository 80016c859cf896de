// Package e2e holds end-to-end tests: real OS processes built from this
// repository, talking over loopback, killed, stopped and started with real
// signals. It has no non-test code beyond this comment.
package e2e
