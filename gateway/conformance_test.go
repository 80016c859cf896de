package gateway_test

// The conformance suite: HTTP/1.1 semantics (RFC 9110, RFC 9112) checked
// against a running gateway service with raw sockets writing exact bytes,
// for both servers (the engine and net/http alone). Each case is one
// exchange: the bytes a client writes, and what must come back and what
// the service must (or must not) have seen.

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shoal-dev/shoal"
	"github.com/shoal-dev/shoal/client"
)

// echoed is what the conformance backend's /echo reports of the request it
// got.
type echoed struct {
	Method, Path, Query string
	Header              http.Header
	Trailer             http.Header
	Body                string
	Host                string
}

// conformanceBackend serves the paths the suite calls; hits counts the
// requests it got.
func conformanceBackend(hits *atomic.Int64) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/echo/", func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			return // an incomplete request: not one the service acts on
		}
		hits.Add(1)
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(echoed{Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery,
			Header: r.Header, Trailer: r.Trailer, Body: string(body), Host: r.Host})
	})
	mux.HandleFunc("/hop", func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Header().Set("Connection", "X-Resp-Hop")
		w.Header().Set("X-Resp-Hop", "1")
		w.Header().Set("Keep-Alive", "timeout=5")
		w.Header().Set("X-Resp-End", "2")
		io.WriteString(w, "ok")
	})
	mux.HandleFunc("/trailers", func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Header().Set("Trailer", "X-Checksum")
		io.WriteString(w, "part one, ")
		w.(http.Flusher).Flush()
		io.WriteString(w, "part two")
		w.Header().Set("X-Checksum", "abc123")
	})
	mux.HandleFunc("/hints", func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Header().Set("Link", "</style.css>; rel=preload")
		w.WriteHeader(http.StatusEarlyHints)
		w.Header().Del("Link")
		io.WriteString(w, "final")
	})
	mux.HandleFunc("/sized", func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Header().Set("Content-Length", "11")
		io.WriteString(w, "hello world")
	})
	mux.HandleFunc("/upload", func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		h := sha256.New()
		n, err := io.Copy(h, r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		fmt.Fprintf(w, "%d %s", n, hex.EncodeToString(h.Sum(nil)))
	})
	mux.HandleFunc("/download", func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		n, _ := strconv.Atoi(r.URL.Query().Get("mib"))
		w.Header().Set("Content-Length", strconv.Itoa(n<<20))
		chunk := bytes.Repeat([]byte("d"), 1<<20)
		for range n {
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	})
	mux.HandleFunc("/deadline", func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		io.WriteString(w, r.Header.Get(client.TimeoutHeader))
	})
	return mux
}

// conformanceEdge runs the gateway service in front of the conformance
// backend (service "api").
func conformanceEdge(t *testing.T, engine bool, cfg shoal.Config) (*edge, *atomic.Int64) {
	t.Helper()
	hits := new(atomic.Int64)
	e := startEdgeWith(t, cfg, 30*time.Second, engine) // room for 32 MiB under the race detector
	e.backend(t, "api", conformanceBackend(hits))
	return e, hits
}

// dial connects to addr over TCP with a deadline d from now on every read
// and write, so that a test whose server hangs fails instead.
func dial(t *testing.T, addr string, d time.Duration) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	conn.SetDeadline(time.Now().Add(d))
	return conn
}

// exchange writes req on a new connection and reads n responses (1xx
// ones included) with net/http's parser, then closes.
func exchange(t *testing.T, addr, req string, n int) []*http.Response {
	t.Helper()
	conn := dial(t, addr, 10*time.Second)
	defer conn.Close()
	if _, err := io.WriteString(conn, req); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	var out []*http.Response
	for range n {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("reading response %d: %v", len(out)+1, err)
		}
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatalf("reading body of response %d: %v", len(out)+1, err)
		}
		resp.Body = io.NopCloser(bytes.NewReader(body))
		out = append(out, resp)
	}
	return out
}

func bodyOf(r *http.Response) string {
	b, _ := io.ReadAll(r.Body)
	return string(b)
}

func decodeEcho(t *testing.T, r *http.Response) echoed {
	t.Helper()
	var e echoed
	if err := json.NewDecoder(r.Body).Decode(&e); err != nil {
		t.Fatalf("%s: not an echo: %v", r.Status, err)
	}
	return e
}

func TestConformance(t *testing.T) {
	for _, srv := range servers {
		t.Run(srv.name, func(t *testing.T) {
			e, hits := conformanceEdge(t, srv.engine, shoal.Config{H2C: true})
			for _, tc := range conformanceCases {
				t.Run(tc.name, func(t *testing.T) { tc.run(t, e.addr, hits) })
			}
		})
	}
}

var conformanceCases = []struct {
	name string
	run  func(t *testing.T, addr string, hits *atomic.Int64)
}{
	{"hop-by-hop request headers are not forwarded", func(t *testing.T, addr string, _ *atomic.Int64) {
		r := exchange(t, addr, "GET /api/echo/x HTTP/1.1\r\nHost: gw\r\nConnection: keep-alive, X-Hop\r\nX-Hop: 1\r\n"+
			"Keep-Alive: timeout=5\r\nProxy-Connection: keep-alive\r\nTe: trailers, deflate\r\nX-End: 2\r\n\r\n", 1)[0]
		got := decodeEcho(t, r)
		for _, k := range []string{"X-Hop", "Keep-Alive", "Proxy-Connection"} {
			if v, ok := got.Header[k]; ok {
				t.Errorf("the service got hop-by-hop %s: %v", k, v)
			}
		}
		if got.Header.Get("X-End") != "2" || got.Header.Get("Te") != "trailers" {
			t.Errorf("end-to-end X-End %q, Te %q; want 2 and trailers", got.Header.Get("X-End"), got.Header.Get("Te"))
		}
	}},
	{"hop-by-hop response headers are not forwarded", func(t *testing.T, addr string, _ *atomic.Int64) {
		r := exchange(t, addr, "GET /api/hop HTTP/1.1\r\nHost: gw\r\n\r\n", 1)[0]
		if r.Header.Get("X-Resp-Hop") != "" || r.Header.Get("Keep-Alive") != "" || r.Header.Get("X-Resp-End") != "2" {
			t.Errorf("response headers %v: want X-Resp-End only", r.Header)
		}
	}},
	{"Expect: 100-continue", func(t *testing.T, addr string, _ *atomic.Int64) {
		conn := dial(t, addr, 10*time.Second)
		defer conn.Close()
		io.WriteString(conn, "POST /api/echo/x HTTP/1.1\r\nHost: gw\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
		br := bufio.NewReader(conn)
		cont, err := http.ReadResponse(br, nil)
		if err != nil || cont.StatusCode != http.StatusContinue {
			t.Fatalf("before the body: %v, %v; want 100 Continue", cont, err)
		}
		io.WriteString(conn, "hello")
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		if got := decodeEcho(t, resp); resp.StatusCode != 200 || got.Body != "hello" {
			t.Errorf("%s, service got body %q; want 200 and hello", resp.Status, got.Body)
		}
	}},
	{"chunked request body with trailers", func(t *testing.T, addr string, _ *atomic.Int64) {
		r := exchange(t, addr, "POST /api/echo/x HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n"+
			"5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\nX-Sum: 42\r\n\r\n", 1)[0]
		got := decodeEcho(t, r)
		if got.Body != "hello, world" || got.Trailer.Get("X-Sum") != "42" {
			t.Errorf("service got body %q, trailers %v; want hello, world and X-Sum: 42", got.Body, got.Trailer)
		}
	}},
	{"chunked response with trailers", func(t *testing.T, addr string, _ *atomic.Int64) {
		r := exchange(t, addr, "GET /api/trailers HTTP/1.1\r\nHost: gw\r\nTe: trailers\r\n\r\n", 1)[0]
		if len(r.TransferEncoding) == 0 || r.TransferEncoding[0] != "chunked" {
			t.Errorf("transfer encoding %v, want chunked", r.TransferEncoding)
		}
		if b := bodyOf(r); b != "part one, part two" || r.Trailer.Get("X-Checksum") != "abc123" {
			t.Errorf("body %q, trailers %v", b, r.Trailer)
		}
	}},
	{"HEAD has no body but the length GET would have", func(t *testing.T, addr string, _ *atomic.Int64) {
		conn := dial(t, addr, 10*time.Second)
		defer conn.Close()
		// HEAD then GET on one connection: a body after the HEAD
		// response would be read as the start of the next response.
		io.WriteString(conn, "HEAD /api/sized HTTP/1.1\r\nHost: gw\r\n\r\n")
		br := bufio.NewReader(conn)
		head, err := http.ReadResponse(br, &http.Request{Method: http.MethodHead})
		if err != nil {
			t.Fatal(err)
		}
		if head.ContentLength != 11 {
			t.Errorf("HEAD Content-Length %d, want 11", head.ContentLength)
		}
		io.WriteString(conn, "GET /api/sized HTTP/1.1\r\nHost: gw\r\n\r\n")
		get, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("the response after HEAD: %v", err)
		}
		if b := bodyOf(get); b != "hello world" {
			t.Errorf("GET after HEAD: %q", b)
		}
	}},
	{"1xx informational responses pass through", func(t *testing.T, addr string, _ *atomic.Int64) {
		rs := exchange(t, addr, "GET /api/hints HTTP/1.1\r\nHost: gw\r\n\r\n", 2)
		if rs[0].StatusCode != http.StatusEarlyHints || rs[0].Header.Get("Link") == "" {
			t.Errorf("first response %s %v, want 103 with Link", rs[0].Status, rs[0].Header)
		}
		if rs[1].StatusCode != 200 || bodyOf(rs[1]) != "final" || rs[1].Header.Get("Link") != "" {
			t.Errorf("final response %s %v", rs[1].Status, rs[1].Header)
		}
	}},
	{"pipelined requests are answered in order", func(t *testing.T, addr string, _ *atomic.Int64) {
		rs := exchange(t, addr, "GET /api/echo/1 HTTP/1.1\r\nHost: gw\r\n\r\nGET /api/echo/2 HTTP/1.1\r\nHost: gw\r\n\r\n"+
			"POST /api/echo/3 HTTP/1.1\r\nHost: gw\r\nContent-Length: 3\r\n\r\nabc", 3)
		for i, r := range rs {
			if got := decodeEcho(t, r); got.Path != fmt.Sprintf("/echo/%d", i+1) {
				t.Errorf("response %d is for %s", i+1, got.Path)
			}
		}
	}},
	{"HTTP/1.0 request", func(t *testing.T, addr string, _ *atomic.Int64) {
		r := exchange(t, addr, "GET /api/sized HTTP/1.0\r\n\r\n", 1)[0]
		if r.StatusCode != 200 || bodyOf(r) != "hello world" {
			t.Errorf("%s", r.Status)
		}
	}},
	{"request ID and trace context", func(t *testing.T, addr string, _ *atomic.Int64) {
		const tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
		r := exchange(t, addr, "GET /api/echo/x HTTP/1.1\r\nHost: gw\r\nX-Request-Id: req-42\r\nTraceparent: "+tp+"\r\nTracestate: k=v\r\n\r\n", 1)[0]
		got := decodeEcho(t, r)
		if got.Header.Get("X-Request-Id") != "req-42" || r.Header.Get("X-Request-Id") != "req-42" || len(r.Header.Values("X-Request-Id")) != 1 {
			t.Errorf("request ID: service %q, response %v", got.Header.Get("X-Request-Id"), r.Header.Values("X-Request-Id"))
		}
		if got.Header.Get("Traceparent") != tp || got.Header.Get("Tracestate") != "k=v" {
			t.Errorf("trace context %q %q", got.Header.Get("Traceparent"), got.Header.Get("Tracestate"))
		}
	}},
	{"deadline propagation", func(t *testing.T, addr string, _ *atomic.Int64) {
		r := exchange(t, addr, "GET /api/deadline HTTP/1.1\r\nHost: gw\r\nShoal-Timeout-Ms: 900\r\n\r\n", 1)[0]
		ms, err := client.ParseTimeout(bodyOf(r))
		if err != nil || ms > 900*time.Millisecond || ms < 100*time.Millisecond {
			t.Errorf("service got a budget of %v (%v), want a share of the caller's 900ms", ms, err)
		}
	}},
	{"large upload streams through", func(t *testing.T, addr string, _ *atomic.Int64) {
		const size = 8 << 20 // over the replay buffer, under the body limit
		conn := dial(t, addr, 30*time.Second)
		defer conn.Close()
		go func() { // ends when the upload is written or the connection closes
			io.WriteString(conn, "POST /api/upload HTTP/1.1\r\nHost: gw\r\nContent-Length: "+strconv.Itoa(size)+"\r\n\r\n")
			io.Copy(conn, io.LimitReader(zeros{}, size))
		}()
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(make([]byte, size))
		if want, got := fmt.Sprintf("%d %x", size, sum), bodyOf(resp); got != want {
			t.Errorf("%s: service got %q, want %q", resp.Status, got, want)
		}
	}},
	{"large download streams through", func(t *testing.T, addr string, _ *atomic.Int64) {
		r := exchange(t, addr, "GET /api/download?mib=32 HTTP/1.1\r\nHost: gw\r\n\r\n", 1)[0]
		if b := bodyOf(r); len(b) != 32<<20 {
			t.Errorf("got %d bytes, want 32 MiB", len(b))
		}
	}},
	{"h2c with prior knowledge", func(t *testing.T, addr string, _ *atomic.Int64) {
		tr := &http.Transport{Protocols: new(http.Protocols)}
		tr.Protocols.SetUnencryptedHTTP2(true)
		defer tr.CloseIdleConnections()
		resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Get("http://" + addr + "/api/sized")
		if err != nil {
			t.Fatal(err)
		}
		if resp.ProtoMajor != 2 || bodyOf(resp) != "hello world" {
			t.Errorf("%s %s", resp.Proto, resp.Status)
		}
		resp.Body.Close()
	}},
}

// zeros reads as an endless run of zero bytes.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

// TestConformanceRefusals: messages whose framing two hops could read
// differently (request smuggling) or that break the syntax are refused
// with 400 (501 for a transfer coding not understood), the connection is
// closed, and the service never gets a complete request from them.
//
// The engine refuses all of them. net/http (which serves TLS, HTTP/2 and
// shoal gateway --engine=false) reads some leniently, as Go does: both
// Content-Length and Transfer-Encoding as chunked, obs-fold unfolded, a
// bare LF as a line end. Its column says what it does; the gateway
// re-frames every request it forwards, so the service never sees such a
// message either way.
func TestConformanceRefusals(t *testing.T) {
	for _, srv := range servers {
		t.Run(srv.name, func(t *testing.T) {
			e, hits := conformanceEdge(t, srv.engine, shoal.Config{})
			for _, tt := range []struct {
				name, req string
				want      int
				netHTTP   int // what net/http answers, when it differs; -n: it serves n requests from it
			}{
				{"Content-Length and Transfer-Encoding", "POST /api/echo/x HTTP/1.1\r\nHost: gw\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /api/echo/smuggled HTTP/1.1\r\nHost: gw\r\n\r\n", 400, -2},
				{"duplicate Content-Length", "POST /api/echo/x HTTP/1.1\r\nHost: gw\r\nContent-Length: 3\r\nContent-Length: 5\r\n\r\nabcde", 400, 0},
				{"Content-Length with a sign", "POST /api/echo/x HTTP/1.1\r\nHost: gw\r\nContent-Length: +3\r\n\r\nabc", 400, 0},
				{"chunk size not hex", "POST /api/echo/x HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n", 400, 0},
				{"chunk size overflows", "POST /api/echo/x HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffff1\r\nhello\r\n0\r\n\r\n", 400, 0},
				{"chunk data longer than its size", "POST /api/echo/x HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nhello\r\n0\r\n\r\n", 400, 0},
				{"obs-fold", "GET /api/echo/x HTTP/1.1\r\nHost: gw\r\nX-Folded: a\r\n b\r\n\r\n", 400, -1},
				{"bare LF in the head", "GET /api/echo/x HTTP/1.1\nHost: gw\n\n", 400, -1},
				{"space before colon", "GET /api/echo/x HTTP/1.1\r\nHost: gw\r\nX-Bad : 1\r\n\r\n", 400, 0},
				{"invalid header name", "GET /api/echo/x HTTP/1.1\r\nHost: gw\r\nX(Bad): 1\r\n\r\n", 400, 0},
				{"control character in a value", "GET /api/echo/x HTTP/1.1\r\nHost: gw\r\nX-Bad: a\x01b\r\n\r\n", 400, 0},
				{"no Host", "GET /api/echo/x HTTP/1.1\r\n\r\n", 400, 0},
				{"two Hosts", "GET /api/echo/x HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400, 0},
				{"unknown transfer coding", "POST /api/echo/x HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: gzip\r\n\r\n", 501, 0},
			} {
				t.Run(tt.name, func(t *testing.T) {
					want := tt.want
					if !srv.engine && tt.netHTTP != 0 {
						want = tt.netHTTP
					}
					before := hits.Load()
					conn := dial(t, e.addr, 10*time.Second)
					defer conn.Close()
					io.WriteString(conn, tt.req)
					br := bufio.NewReader(conn)
					resp, err := http.ReadResponse(br, nil)
					if err != nil {
						t.Fatalf("no response: %v", err)
					}
					io.Copy(io.Discard, resp.Body)
					for i := 0; want < 0; i++ {
						// net/http serves it, as -want requests: read their
						// answers, so that none is still on its way to the
						// service when the next case counts.
						if resp.StatusCode != http.StatusOK {
							t.Errorf("%s; net/http serves this request", resp.Status)
						}
						if i+1 == -want {
							return
						}
						if resp, err = http.ReadResponse(br, nil); err != nil {
							t.Fatalf("response %d: %v", i+2, err)
						}
						io.Copy(io.Discard, resp.Body)
					}
					if resp.StatusCode != want {
						t.Errorf("%s, want %d", resp.Status, want)
					}
					if _, err := http.ReadResponse(br, nil); err == nil {
						t.Error("a second response on the connection: it was not closed")
					}
					if n := hits.Load() - before; n != 0 {
						t.Errorf("the service got %d complete requests", n)
					}
				})
			}
		})
	}
}
