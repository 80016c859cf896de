//go:build unix && !linux

package supervisor

import "syscall"

// sysProcAttr puts an instance in its own process group. Outside Linux there
// is no parent-death signal: instances of a supervisor killed with SIGKILL
// keep running until stopped by hand.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
