//go:build race

package main

// raceEnabled: the race detector slows SQLite (modernc.org/sqlite is C
// translated to Go) about twentyfold; tests write smaller datasets and
// time nothing.
const raceEnabled = true
