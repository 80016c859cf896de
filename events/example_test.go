package events_test

import (
	"context"
	"database/sql"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/shoal-dev/shoal/events"
	"github.com/shoal-dev/shoal/store"
)

// byName is what svc.Client() does for a service: reach http://<name>/
// (here, one test server per name).
type byName map[string]string

func (m byName) RoundTrip(req *http.Request) (*http.Response, error) {
	r := req.Clone(req.Context())
	r.URL.Host = m[req.URL.Hostname()]
	return http.DefaultTransport.RoundTrip(r)
}

func Example() {
	dir, err := os.MkdirTemp("", "events-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	ctx := context.Background()

	// The subscriber, "history", applies each event once, in the
	// transaction that records it.
	hdb, err := store.OpenSQLite(ctx, filepath.Join(dir, "history.db"))
	if err != nil {
		panic(err)
	}
	defer hdb.Close()
	inbox := events.NewInbox(hdb)
	if err := inbox.Migrate(ctx); err != nil {
		panic(err)
	}
	var mu sync.Mutex
	var seen []string
	inbox.Handle("progress", func(ctx context.Context, tx *sql.Tx, ev events.Event) error {
		mu.Lock()
		defer mu.Unlock()
		seen = append(seen, string(ev.Payload)) // a real handler writes through tx
		return nil
	})
	mux := http.NewServeMux()
	mux.Handle(events.Path, inbox)
	history := httptest.NewServer(mux)
	defer history.Close()

	// The producer, "playback", publishes in its own transactions.
	pdb, err := store.OpenSQLite(ctx, filepath.Join(dir, "playback.db"))
	if err != nil {
		panic(err)
	}
	defer pdb.Close()
	outbox := events.NewOutbox(pdb, events.OutboxConfig{
		Subscribers: map[string][]string{"progress": {"history"}},
		Client:      &http.Client{Transport: byName{"history": history.Listener.Addr().String()}},
	})
	if err := outbox.Migrate(ctx); err != nil {
		panic(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error)
	go func() { done <- outbox.Run(runCtx) }()

	for _, seconds := range []int{30, 60} {
		err := pdb.Tx(ctx, func(tx *sql.Tx) error {
			// … the producer's own writes, then:
			_, err := outbox.Publish(ctx, tx, "progress", map[string]any{"profile": "ann", "seconds": seconds})
			return err
		})
		if err != nil {
			panic(err)
		}
	}
	for {
		st, err := outbox.Stats(ctx)
		if err != nil {
			panic(err)
		}
		if st.Pending == 0 {
			fmt.Printf("delivered %d of %d events\n", st.Delivered, st.Events)
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	stop()
	<-done
	sort.Strings(seen) // events arrive in no particular order
	fmt.Println(seen)
	// Output:
	// delivered 2 of 2 events
	// [{"profile":"ann","seconds":30} {"profile":"ann","seconds":60}]
}
