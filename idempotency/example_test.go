package idempotency_test

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"

	"github.com/shoal-dev/shoal/idempotency"
	"github.com/shoal-dev/shoal/store"
)

func ExampleStore_Middleware() {
	dir, err := os.MkdirTemp("", "idempotency-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	ctx := context.Background()
	db, err := store.OpenSQLite(ctx, filepath.Join(dir, "orders.db")) // a service: store.Open(ctx, "orders")
	if err != nil {
		panic(err)
	}
	defer db.Close()
	if _, err := db.Exec(`CREATE TABLE orders (id INTEGER PRIMARY KEY, item TEXT NOT NULL)`); err != nil {
		panic(err)
	}
	keys, err := idempotency.New(db, idempotency.Config{}) // 24 h TTL
	if err != nil {
		panic(err)
	}
	if err := keys.Migrate(ctx); err != nil {
		panic(err)
	}

	// The order and the key's answer commit together: exactly once.
	placeOrder := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		item, _ := io.ReadAll(r.Body)
		var body []byte
		err := db.Tx(r.Context(), func(tx *sql.Tx) error {
			res, err := tx.ExecContext(r.Context(), `INSERT INTO orders (item) VALUES ($1)`, string(item))
			if err != nil {
				return err
			}
			id, _ := res.LastInsertId()
			body = fmt.Appendf(nil, `{"order":%d}`, id)
			if claim := idempotency.FromContext(r.Context()); claim != nil {
				return claim.Complete(r.Context(), tx, http.StatusCreated, "application/json", body)
			}
			return nil
		})
		if err != nil {
			http.Error(w, "retry", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		w.Write(body)
	})
	srv := httptest.NewServer(keys.Middleware(placeOrder))
	defer srv.Close()

	order := func(key, item string) {
		req, _ := http.NewRequest("POST", srv.URL+"/orders", strings.NewReader(item))
		req.Header.Set(idempotency.KeyHeader, key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			panic(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		fmt.Println(resp.StatusCode, resp.Header.Get(idempotency.ReplayedHeader), strings.TrimSpace(string(body)))
	}
	order("a1", "book") // applied
	order("a1", "book") // a retry: the same answer, nothing applied
	order("a1", "lamp") // the key with another request: refused
	order("b2", "lamp") // a new key: applied
	var n int
	db.QueryRow(`SELECT COUNT(*) FROM orders`).Scan(&n)
	fmt.Println(n, "orders")
	// Output:
	// 201  {"order":1}
	// 201 true {"order":1}
	// 422  {"error":{"code":"idempotency_key_reused","message":"Idempotency-Key \"a1\" was already used for a different request; use a new key per write"}}
	// 201  {"order":2}
	// 2 orders
}
