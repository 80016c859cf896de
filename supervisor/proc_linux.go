package supervisor

import "syscall"

// sysProcAttr puts an instance in its own process group (so stopping it
// reaches whatever it started) and has the kernel SIGKILL it if the
// supervisor dies, even by SIGKILL: no instance outlives shoal up.
//
// Pdeathsig fires when the OS thread that started the child exits, not the
// process; the Go runtime only ends threads of goroutines that exit while
// locked with runtime.LockOSThread, which this package never does.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
