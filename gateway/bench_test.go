package gateway_test

import (
	"bufio"
	"bytes"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/shoal-dev/shoal"
	"github.com/shoal-dev/shoal/client"
	"github.com/shoal-dev/shoal/discovery"
	"github.com/shoal-dev/shoal/gateway"
)

// BenchmarkProxy is one GET through the gateway service over loopback, by
// stack: the engine and Upstream, or net/http on both sides. The backend
// and the client are raw sockets writing canned bytes, so that nearly all
// of the cost measured is the gateway's. For instruction counts, which the
// machine's other work does not disturb:
//
//	go test -c -o /tmp/gw.test ./gateway
//	valgrind --tool=callgrind /tmp/gw.test -test.run '^$' -test.bench 'Proxy/stack=engine' -test.benchtime 2000x
func BenchmarkProxy(b *testing.B) {
	backend := rawBackend(b, 1024)
	for _, bc := range []struct {
		name   string
		engine bool
	}{{"stack=engine", true}, {"stack=net-http", false}} {
		b.Run(bc.name, func(b *testing.B) {
			cat := discovery.NewCatalog()
			cat.Upsert(discovery.Instance{ID: "echo-1", Service: "echo", Addr: backend, State: discovery.StateServing})
			ccfg := client.Config{}
			cfg := shoal.Config{Name: "gateway", Logger: slog.New(slog.DiscardHandler)}
			cfg.Admission.Disabled = true
			if bc.engine {
				ccfg.Base = gateway.NewUpstream()
				cfg.Engine = gateway.NewEngine()
			}
			addr := runService(b, cfg, newGateway(b, cat, ccfg)).Addr()
			conn, err := net.Dial("tcp", addr)
			if err != nil {
				b.Fatal(err)
			}
			defer conn.Close()
			req := []byte("GET /echo/work HTTP/1.1\r\nHost: gw\r\nUser-Agent: bench\r\nAccept: */*\r\n\r\n")
			br := bufio.NewReaderSize(conn, 8<<10)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := conn.Write(req); err != nil {
					b.Fatal(err)
				}
				if err := readResponse(br); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// readResponse reads one response with a Content-Length.
func readResponse(br *bufio.Reader) error {
	n := -1
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return err
		}
		if len(line) == 2 {
			break
		}
		if k, v, ok := bytes.Cut(line, []byte(":")); ok && strings.EqualFold(string(k), "Content-Length") {
			n, _ = strconv.Atoi(strings.TrimSpace(string(v)))
		}
	}
	if n < 0 {
		return io.ErrUnexpectedEOF
	}
	_, err := br.Discard(n)
	return err
}

// rawBackend answers every request on every connection with the same
// response of size bytes, without parsing more than the end of the head.
func rawBackend(tb testing.TB, size int) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	// The connections are closed with the listener: the proxy keeps idle
	// ones open, and their goroutines would outlive the benchmark.
	var (
		mu    sync.Mutex
		conns []net.Conn
		wg    sync.WaitGroup
	)
	tb.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	resp := []byte("HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: " + strconv.Itoa(size) + "\r\n\r\n" + strings.Repeat("x", size))
	wg.Go(func() { // ends when the listener closes
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Go(func() { // ends when the connection does
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					for {
						line, err := br.ReadSlice('\n')
						if err != nil {
							return
						}
						if len(line) == 2 {
							break
						}
					}
					if _, err := c.Write(resp); err != nil {
						return
					}
				}
			})
		}
	})
	return ln.Addr().String()
}
