package experiment

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
)

// The experiment reads the instances' metrics itself, every second, where
// shoal up says they are: the Prometheus file-SD targets file it keeps
// (supervisor.TargetsFile), whose labels every series gets. It keeps only
// the families its expressions name, for the length of the run. The
// supervisor's own scrape serves the dashboard (every 2 s, a fixed set of
// families reduced to rates): an abort within seconds, and any family an
// expression names, need more.

// scrapeEvery is the experiment's scrape interval.
const scrapeEvery = time.Second

// maxScrapeBody bounds one /metrics answer.
const maxScrapeBody = 8 << 20

// label is one label of a series.
type label struct{ name, value string }

// labels are sorted by name.
type labels []label

func (ls labels) get(name string) string {
	for _, l := range ls {
		if l.name == name {
			return l.value
		}
	}
	return ""
}

// key identifies the label set.
func (ls labels) key() string {
	var b strings.Builder
	for _, l := range ls {
		b.WriteString(l.name)
		b.WriteByte('=')
		b.WriteString(strconv.Quote(l.value))
		b.WriteByte(',')
	}
	return b.String()
}

func (ls labels) String() string { return "{" + strings.TrimSuffix(ls.key(), ",") + "}" }

// point is one scraped value.
type point struct {
	t time.Time
	v float64
}

// series is one metric's values over time.
type series struct {
	labels labels
	points []point
}

// store keeps the series of the metrics an experiment reads. It is safe
// for concurrent use.
type store struct {
	mu     sync.Mutex
	byName map[string]map[string]*series // metric → labels key → series
}

func newStore() *store { return &store{byName: map[string]map[string]*series{}} }

func (s *store) add(t time.Time, name string, ls labels, v float64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.byName[name]
	if m == nil {
		m = map[string]*series{}
		s.byName[name] = m
	}
	k := ls.key()
	sr := m[k]
	if sr == nil {
		sr = &series{labels: ls}
		m[k] = sr
	}
	// In time order: the last round of a run is dated the end of the
	// fault phase, and may come after a round that began later.
	i := len(sr.points)
	for i > 0 && sr.points[i-1].t.After(t) {
		i--
	}
	sr.points = slices.Insert(sr.points, i, point{t, v})
}

// scraper fills a store from the targets file every scrapeEvery.
type scraper struct {
	targetsFile string
	families    map[string]bool // the families to keep
	store       *store
	hc          *http.Client

	mu      sync.Mutex
	lastErr error // of the last round that failed entirely
}

func newScraper(targetsFile string, names []string) *scraper {
	fam := map[string]bool{}
	for _, n := range names {
		fam[n] = true
		for _, suffix := range []string{"_bucket", "_count", "_sum"} {
			if base, ok := strings.CutSuffix(n, suffix); ok {
				fam[base] = true
			}
		}
	}
	return &scraper{targetsFile: targetsFile, families: fam, store: newStore(),
		// The targets are the system's own instances, listed by its
		// supervisor; one serving TLS is not asked who it is.
		hc: &http.Client{Timeout: scrapeEvery * 9 / 10, Transport: &http.Transport{
			MaxIdleConnsPerHost: 1, DisableCompression: true, TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}}
}

// run scrapes until ctx ends.
func (s *scraper) run(ctx context.Context) {
	defer s.hc.CloseIdleConnections()
	t := time.NewTicker(scrapeEvery)
	defer t.Stop()
	for {
		s.round(ctx, time.Now())
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// target is one entry of the targets file, as Prometheus's file SD reads it.
type target struct {
	Targets []string          `json:"targets"`
	Labels  map[string]string `json:"labels"`
}

// round scrapes every target once, in parallel, as of now.
func (s *scraper) round(ctx context.Context, now time.Time) {
	b, err := os.ReadFile(s.targetsFile)
	var groups []target
	if err == nil {
		err = json.Unmarshal(b, &groups)
	}
	if err != nil {
		s.setErr(fmt.Errorf("reading shoal up's targets: %w", err))
		return
	}
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for _, g := range groups {
		for _, hostport := range g.Targets {
			wg.Go(func() {
				sem <- struct{}{}
				defer func() { <-sem }()
				s.scrapeOne(ctx, now, hostport, g.Labels)
			})
		}
	}
	wg.Wait()
	s.setErr(nil)
}

func (s *scraper) setErr(err error) {
	s.mu.Lock()
	s.lastErr = err
	s.mu.Unlock()
}

func (s *scraper) err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastErr
}

// scrapeOne reads one target's families into the store, each series with
// the target's labels (those that do not start with __).
func (s *scraper) scrapeOne(ctx context.Context, now time.Time, hostport string, tl map[string]string) {
	scheme, path := "http", "/metrics"
	if v := tl["__scheme__"]; v != "" {
		scheme = v
	}
	if v := tl["__metrics_path__"]; v != "" {
		path = v
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, scheme+"://"+hostport+path, nil)
	if err != nil {
		return
	}
	req.Header.Set("Accept", string(expfmt.NewFormat(expfmt.TypeProtoDelim))+";q=0.7,"+string(expfmt.NewFormat(expfmt.TypeTextPlain))+";q=0.3")
	resp, err := s.hc.Do(req)
	if err != nil {
		return // a target gone (killed, restarted) is the experiment's point
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return
	}
	var base labels
	for k, v := range tl {
		if !strings.HasPrefix(k, "__") {
			base = append(base, label{k, v})
		}
	}
	dec := expfmt.NewDecoder(io.LimitReader(resp.Body, maxScrapeBody), expfmt.ResponseFormat(resp.Header))
	for {
		var mf dto.MetricFamily
		if err := dec.Decode(&mf); err != nil {
			if !errors.Is(err, io.EOF) {
				return
			}
			break
		}
		if s.families[mf.GetName()] {
			s.family(now, &mf, base)
		}
	}
}

// family adds one family's samples, under Prometheus's names: a
// histogram's buckets as NAME_bucket{le=...}, NAME_count and NAME_sum.
func (s *scraper) family(now time.Time, mf *dto.MetricFamily, base labels) {
	name := mf.GetName()
	for _, m := range mf.GetMetric() {
		ls := slices.Clone(base)
		for _, lp := range m.GetLabel() {
			ls = append(ls, label{lp.GetName(), lp.GetValue()})
		}
		with := func(extra ...label) labels {
			out := append(slices.Clone(ls), extra...)
			slices.SortFunc(out, func(a, b label) int { return strings.Compare(a.name, b.name) })
			return out
		}
		switch {
		case m.Histogram != nil:
			h := m.GetHistogram()
			inf := false
			for _, b := range h.GetBucket() {
				inf = inf || math.IsInf(b.GetUpperBound(), 1)
				s.store.add(now, name+"_bucket", with(label{"le", formatLe(b.GetUpperBound())}), float64(b.GetCumulativeCount()))
			}
			if !inf {
				s.store.add(now, name+"_bucket", with(label{"le", "+Inf"}), float64(h.GetSampleCount()))
			}
			s.store.add(now, name+"_count", with(), float64(h.GetSampleCount()))
			s.store.add(now, name+"_sum", with(), h.GetSampleSum())
		case m.Summary != nil:
			sm := m.GetSummary()
			for _, q := range sm.GetQuantile() {
				s.store.add(now, name, with(label{"quantile", strconv.FormatFloat(q.GetQuantile(), 'g', -1, 64)}), q.GetValue())
			}
			s.store.add(now, name+"_count", with(), float64(sm.GetSampleCount()))
			s.store.add(now, name+"_sum", with(), sm.GetSampleSum())
		case m.Counter != nil:
			s.store.add(now, name, with(), m.GetCounter().GetValue())
		case m.Gauge != nil:
			s.store.add(now, name, with(), m.GetGauge().GetValue())
		default:
			s.store.add(now, name, with(), m.GetUntyped().GetValue())
		}
	}
}

func formatLe(b float64) string {
	if math.IsInf(b, 1) {
		return "+Inf"
	}
	return strconv.FormatFloat(b, 'g', -1, 64)
}
