package shoal

import (
	"cmp"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/shoal-dev/shoal/client"
	"github.com/shoal-dev/shoal/discovery"
	"github.com/shoal-dev/shoal/identity"
	"github.com/shoal-dev/shoal/resilience"
	"github.com/shoal-dev/shoal/telemetry"
)

// Service is one instance of a service: the user's handler plus discovery,
// admin endpoints and graceful drain. Create it with New and start it with
// Run; a Service runs once.
type Service struct {
	cfg     Config
	handler http.Handler
	cert    *tls.Certificate // serve HTTPS with it; nil for plain HTTP
	id      serviceIdentity  // zero without an identity
	log     *slog.Logger
	client  *client.Transport
	admit   *resilience.Limiter // admission control before the user's handler
	faults  *faultHop           // request-scoped faults, before admission
	metrics *telemetry.Metrics
	tracing *telemetry.Tracing // nil: no spans
	// public serves every non-admin request: serve, inside the request's
	// ID and trace, inside the RED metrics.
	public         http.Handler
	metricsHandler http.Handler
	admin          http.Handler // the admin listener's

	member   atomic.Pointer[discovery.Member] // set while Run has joined gossip
	addr     atomic.Pointer[string]           // advertised HTTP address, once listening
	adminAt  atomic.Pointer[string]           // admin listener's address, once listening
	ready    chan struct{}                    // closed once serving
	draining atomic.Bool
	requests atomic.Uint64 // handled by the user's handler
	started  time.Time     // set by New
	ran      atomic.Bool

	prepMu    sync.Mutex
	prepares  []func(context.Context) error // run by Run before it listens
	deps      []string                      // the services it calls: readiness waits for them
	depsFound atomic.Bool                   // every one seen in discovery, or the wait is over
	workers   workers                       // started by Go
}

// New checks cfg and returns a Service that will serve h. It does no I/O
// but reading the TLS certificate and key and the identity files, if cfg
// names them: a bad pair is a configuration error, reported before
// anything starts.
func New(cfg Config, h http.Handler) (*Service, error) {
	if h == nil {
		return nil, errors.New("shoal: nil handler")
	}
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("shoal: config: %w", err)
	}
	cert, err := cfg.keyPair() // read again: Validate keeps nothing
	if err != nil {
		return nil, fmt.Errorf("shoal: config: %w", err)
	}
	tracing := telemetry.TracingWith(cfg.TracerProvider)
	if cfg.TracerProvider == nil {
		if tracing, err = telemetry.NewTracing(cfg.Name, cfg.ID, cfg.Version); err != nil {
			return nil, fmt.Errorf("shoal: config: %w", err)
		}
	}
	if cfg.Client.TracerProvider == nil {
		cfg.Client.TracerProvider = tracing.Provider()
	}
	s := &Service{
		cfg:     cfg,
		handler: h,
		cert:    cert,
		log:     cfg.Logger.With("service", cfg.Name, "instance", cfg.ID),
		admit:   resilience.NewLimiter(cfg.Admission), // Validate checked the config
		ready:   make(chan struct{}),
		started: time.Now(),
		deps:    dependencies(cfg),
		tracing: tracing,
	}
	s.workers.log = s.log
	if s.id, err = loadIdentity(cfg); err != nil {
		return nil, fmt.Errorf("shoal: %w", err)
	}
	if s.id.src != nil {
		cfg.Client.TLS = identity.NewDialer(s.id.src, nil)
		cfg.Client.Plaintext = cfg.Identity.Plaintext
	}
	tr, err := client.New(s, cfg.Client)
	if err != nil {
		return nil, fmt.Errorf("shoal: %w", err)
	}
	s.client = tr
	s.metrics = telemetry.New(cfg.Name, cfg.ID)
	s.metrics.AddDependencies(tr)
	s.metrics.AddLimiter(s)
	s.metrics.Registry().MustRegister(s.workers.collectors()...)
	if s.faults, err = newFaultHop(cfg, s.metrics.Registry(), s.log); err != nil {
		return nil, fmt.Errorf("shoal: config: fault_key: %w", err)
	}
	var serve http.Handler = http.HandlerFunc(s.serve)
	if s.id.guard != nil {
		// Before admission: a request that may not be here takes no slot.
		serve = s.id.guard.Wrap(serve)
	}
	s.public = s.metrics.Middleware(tracing.Middleware(serve))
	s.metricsHandler = s.metrics.Handler()
	s.admin = s.adminHandler()
	return s, nil
}

// Client returns an http.Client that calls other services by name
// (http://<service>/path) through this instance's view of discovery.
func (s *Service) Client() *http.Client { return s.client.Client() }

// Transport returns the resilient transport behind Client.
func (s *Service) Transport() *client.Transport { return s.client }

// Ready is closed once the instance serves HTTP and its gossip member is up.
// Joining the seeds may still be under way (it is retried in the
// background), so peers may not see the instance yet.
func (s *Service) Ready() <-chan struct{} { return s.ready }

// Addr returns the advertised HTTP address; "" before Ready.
func (s *Service) Addr() string {
	if p := s.addr.Load(); p != nil {
		return *p
	}
	return ""
}

// AdminAddr returns the address the admin endpoints listen on; "" until
// Run has bound it.
func (s *Service) AdminAddr() string {
	if p := s.adminAt.Load(); p != nil {
		return *p
	}
	return ""
}

// Catalog returns this instance's view of discovery; nil before Ready.
func (s *Service) Catalog() *discovery.Catalog {
	if m := s.member.Load(); m != nil {
		return m.Catalog()
	}
	return nil
}

// Instances lists the instances of service this instance knows of (none
// before Ready). It makes a Service a client.Resolver: it never blocks.
func (s *Service) Instances(service string) []discovery.Instance {
	if m := s.member.Load(); m != nil {
		return m.Catalog().Instances(service)
	}
	return nil
}

// Run serves until ctx ends, then drains gracefully (see the package doc).
// It returns nil after a clean drain, or the error that stopped it.
func (s *Service) Run(ctx context.Context) error {
	if !s.ran.CompareAndSwap(false, true) {
		return errors.New("shoal: Service.Run called twice")
	}
	s.tracing.Start()
	// The drain flushes the spans within its own time; this is for the
	// ways out before it, where nothing waits.
	defer func() { s.flushSpans(time.Now().Add(time.Second)) }()
	if err := s.prepare(ctx); err != nil || ctx.Err() != nil {
		return err // nil if stopped while preparing
	}
	ln, err := s.listen()
	if err != nil {
		return err
	}
	defer ln.Close()
	// The admin listener answers from now until Run returns: probes see
	// "starting", then "ready", then "draining" until the very end.
	stopAdmin, err := s.serveAdmin()
	if err != nil {
		return err
	}
	defer stopAdmin()
	if s.id.src != nil {
		// Renewed certificates and a rotated CA are picked up while the
		// instance serves, the drain included.
		sctx, stopSource := context.WithCancel(context.WithoutCancel(ctx))
		sourceDone := make(chan struct{})
		go func() { // owned by Run: ends with stopSource
			defer close(sourceDone)
			_ = s.id.src.Run(sctx)
		}()
		defer func() {
			stopSource()
			<-sourceDone
		}()
	}
	s.warnPlaintext()

	gossip, err := s.gossipConfig()
	if err != nil {
		return err
	}
	self := discovery.Instance{
		ID: s.cfg.ID, Service: s.cfg.Name, Version: s.cfg.Version, State: discovery.StateServing,
		Addr: advertise(s.cfg.AdvertiseAddr, ln.Addr().String(), cmp.Or(gossip.AdvertiseAddr, gossip.BindAddr)),
	}
	member, err := discovery.New(gossip, self)
	if err != nil {
		return fmt.Errorf("shoal: %w", err)
	}
	// Gossip outlives the HTTP server: it is left last, after the drain.
	gctx, stopGossip := context.WithCancel(context.WithoutCancel(ctx))
	defer stopGossip()
	gossipDone := make(chan error, 1)
	go func() { gossipDone <- member.Run(gctx) }()
	select {
	case <-member.Ready():
	case err := <-gossipDone:
		return fmt.Errorf("shoal: gossip: %w", err)
	}
	s.member.Store(member)
	s.addr.Store(&self.Addr)

	srv := s.newServer()
	srv.ConnState = ln.track
	serveDone := make(chan error, 1)
	var engine Engine // serves the listener with srv as its fallback
	if s.scheme() == "http" {
		engine = s.cfg.Engine
	}
	go func() {
		switch {
		case s.scheme() == "https":
			serveDone <- srv.ServeTLS(ln, "", "") // the certificate is in srv.TLSConfig
		case engine != nil:
			serveDone <- engine.Serve(ln, srv)
		default:
			serveDone <- srv.Serve(ln)
		}
	}()
	bgCtx, stopBackground := context.WithCancel(ctx)
	defer stopBackground()
	s.startBackground(bgCtx, member.Catalog())
	close(s.ready)
	s.log.Info("serving", "addr", self.Addr, "scheme", s.scheme(), "identity", s.describeIdentity(), "admin", s.AdminAddr(),
		"gossip", member.GossipAddr(), "seeds", s.cfg.Seeds,
		"ready_in", time.Since(s.started).Round(time.Microsecond).String())

	var runErr error
	select {
	case <-ctx.Done():
	case err := <-serveDone:
		runErr = fmt.Errorf("shoal: serve: %w", err)
	case err := <-gossipDone:
		gossipDone <- err // drain reads it again
		runErr = fmt.Errorf("shoal: gossip stopped: %w", err)
	}
	var server stopper = drainingServer{srv, ln}
	if engine != nil {
		server = engine // it tracks its own connections
	}
	if err := s.drain(server, member, stopGossip, gossipDone); err != nil && runErr == nil {
		runErr = err
	}
	return runErr
}

// stopper is what drain stops: the *http.Server, or the Engine serving in
// its place.
type stopper interface {
	Shutdown(ctx context.Context) error
	Close() error
}

// drainingServer is an *http.Server whose Shutdown first waits for the
// connections its listener accepted to send their requests (see listener).
type drainingServer struct {
	*http.Server
	ln *listener
}

func (d drainingServer) Shutdown(ctx context.Context) error { return d.ln.shutdown(ctx, d.Server) }

// drain is the shutdown sequence: draining in gossip and readiness, wait for
// peers to hear it, finish in-flight requests, leave gossip. All of it fits
// in DrainTimeout: the last slice is kept for the leave.
func (s *Service) drain(srv stopper, member *discovery.Member, stopGossip context.CancelFunc, gossipDone <-chan error) error {
	begin := time.Now()
	d := s.cfg.DrainTimeout
	ctx, cancel := context.WithDeadline(context.Background(), begin.Add(d-leaveSlice(d)))
	defer cancel()
	s.draining.Store(true)
	s.log.Info("draining", "timeout", d.String())

	// Peers hear it while this instance serves on, telling callers to drop
	// their connections (Connection: close), so that none is refused while
	// it still believes the instance serves.
	if err := member.Drain(ctx, d); err != nil {
		s.log.Warn("draining not confirmed by gossip", "err", err)
	}
	warned := time.Since(begin)

	var drainErr error
	if err := srv.Shutdown(ctx); err != nil {
		drainErr = fmt.Errorf("shoal: drain timeout %v passed with requests in flight: %w", d, err)
		srv.Close()
	}
	// No request needs the workers any more; their last calls still reach
	// peers, as gossip is left after them.
	s.workers.stop(begin.Add(d - leaveSlice(d)))
	s.flushSpans(begin.Add(d - leaveSlice(d)))
	stopGossip()
	select {
	case <-gossipDone:
	case <-time.After(time.Until(begin.Add(d))):
		s.log.Warn("gossip leave did not finish within the drain timeout")
	}
	s.log.Info("stopped", "callers_warned_in", warned.Round(time.Millisecond).String(),
		"drained_in", time.Since(begin).Round(time.Millisecond).String())
	return drainErr
}

// flushSpans exports the spans not yet exported, by deadline at the
// latest, and stops exporting. Calls after the first do nothing.
func (s *Service) flushSpans(deadline time.Time) {
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	if err := s.tracing.Shutdown(ctx); err != nil {
		s.log.Warn("spans lost", "err", err)
	}
}

// leaveSlice is the part of drain timeout d kept for leaving gossip.
func leaveSlice(d time.Duration) time.Duration { return min(time.Second, d/5) }

func (s *Service) gossipConfig() (discovery.Config, error) {
	g := discovery.DefaultConfig()
	if s.cfg.GossipProfile == "local" {
		g = discovery.LocalConfig()
	}
	g.Profile = s.cfg.GossipProfile
	g.BindAddr = s.cfg.GossipAddr
	g.AdvertiseAddr = s.cfg.GossipAdvertiseAddr
	g.Seeds = s.cfg.Seeds
	g.LeaveTimeout = min(g.LeaveTimeout, leaveSlice(s.cfg.DrainTimeout))
	g.Logger = s.cfg.Logger.With("service", s.cfg.Name) // discovery adds the instance
	keys, err := discovery.KeysFromEnv(os.Getenv)
	if err != nil {
		return g, fmt.Errorf("shoal: %w", err)
	}
	g.Keys = keys
	if err := g.Validate(); err != nil {
		return g, fmt.Errorf("shoal: gossip: %w", err)
	}
	return g, nil
}

// advertise picks the address peers should call: the configured one, else
// the listen address, with an unspecified host replaced by gossip's
// (advertised, else bound) host.
func advertise(configured, listen, gossip string) string {
	if configured != "" {
		return configured
	}
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return listen
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsUnspecified() {
		return listen
	}
	ghost, _, err := net.SplitHostPort(gossip)
	if ip := net.ParseIP(ghost); err != nil || ip == nil || ip.IsUnspecified() {
		ghost = "127.0.0.1"
	}
	return net.JoinHostPort(ghost, port)
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func defaultLogger() *slog.Logger {
	return slog.New(slog.NewJSONHandler(os.Stderr, nil))
}
