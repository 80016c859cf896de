package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/shoal-dev/shoal/client"
)

// maxUpstreamBody bounds what is read from a dependency's answer.
const maxUpstreamBody = 4 << 20

// title is what recommendations keeps of a catalog title.
type title struct {
	ID       int
	Name     string
	Genres   uint64 // bit i: the i-th genre seen (catalogCopy.bits)
	Maturity string
	AddedAt  int64
	mat      int32 // index of Maturity in its snapshot's maturities
}

// catalogCopy is a copy of the catalog's titles (they never change once
// added), loaded in pages at start and then extended with the titles added
// since, every refreshEvery: a recommendation weighs every title without
// calling the catalog.
type catalogCopy struct {
	client       *http.Client
	log          *slog.Logger
	refreshEvery time.Duration

	snap atomic.Pointer[catalogSnap]
	mu   sync.Mutex        // one load at a time; guards bits
	bits map[string]uint64 // genre → its bit, stable across snapshots
}

// catalogSnap is the copy at one moment. Its titles are never modified
// once built; it keeps the popularity of its titles by the latest list of
// popular titles it was asked about (popularity).
type catalogSnap struct {
	titles     []title       // by id
	byID       map[int]int32 // id → index in titles
	newest     []int32       // indexes, newest first
	maturities []string      // those of titles, each once

	pop atomic.Pointer[popRanks]
}

// catalogPage is the catalog's GET /titles page size, its maximum.
const catalogPage = 200

// maxRetryWait bounds the wait before a failed load of the catalog is
// tried again.
const maxRetryWait = 10 * time.Second

// Run refreshes the copy now and every refreshEvery until ctx ends, sooner
// after a failure (from a second, doubling up to maxRetryWait); then it
// returns nil.
func (c *catalogCopy) Run(ctx context.Context) error {
	wait := time.Second
	for {
		err := c.refresh(ctx)
		switch {
		case err == nil:
			wait = time.Second
		case errors.Is(err, client.ErrNoInstances):
			// Starting up: the catalog is not in discovery yet.
			c.log.Debug("recommendations: loading the catalog", "err", err)
		case ctx.Err() == nil:
			c.log.Warn("recommendations: loading the catalog", "err", err)
		}
		d := c.refreshEvery
		if err != nil {
			d, wait = min(wait, maxRetryWait, c.refreshEvery), 2*wait
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(d):
		}
	}
}

// titles returns the current copy, first trying to load it if it is still
// empty (a request that comes before Run's first load), unless a load is
// under way already: while the catalog cannot be reached, requests must
// not queue up behind each other's attempts. It never returns nil.
func (c *catalogCopy) titles(ctx context.Context) *catalogSnap {
	if s := c.snap.Load(); s != nil && len(s.titles) > 0 {
		return s
	}
	if c.mu.TryLock() {
		err := c.refreshLocked(ctx)
		c.mu.Unlock()
		if err != nil && ctx.Err() == nil {
			c.log.Warn("recommendations: loading the catalog", "err", err)
		}
	}
	if s := c.snap.Load(); s != nil {
		return s
	}
	return &catalogSnap{}
}

// refresh fetches the titles after those the copy has (by id: new titles
// have the highest ids) and publishes a new snapshot if there are any.
func (c *catalogCopy) refresh(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.refreshLocked(ctx)
}

// refreshLocked is refresh, with c.mu held.
func (c *catalogCopy) refreshLocked(ctx context.Context) error {
	if c.bits == nil {
		c.bits = map[string]uint64{}
	}
	old := c.snap.Load()
	var have []title
	if old != nil {
		have = old.titles
	}
	var added []title
	for {
		var page struct {
			Titles []struct {
				ID       int      `json:"id"`
				Name     string   `json:"name"`
				Genres   []string `json:"genres"`
				Maturity string   `json:"maturity"`
				AddedAt  int64    `json:"added_at"`
			} `json:"titles"`
		}
		u := fmt.Sprintf("http://catalog/titles?order=id&limit=%d&offset=%d", catalogPage, len(have)+len(added))
		if err := client.GetJSON(ctx, c.client, u, maxUpstreamBody, &page); err != nil {
			if len(added) > 0 {
				break // keep what came: the next refresh goes on from there
			}
			return err
		}
		for _, t := range page.Titles {
			added = append(added, title{ID: t.ID, Name: t.Name, Genres: c.mask(t.Genres), Maturity: t.Maturity, AddedAt: t.AddedAt})
		}
		if len(page.Titles) < catalogPage {
			break
		}
	}
	if len(added) == 0 && old != nil {
		return nil
	}
	c.snap.Store(newCatalogSnap(append(slices.Clip(have), added...)))
	return nil
}

// newCatalogSnap returns the snapshot of all, titles of distinct ids by
// id, which becomes the snapshot's.
func newCatalogSnap(all []title) *catalogSnap {
	s := &catalogSnap{titles: all, byID: make(map[int]int32, len(all)), newest: make([]int32, len(all))}
	mats := map[string]int32{}
	for i, t := range all {
		s.byID[t.ID] = int32(i)
		s.newest[i] = int32(i)
		m, ok := mats[t.Maturity]
		if !ok {
			m = int32(len(s.maturities))
			mats[t.Maturity] = m
			s.maturities = append(s.maturities, t.Maturity)
		}
		all[i].mat = m
	}
	slices.SortFunc(s.newest, func(a, b int32) int {
		return cmp.Or(cmp.Compare(all[b].AddedAt, all[a].AddedAt), cmp.Compare(all[b].ID, all[a].ID))
	})
	return s
}

// mask returns the genre bits of gs, giving new genres the next bits (the
// first 64 genres are told apart; later ones share no bit). Called with
// c.mu held.
func (c *catalogCopy) mask(gs []string) uint64 {
	var m uint64
	for _, g := range gs {
		b, ok := c.bits[g]
		if !ok && len(c.bits) < 64 {
			b = 1 << len(c.bits)
			c.bits[g] = b
		}
		m |= b
	}
	return m
}

func (s *catalogSnap) get(id int) (title, bool) {
	i, ok := s.byID[id]
	if !ok {
		return title{}, false
	}
	return s.titles[i], true
}

// popRanks is the popularity of a snapshot's titles by a list of popular
// titles.
type popRanks struct {
	list []int   // the popular titles, best first
	rank []int32 // by index in titles: the last index of its id in list, else unpopular
}

// unpopular is the rank of a title not in the popular list.
const unpopular = math.MaxInt32

// popularity returns the rank of s's titles in popular (by index in
// s.titles, unpopular if not in it), computed once per list, which it
// tells by its first element's address: popular must not be modified
// afterwards (the lists popular.titles returns never are).
func (s *catalogSnap) popularity(popular []int) []int32 {
	if p := s.pop.Load(); p != nil && len(p.list) == len(popular) && (len(popular) == 0 || &p.list[0] == &popular[0]) {
		return p.rank
	}
	rank := make([]int32, len(s.titles))
	for i := range rank {
		rank[i] = unpopular
	}
	for r, id := range popular {
		if i, ok := s.byID[id]; ok {
			rank[i] = int32(r)
		}
	}
	s.pop.Store(&popRanks{popular, rank})
	return rank
}

// popular is ratings' GET /top, cached for topTTL: popularity moves
// slowly, and every recommendation uses it.
type popular struct {
	client *http.Client
	ttl    time.Duration

	mu   sync.Mutex // one fetch at a time
	list atomic.Pointer[[]int]
	at   atomic.Int64 // Unix nanos of list
}

// topEntry is an entry of ratings' GET /top.
type topEntry struct {
	Title int `json:"title"`
}

// maxTop is how many popular titles are fetched: ratings' maximum.
const maxTop = 100

// errFetching: the popular titles are being fetched for another request,
// and there are none yet.
var errFetching = errors.New("the popular titles are being fetched")

// titles returns the popular title ids, best first: the cached list, or a
// fresh one if it is older than ttl. While a fetch fails, or another
// request's is under way, the last list is served; an error if there never
// was one.
func (p *popular) titles(ctx context.Context) ([]int, error) {
	if list, ok := p.fresh(); ok {
		return list, nil
	}
	cur := p.list.Load()
	if !p.mu.TryLock() { // another request is fetching it: do not queue
		if cur != nil {
			return *cur, nil
		}
		return nil, errFetching
	}
	defer p.mu.Unlock()
	if list, ok := p.fresh(); ok {
		return list, nil
	}
	var top struct {
		Titles []topEntry `json:"titles"`
	}
	if err := client.GetJSON(ctx, p.client, fmt.Sprintf("http://ratings/top?limit=%d", maxTop), maxUpstreamBody, &top); err != nil {
		if cur != nil {
			return *cur, nil
		}
		return nil, err
	}
	ids := make([]int, len(top.Titles))
	for i, t := range top.Titles {
		ids[i] = t.Title
	}
	p.list.Store(&ids)
	p.at.Store(time.Now().UnixNano())
	return ids, nil
}

// fresh returns the cached list if it is younger than ttl.
func (p *popular) fresh() ([]int, bool) {
	if cur := p.list.Load(); cur != nil && time.Since(time.Unix(0, p.at.Load())) < p.ttl {
		return *cur, true
	}
	return nil, false
}

// async is titles through client.Async, without its goroutine (and the
// budget's timer) while the cached list is fresh, as it mostly is.
func (p *popular) async(ctx context.Context, budget time.Duration, fallback func(error) []int) (wait func() ([]int, bool)) {
	if list, ok := p.fresh(); ok {
		return func() ([]int, bool) { return list, false }
	}
	return client.Async(ctx, budget, p.titles, fallback)
}
