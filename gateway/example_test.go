package gateway_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"

	"github.com/shoal-dev/shoal/client"
	"github.com/shoal-dev/shoal/discovery"
	"github.com/shoal-dev/shoal/gateway"
)

func Example() {
	users := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "users served %s?%s\n", r.URL.Path, r.URL.RawQuery)
	}))
	defer users.Close()

	// A static catalog for the example; a gateway service uses its own
	// (shoal.Service is a client.Resolver) and Service.Transport().
	catalog := discovery.NewCatalog()
	catalog.Upsert(discovery.Instance{ID: "users-1", Service: "users", Addr: users.Listener.Addr().String(), State: discovery.StateServing})
	tr, err := client.New(catalog, client.Config{})
	if err != nil {
		panic(err)
	}
	defer tr.CloseIdleConnections()
	front := httptest.NewServer(gateway.New(catalog, tr))
	defer front.Close()

	for _, path := range []string{"/users/profile/42?fields=name", "/billing/invoices", "/users/healthz", "/"} {
		resp, err := http.Get(front.URL + path)
		if err != nil {
			panic(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		fmt.Printf("%d %s", resp.StatusCode, body)
	}
	// Output:
	// 200 users served /profile/42?fields=name
	// 404 {"error":{"code":"unknown_service","message":"no service named \"billing\""}}
	// 404 {"error":{"code":"not_found","message":"/healthz is an admin path of service \"users\" and is not served through the gateway"}}
	// 404 {"error":{"code":"no_route","message":"request paths have the form /<service>/<path>, e.g. /catalog/titles/1"}}
}

// Routes configured on a gateway: a path prefix rewritten for the service,
// and /<service>/<path> switched off.
func ExampleGateway_SetConfig() {
	titles := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "catalog served %s %s\n", r.Method, r.URL.Path)
	}))
	defer titles.Close()
	catalog := discovery.NewCatalog()
	catalog.Upsert(discovery.Instance{ID: "catalog-1", Service: "catalog", Addr: titles.Listener.Addr().String(), State: discovery.StateServing})
	tr, err := client.New(catalog, client.Config{})
	if err != nil {
		panic(err)
	}
	defer tr.CloseIdleConnections()
	gw := gateway.New(catalog, tr)
	noDefault := false
	err = gw.SetConfig(&gateway.Config{
		DefaultRoutes: &noDefault,
		Routes: []gateway.Route{
			{Path: "/v1/titles/", Service: "catalog", Rewrite: "/titles/", Methods: []string{"GET"}},
		},
	}, ".")
	if err != nil {
		panic(err)
	}
	front := httptest.NewServer(gw)
	defer front.Close()

	for _, req := range []struct{ method, path string }{
		{"GET", "/v1/titles/42"}, {"DELETE", "/v1/titles/42"}, {"GET", "/catalog/titles/42"},
	} {
		r, _ := http.NewRequest(req.method, front.URL+req.path, nil)
		resp, err := http.DefaultClient.Do(r)
		if err != nil {
			panic(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		fmt.Printf("%d %s", resp.StatusCode, body)
	}
	// Output:
	// 200 catalog served GET /titles/42
	// 405 {"error":{"code":"method_not_allowed","message":"DELETE is not allowed on /v1/titles/42; use GET"}}
	// 404 {"error":{"code":"no_route","message":"no route for /catalog/titles/42"}}
}
