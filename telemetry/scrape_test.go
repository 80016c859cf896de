package telemetry_test

import (
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// scrape fetches h over a real loopback connection, as Prometheus would,
// and parses the text exposition.
func scrape(t *testing.T, h http.Handler) map[string]*dto.MetricFamily {
	t.Helper()
	srv := httptest.NewServer(h)
	defer srv.Close()
	resp, err := srv.Client().Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %s", resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	return mfs
}

// exposition renders the families whose names start with one of prefixes,
// sorted by name, in the text format: exact values, HELP and TYPE included,
// in a form a test can compare and print.
func exposition(t *testing.T, mfs map[string]*dto.MetricFamily, prefixes ...string) string {
	t.Helper()
	var names []string
	for name := range mfs {
		for _, p := range prefixes {
			if strings.HasPrefix(name, p) {
				names = append(names, name)
				break
			}
		}
	}
	slices.Sort(names)
	var b strings.Builder
	for _, name := range names {
		if _, err := expfmt.MetricFamilyToText(&b, mfs[name]); err != nil {
			t.Fatal(err)
		}
	}
	return b.String()
}

// samples renders only the sample lines of exposition, for short
// expectations.
func samples(t *testing.T, mfs map[string]*dto.MetricFamily, prefixes ...string) string {
	t.Helper()
	var b strings.Builder
	for line := range strings.Lines(exposition(t, mfs, prefixes...)) {
		if !strings.HasPrefix(line, "#") {
			b.WriteString(line)
		}
	}
	return b.String()
}

func itoa(v uint64) string { return strconv.FormatUint(v, 10) }

func ftoa(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }
