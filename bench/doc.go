// Package bench holds measurement commands whose figures go into
// docs/BENCHMARKS.md; each prints the table rows it measured.
package bench
