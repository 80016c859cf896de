// Package stats is the arithmetic of the benchmarks' results: quantiles of
// latencies, and medians of rounds.
package stats

import (
	"math"
	"slices"
	"time"
)

// Percentile returns the nearest-rank q-quantile (0 < q ≤ 1) of sorted, or
// 0 for no values: the smallest value with at least q of them at or below
// it.
func Percentile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(q * float64(len(sorted))))
	return sorted[min(max(rank, 1), len(sorted))-1]
}

// Median returns, for each key, the median of its values over rounds (the
// mean of the middle two for an even count); a key missing from a round
// counts over the others.
func Median[M ~map[string]float64](rounds []M) M {
	vals := map[string][]float64{}
	for _, m := range rounds {
		for k, v := range m {
			vals[k] = append(vals[k], v)
		}
	}
	out := M{}
	for k, vs := range vals {
		slices.Sort(vs)
		n := len(vs)
		if n%2 == 1 {
			out[k] = vs[n/2]
		} else {
			out[k] = (vs[n/2-1] + vs[n/2]) / 2
		}
	}
	return out
}
