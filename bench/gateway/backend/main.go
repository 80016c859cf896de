// Command backend is the service behind every arm of the gateway benchmark
// (bench/gateway): a Shoal SDK service (shoal.Setup + Main, so it joins
// gossip and the Shoal gateway finds it by name) that answers GET /work with
// a fixed 1 KiB body and the header X-Replica naming the instance that
// served it, so that the runner can check that a proxy reaches every replica.
// Any other path is a 404. The runner starts 3 of them with SHOAL_* set.
package main

import (
	"bytes"
	"net/http"

	"github.com/shoal-dev/shoal"
)

// ReplicaHeader names the instance that served a response.
const ReplicaHeader = "X-Replica"

func main() {
	body := bytes.Repeat([]byte("x"), 1024)
	var id string
	svc := shoal.Setup(shoal.Config{Name: "echo"}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/work" {
			http.NotFound(w, r)
			return
		}
		h := w.Header()
		h.Set("Content-Type", "application/octet-stream")
		h.Set(ReplicaHeader, id)
		_, _ = w.Write(body)
	}))
	id = svc.Info().Instance // set before Main serves the first request
	svc.Main()
}
