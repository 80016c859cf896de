package main

import (
	"math/rand/v2"
	"time"
)

// Title is one entry of the catalog.
type Title struct {
	ID        int      `json:"id"`
	Name      string   `json:"name"`
	Year      int      `json:"year"`
	Genres    []string `json:"genres"`
	Kind      string   `json:"kind"`              // "movie" or "series"
	Seasons   int      `json:"seasons,omitempty"` // series only
	Maturity  string   `json:"maturity"`          // "all", "teen" or "adult"
	DurationS int      `json:"duration_s"`        // a movie's length, or a series' episode length
	AddedAt   int64    `json:"added_at"`          // Unix ms; the newest titles have the highest

	// episodes holds the number of episodes of each season (series only);
	// GET /titles/{id}/episodes lists them.
	episodes []int
}

// Kinds and maturity ratings. A profile of maturity "kids" may watch
// "all", "teen" may watch "all" and "teen", "adult" everything.
const (
	kindMovie  = "movie"
	kindSeries = "series"
)

var maturities = []string{"all", "teen", "adult"}

// The dataset: same seed, same titles, on every instance and every start.
const (
	datasetSeed = 1998
	datasetSize = 2400
)

// datasetEpoch is when the dataset's oldest title was added; the others
// follow over about three years. Titles added later (POST /titles) get the
// time they were added, so they are the newest.
var datasetEpoch = time.Date(2023, time.January, 1, 0, 0, 0, 0, time.UTC).UnixMilli()

var (
	genres = []string{"action", "adventure", "animation", "comedy", "crime", "documentary",
		"drama", "family", "fantasy", "horror", "mystery", "romance", "sci-fi", "thriller", "western"}
	adjectives = []string{"Silent", "Last", "Crimson", "Hidden", "Broken", "Golden", "Midnight",
		"Lost", "Electric", "Quiet", "Burning", "Frozen", "Distant", "Wild", "Hollow", "Bright",
		"Secret", "Final", "Iron", "Velvet", "Salt", "Paper", "Northern", "Endless"}
	nouns = []string{"Harbor", "Signal", "Garden", "Empire", "River", "Witness", "Orchard",
		"Horizon", "Lighthouse", "Kingdom", "Frontier", "Station", "Archive", "Mirror", "Voyage",
		"Tide", "Circuit", "Winter", "Summer", "Island", "Engine", "Shoal", "Canyon", "Parade"}
	places = []string{"Lisbon", "the North", "Mars", "the Valley", "Kyoto", "the Deep",
		"Avalon", "Old Town", "the Coast", "Nowhere", "Carthage", "the Dunes"}
)

// generate returns n titles with ids 1..n, the same for the same seed. It
// takes a few milliseconds for the default size (BenchmarkGenerate).
//
// Names, years, kinds, seasons and genres come from one random stream, as
// they did before the other fields existed, so that titles kept their ids
// and names; maturity, durations, episodes and added_at from a second one.
func generate(seed uint64, n int) []Title {
	rng := rand.New(rand.NewPCG(seed, seed^0x5eed))
	more := rand.New(rand.NewPCG(seed^0xadd, seed))
	pick := func(list []string) string { return list[rng.IntN(len(list))] }
	titles := make([]Title, n)
	// Spread the additions over about three years, in a shuffled order so
	// that "new" is not "highest id".
	span := int64(3 * 365 * 24 * time.Hour / time.Millisecond)
	for i := range titles {
		t := Title{ID: i + 1, Kind: kindMovie}
		switch rng.IntN(4) {
		case 0:
			t.Name = "The " + pick(adjectives) + " " + pick(nouns)
		case 1:
			t.Name = pick(nouns) + " of " + pick(places)
		case 2:
			t.Name = pick(adjectives) + " " + pick(nouns) + "s"
		default:
			t.Name = "The " + pick(nouns) + " " + []string{"II", "III", "Returns", "Rising", "Unbound"}[rng.IntN(5)]
		}
		if rng.IntN(4) == 0 {
			t.Kind = kindSeries
			t.Seasons = 1 + rng.IntN(8)
			t.Year = 1990 + rng.IntN(36)
		} else {
			t.Year = 1950 + rng.IntN(76)
		}
		// 1 to 3 distinct genres, in list order.
		var set uint32
		for k := 1 + rng.IntN(3); k > 0; {
			if g := uint32(1) << rng.IntN(len(genres)); set&g == 0 {
				set |= g
				k--
			}
		}
		for g := range genres {
			if set&(1<<g) != 0 {
				t.Genres = append(t.Genres, genres[g])
			}
		}

		t.Maturity = maturityFor(more, t.Genres)
		if t.Kind == kindSeries {
			t.DurationS = 60 * (22 + more.IntN(39)) // 22 to 60 minute episodes
			t.episodes = make([]int, t.Seasons)
			for s := range t.episodes {
				t.episodes[s] = 6 + more.IntN(8)
			}
		} else {
			t.DurationS = 60 * (80 + more.IntN(81)) // 80 to 160 minutes
		}
		// Distinct times: the i-th millisecond breaks ties.
		t.AddedAt = datasetEpoch + more.Int64N(span)/int64(n)*int64(n) + int64(i)
		titles[i] = t
	}
	return titles
}

// maturityFor rates a title from its genres: family and animation are
// mostly for everyone, horror, crime and thriller mostly for adults.
func maturityFor(rng *rand.Rand, gs []string) string {
	var kids, grim bool
	for _, g := range gs {
		switch g {
		case "family", "animation":
			kids = true
		case "horror", "crime", "thriller":
			grim = true
		}
	}
	r := rng.IntN(100)
	switch {
	case grim:
		return maturities[1+min(r/40, 1)] // teen 40%, adult 60%
	case kids:
		return maturities[min(r/80, 1)] // all 80%, teen 20%
	case r < 40:
		return "all"
	case r < 75:
		return "teen"
	}
	return "adult"
}

// Defaults for titles added without them.
const defaultEpisodes = 10
