package naive_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/shoal-dev/shoal/bench/scenario/naive"
)

func TestRoundRobinAndRetries(t *testing.T) {
	var hits [3]atomic.Int64
	var addrs []string
	for i := range 3 {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			hits[i].Add(1)
			if strings.HasSuffix(r.URL.Path, "/fail") {
				w.WriteHeader(http.StatusServiceUnavailable)
			}
		}))
		t.Cleanup(srv.Close)
		addrs = append(addrs, strings.TrimPrefix(srv.URL, "http://"))
	}
	tr := naive.New(addrs, naive.DefaultRetries)
	t.Cleanup(tr.CloseIdleConnections)
	c := &http.Client{Transport: tr}
	for range 6 {
		resp, err := c.Get("http://svc/ok")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	for i := range hits {
		if n := hits[i].Swap(0); n != 2 {
			t.Errorf("server %d got %d of 6 requests, want 2 (round robin)", i, n)
		}
	}
	resp, err := c.Get("http://svc/fail")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	total := hits[0].Load() + hits[1].Load() + hits[2].Load()
	if resp.StatusCode != http.StatusServiceUnavailable || total != 1+naive.DefaultRetries {
		t.Errorf("a failing call got %d after %d tries, want 503 after %d", resp.StatusCode, total, 1+naive.DefaultRetries)
	}
}

func ExampleNew() {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "served %s", r.URL.Path)
	}))
	defer srv.Close()
	tr := naive.New([]string{strings.TrimPrefix(srv.URL, "http://")}, naive.DefaultRetries)
	defer tr.CloseIdleConnections()
	// The host in the URL is not looked up: every request goes to the list.
	resp, err := (&http.Client{Transport: tr}).Get("http://any-name/work")
	if err != nil {
		panic(err)
	}
	defer resp.Body.Close()
	fmt.Println(resp.Status)
	// Output: 200 OK
}
