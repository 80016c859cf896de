//go:build !unix

package handoff

import (
	"errors"
	"net"
	"os"
)

// EnvFD names the environment variable that carries the number of the
// inherited socket's file descriptor; handing sockets over needs unix.
const EnvFD = "SHOAL_LISTEN_FD"

// Listener fails if EnvFD is set, else returns nil and no error: outside
// unix a program listens on its configured address.
func Listener() (net.Listener, error) {
	if v := os.Getenv(EnvFD); v != "" {
		return nil, errors.New("handoff: " + EnvFD + "=" + v + ": inherited sockets need a unix system")
	}
	return nil, nil
}
