package main

import (
	"github.com/shoal-dev/shoal/examples/flix/internal/profile"
)

// Pick is one recommended title, and why.
type Pick struct {
	Title  int    `json:"title"`
	Name   string `json:"name"`
	Reason string `json:"reason"`
}

// rated is a profile's rating of a title, from ratings' GET /ratings/{p}.
type rated struct {
	Title int `json:"title"`
	Score int `json:"score"`
}

// Tuning of recommend.
const (
	likedScore = 4  // ratings from this score up are seeds
	maxSeeds   = 30 // seeds considered: the latest watched, then the best liked
	perSeed    = 3  // picks per seed before any seed gets more
)

// Reasons of fallback picks.
const (
	reasonPopular = "popular on flix"
	reasonNew     = "new on flix"
)

// recommend picks up to limit titles for a profile that watched watched
// (the latest first) and rated ratings (the latest first), which the
// profile may watch (rights, from the profiles service), and that it
// neither watched nor rated.
//
// Seeds are the watched titles, the latest first, then the titles rated
// likedScore or more, the best first. A candidate title belongs to the
// first seed it shares a genre with; candidates are ranked by that seed,
// then by how many genres they share with it, then by popularity (their
// index in popular), then newest first. Each seed gives at most perSeed
// picks until every seed has had its turn, so that the latest title
// watched leads the list without filling it.
//
// As no seed gives more than limit picks, only the best limit candidates
// of each seed are kept, as they come: the catalog is read once and
// nothing is sorted. popular must not be modified afterwards (see
// catalogSnap.popularity).
func recommend(cat *catalogSnap, watched []int, ratings []rated, popular []int, rights profile.Rights, limit int) []Pick {
	sc := scratchPool.Get().(*scratch)
	defer scratchPool.Put(sc)
	seeds := sc.findSeeds(cat, watched, ratings)
	if len(seeds) == 0 {
		return nil
	}
	picks := make([]Pick, 0, limit)
	if limit == 0 {
		return picks
	}
	best, n := sc.bestOf(cat, popular, rights, limit)
	for pass := range 2 {
		for s := range seeds {
			cs := best[s*limit : s*limit+n[s]]
			if pass == 0 {
				cs = cs[:min(perSeed, len(cs))]
			} else {
				cs = cs[min(perSeed, len(cs)):]
			}
			for _, c := range cs {
				if len(picks) == limit {
					return picks
				}
				picks = append(picks, Pick{Title: c.id, Name: cat.titles[c.i].Name, Reason: seeds[s].why(cat)})
			}
		}
	}
	return picks
}

// fallbackPicks returns up to limit of ids (popular titles, or the newest)
// that the profile may watch and has not seen, each with reason.
func fallbackPicks(cat *catalogSnap, ids []int, seen map[int]bool, rights profile.Rights, reason string, limit int) []Pick {
	picks := []Pick{}
	for _, id := range ids {
		if len(picks) == limit {
			break
		}
		if t, ok := cat.get(id); ok && !seen[id] && rights.Allows(t.Maturity) {
			picks = append(picks, Pick{Title: id, Name: t.Name, Reason: reason})
		}
	}
	return picks
}
