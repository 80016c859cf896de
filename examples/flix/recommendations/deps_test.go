package main

import (
	"context"
	"net/http"
	"slices"
	"sync/atomic"
	"testing"
	"time"
)

// The popular titles are fetched once per ttl, given without a call in
// between (the same list, which catalogSnap.popularity relies on), and
// the last list is kept while ratings fails.
func TestPopular(t *testing.T) {
	var calls atomic.Int64
	var down atomic.Bool
	top := fakeRatings(nil, []int{3, 1, 2})
	c := newClient(t, map[string]http.Handler{"ratings": http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		if down.Load() {
			fail500(w, r)
			return
		}
		top.ServeHTTP(w, r)
	})})
	p := &popular{client: c, ttl: time.Hour}
	get := func() []int {
		t.Helper()
		list, degraded := p.async(context.Background(), 5*time.Second, nil)()
		if degraded || !slices.Equal(list, []int{3, 1, 2}) {
			t.Fatalf("popular titles %v (degraded %v); want [3 1 2]", list, degraded)
		}
		return list
	}
	first := get()
	if again := get(); calls.Load() != 1 || &again[0] != &first[0] {
		t.Errorf("%d calls for two requests within ttl, the same list %v; want 1, true", calls.Load(), &again[0] == &first[0])
	}
	p.at.Store(0) // expired
	if get(); calls.Load() != 2 {
		t.Errorf("%d calls after ttl; want 2", calls.Load())
	}
	p.at.Store(0)
	down.Store(true)
	if get(); calls.Load() < 3 {
		t.Errorf("%d calls after ttl with ratings down; want 3 or more", calls.Load())
	}
}

// A snapshot computes the popularity of its titles once per list.
func TestPopularity(t *testing.T) {
	s := newCatalogSnap([]title{{ID: 1}, {ID: 2}, {ID: 3}})
	list := []int{3, 9, 1, 3}
	r := s.popularity(list)
	if want := []int32{2, unpopular, 3}; !slices.Equal(r, want) {
		t.Fatalf("popularity %v = %v; want %v (the last index of a title listed twice)", list, r, want)
	}
	if again := s.popularity(list); &again[0] != &r[0] {
		t.Error("the same list's popularity computed twice")
	}
	if other := s.popularity([]int{2}); !slices.Equal(other, []int32{unpopular, 0, unpopular}) {
		t.Errorf("another list's popularity: %v", other)
	}
	if none := s.popularity(nil); !slices.Equal(none, []int32{unpopular, unpopular, unpopular}) {
		t.Errorf("no list's popularity: %v", none)
	}
}
