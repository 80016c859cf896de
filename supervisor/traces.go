package supervisor

import (
	"cmp"
	"encoding/hex"
	"slices"
	"sync"
	"time"
)

// Span is one span an instance exported, as the dashboard shows it.
type Span struct {
	TraceID  string `json:"trace_id"`
	SpanID   string `json:"span_id"`
	ParentID string `json:"parent_id,omitempty"`
	Name     string `json:"name"`
	// Kind is server, client, internal, producer or consumer.
	Kind string `json:"kind"`
	// Service and Instance are the exporter's resource attributes
	// service.name and service.instance.id (the SHOAL_INSTANCE id).
	Service  string `json:"service"`
	Instance string `json:"instance"`
	// Slot is the instance's place in the supervisor, "service/index",
	// when the instance ID is one the supervisor gave.
	Slot  string    `json:"slot,omitempty"`
	Start time.Time `json:"start"`
	// OffsetMS is the span's start after the start of its trace, and
	// DurationMS its length, in milliseconds (fractions for microseconds):
	// a waterfall needs no date arithmetic.
	OffsetMS   float64 `json:"offset_ms"`
	DurationMS float64 `json:"duration_ms"`
	// Status is unset, ok or error.
	Status        string         `json:"status"`
	StatusMessage string         `json:"status_message,omitempty"`
	Attributes    map[string]any `json:"attributes,omitempty"`
	Events        []SpanEvent    `json:"events,omitempty"`

	end time.Time
}

// SpanEvent is an event recorded on a span (an exception, a log).
type SpanEvent struct {
	Name       string         `json:"name"`
	Time       time.Time      `json:"time"`
	Attributes map[string]any `json:"attributes,omitempty"`
}

// TraceSummary is one row of a list of traces.
type TraceSummary struct {
	TraceID string    `json:"trace_id"`
	Root    string    `json:"root"`    // name of the root span (the earliest, if the root is missing)
	Service string    `json:"service"` // service of that span
	Start   time.Time `json:"start"`
	// DurationMS is the root span's duration, what the first caller
	// waited; for a trace whose root has not arrived (or whose root's
	// parent is outside the system), from the earliest start to the latest
	// end.
	DurationMS float64  `json:"duration_ms"`
	Spans      int      `json:"spans"`
	Errors     int      `json:"errors"` // spans with status error, but calls their caller canceled (see canceledCall)
	Services   []string `json:"services"`
}

// Trace is every stored span of one trace, by start time.
type Trace struct {
	TraceSummary
	SpanList []Span `json:"spans"`
}

// Trace lists.
const (
	TracesRecent  = "recent"
	TracesSlowest = "slowest"
	TracesFailed  = "failed"
)

// traceLimits bound the trace store. The zero value is not valid; see
// defaultTraceLimits.
type traceLimits struct {
	recent   int           // the last traces seen
	slowest  int           // the slowest of those seen within window
	failed   int           // the last failed ones seen within window
	window   time.Duration // how long slow and failed traces are kept apart from recent ones
	maxBytes int           // estimated size of every stored span together
	maxSpans int           // per trace; further spans are dropped
}

// defaultTraceLimits keep a few minutes of a busy system in at most 64 MiB.
var defaultTraceLimits = traceLimits{recent: 500, slowest: 50, failed: 200, window: 10 * time.Minute, maxBytes: 64 << 20, maxSpans: 2000}

// storedTrace is one trace and the lists it is on; it is deleted once it
// is on none.
type storedTrace struct {
	id                         [16]byte
	spans                      []Span
	bytes                      int
	start, end                 time.Time
	errors                     int
	seen                       time.Time // arrival of its last span
	inRecent, inSlow, inFailed bool
	// rootDur is the duration of its root span (the longest span without a
	// parent), if one has arrived (hasRoot): what the first caller waited.
	rootDur time.Duration
	hasRoot bool

	// For the calls between services the trace shows: the service of
	// each span, and the services of spans whose parent has not arrived
	// (spans come from several processes, in any order).
	serviceOf map[string]string
	orphans   map[string][]string
}

// duration is how long the trace's first caller waited: its root span's
// duration, or, before the root arrives (or when the root's parent is a
// caller outside the system), from the earliest start to the latest end.
// Not the extent once the root is known: work that goes on after the
// answer (a hedge that lost, a canceled call winding down) made a request
// answered in 275 ms rank as a 468 ms one. A trace that entered the
// slowest list on its extent, before its root arrived, may have taken the
// place of one slower than its root: the list is the slowest as far as
// the spans in hand tell, as its byte bound already makes it.
func (t *storedTrace) duration() time.Duration {
	if t.hasRoot {
		return t.rootDur
	}
	return t.end.Sub(t.start)
}

// traceStore keeps recent spans grouped by trace in bounded memory: the
// last limits.recent traces, plus the slowest and the failed ones of the
// last limits.window, all together within limits.maxBytes. Safe for
// concurrent use; every method is short and never blocks on I/O.
type traceStore struct {
	lim traceLimits

	mu      sync.Mutex
	byID    map[[16]byte]*storedTrace
	recent  []*storedTrace // by first arrival, oldest first
	slow    []*storedTrace // unordered, at most lim.slowest
	failed  []*storedTrace // by first failure, oldest first
	bytes   int
	dropped uint64 // spans refused (trace full, or larger than the store)
	version uint64 // bumped on every change

	calls map[[2]string]time.Time // caller → callee service pairs seen in traces, and when last
}

func newTraceStore(lim traceLimits) *traceStore {
	return &traceStore{lim: lim, byID: map[[16]byte]*storedTrace{}, calls: map[[2]string]time.Time{}}
}

// add stores spans (of any traces) that arrived at now and returns how
// many it refused.
func (s *traceStore) add(spans []Span, ids [][16]byte, now time.Time) (refused int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	touched := map[*storedTrace]bool{}
	for i := range spans {
		sp := &spans[i]
		size := spanSize(sp)
		if size > s.lim.maxBytes {
			refused++
			continue
		}
		t := s.byID[ids[i]]
		if t == nil {
			t = &storedTrace{id: ids[i], start: sp.Start, end: sp.end, inRecent: true}
			s.byID[t.id] = t
			s.recent = append(s.recent, t)
			if len(s.recent) > s.lim.recent {
				s.dropOldest(&s.recent, func(t *storedTrace) *bool { return &t.inRecent })
			}
		}
		if len(t.spans) >= s.lim.maxSpans {
			refused++
			continue
		}
		t.spans = append(t.spans, *sp)
		s.linkCalls(t, sp, now)
		t.bytes += size
		s.bytes += size
		t.seen = now
		if sp.Start.Before(t.start) {
			t.start = sp.Start
		}
		if sp.end.After(t.end) {
			t.end = sp.end
		}
		if d := sp.end.Sub(sp.Start); sp.ParentID == "" && (!t.hasRoot || d > t.rootDur) {
			t.hasRoot, t.rootDur = true, d
		}
		if sp.Status == "error" && !canceledCall(sp) {
			t.errors++
			if !t.inFailed {
				t.inFailed = true
				s.failed = append(s.failed, t)
				if len(s.failed) > s.lim.failed {
					s.dropOldest(&s.failed, func(t *storedTrace) *bool { return &t.inFailed })
				}
			}
		}
		touched[t] = true
	}
	for t := range touched {
		s.considerSlow(t)
	}
	for s.bytes > s.lim.maxBytes && s.evictOne() {
	}
	s.dropped += uint64(refused)
	s.version++
	return refused
}

// linkCalls records the call between services that sp and its parent,
// or sp and its children already stored, make.
func (s *traceStore) linkCalls(t *storedTrace, sp *Span, now time.Time) {
	if t.serviceOf == nil {
		t.serviceOf, t.orphans = map[string]string{}, map[string][]string{}
	}
	t.serviceOf[sp.SpanID] = sp.Service
	call := func(from, to string) {
		if from != to && from != "" && to != "" {
			s.calls[[2]string{from, to}] = now
		}
	}
	if sp.ParentID != "" {
		if parent, ok := t.serviceOf[sp.ParentID]; ok {
			call(parent, sp.Service)
		} else if len(t.orphans) < s.lim.maxSpans {
			t.orphans[sp.ParentID] = append(t.orphans[sp.ParentID], sp.Service)
		}
	}
	for _, child := range t.orphans[sp.SpanID] {
		call(sp.Service, child)
	}
	delete(t.orphans, sp.SpanID)
}

// callsSince returns the caller → callee pairs seen in traces since
// cutoff, and forgets older ones.
func (s *traceStore) callsSince(cutoff time.Time) map[[2]string]bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[[2]string]bool{}
	for k, at := range s.calls {
		if at.Before(cutoff) {
			delete(s.calls, k)
			continue
		}
		out[k] = true
	}
	return out
}

// considerSlow puts t on the slowest list if it is slower than the fastest
// trace there.
func (s *traceStore) considerSlow(t *storedTrace) {
	if t.inSlow || len(t.spans) == 0 {
		return
	}
	if len(s.slow) < s.lim.slowest {
		t.inSlow = true
		s.slow = append(s.slow, t)
		return
	}
	i := s.fastestSlow()
	if i < 0 || s.slow[i].duration() >= t.duration() {
		return
	}
	old := s.slow[i]
	s.slow[i] = t
	t.inSlow = true
	old.inSlow = false
	s.forgetIfUnlisted(old)
}

func (s *traceStore) fastestSlow() int {
	best := -1
	for i, t := range s.slow {
		if best < 0 || t.duration() < s.slow[best].duration() {
			best = i
		}
	}
	return best
}

// evictOne drops one trace to make room: the oldest recent one, else the
// oldest failed one, else the fastest slow one. It reports whether it
// dropped anything.
func (s *traceStore) evictOne() bool {
	var t *storedTrace
	switch {
	case len(s.recent) > 0:
		t = s.recent[0]
	case len(s.failed) > 0:
		t = s.failed[0]
	case len(s.slow) > 0:
		t = s.slow[s.fastestSlow()]
	default:
		return false
	}
	s.delete(t)
	return true
}

// dropOldest takes the first trace off list, whose membership flag on
// returns, and deletes it if it is on no other list.
func (s *traceStore) dropOldest(list *[]*storedTrace, on func(*storedTrace) *bool) {
	old := (*list)[0]
	*list = slices.Delete(*list, 0, 1)
	*on(old) = false
	s.forgetIfUnlisted(old)
}

// forgetIfUnlisted deletes t once it is on no list.
func (s *traceStore) forgetIfUnlisted(t *storedTrace) {
	if !t.inRecent && !t.inSlow && !t.inFailed {
		s.delete(t)
	}
}

// delete removes t from every list and the index.
func (s *traceStore) delete(t *storedTrace) {
	drop := func(list []*storedTrace) []*storedTrace {
		return slices.DeleteFunc(list, func(x *storedTrace) bool { return x == t })
	}
	if t.inRecent {
		s.recent = drop(s.recent)
	}
	if t.inSlow {
		s.slow = drop(s.slow)
	}
	if t.inFailed {
		s.failed = drop(s.failed)
	}
	t.inRecent, t.inSlow, t.inFailed = false, false, false
	delete(s.byID, t.id)
	s.bytes -= t.bytes
}

// expire drops slow and failed traces last seen before now - window that
// are not among the recent ones.
func (s *traceStore) expire(now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cutoff := now.Add(-s.lim.window)
	changed := false
	for _, list := range []*[]*storedTrace{&s.slow, &s.failed} {
		for _, t := range slices.Clone(*list) {
			if t.seen.Before(cutoff) {
				if list == &s.slow {
					t.inSlow = false
				} else {
					t.inFailed = false
				}
				*list = slices.DeleteFunc(*list, func(x *storedTrace) bool { return x == t })
				s.forgetIfUnlisted(t)
				changed = true
			}
		}
	}
	if changed {
		s.version++
	}
}

// list returns the summaries of one list, at most limit (0: all): recent
// and failed newest first, slowest slowest first.
func (s *traceStore) list(kind string, limit int) []TraceSummary {
	s.mu.Lock()
	var src []*storedTrace
	switch kind {
	case TracesSlowest:
		src = slices.Clone(s.slow)
		slices.SortFunc(src, func(a, b *storedTrace) int { return cmp.Compare(b.duration(), a.duration()) })
	case TracesFailed:
		// Newest first by start, as the recent list: a failure is listed
		// when its first failed span arrives, which may be a while after
		// the trace began (a timeout), so arrival order would jumble it.
		src = slices.Clone(s.failed)
		slices.SortStableFunc(src, func(a, b *storedTrace) int { return b.start.Compare(a.start) })
	default:
		src = slices.Clone(s.recent)
		slices.Reverse(src)
	}
	if limit > 0 && len(src) > limit {
		src = src[:limit]
	}
	out := make([]TraceSummary, len(src))
	for i, t := range src {
		out[i] = summarize(t)
	}
	s.mu.Unlock()
	return out
}

// get returns one trace, its spans by start time.
func (s *traceStore) get(id [16]byte) (Trace, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.byID[id]
	if t == nil {
		return Trace{}, false
	}
	spans := slices.Clone(t.spans)
	slices.SortStableFunc(spans, func(a, b Span) int { return a.Start.Compare(b.Start) })
	for i := range spans {
		spans[i].OffsetMS = ms(spans[i].Start.Sub(t.start))
	}
	return Trace{TraceSummary: summarize(t), SpanList: spans}, true
}

// stats reports the number of traces and spans stored, their estimated
// bytes, the spans refused so far, and a version that changes with them.
func (s *traceStore) stats() (traces, bytes int, dropped, version uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.byID), s.bytes, s.dropped, s.version
}

// summarize describes t; s.mu is held.
func summarize(t *storedTrace) TraceSummary {
	sum := TraceSummary{TraceID: hex.EncodeToString(t.id[:]), Start: t.start, DurationMS: ms(t.duration()), Spans: len(t.spans), Errors: t.errors}
	ids := make(map[string]bool, len(t.spans))
	for i := range t.spans {
		ids[t.spans[i].SpanID] = true
	}
	// The root is the span without a parent, else (its exporter has not
	// sent it yet) the earliest span whose parent is missing.
	better := func(a, b *Span) bool {
		if (a.ParentID == "") != (b.ParentID == "") {
			return a.ParentID == ""
		}
		return a.Start.Before(b.Start)
	}
	var root *Span
	seen := map[string]bool{}
	for i := range t.spans {
		sp := &t.spans[i]
		if (sp.ParentID == "" || !ids[sp.ParentID]) && (root == nil || better(sp, root)) {
			root = sp
		}
		if !seen[sp.Service] {
			seen[sp.Service] = true
			sum.Services = append(sum.Services, sp.Service)
		}
	}
	slices.Sort(sum.Services)
	if root != nil {
		sum.Root, sum.Service = root.Name, root.Service
	}
	return sum
}

// spanSize estimates the memory a stored span takes.
func spanSize(sp *Span) int {
	n := 256 + len(sp.TraceID) + len(sp.SpanID) + len(sp.ParentID) + len(sp.Name) + len(sp.Service) + len(sp.Instance) + len(sp.StatusMessage)
	n += attrsSize(sp.Attributes)
	for _, e := range sp.Events {
		n += 64 + len(e.Name) + attrsSize(e.Attributes)
	}
	return n
}

func attrsSize(m map[string]any) int {
	n := 0
	for k, v := range m {
		n += 48 + len(k)
		if s, ok := v.(string); ok {
			n += len(s)
		}
	}
	return n
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// canceledCall reports whether sp is a call to a service that its caller
// canceled (shoal.outcome "canceled": the caller's own caller left, or it
// no longer needed the answer, e.g. a sibling call failed first). An error
// for OpenTelemetry, but no failure: counted as one, every trace in which
// a request ended early would be listed as failed.
func canceledCall(sp *Span) bool {
	return sp.Kind == "client" && sp.Attributes["shoal.outcome"] == "canceled"
}
