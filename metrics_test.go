package shoal

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
)

func TestMetricsEndpoint(t *testing.T) {
	alphaRoutes := &Router{}
	alphaRoutes.HandleFunc("GET /titles/{id}", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "from alpha")
	})
	a, _, _ := start(t, Config{Name: "alpha"}, alphaRoutes)
	b, _, _ := start(t, Config{Name: "beta", Seeds: []string{a.member.Load().GossipAddr()}}, http.NotFoundHandler())
	waitUntil(t, "beta to see alpha", func() bool { return len(b.Instances("alpha")) > 0 })
	for i := range 3 {
		resp, err := b.Client().Get(fmt.Sprintf("http://alpha/titles/%d", i))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	// The callee counts its requests (RED), by route template whatever the
	// paths, and shows its admission limit; the caller shows its policies'
	// state for the dependency.
	am, bm := metricsOf(t, a), metricsOf(t, b)
	for _, want := range []string{`shoal_http_requests_total{code="200",method="GET",route="/titles/{id}"} 3`, "shoal_server_concurrency_limit 20", "shoal_server_admitted_total 3"} {
		if !strings.Contains(am, want) {
			t.Errorf("alpha's metrics lack %q", want)
		}
	}
	for _, want := range []string{`shoal_client_calls_total{service="alpha"} 3`, `shoal_client_instance_breaker_state{instance_id="` + a.cfg.ID + `",service="alpha",state="closed"} 1`, `shoal_client_max_in_flight{service="alpha"} 1024`} {
		if !strings.Contains(bm, want) {
			t.Errorf("beta's metrics lack %q", want)
		}
	}
	if t.Failed() {
		t.Logf("alpha:\n%s\nbeta:\n%s", grepShoal(am), grepShoal(bm))
	}
}

func grepShoal(s string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.HasPrefix(l, "shoal_") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// metricsOf returns what svc's admin listener serves at PathMetrics.
func metricsOf(t *testing.T, svc *Service) string {
	t.Helper()
	_, body := get(t, http.DefaultClient, "http://"+svc.AdminAddr()+PathMetrics)
	return body
}
