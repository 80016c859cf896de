//go:build unix && !linux

package storetest

import "syscall"

// setPdeathsig: no parent-death signal outside Linux; a server whose test
// binary was killed keeps running until stopped by hand.
func setPdeathsig(*syscall.SysProcAttr) {}
