package verified

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

func TestCache(t *testing.T) {
	c := New[string](2)
	now := time.Unix(1_000_000, 0)
	if _, ok := c.Get("a", now); ok {
		t.Fatal("empty cache: hit")
	}
	c.Put("a", "alice", now.Add(time.Minute))
	if v, ok := c.Get("a", now.Add(59*time.Second)); !ok || v != "alice" {
		t.Fatalf("before expiry: %q, %v; want alice, true", v, ok)
	}
	if _, ok := c.Get("a", now.Add(time.Minute)); ok {
		t.Fatal("at expiry: hit, want miss")
	}
	if _, ok := c.Get("a ", now); ok {
		t.Fatal("another token's text: hit")
	}
	c.Put("b", "bob", now.Add(time.Minute))
	c.Put("c", "carol", now.Add(time.Minute)) // full: emptied first
	if _, ok := c.Get("a", now); ok {
		t.Fatal("a full cache kept an old entry")
	}
	if v, ok := c.Get("c", now); !ok || v != "carol" {
		t.Fatalf("newest entry: %q, %v", v, ok)
	}
}

func TestCacheConcurrent(t *testing.T) {
	c := New[int](64)
	now := time.Now()
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 1000 {
				k := fmt.Sprint(g, i%100)
				if v, ok := c.Get(k, now); ok && v != i%100 {
					t.Errorf("%s: %d", k, v)
					return
				}
				c.Put(k, i%100, now.Add(time.Hour))
			}
		})
	}
	wg.Wait()
	if n := len(c.m); n > 64 {
		t.Fatalf("%d entries, limit 64", n)
	}
}
