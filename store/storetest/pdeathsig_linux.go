package storetest

import "syscall"

// setPdeathsig has the child killed if the test binary dies first (a test
// timeout, a SIGKILL), so that no server outlives its tests. Go sets it
// after the switch of user, which would otherwise clear it.
func setPdeathsig(attr *syscall.SysProcAttr) { attr.Pdeathsig = syscall.SIGKILL }
