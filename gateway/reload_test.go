package gateway_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/gateway"
	"github.com/shoal-dev/shoal/internal/syncbuf"
)

// Swapping the route table while requests flow fails none of them: each
// request uses the table it started with.
func TestHotReloadUnderLoad(t *testing.T) {
	toA := &gateway.Config{Routes: []gateway.Route{{Path: "/v1/", Service: "a", Strip: true}}}
	toB := &gateway.Config{Routes: []gateway.Route{{Path: "/v1/", Service: "b", Rewrite: "/v2/"}}}
	bad := &gateway.Config{Routes: []gateway.Route{{Path: "/v1/", Service: "a"}, {Path: "/v1", Service: "b"}}}
	f := newRouted(t, toA)

	var served [2]atomic.Int64 // by a, by b
	var failures atomic.Int64
	var firstFailure atomic.Value
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			c := f.front.Client()
			for ctx.Err() == nil {
				resp, err := c.Get(f.front.URL + "/v1/titles/7")
				if err != nil {
					failures.Add(1)
					firstFailure.CompareAndSwap(nil, err.Error())
					continue
				}
				raw, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				var got headerEcho
				switch {
				case resp.StatusCode != 200 || json.Unmarshal(raw, &got) != nil:
					failures.Add(1)
					firstFailure.CompareAndSwap(nil, resp.Status+" "+string(raw))
				case got.Service == "a" && got.Path == "/titles/7":
					served[0].Add(1)
				case got.Service == "b" && got.Path == "/v2/titles/7":
					served[1].Add(1)
				default:
					failures.Add(1)
					firstFailure.CompareAndSwap(nil, "routed to "+string(raw))
				}
			}
		})
	}
	// waitFor waits until the table swapped in has served a request.
	waitFor := func(i int) {
		t.Helper()
		start := served[i].Load()
		deadline := time.Now().Add(10 * time.Second)
		for served[i].Load() < start+3 {
			if time.Now().After(deadline) {
				cancel()
				wg.Wait()
				t.Fatalf("table %d never served after the swap", i)
			}
			time.Sleep(time.Millisecond)
		}
	}
	const swaps = 24
	for i := range swaps {
		cfg := toA
		if i%2 == 0 {
			cfg = toB
		}
		if err := f.gw.SetConfig(cfg, ""); err != nil {
			t.Fatal(err)
		}
		if err := f.gw.SetConfig(bad, ""); err == nil {
			t.Fatal("a conflicting config was accepted")
		}
		waitFor(1 - i%2)
	}
	cancel()
	wg.Wait()
	t.Logf("%d swaps; served by a %d, by b %d; %d failures", swaps, served[0].Load(), served[1].Load(), failures.Load())
	if n := failures.Load(); n != 0 {
		t.Errorf("%d requests failed during reloads; first: %v", n, firstFailure.Load())
	}
	if served[0].Load() == 0 || served[1].Load() == 0 {
		t.Errorf("both tables should have served: a %d, b %d", served[0].Load(), served[1].Load())
	}
}

// writeFile replaces path's content the way editors do: a new file renamed
// over the old one.
func writeFile(t *testing.T, path, content string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// eventually polls cond until it holds or 10 s pass.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func TestReloaderWatchesFile(t *testing.T) {
	const (
		manifestA = "services:\n  a:\n    build: ./a\ngateway:\n  routes:\n    - {path: /v1/, service: a, strip: true}\n"
		manifestB = "services:\n  a:\n    build: ./a\n  b:\n    build: ./b\ngateway:\n  routes:\n    - {path: /v1/, service: b, strip: true}\n    - {path: /v2/, service: b}\n"
		manifestX = "services:\n  a:\n    build: ./a\n  b:\n    build: ./b\ngateway:\n  routes:\n    - {path: /v1/, service: b, strip: true}\n    - {path: /v2/, service: b, timout: 1s}\n"
	)
	f := newRouted(t, nil)
	path := filepath.Join(t.TempDir(), "shoal.yaml")
	writeFile(t, path, manifestA)
	var logs syncbuf.Buffer
	rl := gateway.NewReloader(path, f.gw, slog.New(slog.NewJSONHandler(&logs, nil)))
	rl.Interval = 5 * time.Millisecond
	if err := rl.Reload(); err != nil {
		t.Fatal(err)
	}
	serviceOf := func(p string) string {
		resp, raw := f.do(t, call{path: p})
		var got headerEcho
		if resp.StatusCode != 200 || json.Unmarshal(raw, &got) != nil {
			return resp.Status
		}
		return got.Service
	}
	if s := serviceOf("/v1/x"); s != "a" {
		t.Fatalf("after the first load, /v1/ went to %s", s)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- rl.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()

	writeFile(t, path, manifestB)
	eventually(t, "the new file to be served", func() bool { return serviceOf("/v1/x") == "b" })
	if !strings.Contains(logs.String(), `"msg":"gateway config loaded"`) || !strings.Contains(logs.String(), `"routes":2`) {
		t.Errorf("no INFO line with the route count:\n%s", logs.String())
	}

	writeFile(t, path, manifestX)
	want := path + `:9:32: gateway.routes[1].timout: unknown key; did you mean timeout?`
	eventually(t, "the bad file to be refused", func() bool { return strings.Contains(logs.String(), want) })
	if !strings.Contains(logs.String(), `"level":"ERROR","msg":"gateway config refused`) {
		t.Errorf("refusal not logged at ERROR:\n%s", logs.String())
	}
	if s := serviceOf("/v2/x"); s != "b" {
		t.Errorf("after a refused file, /v2/ went to %s; want the old table", s)
	}
	if err := rl.Reload(); err == nil || !strings.Contains(err.Error(), "unknown key") {
		t.Errorf("Reload of the bad file: %v", err)
	}

	// Gone for a while (logged once), then back.
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the missing file to be logged", func() bool { return strings.Contains(logs.String(), "gateway config unreadable") })
	writeFile(t, path, manifestA)
	eventually(t, "the restored file to be served", func() bool { return serviceOf("/v1/x") == "a" })
	if n := strings.Count(logs.String(), "gateway config unreadable"); n != 1 {
		t.Errorf("missing file logged %d times, want once", n)
	}
	if s := serviceOf("/v2/x"); s != "404 Not Found" && s != "b" {
		t.Errorf("/v2/ after the reload: %s", s)
	}
}
