package idempotency

import (
	"context"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/shoal-dev/shoal/store/storetest"
)

// The cost the middleware adds to a keyed write on SQLite: a claim and a
// record (new key), or one read (replay).
func BenchmarkMiddleware(b *testing.B) {
	db := storetest.SQLite.MustOpen(b, filepath.Join(b.TempDir(), "svc.db"))
	var runs atomic.Int64
	h := newStore(b, db, Config{}).Middleware(testHandler(&runs))
	b.Run("new key", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			i++
			if a := serve(h, context.Background(), "POST", "/ok", fmt.Sprint("new-", i), `{"a":1}`); a.status != 200 {
				b.Fatal(a)
			}
		}
	})
	b.Run("replay", func(b *testing.B) {
		b.ReportAllocs()
		serve(h, context.Background(), "POST", "/ok", "same", `{"a":1}`)
		for b.Loop() {
			if a := serve(h, context.Background(), "POST", "/ok", "same", `{"a":1}`); !a.replayed {
				b.Fatal(a)
			}
		}
	})
}
