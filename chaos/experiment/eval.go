package experiment

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// window is the span of time an expression is judged over: [from, to].
type window struct{ from, to time.Time }

// sample is one series' value in a vector.
type sample struct {
	labels labels
	v      float64
}

// value is what an expression evaluates to: a number or a vector.
type value struct {
	vector bool
	num    float64
	vec    []sample
}

// evalNumber evaluates n over w and reduces it to one number: a number, or
// a vector of one series; an empty vector is ErrNoData.
func (s *store) evalNumber(n node, w window) (float64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, err := s.eval(n, w)
	if err != nil {
		return math.NaN(), err
	}
	if !v.vector {
		return v.num, nil
	}
	switch len(v.vec) {
	case 0:
		return math.NaN(), ErrNoData
	case 1:
		return v.vec[0].v, nil
	}
	return math.NaN(), fmt.Errorf("the expression gives %d series, e.g. %s; aggregate them, e.g. sum(...)", len(v.vec), v.vec[0].labels)
}

// eval evaluates n over w; s.mu is held.
func (s *store) eval(n node, w window) (value, error) {
	switch n := n.(type) {
	case numberNode:
		return value{num: n.v}, nil
	case unaryNode:
		x, err := s.eval(n.x, w)
		if err != nil {
			return x, err
		}
		return apply(x, value{num: -1}, '*')
	case binaryNode:
		l, err := s.eval(n.l, w)
		if err != nil {
			return l, err
		}
		r, err := s.eval(n.r, w)
		if err != nil {
			return r, err
		}
		return apply(l, r, n.op)
	case *selectorNode:
		var out []sample
		for _, sr := range s.matching(n) {
			if p, ok := last(sr.points, w.from, w.to); ok {
				out = append(out, sample{sr.labels, p.v})
			}
		}
		return value{vector: true, vec: out}, nil
	case rangeFunc:
		from := w.from
		if n.sel.window > 0 {
			from = w.to.Add(-n.sel.window)
		}
		var out []sample
		for _, sr := range s.matching(n.sel) {
			inc, dt, ok := increase(sr.points, from, w.to)
			if !ok {
				continue
			}
			if n.name == "rate" {
				inc /= dt.Seconds()
			}
			out = append(out, sample{sr.labels, inc})
		}
		return value{vector: true, vec: out}, nil
	case aggNode:
		x, err := s.eval(n.x, w)
		if err != nil {
			return x, err
		}
		if !x.vector {
			return x, fmt.Errorf("%s of a number: %s(...) takes series", n.op, n.op)
		}
		return value{vector: true, vec: aggregate(n.op, n.by, x.vec)}, nil
	case quantileNode:
		x, err := s.eval(n.x, w)
		if err != nil {
			return x, err
		}
		if !x.vector {
			return x, fmt.Errorf("histogram_quantile of a number: it takes the buckets of a histogram")
		}
		return value{vector: true, vec: quantiles(n.q, x.vec)}, nil
	}
	return value{}, fmt.Errorf("cannot evaluate %T", n)
}

// matching lists the series a selector selects.
func (s *store) matching(sel *selectorNode) []*series {
	var out []*series
	for _, sr := range s.byName[sel.name] {
		ok := true
		for _, m := range sel.matchers {
			if !m.matches(sr.labels.get(m.label)) {
				ok = false
				break
			}
		}
		if ok {
			out = append(out, sr)
		}
	}
	return out
}

// last is the last point in [from, to].
func last(ps []point, from, to time.Time) (point, bool) {
	for i := len(ps) - 1; i >= 0; i-- {
		if ps[i].t.After(to) {
			continue
		}
		if ps[i].t.Before(from) {
			break
		}
		return ps[i], true
	}
	return point{}, false
}

// increase is how much a counter grew over [from, to]: from its last
// point at or before from (or, for a series that begins inside the window,
// its first point) to its last point at or before to, a drop counting as a
// restart from zero; dt is the time between those points. ok is false
// without two such points.
func increase(ps []point, from, to time.Time) (inc float64, dt time.Duration, ok bool) {
	start := -1
	for i, p := range ps {
		if p.t.After(to) {
			break
		}
		if start < 0 || !p.t.After(from) {
			start = i
		}
	}
	if start < 0 {
		return 0, 0, false
	}
	prev, end := ps[start], start
	for i := start + 1; i < len(ps) && !ps[i].t.After(to); i++ {
		d := ps[i].v - prev.v
		if d < 0 {
			d = ps[i].v // reset
		}
		inc += d
		prev, end = ps[i], i
	}
	if end == start {
		return 0, 0, false
	}
	return inc, ps[end].t.Sub(ps[start].t), true
}

// apply is a binary operator on numbers and vectors; series of two
// vectors pair up by equal labels.
func apply(l, r value, op byte) (value, error) {
	f := func(a, b float64) float64 {
		switch op {
		case '+':
			return a + b
		case '-':
			return a - b
		case '*':
			return a * b
		}
		return a / b
	}
	switch {
	case !l.vector && !r.vector:
		return value{num: f(l.num, r.num)}, nil
	case !r.vector:
		out := make([]sample, len(l.vec))
		for i, s := range l.vec {
			out[i] = sample{s.labels, f(s.v, r.num)}
		}
		return value{vector: true, vec: out}, nil
	case !l.vector:
		out := make([]sample, len(r.vec))
		for i, s := range r.vec {
			out[i] = sample{s.labels, f(l.num, s.v)}
		}
		return value{vector: true, vec: out}, nil
	}
	right := map[string]float64{}
	for _, s := range r.vec {
		right[s.labels.key()] = s.v
	}
	var out []sample
	for _, s := range l.vec {
		if v, ok := right[s.labels.key()]; ok {
			out = append(out, sample{s.labels, f(s.v, v)})
		}
	}
	return value{vector: true, vec: out}, nil
}

// group is the samples of one label set: items taken from them, in the
// order they came.
type group[T any] struct {
	labels labels
	items  []T
}

// groupSamples puts each sample of in into the group of the labels f gives
// it, with the item f takes from it (f's ok false leaves it out). Groups
// come in the order their first sample did.
func groupSamples[T any](in []sample, f func(sample) (labels, T, bool)) []*group[T] {
	byKey := map[string]*group[T]{}
	var out []*group[T]
	for _, s := range in {
		ls, item, ok := f(s)
		if !ok {
			continue
		}
		k := ls.key()
		g := byKey[k]
		if g == nil {
			g = &group[T]{labels: ls}
			byKey[k] = g
			out = append(out, g)
		}
		g.items = append(g.items, item)
	}
	return out
}

// aggregate groups samples by the labels in by (every other label is
// dropped) and reduces each group.
func aggregate(op string, by []string, in []sample) []sample {
	groups := groupSamples(in, func(s sample) (labels, float64, bool) {
		var ls labels
		for _, l := range s.labels {
			if slices.Contains(by, l.name) {
				ls = append(ls, l)
			}
		}
		return ls, s.v, true
	})
	out := make([]sample, 0, len(groups))
	for _, g := range groups {
		var v float64
		switch op {
		case "sum", "avg":
			for _, x := range g.items {
				v += x
			}
			if op == "avg" {
				v /= float64(len(g.items))
			}
		case "min":
			v = slices.Min(g.items)
		case "max":
			v = slices.Max(g.items)
		case "count":
			v = float64(len(g.items))
		}
		out = append(out, sample{g.labels, v})
	}
	return out
}

// quantiles estimates the q-quantile of each histogram in the samples
// (its buckets: samples with an le label and otherwise the same labels),
// as Prometheus's histogram_quantile does: linear interpolation inside the
// bucket the rank falls in; the highest finite bound if it falls in the
// +Inf bucket; NaN without observations.
func quantiles(q float64, in []sample) []sample {
	type bucket struct{ le, count float64 }
	hists := groupSamples(in, func(s sample) (labels, bucket, bool) {
		leText := s.labels.get("le")
		le, err := strconv.ParseFloat(leText, 64)
		if leText == "" || err != nil {
			return nil, bucket{}, false
		}
		ls := slices.DeleteFunc(slices.Clone(s.labels), func(l label) bool { return l.name == "le" })
		return ls, bucket{le, s.v}, true
	})
	var out []sample
	for _, h := range hists {
		bs := h.items
		sort.Slice(bs, func(i, j int) bool { return bs[i].le < bs[j].le })
		v := math.NaN()
		if n := len(bs); n >= 2 && math.IsInf(bs[n-1].le, 1) && bs[n-1].count > 0 {
			rank := q * bs[n-1].count
			lower, below := 0.0, 0.0
		buckets:
			for _, b := range bs {
				if b.count >= rank {
					switch {
					case math.IsInf(b.le, 1):
						v = bs[n-2].le
					case b.count == below:
						v = b.le
					default:
						v = lower + (b.le-lower)*(rank-below)/(b.count-below)
					}
					break buckets
				}
				lower, below = b.le, b.count
			}
		}
		out = append(out, sample{h.labels, v})
	}
	return out
}

// formatValue writes a number for the report.
func formatValue(v float64) string {
	if math.IsNaN(v) {
		return "-"
	}
	return strings.TrimSuffix(strings.TrimRight(strconv.FormatFloat(v, 'f', 4, 64), "0"), ".")
}
