package main

import (
	"sync"
)

// catalogTitle is what the api reads of a catalog title.
type catalogTitle struct {
	ID       int    `json:"id"`
	Name     string `json:"name"`
	Year     int    `json:"year"`
	Maturity string `json:"maturity"`
	AddedAt  int64  `json:"added_at"`
}

// titleCache remembers the catalog's titles the api has seen, to name the
// titles other services list by id. Titles never change once added, so an
// entry is never stale; the cache is emptied if it ever outgrows
// maxCachedTitles (the dataset has 2,400).
type titleCache struct {
	mu     sync.RWMutex
	titles map[int]catalogTitle
}

const maxCachedTitles = 100_000

func (c *titleCache) get(id int) (catalogTitle, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	t, ok := c.titles[id]
	return t, ok
}

func (c *titleCache) add(ts ...catalogTitle) {
	if len(ts) == 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.titles == nil || len(c.titles)+len(ts) > maxCachedTitles {
		c.titles = make(map[int]catalogTitle)
	}
	for _, t := range ts {
		c.titles[t.ID] = t
	}
}

// missing returns the ids of ids not cached, once each.
func (c *titleCache) missing(ids []int) []int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	var out []int
	seen := map[int]bool{}
	for _, id := range ids {
		if _, ok := c.titles[id]; !ok && !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	return out
}
