package main

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"time"
)

// The dataset: every profile of the flix dataset (p0001..p0500, written by
// the profiles service) rates datasetPerProfile distinct titles of the
// catalog's dataset (ids 1..datasetTitles), the same ratings at every
// first start.
const (
	datasetSeed       = 2001
	datasetProfiles   = 500
	datasetTitles     = 2400 // the catalog's dataset size
	datasetPerProfile = 100
)

// datasetEpoch is when the dataset's first rating was given; the others
// follow over two years.
var datasetEpoch = time.Date(2024, time.January, 1, 0, 0, 0, 0, time.UTC)

// generate returns the dataset's ratings, profile by profile. Titles are
// picked half uniformly (every title gets some ratings) and half by
// popularity (a Zipf-like law over a shuffled ranking, so that some
// titles are clearly popular); a title's scores center on a quality that
// falls with its rank, plus noise.
func generate(seed uint64) []Rating {
	rng := rand.New(rand.NewPCG(seed, seed^0xbadd))
	rank := rng.Perm(datasetTitles) // rank[i]: title i+1's popularity rank, 0 the most popular
	byRank := make([]int, datasetTitles)
	for i, r := range rank {
		byRank[r] = i + 1
	}
	// cum[r]: the total popularity weight of ranks 0..r.
	cum := make([]float64, datasetTitles)
	total := 0.0
	for r := range cum {
		total += 1 / float64(r+10)
		cum[r] = total
	}
	quality := make([]float64, datasetTitles)
	for i, r := range rank {
		quality[i] = 4.6 - 2.4*float64(r)/datasetTitles + 0.4*rng.NormFloat64()
	}
	span := int64(2 * 365 * 24 * time.Hour)
	out := make([]Rating, 0, datasetProfiles*datasetPerProfile)
	var seen [datasetTitles + 1]bool
	for p := 1; p <= datasetProfiles; p++ {
		profile := fmt.Sprintf("p%04d", p)
		first := len(out)
		for len(out)-first < datasetPerProfile {
			var title int
			if rng.IntN(2) == 0 {
				title = 1 + rng.IntN(datasetTitles)
			} else {
				r, _ := slices.BinarySearch(cum, rng.Float64()*total)
				title = byRank[min(r, datasetTitles-1)]
			}
			if seen[title] {
				continue
			}
			seen[title] = true
			score := int(math.Round(quality[title-1] + 0.8*rng.NormFloat64()))
			at := datasetEpoch.Add(time.Duration(rng.Int64N(span))).Truncate(time.Millisecond)
			out = append(out, Rating{Profile: profile, Title: int64(title), Score: min(max(score, 1), 5), UpdatedAt: at.UTC()})
		}
		for _, r := range out[first:] {
			seen[r.Title] = false
		}
	}
	return out
}
