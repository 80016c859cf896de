package supervisor

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strings"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// scrapeAccept asks for the protobuf exposition (cheaper to decode than
// text), text as a fallback for programs that only speak that.
const scrapeAccept = string(expfmt.FmtProtoDelim) + ";q=0.7," + string(expfmt.FmtText) + ";q=0.3"

// scrapeMaxBody bounds one /metrics answer.
const scrapeMaxBody = 8 << 20

// sample is one scrape of an instance's /metrics, reduced to what the
// dashboard shows (see the telemetry package for the metrics).
type sample struct {
	at  time.Time
	err string // the scrape failed; the rest is zero

	// Server side: the instance's own handler and admission limiter.
	requests, errors float64   // shoal_http_requests_total, and its 5xx part
	latency          histogram // shoal_http_request_duration_seconds, every method and code
	server           bool      // the admission metrics are present
	inFlight, limit  float64
	queued           float64 // shoal_server_queued
	overloaded       bool    // shoal_server_overloaded
	admitted         float64
	rejected         float64
	cpu, rss         float64 // process_cpu_seconds_total, process_resident_memory_bytes

	// Client side: the dependencies it calls, by service.
	deps map[string]*depSample
}

// depSample is the client-side state of one caller for one dependency.
type depSample struct {
	calls, failures, retries    float64
	budgetLeft, budgetExhausted float64
	throttleRate, throttled     float64
	inFlight, maxInFlight, full float64
	hedges, hedgeWins           float64
	hosts                       map[string]*hostSample // by instance ID
}

// hostSample is one caller's view of one instance of a dependency.
type hostSample struct {
	ewma, inFlight, ejected, ejections, refused float64
	breaker                                     string // closed, open, half_open; "" if not reported
}

// histogram is a classic cumulative histogram: counts[i] observations
// <= bounds[i], the last bound +Inf.
type histogram struct {
	bounds []float64
	counts []float64
}

// add merges the buckets of h2 (cumulative, ascending) into h.
func (h *histogram) add(bounds, counts []float64) {
	if len(h.bounds) == 0 {
		h.bounds, h.counts = append([]float64(nil), bounds...), append([]float64(nil), counts...)
		return
	}
	if equalBounds(h.bounds, bounds) {
		for i := range counts {
			h.counts[i] += counts[i]
		}
		return
	}
	// Different layouts (another program's buckets): keep the common
	// bounds, which every cumulative count can be read at.
	var nb, nc []float64
	j := 0
	for i, b := range h.bounds {
		for j < len(bounds) && bounds[j] < b {
			j++
		}
		if j < len(bounds) && bounds[j] == b {
			nb, nc = append(nb, b), append(nc, h.counts[i]+counts[j])
		}
	}
	h.bounds, h.counts = nb, nc
}

func equalBounds(a, b []float64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// total is the number of observations.
func (h *histogram) total() float64 {
	if len(h.counts) == 0 {
		return 0
	}
	return h.counts[len(h.counts)-1]
}

// sub returns h - old, bucket by bucket, or h itself when old is another
// layout or larger (the process restarted and counts from zero again).
func (h histogram) sub(old histogram) histogram {
	if !equalBounds(h.bounds, old.bounds) || old.total() > h.total() {
		return h
	}
	d := histogram{bounds: h.bounds, counts: make([]float64, len(h.counts))}
	for i := range h.counts {
		d.counts[i] = max(0, h.counts[i]-old.counts[i])
	}
	return d
}

// quantile estimates the q-quantile the way Prometheus's histogram_quantile
// does: linear interpolation inside the bucket the rank falls in, the
// highest finite bound if it falls in the +Inf bucket. NaN without data.
func (h histogram) quantile(q float64) float64 {
	n := h.total()
	if n == 0 || len(h.bounds) < 2 {
		return math.NaN()
	}
	rank := q * n
	lower, below := 0.0, 0.0
	for i, b := range h.bounds {
		if h.counts[i] >= rank {
			if math.IsInf(b, 1) {
				return h.bounds[len(h.bounds)-2]
			}
			in := h.counts[i] - below
			if in == 0 {
				return b
			}
			return lower + (b-lower)*(rank-below)/in
		}
		lower, below = b, h.counts[i]
	}
	return h.bounds[len(h.bounds)-2]
}

// scrapeOne fetches and reduces one instance's metrics.
func scrapeOne(ctx context.Context, hc *http.Client, url string) sample {
	s := sample{at: time.Now()}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		s.err = err.Error()
		return s
	}
	req.Header.Set("Accept", scrapeAccept)
	resp, err := hc.Do(req)
	if err != nil {
		s.err = err.Error()
		return s
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
		s.err = "GET " + url + ": " + resp.Status
		return s
	}
	if err := s.decode(io.LimitReader(resp.Body, scrapeMaxBody), expfmt.ResponseFormat(resp.Header)); err != nil {
		s = sample{at: s.at, err: fmt.Sprintf("GET %s: %v", url, err)}
	}
	return s
}

// decode reads an exposition in format f into s.
func (s *sample) decode(r io.Reader, f expfmt.Format) error {
	if f.FormatType() == expfmt.TypeProtoDelim {
		return s.decodeProto(bufio.NewReader(r))
	}
	if f == expfmt.FmtUnknown {
		f = expfmt.FmtText
	}
	dec := expfmt.NewDecoder(r, f)
	for {
		var mf dto.MetricFamily
		err := dec.Decode(&mf)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		s.family(&mf)
	}
}

// decodeProto reads the delimited protobuf exposition, decoding only the
// families family uses: most of an instance's exposition is the Go
// runtime's, and reading a family's name off its first field and skipping
// the rest costs a fraction of decoding it (this is most of the
// supervisor's idle CPU).
func (s *sample) decodeProto(r *bufio.Reader) error {
	var buf []byte
	for {
		size, err := binary.ReadUvarint(r)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if size > scrapeMaxBody {
			return fmt.Errorf("metric family of %d bytes", size)
		}
		if uint64(cap(buf)) < size {
			buf = make([]byte, size)
		}
		buf = buf[:size]
		if _, err := io.ReadFull(r, buf); err != nil {
			return err
		}
		if !wanted(familyName(buf)) {
			continue
		}
		var mf dto.MetricFamily
		if err := proto.Unmarshal(buf, &mf); err != nil {
			return err
		}
		s.family(&mf)
	}
}

// familyName returns field 1 (name) of an encoded MetricFamily, "" if it
// has none or the message is malformed.
func familyName(b []byte) string {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return ""
		}
		b = b[n:]
		if num == 1 && typ == protowire.BytesType {
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return ""
			}
			return string(v)
		}
		n = protowire.ConsumeFieldValue(num, typ, b)
		if n < 0 {
			return ""
		}
		b = b[n:]
	}
	return ""
}

// wanted reports whether family reads the family named name.
func wanted(name string) bool {
	switch name {
	case "shoal_http_requests_total", "shoal_http_request_duration_seconds",
		"shoal_server_in_flight", "shoal_server_concurrency_limit", "shoal_server_admitted_total", "shoal_server_rejected_total",
		"shoal_server_queued", "shoal_server_overloaded",
		"process_cpu_seconds_total", "process_resident_memory_bytes":
		return true
	}
	return strings.HasPrefix(name, "shoal_client_")
}

// family takes what the dashboard needs from one metric family.
func (s *sample) family(mf *dto.MetricFamily) {
	name := mf.GetName()
	if !wanted(name) {
		return
	}
	switch {
	case name == "shoal_http_requests_total":
		for _, m := range mf.GetMetric() {
			v := m.GetCounter().GetValue()
			s.requests += v
			if strings.HasPrefix(label(m, "code"), "5") {
				s.errors += v
			}
		}
	case name == "shoal_http_request_duration_seconds":
		for _, m := range mf.GetMetric() {
			h := m.GetHistogram()
			bounds := make([]float64, 0, len(h.GetBucket())+1)
			counts := make([]float64, 0, len(h.GetBucket())+1)
			for _, b := range h.GetBucket() {
				bounds = append(bounds, b.GetUpperBound())
				counts = append(counts, float64(b.GetCumulativeCount()))
			}
			if len(bounds) == 0 || !math.IsInf(bounds[len(bounds)-1], 1) {
				bounds = append(bounds, math.Inf(1))
				counts = append(counts, float64(h.GetSampleCount()))
			}
			s.latency.add(bounds, counts)
		}
	case name == "shoal_server_in_flight":
		s.server, s.inFlight = true, first(mf)
	case name == "shoal_server_concurrency_limit":
		s.server, s.limit = true, first(mf)
	case name == "shoal_server_admitted_total":
		s.admitted = first(mf)
	case name == "shoal_server_rejected_total":
		s.rejected = first(mf)
	case name == "shoal_server_queued":
		s.queued = first(mf)
	case name == "shoal_server_overloaded":
		s.overloaded = first(mf) == 1
	case name == "process_cpu_seconds_total":
		s.cpu = first(mf)
	case name == "process_resident_memory_bytes":
		s.rss = first(mf)
	case strings.HasPrefix(name, "shoal_client_instance_"):
		s.hostFamily(strings.TrimPrefix(name, "shoal_client_instance_"), mf)
	case strings.HasPrefix(name, "shoal_client_"):
		s.depFamily(strings.TrimPrefix(name, "shoal_client_"), mf)
	}
}

func (s *sample) dep(service string) *depSample {
	if s.deps == nil {
		s.deps = map[string]*depSample{}
	}
	d := s.deps[service]
	if d == nil {
		d = &depSample{hosts: map[string]*hostSample{}}
		s.deps[service] = d
	}
	return d
}

func (s *sample) depFamily(name string, mf *dto.MetricFamily) {
	for _, m := range mf.GetMetric() {
		svc := label(m, "service")
		if svc == "" {
			continue
		}
		v := value1(m)
		d := s.dep(svc)
		switch name {
		case "calls_total":
			d.calls = v
		case "failures_total":
			d.failures = v
		case "retries_total":
			d.retries = v
		case "budget_left":
			d.budgetLeft = v
		case "budget_exhausted_total":
			d.budgetExhausted = v
		case "throttle_rate":
			d.throttleRate = v
		case "throttled_total":
			d.throttled = v
		case "in_flight":
			d.inFlight = v
		case "max_in_flight":
			d.maxInFlight = v
		case "bulkhead_full_total":
			d.full = v
		case "hedges_total":
			d.hedges = v
		case "hedge_wins_total":
			d.hedgeWins = v
		}
	}
}

func (s *sample) hostFamily(name string, mf *dto.MetricFamily) {
	for _, m := range mf.GetMetric() {
		svc, id := label(m, "service"), label(m, "instance_id")
		if svc == "" || id == "" {
			continue
		}
		d := s.dep(svc)
		h := d.hosts[id]
		if h == nil {
			h = &hostSample{}
			d.hosts[id] = h
		}
		v := value1(m)
		switch name {
		case "ewma_seconds":
			h.ewma = v
		case "in_flight":
			h.inFlight = v
		case "ejected":
			h.ejected = v
		case "ejections_total":
			h.ejections = v
		case "ejections_refused_total":
			h.refused = v
		case "breaker_state":
			if v == 1 {
				h.breaker = label(m, "state")
			}
		}
	}
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// value1 is the value of a counter, gauge or untyped sample.
func value1(m *dto.Metric) float64 {
	switch {
	case m.Counter != nil:
		return m.GetCounter().GetValue()
	case m.Gauge != nil:
		return m.GetGauge().GetValue()
	}
	return m.GetUntyped().GetValue()
}

func first(mf *dto.MetricFamily) float64 {
	if len(mf.GetMetric()) == 0 {
		return 0
	}
	return value1(mf.GetMetric()[0])
}
