// Package trailers holds trailers.py, the flix trailers service written in
// Python with the standard library only (see its docstring), and the Go
// test that runs it. There is no Go code to build here: the supervisor
// starts the script with a `command:` entry and registers it in discovery.
package trailers
