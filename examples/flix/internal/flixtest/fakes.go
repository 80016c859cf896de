package flixtest

import (
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/shoal-dev/shoal"
	"github.com/shoal-dev/shoal/client"
	"github.com/shoal-dev/shoal/discovery"
	"github.com/shoal-dev/shoal/examples/flix/internal/profile"
)

// Refused stands for a service whose only instance drops every connection
// as soon as it is made, as a crashing process does.
var Refused http.Handler = refused{}

type refused struct{}

func (refused) ServeHTTP(http.ResponseWriter, *http.Request) { panic("flixtest.Refused is not served") }

// Upstream stands for a service already serving at a base URL
// (http://127.0.0.1:port).
type Upstream string

func (Upstream) ServeHTTP(http.ResponseWriter, *http.Request) {
	panic("flixtest.Upstream is not served")
}

// Client returns a client that calls the fakes by service name through the
// SDK's client transport (with cfg), as Service.Client does: each fake
// serves on a loopback port of its own, listed in a static discovery
// catalog. A nil fake, like a missing one, is a service with no instance.
func Client(tb testing.TB, cfg client.Config, fakes map[string]http.Handler) *http.Client {
	tb.Helper()
	cat := discovery.NewCatalog()
	for name, h := range fakes {
		var addr string
		switch h := h.(type) {
		case nil:
			continue
		case refused:
			addr = dropping(tb)
		case Upstream:
			u, err := url.Parse(string(h))
			if err != nil {
				tb.Fatal(err)
			}
			addr = u.Host
		default:
			srv := httptest.NewServer(h)
			tb.Cleanup(srv.Close)
			addr = srv.Listener.Addr().String()
		}
		cat.Upsert(discovery.Instance{ID: name + "-1", Service: name, Addr: addr, State: discovery.StateServing})
	}
	tr, err := client.New(cat, cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(tr.CloseIdleConnections)
	return tr.Client()
}

// dropping listens on a loopback port until tb ends and closes every
// connection at once. The listener stays open: a port closed to be
// "free" may be taken by another test's server meanwhile.
func dropping(tb testing.TB) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	done := make(chan struct{})
	go func() { // owned by the test: ends when the listener is closed at cleanup
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return // closed at cleanup
			}
			c.(*net.TCPConn).SetLinger(0) // a reset, not a polite close
			c.Close()
		}
	}()
	tb.Cleanup(func() {
		ln.Close()
		<-done
	})
	return ln.Addr().String()
}

// Profiles fakes the profiles service's GET /profiles/{id}, as the dataset
// has them: p0001, p0002 and p0003 are adults, p0010 a kids profile, p0020
// a teen; other ids do not exist (404).
var Profiles http.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	adult := []string{"all", "teen", "adult"}
	rights := map[string]profile.Rights{
		"p0001": {Maturity: "adult", MayWatch: adult}, "p0002": {Maturity: "adult", MayWatch: adult},
		"p0003": {Maturity: "adult", MayWatch: adult}, "p0010": {Maturity: "kids", MayWatch: []string{"all"}},
		"p0020": {Maturity: "teen", MayWatch: []string{"all", "teen"}},
	}
	id, found := strings.CutPrefix(r.URL.Path, "/profiles/")
	rt, known := rights[id]
	switch {
	case r.Method != http.MethodGet || !found || !known:
		shoal.WriteError(w, http.StatusNotFound, "not_found", "no profile "+id)
	default:
		shoal.WriteJSON(w, http.StatusOK, map[string]any{"id": id, "account": 1, "name": "Someone",
			"maturity": rt.Maturity, "may_watch": rt.MayWatch})
	}
})
