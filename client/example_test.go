package client_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/shoal-dev/shoal/client"
	"github.com/shoal-dev/shoal/discovery"
)

func ExampleTransport() {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s served %s", r.Host, r.URL.Path)
	}))
	defer srv.Close()

	// A static catalog for the example; services use discovery's.
	catalog := discovery.NewCatalog()
	catalog.Upsert(discovery.Instance{ID: "users-1", Service: "users", Addr: srv.Listener.Addr().String(), State: discovery.StateServing})

	tr, err := client.New(catalog, client.Config{})
	if err != nil {
		panic(err)
	}
	resp, err := tr.Client().Get("http://users/profile/42")
	if err != nil {
		panic(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	fmt.Println(resp.StatusCode, strings.TrimSpace(string(body)))

	_, err = tr.Client().Get("http://billing/invoices")
	fmt.Println(err)
	// Output:
	// 200 users served /profile/42
	// Get "http://billing/invoices": service "billing": no instances known
}
