package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/discovery"
	"github.com/shoal-dev/shoal/events"
	"github.com/shoal-dev/shoal/identity"
	"github.com/shoal-dev/shoal/supervisor"
)

// guardedManifest is a small system under shoal up: a gateway (default
// routes), an SDK service, a service with an event inbox (flix's search)
// and a program that is not a Go one (flix's trailers, mutual TLS in
// Python), with a policy that lets only the gateway call them.
func guardedManifest(gatewayPort int) string {
	return fmt.Sprintf(`name: guarded
drain_timeout: 3s
authorization:
  allow:
    hello: [gateway]
    search: [gateway]
    trailers: [gateway]
services:
  gateway: {build: ../cmd/shoal, args: [gateway], port: %d}
  hello: {build: ../examples/hello, instances: 2}
  search: {build: ../examples/flix/search, store: true}
  trailers: {command: [python3, ../examples/flix/trailers/trailers.py], health: /healthz}
`, gatewayPort)
}

// impostor is a process of the test that pretends to be an instance of a
// service: a gossip member advertising it at the address of a TLS server
// that counts the handshakes it is offered and the requests it gets.
type impostor struct {
	member     *discovery.Member
	handshakes atomic.Int64
	requests   atomic.Int64
}

// startImpostor starts one, with gossip keys (none: no key at all) and a
// certificate for service from a CA of the same system name that is not
// the system's.
func startImpostor(t *testing.T, seed, service string, keys [][]byte) *impostor {
	t.Helper()
	imp := &impostor{}
	forged, err := identity.NewCA("guarded", 0)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := forged.Issue(service, 0)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		imp.requests.Add(1)
		io.WriteString(w, `{"hello":"from the impostor"}`)
	}))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.TLS = &tls.Config{GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
		imp.handshakes.Add(1)
		c := cert.TLS()
		return &c, nil
	}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	cfg := discovery.LocalConfig()
	cfg.Seeds = []string{seed}
	cfg.Keys = keys
	cfg.Logger = slog.New(slog.DiscardHandler)
	id := fmt.Sprintf("%s-impostor-%d", service, len(keys))
	imp.member = runMember(t, cfg, discovery.Instance{ID: id, Service: service, Addr: srv.Listener.Addr().String(), State: discovery.StateServing})
	return imp
}

// The issue's acceptance: under shoal up, a process without the system's
// credentials can neither join gossip and receive traffic, nor call a
// service directly, nor post an event; and one that has the gossip key but
// no certificate of the system's CA joins gossip yet receives no request.
func TestOutsiderGetsNothing(t *testing.T) {
	port := gatewayPort(t)
	sys := startSystem(t, guardedManifest(port), port, "/hello/hello", 180*time.Second)
	dir := filepath.Dir(sys.manifest)
	r, err := supervisor.FindRunning(dir)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(supervisor.GossipKeyFile)))
	if err != nil {
		t.Fatal(err)
	}
	key, err := discovery.KeysFromEnv(func(string) string { return strings.TrimSpace(string(b)) })
	if err != nil {
		t.Fatal(err)
	}
	ps := sys.ps(t)
	addrOf := func(service string) (addr, admin string) {
		for _, e := range ps {
			if e.Service == service {
				return e.Addr, e.Admin
			}
		}
		t.Fatalf("no %s in ps", service)
		return "", ""
	}
	helloAddr, helloAdmin := addrOf("hello")
	searchAddr, _ := addrOf("search")
	trailersAddr, _ := addrOf("trailers")
	seen := func(service string) int { // instances of service in hello/1's view
		var info struct{ Services map[string]int }
		resp, err := http.Get("http://" + helloAdmin + "/infoz")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if err := json.NewDecoder(resp.Body).Decode(&info); err != nil {
			t.Fatal(err)
		}
		return info.Services[service]
	}

	// Two impostors announce themselves: one without the gossip key, one
	// with it (a leaked key) but without a certificate of the system.
	keyless := startImpostor(t, r.Gossip, "intruder", nil)
	keyed := startImpostor(t, r.Gossip, "hello", key)
	waitFor(t, 30*time.Second, "the impostor with the key to be in the system's gossip", func() bool { return seen("hello") == 3 })

	t.Run("traffic never reaches an impostor", func(t *testing.T) {
		c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
		t.Cleanup(c.CloseIdleConnections)
		s := summarize(run(50, 6*time.Second, func(i int) result {
			method := "GET"
			if i%2 == 1 {
				method = "POST" // not idempotent: retried only because never sent
			}
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			res := result{start: time.Now()}
			req, _ := http.NewRequestWithContext(ctx, method, sys.gateway+"/hello/hello", strings.NewReader("x"))
			resp, err := c.Do(req)
			if err != nil {
				res.err, res.latency = err, time.Since(res.start)
				return res
			}
			var body struct{ Instance string }
			err = json.NewDecoder(resp.Body).Decode(&body)
			resp.Body.Close()
			res.latency, res.status, res.instance, res.err = time.Since(res.start), resp.StatusCode, body.Instance, err
			return res
		}))
		t.Logf("through the gateway: %v; the impostor was offered %d TLS handshakes", s, keyed.handshakes.Load())
		if s.failed > 0 {
			t.Errorf("%d of %d requests failed: an impostor in the catalog must cost no request", s.failed, s.total)
		}
		if keyed.handshakes.Load() == 0 {
			t.Error("the gateway never tried the impostor: the test proves nothing")
		}
		if n := keyed.requests.Load(); n > 0 {
			t.Errorf("the impostor with the gossip key received %d requests", n)
		}
		if n := keyless.handshakes.Load(); n > 0 {
			t.Errorf("the impostor without the gossip key was offered %d connections", n)
		}
	})

	t.Run("gossip without the key", func(t *testing.T) {
		if n := len(keyless.member.Catalog().Snapshot().All()); n != 1 {
			t.Errorf("the keyless member sees %d instances, want only itself", n)
		}
		if n := seen("intruder"); n != 0 {
			t.Errorf("the system sees %d instances of the keyless member's service", n)
		}
	})

	// The system's CA, to verify the servers: what an attacker may well
	// have (bundle.pem is not secret).
	bundle, err := os.ReadFile(filepath.Join(dir, ".shoal", "identity", "bundle.pem"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(bundle)
	forged, err := identity.NewCA("guarded", 0)
	if err != nil {
		t.Fatal(err)
	}
	forgedCert, err := forged.Issue("gateway", 0)
	if err != nil {
		t.Fatal(err)
	}
	// Ways to call an instance without the system's credentials.
	outsiders := map[string]func(service string) *http.Client{
		"plain HTTP": func(string) *http.Client { return http.DefaultClient },
		"TLS, no client certificate": func(service string) *http.Client {
			return &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: service}}}
		},
		"TLS, a certificate of another CA": func(service string) *http.Client {
			return &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: service,
				Certificates: []tls.Certificate{forgedCert.TLS()}}}}
		},
	}
	t.Run("no direct call", func(t *testing.T) {
		for how, client := range outsiders {
			for _, target := range []struct{ service, addr, path string }{
				{"hello", helloAddr, "/hello"},
				{"trailers", trailersAddr, "/trailers/1"},
				{"search", searchAddr, "/search?q=x"},
			} {
				scheme := "https"
				if how == "plain HTTP" {
					scheme = "http"
				}
				url := scheme + "://" + target.addr + target.path
				resp, err := client(target.service).Get(url)
				if err != nil {
					continue // refused in the handshake
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				// A TLS listener answers plain HTTP with a 400 of its own
				// (Go's) or closes the connection (Python's).
				if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "HTTPS") {
					t.Errorf("%s to %s: %s %q, want no answer from the service", how, url, resp.Status, body)
				}
			}
		}
	})

	t.Run("no event posted", func(t *testing.T) {
		id := "01OUTSIDER0000000000000000"
		for how, client := range outsiders {
			scheme := "https"
			if how == "plain HTTP" {
				scheme = "http"
			}
			req, _ := http.NewRequest(http.MethodPost, scheme+"://"+searchAddr+events.Path, strings.NewReader(`{"id":1,"name":"Pwned","year":2026,"genres":[]}`))
			req.Header.Set(events.HeaderID, id)
			req.Header.Set(events.HeaderTopic, "titles")
			resp, err := client("search").Do(req)
			if err != nil {
				continue
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "HTTPS") {
				t.Errorf("%s POST %s: %s %q, want no answer from the inbox", how, events.Path, resp.Status, body)
			}
		}
		db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, ".shoal", "data", "search.db")+"?mode=ro&_pragma=busy_timeout(5000)")
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		var n int
		if err := db.QueryRow(`SELECT count(*) FROM shoal_inbox WHERE id = $1`, id).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != 0 {
			t.Errorf("search's inbox recorded the outsider's event")
		}
	})
}
