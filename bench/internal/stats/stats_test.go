package stats

import (
	"testing"
	"time"
)

func TestPercentile(t *testing.T) {
	ms := func(xs ...int) []time.Duration {
		out := make([]time.Duration, len(xs))
		for i, x := range xs {
			out[i] = time.Duration(x) * time.Millisecond
		}
		return out
	}
	var thousand []time.Duration
	for i := 1; i <= 1000; i++ {
		thousand = append(thousand, time.Duration(i))
	}
	for _, tc := range []struct {
		name   string
		sorted []time.Duration
		q      float64
		want   time.Duration
	}{
		{"empty", nil, 0.99, 0},
		{"one", ms(7), 0.5, 7 * time.Millisecond},
		{"median of four is the second", ms(1, 2, 3, 4), 0.5, 2 * time.Millisecond},
		{"p50 of 1..1000", thousand, 0.5, 500},
		{"p99 of 1..1000", thousand, 0.99, 990},
		{"p99.9 of 1..1000", thousand, 0.999, 999},
		{"p100", ms(1, 2, 3), 1, 3 * time.Millisecond},
		{"tiny q is the min", ms(1, 2, 3), 0.0001, time.Millisecond},
	} {
		if got := Percentile(tc.sorted, tc.q); got != tc.want {
			t.Errorf("%s: Percentile(q=%v) = %v, want %v", tc.name, tc.q, got, tc.want)
		}
	}
}

func TestMedian(t *testing.T) {
	type metrics map[string]float64
	got := Median([]metrics{{"a": 3, "b": 1}, {"a": 1, "b": 2}, {"a": 2, "b": 10}, {"a": 9}})
	if got["a"] != 2.5 || got["b"] != 2 || len(got) != 2 {
		t.Errorf("Median = %v, want a 2.5 (even count), b 2", got)
	}
	if got := Median[metrics](nil); len(got) != 0 {
		t.Errorf("Median of no rounds = %v", got)
	}
}
