//go:build unix

package storetest

import (
	"fmt"
	"os"
	"os/user"
	"strconv"
	"syscall"
)

// account is whom the server runs as, if not as ourselves.
type account struct{ uid, gid uint32 }

// serverUser returns whom to run the server as: nil for ourselves, the
// "postgres" user when we are root (which PostgreSQL refuses to run as).
func serverUser() (*account, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("running as root, which PostgreSQL refuses to run as, and no \"postgres\" user to run it as (%v): create one (useradd --system postgres) or run the tests as another user", err)
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("user postgres: uid %q: %w", u.Uid, err)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("user postgres: gid %q: %w", u.Gid, err)
	}
	return &account{uid: uint32(uid), gid: uint32(gid)}, nil
}

// give makes a (nil: ourselves) the owner of dir.
func (a *account) give(dir string) error {
	if a == nil {
		return nil
	}
	return os.Chown(dir, int(a.uid), int(a.gid))
}

// sysProcAttr runs a child as a (nil: as ourselves), with no
// supplementary groups, and on Linux killed if the test binary dies first.
func sysProcAttr(a *account) *syscall.SysProcAttr {
	attr := &syscall.SysProcAttr{}
	if a != nil {
		attr.Credential = &syscall.Credential{Uid: a.uid, Gid: a.gid, Groups: []uint32{}}
	}
	setPdeathsig(attr)
	return attr
}

// shutdown asks the server for an immediate shutdown (SIGQUIT): it ends
// its backends and exits without a checkpoint.
func shutdown(p *os.Process) error { return p.Signal(syscall.SIGQUIT) }

// alive reports whether process pid exists.
func alive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || err == syscall.EPERM
}
