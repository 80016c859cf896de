package supervisor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/shoal-dev/shoal"
	"github.com/shoal-dev/shoal/discovery"
	"github.com/shoal-dev/shoal/identity"
)

// A system on several hosts: one supervisor per host, each running the part
// of the manifest it is given (Options.Only), all in one gossip cluster (a
// later one joins an earlier one's gossip address, Options.Join) and all
// with the same keys (a copy of the first host's .shoal secrets,
// Options.Secrets). Instances listen on the host's address and gossip from
// it; admin listeners and the control API stay on loopback.
//
// Each supervisor serves a peer API on the host's address: mutual TLS with
// the system's CA, and only a caller proving it is shoal-supervisor gets an
// answer. Its gossip record's address is that endpoint, so `shoal ps` on
// any host asks every supervisor in its catalog for its instances.

// HostOptions place a supervisor in a system on several hosts. The zero
// value: the whole system on this machine, on loopback.
type HostOptions struct {
	// Bind is the IP instances listen on and gossip binds to; default
	// 127.0.0.1. 0.0.0.0 (or ::) needs Advertise.
	Bind string
	// Advertise is the IP the other hosts reach this one at; default Bind.
	Advertise string
	// GossipPort is the port of the supervisor's own gossip member, which
	// the other hosts join; 0 picks one (default DefaultGossipPort off
	// loopback, a free port on it).
	GossipPort int
	// Join lists gossip addresses (host:port, host names resolve to every
	// address behind them) of supervisors already running the system.
	// With Join the keys must exist already: a host that joins never makes
	// a CA or a gossip key of its own.
	Join []string
	// Only names the services this supervisor runs; empty: all of them.
	Only []string
	// Secrets is the folder of the system's keys (identity/, gossip.key,
	// chaos.key); default <manifest folder>/.shoal.
	Secrets string
}

// DefaultGossipPort is the supervisor's gossip port off loopback:
// memberlist's usual port, so a seed can be given as host:7946.
const DefaultGossipPort = 7946

// peerPS is the peer API's path: this supervisor's own instances.
const peerPS = "/v1/peer/ps"

// peerTimeout bounds a call to another host's supervisor.
const peerTimeout = 3 * time.Second

// host is this supervisor's place in the network, checked.
type host struct {
	bind, advertise string
	gossipPort      int
	join            []string
}

// newHost checks o, naming the offending option and value.
func newHost(o HostOptions, m *Manifest) (host, error) {
	h := host{bind: o.Bind, advertise: o.Advertise, gossipPort: o.GossipPort, join: o.Join}
	if h.bind == "" {
		h.bind = "127.0.0.1"
	}
	bip := net.ParseIP(h.bind)
	if bip == nil {
		return h, fmt.Errorf("supervisor: bind address %q is not an IP address", o.Bind)
	}
	if h.advertise == "" {
		if bip.IsUnspecified() {
			return h, fmt.Errorf("supervisor: bind address %s listens on every interface: give the address the other hosts reach this one at (advertise)", h.bind)
		}
		h.advertise = h.bind
	}
	if aip := net.ParseIP(h.advertise); aip == nil || aip.IsUnspecified() {
		return h, fmt.Errorf("supervisor: advertise address %q is not an IP address the other hosts can reach", o.Advertise)
	}
	if h.gossipPort < 0 || h.gossipPort > 65535 {
		return h, fmt.Errorf("supervisor: gossip port %d: want 0 to 65535", o.GossipPort)
	}
	if h.gossipPort == 0 && h.multi() {
		h.gossipPort = DefaultGossipPort
	}
	for _, j := range o.Join {
		hp, port, err := net.SplitHostPort(j)
		if err == nil && hp == "" {
			err = errors.New("missing host")
		}
		if err == nil {
			if n, perr := strconv.Atoi(port); perr != nil || n < 1 || n > 65535 {
				err = fmt.Errorf("port %q is not 1-65535", port)
			}
		}
		if err != nil {
			return h, fmt.Errorf("supervisor: join address %q: want host:port, the gossip address another host's shoal up printed (%v)", j, err)
		}
	}
	for _, name := range o.Only {
		if !slices.ContainsFunc(m.Services, func(s *ServiceSpec) bool { return s != nil && s.Name == name }) {
			names := make([]string, 0, len(m.Services))
			for _, s := range m.Services {
				names = append(names, s.Name)
			}
			return h, fmt.Errorf("supervisor: only: no service %q in %s; services: %s", name, m.Path, strings.Join(names, ", "))
		}
	}
	return h, nil
}

// multi reports whether instances are reachable from other hosts.
func (h host) multi() bool { return !net.ParseIP(h.advertise).IsLoopback() }

// listen is the address to bind port on.
func (h host) listen(port int) string { return net.JoinHostPort(h.bind, strconv.Itoa(port)) }

// addr is the address other hosts call port at.
func (h host) addr(port int) string { return net.JoinHostPort(h.advertise, strconv.Itoa(port)) }

// local is the address this host's supervisor probes port at.
func (h host) local(port int) string {
	if net.ParseIP(h.bind).IsUnspecified() {
		return net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	}
	return h.listen(port)
}

// gossip is the discovery preset of the supervisor's members on this host,
// bound to port: loopback timings on one machine, LAN ones across hosts.
func (h host) gossip(port int) discovery.Config {
	if !h.multi() {
		cfg := discovery.LocalConfig()
		cfg.BindAddr = h.listen(port)
		return cfg
	}
	cfg := discovery.DefaultConfig()
	cfg.BindAddr = h.listen(port)
	if h.advertise != h.bind {
		cfg.AdvertiseAddr = h.addr(port)
	}
	return cfg
}

// instanceEnv is what an instance is told of the network: where to listen
// and gossip, what to advertise, which seeds to join.
func (h host) instanceEnv(port int, seed string) []string {
	env := []string{
		shoal.EnvAddr + "=" + h.listen(port),
		shoal.EnvGossipAddr + "=" + h.listen(0),
		shoal.EnvSeeds + "=" + strings.Join(append([]string{seed}, h.join...), ","),
	}
	if h.advertise != h.bind {
		env = append(env,
			shoal.EnvAdvertiseAddr+"="+h.addr(port),
			shoal.EnvGossipAdvertiseAddr+"="+h.addr(0))
	}
	return env
}

// hostName is the HOST of ps rows: the advertised IP when the system spans
// hosts, "" on one machine.
func (h host) hostName() string {
	if h.multi() {
		return h.advertise
	}
	return ""
}

// PeerError is a host whose supervisor did not answer a ps.
type PeerError struct {
	Host  string `json:"host"`
	Error string `json:"error"`
}

// servePeer serves the peer API on ln until the returned stop is called.
func (s *Supervisor) servePeer(ln net.Listener) (stop func()) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+peerPS, func(w http.ResponseWriter, r *http.Request) {
		shoal.WriteJSON(w, http.StatusOK, map[string]any{"instances": s.ps()})
	})
	srv := &http.Server{
		ReadHeaderTimeout: 5 * time.Second,
		TLSConfig:         identity.ServerConfig(s.keys.self),
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			// A caller is trusted because its certificate verifies as
			// the system's supervisor, never for where it calls from.
			if id, err := identity.PeerFromRequest(r); err != nil || id.Service != SupervisorService {
				shoal.WriteError(w, http.StatusForbidden, identity.CodeForbidden, "only the system's supervisors may call this")
				return
			}
			mux.ServeHTTP(w, r)
		}),
	}
	done := make(chan struct{})
	go func() { // owned by the returned stop
		defer close(done)
		_ = srv.ServeTLS(ln, "", "")
	}()
	return func() {
		srv.Close()
		<-done
	}
}

// otherSupervisors are the supervisors of the other hosts in this one's
// gossip catalog: none until it has joined them.
func (s *Supervisor) otherSupervisors() []discovery.Instance {
	var peers []discovery.Instance
	for _, in := range s.seed.Catalog().Instances(SupervisorService) {
		if in.ID != s.seed.Self().ID {
			peers = append(peers, in)
		}
	}
	return peers
}

// notJoined is what the console says when a host started with --join has
// reached no other host by the time its instances serve: without it the
// host would look healthy while being a system of its own (a wrong gossip
// key, a firewall, the seeds not started yet).
func (s *Supervisor) notJoined() string {
	if len(s.host.join) == 0 || len(s.otherSupervisors()) > 0 {
		return ""
	}
	return fmt.Sprintf("gossip: WARNING: not joined to %s yet, still trying in the background: check that shoal up runs there, "+
		"that TCP and UDP reach its gossip port, and that this host's gossip.key is a copy of that host's "+
		"(shoal up -v logs why each attempt failed; shoal ps lists the other hosts once joined)", strings.Join(s.host.join, ", "))
}

// psAll is ps of every host: this supervisor's instances and those of
// every other supervisor in its catalog, asked in parallel; the hosts that
// did not answer are listed apart.
func (s *Supervisor) psAll(ctx context.Context) ([]InstanceStatus, []PeerError) {
	all := s.ps()
	peers := s.otherSupervisors()
	if len(peers) == 0 {
		return all, nil
	}
	client := &http.Client{Timeout: peerTimeout, Transport: &http.Transport{
		DialTLSContext: identity.NewDialer(s.keys.self, nil).ForService(SupervisorService), DisableKeepAlives: true}}
	var mu sync.Mutex
	var failed []PeerError
	var wg sync.WaitGroup
	for _, p := range peers {
		wg.Go(func() {
			st, err := peerStatus(ctx, client, p.Addr)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				h, _, _ := net.SplitHostPort(p.Addr)
				failed = append(failed, PeerError{Host: h, Error: err.Error()})
				return
			}
			all = append(all, st...)
		})
	}
	wg.Wait()
	slices.SortStableFunc(all, func(a, b InstanceStatus) int {
		return strings.Compare(a.Host, b.Host)
	})
	slices.SortFunc(failed, func(a, b PeerError) int { return strings.Compare(a.Host, b.Host) })
	return all, failed
}

// peerStatus asks the supervisor whose peer API is at addr for its
// instances.
func peerStatus(ctx context.Context, c *http.Client, addr string) ([]InstanceStatus, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+addr+peerPS, nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s answered %s", addr, resp.Status)
	}
	var out struct {
		Instances []InstanceStatus `json:"instances"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return nil, fmt.Errorf("%s: %w", addr, err)
	}
	return out.Instances, nil
}

// runs reports whether this supervisor runs the service named name.
func runs(only []string, name string) bool { return len(only) == 0 || slices.Contains(only, name) }
