//go:build !unix

package storetest

import (
	"errors"
	"os"
	"syscall"
)

type account struct{}

func serverUser() (*account, error) {
	return nil, errors.New("throwaway PostgreSQL servers are supported on Unix only")
}

func (*account) give(string) error              { return nil }
func sysProcAttr(*account) *syscall.SysProcAttr { return nil }
func shutdown(p *os.Process) error              { return p.Kill() }
func alive(int) bool                            { return true }
