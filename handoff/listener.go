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
	if typ, err := syscall.GetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_TYPE); err != nil || typ != syscall.SOCK_STREAM {
		return nil, fmt.Errorf("handoff: %s=%d: not an inherited stream socket (type %d, %v)", EnvFD, fd, typ, err)
	}
	if err := syscall.Listen(fd, backlog); err != nil {
		return nil, fmt.Errorf("handoff: %s=%d: %w", EnvFD, fd, os.NewSyscallError("listen", err))
	}
	syscall.CloseOnExec(fd)
	f := os.NewFile(uintptr(fd), "inherited")
	defer f.Close()
	ln, err := net.FileListener(f)
	if err != nil {
		return nil, fmt.Errorf("handoff: %s=%d: %w", EnvFD, fd, err)
	}
	return ln, nil
}
