package main

import (
	"cmp"
	"context"
	"sync"
	"time"
)

// defaultSharedFor is how long the api reuses a home row that is the same
// for every profile (top rated, new on flix): a busy home page then asks
// ratings and catalog for it about once per 2 s per instance instead of
// once per page. Ratings itself recomputes its top list every 5 s, and a
// title added to the catalog shows within 2 s.
const defaultSharedFor = 2 * time.Second

// sharedRow is the last copy of such a row that came. The zero value is
// empty; safe for concurrent use. What it holds is shared by every page:
// read it, never change it.
type sharedRow[T any] struct {
	mu    sync.Mutex
	v     T
	until time.Time
}

// fetch is fetchRow for a shared row: a copy younger than a.sharedFor
// answers at once; otherwise the row is fetched, and kept if it came.
func (s *sharedRow[T]) fetch(ctx context.Context, a *api, budget time.Duration, url, row, profile string) func() (T, bool) {
	s.mu.Lock()
	v, fresh := s.v, time.Now().Before(s.until)
	s.mu.Unlock()
	if fresh {
		return func() (T, bool) { return v, true }
	}
	wait := fetchRow[T](ctx, a, budget, url, row, profile)
	return func() (T, bool) {
		v, ok := wait()
		if ok {
			s.mu.Lock()
			s.v, s.until = v, time.Now().Add(cmp.Or(a.sharedFor, defaultSharedFor))
			s.mu.Unlock()
		}
		return v, ok
	}
}
