// Command replica is the test service of the scenario runner (bench/scenario):
// a Shoal SDK service (shoal.Setup + Main, so it has the SDK's server side:
// admission control, deadline header, drain) that answers GET /work with a
// ~1 KiB body and the header X-Replica naming the instance that served it.
//
// Its faults are set at runtime on a separate control listener (-control),
// which neither the SDK nor admission control sees:
//
//	POST /fault {"delay_ms":200,"status":503,"straggler_fraction":0.01,"straggler_delay_ms":100}
//	GET  /count → {"handled": n, "sdk": m, "rejected": k}
//
// handled counts every /work request that reached this handler, sdk the
// requests the SDK reports it let through (/infoz "requests"), rejected those
// its admission control refused before the handler (/infoz
// "admission.rejected"): requests that reached the replica are the larger of
// the first two plus the third.
//
// With -workers W and -work S, /work holds one of W slots for S and waits for
// a free slot, like a server with a fixed worker pool and an unbounded queue:
// capacity is W/S per replica. A request waiting in the queue gives up when
// its context ends (its caller left, or its Shoal-Timeout-Ms deadline
// passed), as a Go handler that honours its context does; once it holds a
// slot the work runs to the end.
//
// With -next, it is a relay: /work calls http://<next>/work, through the
// SDK's client (-hop shoal) or through the naive client over -next-addrs
// (-hop naive), and answers with the status it got.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/shoal-dev/shoal"
	"github.com/shoal-dev/shoal/bench/scenario/naive"
	"github.com/shoal-dev/shoal/chaos"
)

// ReplicaHeader names the instance that served a response.
const ReplicaHeader = "X-Replica"

// fault is what the control endpoint sets; the zero value is no fault.
type fault struct {
	DelayMs           int     `json:"delay_ms"`
	Status            int     `json:"status"`
	StragglerFraction float64 `json:"straggler_fraction"`
	StragglerDelayMs  int     `json:"straggler_delay_ms"`
}

type replica struct {
	id      string
	body    []byte
	slots   chan struct{} // nil: no worker limit
	work    time.Duration
	fault   atomic.Pointer[fault]
	handled atomic.Uint64
	next    string       // relay target service; "" serves itself
	hop     *http.Client // relay client
}

func main() {
	control := flag.String("control", "127.0.0.1:0", "control listen address (POST /fault, GET /count)")
	workers := flag.Int("workers", 0, "worker slots; 0: no limit")
	work := flag.Duration("work", 0, "time /work holds a worker slot")
	size := flag.Int("body", 1024, "bytes in the /work body")
	next := flag.String("next", "", "relay: service to call for each /work")
	hop := flag.String("hop", "shoal", "relay client: shoal or naive")
	nextAddrs := flag.String("next-addrs", "", "relay with -hop naive: comma-separated addresses of -next")
	logAdmission := flag.Duration("log-admission", 0, "log the admission control's state to stderr this often (0: never)")

	r := &replica{}
	r.fault.Store(&fault{})
	svc := shoal.Setup(shoal.Config{Name: "echo"}, http.HandlerFunc(r.serveWork))
	// Setup parsed the flags: read them now.
	r.id, r.work, r.next = svc.Info().Instance, *work, *next
	r.body = []byte(strings.Repeat("x", *size))
	if *workers > 0 {
		r.slots = make(chan struct{}, *workers)
	}
	switch {
	case r.next == "":
	case *hop == "shoal":
		r.hop = svc.Client()
	case *hop == "naive":
		r.hop = &http.Client{Transport: naive.New(strings.Split(*nextAddrs, ","), naive.DefaultRetries)}
	default:
		log.Fatalf("replica: -hop %q: want shoal or naive", *hop)
	}

	ln, err := net.Listen("tcp", *control)
	if err != nil {
		log.Fatalf("replica: control listener: %v", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /fault", r.setFault)
	mux.HandleFunc("GET /count", func(w http.ResponseWriter, _ *http.Request) {
		admitted, rejected := sdkCounts(svc)
		shoal.WriteJSON(w, http.StatusOK, map[string]uint64{"handled": r.handled.Load(), "sdk": admitted, "rejected": rejected})
	})
	// The control server lives as long as the process; the runner kills it.
	go func() { log.Fatal(http.Serve(ln, mux)) }()
	if *logAdmission > 0 {
		// Lives as long as the process, like the control server.
		go func() {
			for range time.Tick(*logAdmission) {
				b, _ := json.Marshal(svc.Admission())
				log.Printf("admission %s", b)
			}
		}()
	}
	svc.Main()
}

func (r *replica) setFault(w http.ResponseWriter, req *http.Request) {
	var f fault
	if err := json.NewDecoder(io.LimitReader(req.Body, 1<<16)).Decode(&f); err != nil {
		shoal.WriteError(w, http.StatusBadRequest, "bad_fault", err.Error())
		return
	}
	r.fault.Store(&f)
	shoal.WriteJSON(w, http.StatusOK, f)
}

func (r *replica) serveWork(w http.ResponseWriter, req *http.Request) {
	if req.URL.Path != "/work" {
		http.NotFound(w, req)
		return
	}
	r.handled.Add(1)
	w.Header().Set(ReplicaHeader, r.id)
	if r.slots != nil {
		select {
		case r.slots <- struct{}{}:
		case <-req.Context().Done():
			return // left the queue: nobody waits for the answer
		}
		time.Sleep(r.work)
		<-r.slots
	}
	f := r.fault.Load()
	delay := time.Duration(f.DelayMs) * time.Millisecond
	if f.StragglerFraction > 0 && rand.Float64() < f.StragglerFraction {
		delay += time.Duration(f.StragglerDelayMs) * time.Millisecond
	}
	if chaos.Wait(req.Context(), delay) != nil {
		return
	}
	if f.Status != 0 {
		shoal.WriteError(w, f.Status, "injected", fmt.Sprintf("fault injected by the scenario runner: status %d", f.Status))
		return
	}
	if r.next != "" {
		r.relay(w, req)
		return
	}
	w.Header().Set("Content-Type", "text/plain")
	_, _ = w.Write(r.body)
}

// relay calls the next service and answers with its status.
func (r *replica) relay(w http.ResponseWriter, req *http.Request) {
	out, _ := http.NewRequestWithContext(req.Context(), http.MethodGet, "http://"+r.next+"/work", nil)
	resp, err := r.hop.Do(out)
	if err != nil {
		shoal.WriteError(w, http.StatusBadGateway, "relay_failed", err.Error())
		return
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		shoal.WriteError(w, resp.StatusCode, "relay_status", fmt.Sprintf("%s answered %d", r.next, resp.StatusCode))
		return
	}
	w.Header().Set("Content-Type", "text/plain")
	_, _ = w.Write(r.body)
}

// sdkCounts returns the requests the SDK let through to the handler and, if
// its Info reports admission control, those it rejected before the handler.
// It reads Info as /infoz does, as JSON, so that the runner builds whether or
// not the admission fields are there.
func sdkCounts(svc *shoal.Service) (admitted, rejected uint64) {
	b, err := json.Marshal(svc.Info())
	if err != nil {
		return 0, 0
	}
	var in struct {
		Requests  uint64
		Admission struct{ Rejected uint64 }
	}
	_ = json.Unmarshal(b, &in)
	return in.Requests, in.Admission.Rejected
}
