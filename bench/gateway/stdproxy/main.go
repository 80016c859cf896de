// Command stdproxy is the go-proxy arm of the gateway benchmark
// (bench/gateway): Go's own net/http/httputil.ReverseProxy, round robin over
// fixed upstreams, keep-alive, pooled copy buffers, no logging and nothing
// else. It is the floor under any gateway built on net/http: what the
// standard library costs per request on this machine, so that the Shoal
// gateway's own cost can be told apart from it.
//
//	stdproxy -addr 127.0.0.1:8080 -upstreams 127.0.0.1:9001,127.0.0.1:9002
//
// GET /echo/<path> goes to /<path> at an upstream, as the peers' configs do.
package main

import (
	"flag"
	"log"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "listen address")
	upstreams := flag.String("upstreams", "", "comma-separated host:port of the replicas")
	flag.Parse()
	targets := strings.Split(*upstreams, ",")
	var next atomic.Uint64
	proxy := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			host := targets[next.Add(1)%uint64(len(targets))]
			pr.SetURL(&url.URL{Scheme: "http", Host: host})
			pr.Out.URL.Path = strings.TrimPrefix(pr.In.URL.Path, "/echo")
			pr.Out.URL.RawPath = ""
			pr.SetXForwarded()
		},
		Transport:  &http.Transport{MaxIdleConnsPerHost: 256, DisableCompression: true},
		BufferPool: pool{},
	}
	log.Fatal(http.ListenAndServe(*addr, proxy))
}

// pool reuses 32 KiB copy buffers; without it ReverseProxy allocates one
// per response.
type pool struct{}

var buffers = sync.Pool{New: func() any { return new([32 << 10]byte) }}

func (pool) Get() []byte  { return buffers.Get().(*[32 << 10]byte)[:] }
func (pool) Put(b []byte) { buffers.Put((*[32 << 10]byte)(b)) }
