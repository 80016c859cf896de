package shoal

import (
	"math/rand/v2"
	"net/http"
	"time"

	"github.com/shoal-dev/shoal/client"
)

// Admin paths, served before the user's handler sees a request.
const (
	PathHealth = "/healthz"
	PathReady  = "/readyz"
	PathInfo   = "/infoz"
)

// RequestIDHeader carries the request's ID from caller to callee and back.
const RequestIDHeader = "X-Request-Id"

// newServer returns the HTTP server with timeouts that make slow or idle
// clients harmless. There is no WriteTimeout: handlers are bounded by the
// caller's deadline instead, and streaming responses must stay possible.
func (s *Service) newServer() *http.Server {
	return &http.Server{
		Handler:           s,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       60 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    1 << 20,
	}
}

// ServeHTTP answers the admin paths and hands everything else to the user's
// handler, with the caller's deadline on its context.
func (s *Service) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case PathHealth:
		WriteJSON(w, http.StatusOK, map[string]string{"status": "alive"})
		return
	case PathReady:
		if s.draining.Load() {
			WriteJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "draining"})
			return
		}
		WriteJSON(w, http.StatusOK, map[string]string{"status": "ready"})
		return
	case PathInfo:
		WriteJSON(w, http.StatusOK, s.Info())
		return
	}
	if s.draining.Load() {
		// Ask the caller not to reuse this connection: it moves to another
		// instance before this one closes its listener.
		w.Header().Set("Connection", "close")
	}
	id := r.Header.Get(RequestIDHeader)
	if id == "" {
		id = newRequestID()
		r.Header.Set(RequestIDHeader, id)
	}
	w.Header().Set(RequestIDHeader, id)
	s.requests.Add(1)
	if v := r.Header.Get(client.TimeoutHeader); v != "" {
		ctx, cancel := client.WithTimeoutHeader(r.Context(), v)
		defer cancel()
		r = r.WithContext(ctx)
	}
	s.handler.ServeHTTP(w, r)
}

// Info is what /infoz reports.
type Info struct {
	Name     string         `json:"name"`
	Instance string         `json:"instance"`
	Version  string         `json:"version,omitempty"`
	Addr     string         `json:"addr"`
	Gossip   string         `json:"gossip"`
	State    string         `json:"state"`
	Started  time.Time      `json:"started"`
	Uptime   string         `json:"uptime"`
	Members  int            `json:"members"`
	Requests uint64         `json:"requests"` // handled by the service's handler since start
	Services map[string]int `json:"services"` // instances seen per service
}

// Info describes this instance and what it sees of the system.
func (s *Service) Info() Info {
	in := Info{
		Name: s.cfg.Name, Instance: s.cfg.ID, Version: s.cfg.Version, Addr: s.Addr(),
		State: "serving", Started: s.started, Uptime: time.Since(s.started).Round(time.Second).String(),
		Requests: s.requests.Load(),
		Services: map[string]int{},
	}
	if s.draining.Load() {
		in.State = "draining"
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

// newRequestID returns 16 hex digits. A request ID correlates logs: it must
// be unique in practice, not unpredictable, so math/rand/v2 serves, without
// the system call crypto/rand may make on every request.
func newRequestID() string {
	const digits = "0123456789abcdef"
	var b [16]byte
	v := rand.Uint64()
	for i := len(b) - 1; i >= 0; i-- {
		b[i] = digits[v&15]
		v >>= 4
	}
	return string(b[:])
}
