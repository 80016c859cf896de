package main

import (
	"cmp"
	"math/bits"
	"slices"
	"sync"

	"github.com/shoal-dev/shoal/examples/flix/internal/profile"
)

// seed is a title a profile watched or liked, which its picks come from.
type seed struct {
	i      int32 // in the snapshot's titles
	liked  bool  // rated likedScore or more, not watched
	genres uint64
	reason string // of its picks, made for the first (why)
}

// why returns the reason of the seed's picks.
func (s *seed) why(cat *catalogSnap) string {
	if s.reason == "" {
		verb := "because you watched "
		if s.liked {
			verb = "because you liked "
		}
		s.reason = verb + cat.titles[s.i].Name
	}
	return s.reason
}

// candidate is a title that may be picked for the seed it belongs to, with
// what ranks it among the seed's others.
type candidate struct {
	i       int32 // in the snapshot's titles
	overlap int32 // genres shared with the seed
	pop     int32 // catalogSnap.popularity
	addedAt int64
	id      int
}

// after reports whether c ranks after the title of the same seed with the
// given fields. A seed's candidates rank by the genres they share with it,
// the most first, then by popularity, then the newest first, then by id.
// (It takes the title's fields, not a candidate: most titles are turned
// down by one call, and building a candidate for each cost a quarter of
// recommend's time.)
func (c *candidate) after(overlap, pop int32, addedAt int64, id int) bool {
	if c.overlap != overlap {
		return c.overlap < overlap
	}
	if c.pop != pop {
		return c.pop > pop
	}
	if c.addedAt != addedAt {
		return c.addedAt < addedAt
	}
	return c.id > id
}

// scratch is the memory of one recommend call, reused by the next
// (scratchPool).
type scratch struct {
	seen    titleSet // the titles the profile watched or rated
	liked   []rated
	seeds   []seed
	allowed []bool // by index in the snapshot's maturities
	best    []candidate
	n       []int
}

var scratchPool = sync.Pool{New: func() any { return new(scratch) }}

// titleSet is a set of a snapshot's titles: bit i is title i.
type titleSet []uint64

func (ts titleSet) add(i int32)    { ts[i/64] |= 1 << (i % 64) }
func (ts titleSet) has(i int) bool { return ts[i/64]&(1<<(i%64)) != 0 }

// findSeeds returns recommend's seeds (in sc.seeds), and records in
// sc.seen the titles the profile watched or rated.
func (sc *scratch) findSeeds(cat *catalogSnap, watched []int, ratings []rated) []seed {
	seen := slices.Grow(sc.seen[:0], (len(cat.titles)+63)/64)[:(len(cat.titles)+63)/64]
	clear(seen)
	seeds := sc.seeds[:0]
	for _, id := range watched {
		if i, ok := cat.byID[id]; ok {
			seen.add(i)
			if len(seeds) < maxSeeds {
				seeds = append(seeds, seed{i: i, genres: cat.titles[i].Genres})
			}
		}
	}
	// The titles liked, the best rated first; those rated lower seed
	// nothing and come after them, so they are only seen after them.
	liked := sc.liked[:0]
	for _, r := range ratings {
		if r.Score >= likedScore {
			liked = append(liked, r)
		}
	}
	slices.SortStableFunc(liked, func(a, b rated) int { return cmp.Compare(b.Score, a.Score) })
	for _, r := range liked {
		if i, ok := cat.byID[r.Title]; ok && !seen.has(int(i)) {
			seen.add(i)
			if len(seeds) < maxSeeds {
				seeds = append(seeds, seed{i: i, liked: true, genres: cat.titles[i].Genres})
			}
		}
	}
	for _, r := range ratings {
		if i, ok := cat.byID[r.Title]; ok && r.Score < likedScore {
			seen.add(i)
		}
	}
	sc.seen, sc.liked, sc.seeds = seen, liked, seeds
	return seeds
}

// bestOf returns, for the seed at index s of sc.seeds (findSeeds), its
// best candidates, best first: best[s*limit:s*limit+n[s]], at most limit
// (> 0).
func (sc *scratch) bestOf(cat *catalogSnap, popular []int, rights profile.Rights, limit int) (best []candidate, n []int) {
	seeds := sc.seeds
	// The first seed with each genre: a title's seed is the first of its
	// genres'.
	var first [64]uint8
	var union uint64
	for s, sd := range seeds {
		for g := sd.genres &^ union; g != 0; g &= g - 1 {
			first[bits.TrailingZeros64(g)] = uint8(s)
		}
		union |= sd.genres
	}
	allowed := sc.allowed[:0]
	for _, m := range cat.maturities {
		allowed = append(allowed, rights.Allows(m))
	}
	seen := sc.seen
	best = slices.Grow(sc.best[:0], len(seeds)*limit)[:len(seeds)*limit]
	n = slices.Grow(sc.n[:0], len(seeds))[:len(seeds)]
	clear(n)
	sc.allowed, sc.best, sc.n = allowed, best, n
	rank := cat.popularity(popular)
	for i := range cat.titles {
		t := &cat.titles[i]
		g := t.Genres & union
		if g == 0 || !allowed[t.mat] || seen.has(i) {
			continue
		}
		s := first[bits.TrailingZeros64(g)]
		for g &= g - 1; g != 0; g &= g - 1 {
			s = min(s, first[bits.TrailingZeros64(g)])
		}
		// Insert the title among the seed's best, if it is one.
		overlap, pop := int32(bits.OnesCount64(t.Genres&seeds[s].genres)), rank[i]
		b, k := best[int(s)*limit:int(s+1)*limit], n[s]
		if k == limit {
			if !b[k-1].after(overlap, pop, t.AddedAt, t.ID) {
				continue
			}
			k--
		}
		for ; k > 0 && b[k-1].after(overlap, pop, t.AddedAt, t.ID); k-- {
			b[k] = b[k-1]
		}
		b[k] = candidate{i: int32(i), overlap: overlap, pop: pop, addedAt: t.AddedAt, id: t.ID}
		n[s] = min(n[s]+1, limit)
	}
	return best, n
}
