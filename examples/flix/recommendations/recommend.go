package main

import (
	"cmp"
	"math"
	"math/bits"
	"slices"

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

// seed is a title a profile watched or liked, which its picks come from.
type seed struct {
	title
	reason string
}

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
func recommend(cat *catalogSnap, watched []int, ratings []rated, popular []int, rights profile.Rights, limit int) []Pick {
	seen := make(map[int]bool, len(watched)+len(ratings))
	var seeds []seed
	for _, id := range watched {
		seen[id] = true
		if t, ok := cat.get(id); ok && len(seeds) < maxSeeds {
			seeds = append(seeds, seed{t, "because you watched " + t.Name})
		}
	}
	liked := slices.Clone(ratings)
	slices.SortStableFunc(liked, func(a, b rated) int { return cmp.Compare(b.Score, a.Score) })
	for _, r := range liked {
		if seen[r.Title] {
			continue
		}
		seen[r.Title] = true
		if t, ok := cat.get(r.Title); ok && r.Score >= likedScore && len(seeds) < maxSeeds {
			seeds = append(seeds, seed{t, "because you liked " + t.Name})
		}
	}
	if len(seeds) == 0 {
		return nil
	}
	rank := make(map[int]int, len(popular))
	for i, id := range popular {
		rank[id] = i
	}
	type candidate struct {
		i       int32 // in cat.titles
		seed    int
		overlap int
		pop     int
	}
	var cands []candidate
	for i, t := range cat.titles {
		if seen[t.ID] || !rights.Allows(t.Maturity) {
			continue
		}
		for si, s := range seeds {
			if common := t.Genres & s.Genres; common != 0 {
				pop, ok := rank[t.ID]
				if !ok {
					pop = math.MaxInt
				}
				cands = append(cands, candidate{int32(i), si, bits.OnesCount64(common), pop})
				break
			}
		}
	}
	slices.SortFunc(cands, func(a, b candidate) int {
		ta, tb := &cat.titles[a.i], &cat.titles[b.i]
		return cmp.Or(cmp.Compare(a.seed, b.seed), cmp.Compare(b.overlap, a.overlap), cmp.Compare(a.pop, b.pop),
			cmp.Compare(tb.AddedAt, ta.AddedAt), cmp.Compare(ta.ID, tb.ID))
	})
	picks := make([]Pick, 0, limit)
	taken := make([]bool, len(cands))
	given := make([]int, len(seeds))
	for pass := range 2 {
		for ci, c := range cands {
			if len(picks) == limit {
				return picks
			}
			if taken[ci] || pass == 0 && given[c.seed] == perSeed {
				continue
			}
			taken[ci] = true
			given[c.seed]++
			t := cat.titles[c.i]
			picks = append(picks, Pick{Title: t.ID, Name: t.Name, Reason: seeds[c.seed].reason})
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
