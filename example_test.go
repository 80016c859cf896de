package shoal_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"

	"github.com/shoal-dev/shoal"
)

// A service that greets, called by name through its own client. In a real
// program, main is just shoal.Main(shoal.Config{Name: "greeter"}, mux).
func Example() {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /greet/{name}", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello, %s", r.PathValue("name"))
	})
	svc, err := shoal.New(shoal.Config{Name: "greeter", Logger: slog.New(slog.DiscardHandler)}, mux)
	if err != nil {
		panic(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- svc.Run(ctx) }()
	<-svc.Ready()

	resp, err := svc.Client().Get("http://greeter/greet/ada")
	if err != nil {
		panic(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Println(string(body))

	stop() // as SIGTERM would: drain, leave gossip, return
	fmt.Println("stopped:", <-done)
	// Output:
	// hello, ada
	// stopped: <nil>
}
