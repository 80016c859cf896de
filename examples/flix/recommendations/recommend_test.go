package main

import (
	"cmp"
	"fmt"
	"math"
	"math/bits"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"

	"github.com/shoal-dev/shoal/examples/flix/internal/profile"
)

// referenceRecommend is recommend as it was before it was made cheaper:
// a candidate per title, all of them sorted. It is the oracle of
// TestRecommendMatchesReference, and the "before" of BenchmarkRecommend.
func referenceRecommend(cat *catalogSnap, watched []int, ratings []rated, popular []int, rights profile.Rights, limit int) []Pick {
	type seed struct {
		title
		reason string
	}
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

// recommendInput is one call of recommend.
type recommendInput struct {
	cat     *catalogSnap
	watched []int
	ratings []rated
	popular []int
	rights  profile.Rights
	limit   int
}

// randomInput returns a call of recommend made to meet ties: few genres,
// few dates, seeds without a title in the catalog or watched twice,
// titles rated twice, popular titles listed twice or not in the catalog,
// maturities no profile may watch.
func randomInput(rng *rand.Rand) recommendInput {
	maturities := []string{"all", "teen", "adult", "", "x"}
	n := rng.IntN(300)
	genres := 1 + rng.IntN(8)
	if rng.IntN(10) == 0 {
		genres = 64
	}
	ids := rng.Perm(n + n/2 + 1)[:n] // distinct, with gaps
	titles := make([]title, n)
	for i, id := range ids {
		var g uint64
		for range rng.IntN(4) {
			g |= 1 << rng.IntN(genres)
		}
		titles[i] = title{ID: id, Name: fmt.Sprint("T", id), Genres: g,
			Maturity: maturities[rng.IntN(len(maturities))], AddedAt: int64(rng.IntN(1 + n/10))}
	}
	id := func() int { // mostly of the catalog
		if n == 0 || rng.IntN(8) == 0 {
			return -rng.IntN(5)
		}
		return ids[rng.IntN(n)]
	}
	in := recommendInput{cat: newCatalogSnap(titles), limit: rng.IntN(60)}
	for range rng.IntN([]int{3, 12, 45}[rng.IntN(3)]) {
		in.watched = append(in.watched, id())
	}
	for range rng.IntN([]int{3, 25, 60}[rng.IntN(3)]) {
		in.ratings = append(in.ratings, rated{Title: id(), Score: rng.IntN(7)})
	}
	for range rng.IntN(1 + n/2) {
		in.popular = append(in.popular, id())
	}
	for _, m := range maturities {
		if rng.IntN(2) == 0 {
			in.rights.MayWatch = append(in.rights.MayWatch, m)
		}
	}
	return in
}

// recommend answers what referenceRecommend answers, nil and empty told
// apart, on random calls.
func TestRecommendMatchesReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 5000 {
		in := randomInput(rng)
		want := referenceRecommend(in.cat, in.watched, in.ratings, in.popular, in.rights, in.limit)
		got := recommend(in.cat, in.watched, in.ratings, in.popular, in.rights, in.limit)
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("call %d: %d titles, watched %v, ratings %v, popular %v, rights %v, limit %d:\ngot  %v\nwant %v",
				i, len(in.cat.titles), in.watched, in.ratings, in.popular, in.rights.MayWatch, in.limit, got, want)
		}
		// Again, as a request with the same popular titles is.
		if got := recommend(in.cat, in.watched, in.ratings, in.popular, in.rights, in.limit); !reflect.DeepEqual(got, want) {
			t.Fatalf("call %d, again: got %v, want %v", i, got, want)
		}
	}
}

// flixInput is a request of the flix system: its dataset's 2,400 titles
// (15 genres, 1 to 3 a title), a profile that watched 10 of them and
// rated 20, ratings' 100 popular titles, an adult profile (every title
// is a candidate), and the home page's row of 10.
func flixInput() recommendInput {
	rng := rand.New(rand.NewPCG(1998, 6))
	const n = 2400
	titles := make([]title, n)
	for i := range titles {
		var g uint64
		for k := 1 + rng.IntN(3); k > 0; {
			if b := uint64(1) << rng.IntN(15); g&b == 0 {
				g |= b
				k--
			}
		}
		titles[i] = title{ID: i + 1, Name: fmt.Sprint("The Title ", i+1), Genres: g,
			Maturity: []string{"all", "teen", "adult"}[rng.IntN(3)], AddedAt: 1_672_531_200_000 + rng.Int64N(1e11)}
	}
	in := recommendInput{cat: newCatalogSnap(titles), rights: profile.Rights{Maturity: "adult", MayWatch: []string{"all", "teen", "adult"}}, limit: defaultLimit}
	for range 10 {
		in.watched = append(in.watched, 1+rng.IntN(n))
	}
	for range 20 {
		in.ratings = append(in.ratings, rated{Title: 1 + rng.IntN(n), Score: 1 + rng.IntN(5)})
	}
	for range maxTop {
		in.popular = append(in.popular, 1+rng.IntN(n))
	}
	return in
}

// BenchmarkRecommend: one recommendation on the flix dataset, before
// (impl=reference) and now (impl=recommend).
func BenchmarkRecommend(b *testing.B) {
	in := flixInput()
	for _, impl := range []struct {
		name string
		fn   func(*catalogSnap, []int, []rated, []int, profile.Rights, int) []Pick
	}{{"reference", referenceRecommend}, {"recommend", recommend}} {
		b.Run("impl="+impl.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if picks := impl.fn(in.cat, in.watched, in.ratings, in.popular, in.rights, in.limit); len(picks) != in.limit {
					b.Fatalf("%d picks", len(picks))
				}
			}
		})
	}
}
