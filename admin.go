package shoal

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"strconv"
	"time"

	"github.com/shoal-dev/shoal/chaos"
	"github.com/shoal-dev/shoal/internal/bearer"
)

// The admin listener serves what operators and the platform ask of an
// instance, apart from what callers ask of the service: health, readiness,
// information, metrics and profiles. It is its own socket (Config.AdminAddr,
// loopback by default) so that none of it is reachable where the service
// is: the service's listener may face other hosts (and, at the edge, the
// Internet), and requires mutual TLS with an identity, which probes and
// Prometheus cannot present. The admin listener is plain HTTP. Health,
// readiness, information and metrics ask for no credentials (probes and
// Prometheus have none to give); they say how the instance is, nothing of
// what it holds. Profiles are another matter: a goroutine dump or a trace
// shows the program's insides, and a CPU profile or trace costs the
// instance for as long as the caller asks. The admin listener may face a
// network (in Kubernetes it listens on the pod's address, for the
// kubelet's probes), so profiles answer only a bearer of a profile token
// signed with the operator's key (chaos.Signer.Profile; shoal profile
// signs one), never a caller trusted for where it connects from.

// PathPprof is the prefix of net/http/pprof's handlers on the admin
// listener, for a bearer of a profile token (shoal profile fetches them).
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
	for path, h := range map[string]http.HandlerFunc{
		PathPprof:             pprof.Index, // the named profiles: heap, goroutine, block...
		PathPprof + "cmdline": pprof.Cmdline,
		PathPprof + "profile": pprof.Profile,
		PathPprof + "symbol":  pprof.Symbol,
		PathPprof + "trace":   pprof.Trace,
	} {
		mux.Handle(path, s.operatorOnly(h))
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		WriteError(w, http.StatusNotFound, "not_found", "the admin listener serves "+PathHealth+", "+PathReady+", "+
			PathInfo+", "+PathMetrics+" and "+PathPprof)
	})
	return mux
}

// operatorOnly serves h to a request bearing a profile token for this
// service, signed with the operator's key (Authorization: Bearer), and
// refuses any other: 401 for a missing or invalid token, 403 when the
// instance has no operator key to check one with, 400 for a profile
// (?seconds=) that would outlast the token: what a token allows ends with
// it.
func (s *Service) operatorOnly(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok := bearer.Token(r)
		expires, err := s.faults.verifier.VerifyProfile(tok)
		switch {
		case errors.Is(err, chaos.ErrNoKey):
			WriteError(w, http.StatusForbidden, "forbidden", "profiles need a token signed with the operator's key, "+
				"and this instance has no key to check one with ("+EnvFaultKey+"; shoal up sets it)")
		case err != nil && tok == "":
			w.Header().Set("WWW-Authenticate", `Bearer realm="shoal-operator"`)
			WriteError(w, http.StatusUnauthorized, "unauthorized", "profiles need a profile token signed with the operator's key "+
				"(Authorization: Bearer): shoal profile signs one")
		case err != nil:
			w.Header().Set("WWW-Authenticate", `Bearer realm="shoal-operator", error="invalid_token"`)
			WriteError(w, http.StatusUnauthorized, "unauthorized", err.Error())
		default:
			if sec, err := strconv.Atoi(r.URL.Query().Get("seconds")); err == nil && time.Duration(sec)*time.Second > time.Until(expires) {
				WriteError(w, http.StatusBadRequest, "bad_request", fmt.Sprintf("seconds=%d outlasts the token, which expires in %v",
					sec, time.Until(expires).Round(time.Second)))
				return
			}
			h.ServeHTTP(w, r)
		}
	})
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
