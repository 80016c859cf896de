package shoal_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/shoal-dev/shoal"
)

// A service that greets, called by name through its own client. In a real
// program, main is shoal.Setup(cfg, &routes), the routes, then svc.Main().
func Example() {
	// The router goes to New first and gets its routes after: the
	// handlers may then use the service's client.
	var routes shoal.Router
	svc, err := shoal.New(shoal.Config{Name: "greeter", Logger: slog.New(slog.DiscardHandler)}, &routes)
	if err != nil {
		panic(err)
	}
	peers := svc.Client()
	routes.HandleFunc("GET /greet/{name}", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello, %s", r.PathValue("name"))
	})
	routes.HandleFunc("GET /relay/{name}", func(w http.ResponseWriter, r *http.Request) {
		resp, err := peers.Get("http://greeter/greet/" + r.PathValue("name"))
		if err != nil {
			shoal.WriteError(w, http.StatusBadGateway, "bad_gateway", err.Error())
			return
		}
		defer resp.Body.Close()
		io.Copy(w, resp.Body)
	})
	// A background worker: it ends when the drain ends its context.
	svc.Go("idle", func(ctx context.Context) error {
		<-ctx.Done()
		return nil
	})

	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- svc.Run(ctx) }()
	<-svc.Ready()

	resp, err := svc.Client().Get("http://greeter/relay/ada")
	if err != nil {
		panic(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Println(string(body))

	stop() // as SIGTERM would: drain, stop the workers, leave gossip, return
	fmt.Println("stopped:", <-done)
	// Output:
	// hello, ada
	// stopped: <nil>
}

// A Router answers what it does not route with JSON errors, and serves the
// OpenAPI document of its routes.
func ExampleRouter() {
	var rt shoal.Router
	rt.HandleFunc("GET /titles/{id}", func(w http.ResponseWriter, r *http.Request) {
		shoal.WriteJSON(w, http.StatusOK, map[string]string{"id": r.PathValue("id")})
	})
	rt.Describe("GET /titles/{id}", "One title", "")
	for _, req := range []string{"GET /titles/7", "DELETE /titles/7", "GET /nope"} {
		method, path, _ := strings.Cut(req, " ")
		w := httptest.NewRecorder()
		rt.ServeHTTP(w, httptest.NewRequest(method, path, nil))
		fmt.Println(w.Code, w.Header().Get("Allow"), strings.TrimSpace(w.Body.String()))
	}
	doc, _ := rt.Document()
	fmt.Println(string(doc))
	// Output:
	// 200  {"id":"7"}
	// 405 GET, HEAD {"error":{"code":"method_not_allowed","message":"DELETE is not allowed on /titles/7; use GET, HEAD"}}
	// 404  {"error":{"code":"not_found","message":"no route for GET /nope; see /openapi.json"}}
	// {"info":{"title":"API","version":"0"},"openapi":"3.1.0","paths":{"/openapi.json":{"get":{"summary":"This document","responses":{"200":{"description":"OpenAPI 3.1"}}}},"/titles/{id}":{"get":{"summary":"One title","parameters":[{"name":"id","in":"path","required":true,"schema":{"type":"string"}}],"responses":{"default":{"description":"JSON; an error is {\"error\": {\"code\": \"...\", \"message\": \"...\"}}"}}}}}}
}
