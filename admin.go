package shoal

import (
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"
)

// The admin listener serves what operators and the platform ask of an
// instance, apart from what callers ask of the service: health, readiness,
// information, metrics and profiles. It is its own socket (Config.AdminAddr,
// loopback by default) so that none of it is reachable where the service
// is: the service's listener may face other hosts (and, at the edge, the
// Internet), and requires mutual TLS with an identity, which probes and
// Prometheus cannot present. The admin listener is plain HTTP and asks
// for no credentials, which is why it stays on loopback unless told
// otherwise.

// PathPprof is the prefix of net/http/pprof's handlers on the admin
// listener: go tool pprof http://<admin>/debug/pprof/profile.
const PathPprof = "/debug/pprof/"

// adminHandler answers the admin paths and 404 for anything else.
func (s *Service) adminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+PathHealth, func(w http.ResponseWriter, _ *http.Request) {
		WriteJSON(w, http.StatusOK, map[string]string{"status": "alive"})
	})
	mux.HandleFunc("GET "+PathReady, func(w http.ResponseWriter, _ *http.Request) {
		status, rd := s.readiness()
		WriteJSON(w, status, rd)
	})
	mux.HandleFunc("GET "+PathInfo, func(w http.ResponseWriter, _ *http.Request) {
		WriteJSON(w, http.StatusOK, s.Info())
	})
	mux.Handle("GET "+PathMetrics, s.metricsHandler)
	mux.HandleFunc(PathPprof, pprof.Index) // the named profiles: heap, goroutine, block...
	mux.HandleFunc(PathPprof+"cmdline", pprof.Cmdline)
	mux.HandleFunc(PathPprof+"profile", pprof.Profile)
	mux.HandleFunc(PathPprof+"symbol", pprof.Symbol)
	mux.HandleFunc(PathPprof+"trace", pprof.Trace)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		WriteError(w, http.StatusNotFound, "not_found", "the admin listener serves "+PathHealth+", "+PathReady+", "+
			PathInfo+", "+PathMetrics+" and "+PathPprof)
	})
	return mux
}

// serveAdmin listens on Config.AdminAddr and serves the admin paths until
// the returned stop is called (Run calls it as it returns). Its serving
// goroutine is owned by Run through stop.
func (s *Service) serveAdmin() (stop func(), err error) {
	ln, err := net.Listen("tcp", s.cfg.AdminAddr)
	if err != nil {
		return nil, fmt.Errorf("shoal: admin listener on %s: %w", s.cfg.AdminAddr, err)
	}
	addr := ln.Addr().String()
	s.adminAt.Store(&addr)
	srv := &http.Server{
		Handler:           s.admin,
		ReadHeaderTimeout: s.cfg.ReadHeaderTimeout,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    s.cfg.MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	done := make(chan struct{})
	go func() { // owned by Run: ends once stop closes the server
		defer close(done)
		_ = srv.Serve(ln)
	}()
	return func() {
		srv.Close()
		<-done
	}, nil
}
