// Package handoff gives a program the TCP socket it is to serve on, opened
// by the process that starts it, so that its address is known before it
// runs and no other socket can take that address in between.
//
// The starting side (the supervisor of `shoal up`, a benchmark, a test)
// calls Reserve: the socket is bound, with SO_REUSEADDR, but not listening.
// A bound port is never handed out by the kernel to another socket asking
// for a free one (bind to port 0, or an outgoing connection), and while
// nothing listens on it, connections to it are refused. Port.Pass then
// gives the socket to a child as an inherited file descriptor named by the
// environment variable SHOAL_LISTEN_FD.
//
// The child calls Listener (the SDK does it in Service.Run): it listens on
// the inherited socket and serves on it. A program that knows nothing of the
// descriptor may instead bind the same address itself (PORT): that works as
// long as it sets SO_REUSEADDR, as Go's net package, Python's http.server,
// Node and nginx do, because the reserved socket does not listen.
//
// Why not systemd's LISTEN_FDS: that protocol requires LISTEN_PID to hold
// the child's pid, which a Go parent cannot set (os/exec fixes the
// environment before the fork), and it passes listening sockets, which a
// program that ignores them would collide with.
package handoff
