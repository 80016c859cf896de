package client

import (
	"context"
	"net"
	"sync"
	"sync/atomic"
)

// holeNet dials through the kernel but, once cut, makes the victims'
// addresses a blackhole, as a partition that drops packets does: new dials
// hang until their context ends, and bytes on existing connections vanish
// both ways. Victims are set before the first dial.
type holeNet struct {
	victims map[string]bool
	cut     atomic.Bool
}

func (n *holeNet) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	if n.victims[addr] && n.cut.Load() {
		<-ctx.Done()
		return nil, &net.OpError{Op: "dial", Net: network, Err: ctx.Err()}
	}
	c, err := new(net.Dialer).DialContext(ctx, network, addr)
	if err != nil || !n.victims[addr] {
		return c, err
	}
	return &holeConn{Conn: c, n: n, closed: make(chan struct{})}, nil
}

type holeConn struct {
	net.Conn
	n      *holeNet
	once   sync.Once
	closed chan struct{}
}

func (c *holeConn) Write(p []byte) (int, error) {
	if c.n.cut.Load() {
		return len(p), nil
	}
	return c.Conn.Write(p)
}

func (c *holeConn) Read(p []byte) (int, error) {
	if !c.n.cut.Load() {
		n, err := c.Conn.Read(p)
		if !c.n.cut.Load() {
			return n, err
		}
	}
	<-c.closed
	return 0, net.ErrClosed
}

func (c *holeConn) Close() error {
	c.once.Do(func() { close(c.closed) })
	return c.Conn.Close()
}
