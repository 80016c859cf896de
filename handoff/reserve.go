//go:build unix

package handoff

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"syscall"
)

// Port is a TCP socket bound to a loopback or other local address, reserved
// for a program that will serve on it. Close it when no program is to use
// the address any more.
type Port struct {
	f    *os.File
	addr *net.TCPAddr
}

// Reserve binds a new TCP socket to addr ("127.0.0.1:0" for a port of the
// kernel's choice, "127.0.0.1:8080" for that one) with SO_REUSEADDR and does
// not listen on it. Until Close:
//
//   - connections to the address are refused (nothing listens);
//   - the kernel gives the port to no other socket that asks for a free one,
//     so, unlike a listener closed to learn a free port, the address cannot
//     be taken by anyone who does not name it;
//   - a program may listen on it: through the socket itself (Pass), or by
//     binding the address with SO_REUSEADDR.
func Reserve(addr string) (*Port, error) {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return nil, fmt.Errorf("handoff: reserve %q: want ip:port: %w", addr, err)
	}
	family, sa := syscall.AF_INET, syscall.Sockaddr(nil)
	if ip := ap.Addr().Unmap(); ip.Is4() {
		sa = &syscall.SockaddrInet4{Port: int(ap.Port()), Addr: ip.As4()}
	} else {
		family = syscall.AF_INET6
		sa = &syscall.SockaddrInet6{Port: int(ap.Port()), Addr: ip.As16()}
	}
	// ForkLock: no child may inherit the descriptor before it is close-on-exec.
	syscall.ForkLock.RLock()
	fd, err := syscall.Socket(family, syscall.SOCK_STREAM, 0)
	if err == nil {
		syscall.CloseOnExec(fd)
	}
	syscall.ForkLock.RUnlock()
	if err != nil {
		return nil, fmt.Errorf("handoff: reserve %s: socket: %w", addr, err)
	}
	if err := syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 1); err != nil {
		syscall.Close(fd)
		return nil, fmt.Errorf("handoff: reserve %s: SO_REUSEADDR: %w", addr, err)
	}
	if err := syscall.Bind(fd, sa); err != nil {
		syscall.Close(fd)
		return nil, fmt.Errorf("handoff: reserve %s: %w", addr, os.NewSyscallError("bind", err))
	}
	bound, err := syscall.Getsockname(fd)
	if err != nil {
		syscall.Close(fd)
		return nil, fmt.Errorf("handoff: reserve %s: getsockname: %w", addr, err)
	}
	p := &Port{addr: &net.TCPAddr{IP: ap.Addr().AsSlice(), Zone: ap.Addr().Zone()}}
	switch b := bound.(type) {
	case *syscall.SockaddrInet4:
		p.addr.Port = b.Port
	case *syscall.SockaddrInet6:
		p.addr.Port = b.Port
	}
	p.f = os.NewFile(uintptr(fd), "tcp:"+p.addr.String())
	return p, nil
}

// Addr is the reserved address, with the port the kernel chose.
func (p *Port) Addr() *net.TCPAddr { return p.addr }

// Pass makes the socket the child's next inherited descriptor (after any
// already in cmd.ExtraFiles) and names it in the child's environment
// (SHOAL_LISTEN_FD); call it before cmd.Start. The child gets its own copy:
// p stays open in this process until Close.
func (p *Port) Pass(cmd *exec.Cmd) {
	if cmd.Env == nil {
		cmd.Env = os.Environ()
	}
	cmd.ExtraFiles = append(cmd.ExtraFiles, p.f)
	// os/exec numbers ExtraFiles from 3, after stdin, stdout and stderr.
	cmd.Env = append(cmd.Env, EnvFD+"="+strconv.Itoa(2+len(cmd.ExtraFiles)))
}

// Listening reports whether a process has called listen on the socket (a
// child that took the descriptor): then a copy of it given to another
// process accepts connections from the same queue.
func (p *Port) Listening() bool {
	on := 0
	if rc, err := p.f.SyscallConn(); err == nil {
		_ = rc.Control(func(fd uintptr) {
			on, _ = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_ACCEPTCONN)
		})
	}
	return on == 1
}

// Listen listens on the socket in this process: connections to the
// address are accepted from then on, through the returned listener (which
// has a descriptor of its own; p stays open until Close).
func (p *Port) Listen() (net.Listener, error) {
	ln, err := listen(p.f)
	if err != nil {
		return nil, fmt.Errorf("handoff: %s: %w", p.addr, err)
	}
	return ln, nil
}

// Dup returns a second handle on the same socket, to be closed on its own.
func (p *Port) Dup() (*Port, error) {
	rc, err := p.f.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("handoff: dup %s: %w", p.addr, err)
	}
	nfd, derr := -1, error(nil)
	if err := rc.Control(func(fd uintptr) {
		syscall.ForkLock.RLock()
		nfd, derr = syscall.Dup(int(fd))
		if derr == nil {
			syscall.CloseOnExec(nfd)
		}
		syscall.ForkLock.RUnlock()
	}); err != nil {
		return nil, fmt.Errorf("handoff: dup %s: %w", p.addr, err)
	}
	if derr != nil {
		return nil, fmt.Errorf("handoff: dup %s: %w", p.addr, derr)
	}
	return &Port{f: os.NewFile(uintptr(nfd), p.f.Name()), addr: p.addr}, nil
}

// Close releases this process's handle on the socket. The port stays taken
// while a child holds its copy.
func (p *Port) Close() error { return p.f.Close() }
