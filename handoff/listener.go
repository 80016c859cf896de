//go:build unix

package handoff

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"syscall"
)

// EnvFD names the environment variable that carries the number of the
// inherited socket's file descriptor (3 for the first of exec.Cmd.ExtraFiles).
const EnvFD = "SHOAL_LISTEN_FD"

// backlog is what Listener asks listen(2) for; the kernel caps it at
// net.core.somaxconn, the figure Go's own listeners use.
const backlog = 1<<16 - 1

// Listener returns a listener on the socket this process inherited
// (EnvFD), calling listen on it first (harmless if the parent or a sibling
// already did); nil and no error when EnvFD is not set. The socket is taken
// once: Listener unsets EnvFD and closes the inherited descriptor (the
// listener holds its own), so the program's own children inherit neither.
func Listener() (net.Listener, error) {
	v := os.Getenv(EnvFD)
	if v == "" {
		return nil, nil
	}
	os.Unsetenv(EnvFD)
	fd, err := strconv.Atoi(v)
	if err != nil || fd < 3 {
		return nil, fmt.Errorf("handoff: %s=%q: want the number of an inherited descriptor, 3 or more", EnvFD, v)
	}
	// Checked before os.NewFile takes ownership: a variable that leaked
	// without its descriptor must not make us close some other file.
	if !unconnectedStream(fd) {
		return nil, fmt.Errorf("handoff: %s=%d: not an inherited socket to listen on (a bound, unconnected TCP socket)", EnvFD, fd)
	}
	syscall.CloseOnExec(fd)
	f := os.NewFile(uintptr(fd), "inherited")
	defer f.Close()
	ln, err := listen(f)
	if err != nil {
		return nil, fmt.Errorf("handoff: %s=%d: %w", EnvFD, fd, err)
	}
	return ln, nil
}

// unconnectedStream reports whether fd is a stream socket bound to a port
// and connected to nothing.
func unconnectedStream(fd int) bool {
	typ, err := syscall.GetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_TYPE)
	if err != nil || typ != syscall.SOCK_STREAM {
		return false
	}
	if _, err := syscall.Getpeername(fd); err == nil {
		return false
	}
	switch sa, _ := syscall.Getsockname(fd); sa := sa.(type) {
	case *syscall.SockaddrInet4:
		return sa.Port != 0
	case *syscall.SockaddrInet6:
		return sa.Port != 0
	}
	return false
}

// listen calls listen(2) on the socket f, which is harmless if it already
// listens, and returns a listener on it with a descriptor of its own.
func listen(f *os.File) (net.Listener, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return nil, err
	}
	var lerr error
	if err := rc.Control(func(fd uintptr) { lerr = syscall.Listen(int(fd), backlog) }); err != nil {
		return nil, err
	}
	if lerr != nil {
		return nil, os.NewSyscallError("listen", lerr)
	}
	return net.FileListener(f)
}
