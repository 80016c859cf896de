package shoal

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/shoal-dev/shoal/client"
	"github.com/shoal-dev/shoal/identity"
	"github.com/shoal-dev/shoal/internal/statuswriter"
	"github.com/shoal-dev/shoal/resilience"
	"github.com/shoal-dev/shoal/telemetry"
)

// Admin paths, served on the admin listener (Config.AdminAddr), never on
// the service's own.
const (
	PathHealth = "/healthz"
	PathReady  = "/readyz"
	PathInfo   = "/infoz"
	// PathMetrics serves Prometheus metrics: the RED metrics of the
	// service's handler and the state of every resilience policy.
	PathMetrics = "/metrics"
)

// RequestIDHeader carries the request's ID from caller to callee and back.
const RequestIDHeader = client.RequestIDHeader

// newServer returns the HTTP server with timeouts that make slow or idle
// clients harmless. There is no WriteTimeout: handlers are bounded by the
// caller's deadline instead, and streaming responses (server-sent events,
// upgraded connections, which the server stops timing once hijacked) must
// stay possible.
//
// It speaks HTTP/1.1, plus HTTP/2 over TLS (ALPN) with a certificate, and
// HTTP/2 without TLS (prior knowledge) with H2C.
func (s *Service) newServer() *http.Server {
	srv := &http.Server{
		Handler:           s,
		ReadHeaderTimeout: s.cfg.ReadHeaderTimeout,
		ReadTimeout:       max(60*time.Second, s.cfg.ReadHeaderTimeout),
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    s.cfg.MaxHeaderBytes,
		Protocols:         new(http.Protocols),
		// The server's own complaints (TLS handshakes from scanners,
		// handler panics) go to the service's log, as JSON like the rest.
		ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	srv.Protocols.SetHTTP1(true)
	srv.Protocols.SetUnencryptedHTTP2(s.cfg.H2C)
	switch {
	case s.id.guard != nil:
		// Mutual TLS between services: HTTP/1.1 (see identity.ServerConfig).
		srv.TLSConfig = identity.ServerConfig(s.id.src)
	case s.cert != nil:
		srv.Protocols.SetHTTP2(true)
		srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{*s.cert}, MinVersion: tls.VersionTLS12}
	}
	return srv
}

// scheme is the URL scheme clients use to reach the instance: https with
// an identity (mutual TLS; the edge's only with its own certificate).
func (s *Service) scheme() string {
	if s.cert != nil || s.id.guard != nil {
		return "https"
	}
	return "http"
}

// ServeHTTP serves the instance's listener: through the Guard, if the
// instance has an identity, and, if admission control lets it in, to the
// user's handler with the caller's deadline on its context. The admin
// paths are not here: they are the admin listener's (see Config.AdminAddr).
func (s *Service) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.public.ServeHTTP(w, r)
}

// serve is the path of every request but the admin ones, inside the RED
// metrics and the request's ID and trace (see New).
func (s *Service) serve(w http.ResponseWriter, r *http.Request) {
	if s.draining.Load() {
		// Ask the caller not to reuse this connection: it moves to another
		// instance before this one closes its listener.
		w.Header().Set("Connection", "close")
	}
	if v := r.Header.Get(client.TimeoutHeader); v != "" {
		// Before admission: a request waits for a slot only while its
		// deadline allows.
		ctx, cancel := client.WithTimeoutHeader(r.Context(), v)
		defer cancel()
		r = r.WithContext(ctx)
	}
	if r = s.faults.apply(w, r); r == nil {
		return // a fault answered
	}
	permit, ok := s.admit.Acquire(r.Context())
	if !ok {
		s.reject(w)
		return
	}
	s.requests.Add(1)
	if wantsStream(r) {
		s.serveStream(w, r, permit)
		return
	}
	// Deferred after cancel, so it runs first and sees why the request
	// ended.
	defer endPermit(r.Context(), &permit)
	sw, ok := w.(*statuswriter.Writer) // the metrics middleware's, normally
	if !ok {
		sw = &statuswriter.Writer{ResponseWriter: w}
	}
	s.handler.ServeHTTP(sw, r)
	if sw.Code == 0 && errors.Is(r.Context().Err(), context.DeadlineExceeded) {
		// The handler gave up on the caller's deadline without a word:
		// net/http would send an empty 200, which a caller whose own
		// timer has not fired yet would take for the answer.
		WriteError(sw, http.StatusGatewayTimeout, "timeout", "the request's deadline passed before the handler answered")
	}
	if code := sw.Status(); code >= 500 && !sw.Logged && !telemetry.CallerGone(r) {
		// One line per failure a caller saw, in its trace (the log
		// handler adds trace_id and request_id): unless the code that
		// answered said why already (WriteUnavailable, the gateway).
		s.log.WarnContext(r.Context(), "request failed", "method", r.Method, "route", sw.Route, "path", r.URL.Path, "status", code)
	}
}

// wantsStream reports whether r asks for a response that lasts as long as the
// client wants: a protocol upgrade (WebSocket) or server-sent events
// (EventSource sends Accept: text/event-stream).
func wantsStream(r *http.Request) bool {
	return r.Header.Get("Upgrade") != "" || strings.Contains(r.Header.Get("Accept"), "text/event-stream")
}

// reject answers a request admission control refused: over the concurrency
// limit with no time to wait for a slot (its deadline would pass first, or
// the instance is overloaded). 503, unprocessed, with Retry-After, so that
// the caller tries another instance rather than waiting here.
func (s *Service) reject(w http.ResponseWriter) {
	w.Header().Set("Retry-After", "1")
	w.Header().Set(client.RejectedHeader, "overloaded")
	WriteError(w, http.StatusServiceUnavailable, "overloaded",
		"instance at its concurrency limit of "+strconv.Itoa(s.admit.Stats().Limit)+
			" requests, and no slot would free in time for this one; retry on another instance")
}

// endPermit gives an admitted request's permit back. A request its caller
// cancelled (hung up, or a hedge that lost) ran for a length of time that says
// nothing about load, so it is dropped; every other one, a handler that ran
// out its deadline included, is a latency sample for the limit.
func endPermit(ctx context.Context, p *resilience.Permit) {
	if errors.Is(ctx.Err(), context.Canceled) {
		p.Drop()
		return
	}
	p.Record()
}

// Admission reports the admission control limit and counts.
func (s *Service) Admission() resilience.LimiterStats { return s.admit.Stats() }

// Info is what /infoz reports.
type Info struct {
	Name     string         `json:"name"`
	Instance string         `json:"instance"`
	Version  string         `json:"version,omitempty"`
	Addr     string         `json:"addr"`
	Scheme   string         `json:"scheme"`             // https with an identity or a TLS certificate, else http
	Identity string         `json:"identity,omitempty"` // spiffe://<system>/<service>; empty without one
	Admin    string         `json:"admin"`              // the admin listener's address
	Gossip   string         `json:"gossip"`
	State    string         `json:"state"`
	Started  time.Time      `json:"started"`
	Uptime   string         `json:"uptime"`
	Members  int            `json:"members"`
	Requests uint64         `json:"requests"` // handled by the service's handler since start
	Services map[string]int `json:"services"` // instances seen per service
	// Calls are the services this one declared it calls; Missing those of
	// them with no serving instance in its view of discovery.
	Calls   []string `json:"calls,omitempty"`
	Missing []string `json:"missing,omitempty"`

	Admission resilience.LimiterStats `json:"admission"` // the concurrency limit on the handler
	Workers   WorkerStats             `json:"workers"`   // background workers (Service.Go)
}

// Info describes this instance and what it sees of the system.
func (s *Service) Info() Info {
	in := Info{
		Name: s.cfg.Name, Instance: s.cfg.ID, Version: s.cfg.Version, Addr: s.Addr(), Scheme: s.scheme(), Admin: s.AdminAddr(),
		State: "serving", Started: s.started, Uptime: time.Since(s.started).Round(time.Second).String(),
		Requests: s.requests.Load(), Admission: s.admit.Stats(), Workers: s.workers.stats(),
		Services: map[string]int{}, Calls: s.deps,
	}
	if s.id.src != nil {
		in.Identity = s.id.src.Credentials().ID.String()
	}
	_, ready := s.readiness()
	in.State, in.Missing = ready.Status, ready.Missing
	if in.State == "ready" {
		in.State = "serving"
	}
	if m := s.member.Load(); m != nil {
		in.Gossip = m.GossipAddr()
		in.Members = m.NumMembers()
		for _, inst := range m.Catalog().Snapshot().All() {
			in.Services[inst.Service]++
		}
	}
	return in
}
