// Command hello is the smallest Shoal service: it answers GET /hello (and
// POST /hello, which echoes the body back) with the instance that served it.
// Run several; call them with examples/quickstart.
package main

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"time"

	"github.com/shoal-dev/shoal"
)

func main() {
	instance := os.Getenv("SHOAL_INSTANCE")
	mux := http.NewServeMux()
	mux.HandleFunc("/hello", func(w http.ResponseWriter, r *http.Request) {
		if d, err := time.ParseDuration(r.URL.Query().Get("work")); err == nil {
			select { // simulated work that stops when the caller gives up
			case <-time.After(d):
			case <-r.Context().Done():
				return
			}
		}
		body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]string{"hello": "world", "instance": instance, "echo": string(body)})
	})
	shoal.Main(shoal.Config{Name: "hello"}, mux)
}
