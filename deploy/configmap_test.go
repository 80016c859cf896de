package deploy

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/discovery"
	"github.com/shoal-dev/shoal/gateway"
)

// atomicWriter updates a folder the way kubelet updates a ConfigMap or
// projected volume: the files live in a timestamped folder, ..data is a
// symlink to it, and each file is a symlink into ..data; an update writes
// a new timestamped folder, points ..data_tmp at it and renames that over
// ..data (one atomic step), then removes the old folder.
type atomicWriter struct {
	dir string
	n   int
	cur string
}

func (w *atomicWriter) write(t *testing.T, files map[string]string) {
	t.Helper()
	w.n++
	ts := "..2026_11_26_12_00_00." + strings.Repeat("0", 8) + string(rune('0'+w.n))
	for name, content := range files {
		p := filepath.Join(w.dir, ts, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o444); err != nil {
			t.Fatal(err)
		}
	}
	tmp := filepath.Join(w.dir, "..data_tmp")
	if err := os.Symlink(ts, tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(w.dir, "..data")); err != nil {
		t.Fatal(err)
	}
	for name := range files {
		link := filepath.Join(w.dir, name)
		if _, err := os.Lstat(link); err != nil {
			if err := os.Symlink(filepath.Join("..data", name), link); err != nil {
				t.Fatal(err)
			}
		}
	}
	if w.cur != "" {
		if err := os.RemoveAll(filepath.Join(w.dir, w.cur)); err != nil {
			t.Fatal(err)
		}
	}
	w.cur = ts
}

type resolverFunc func(string) []discovery.Instance

func (f resolverFunc) Instances(s string) []discovery.Instance { return f(s) }

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// A gateway reading its manifest from a mounted ConfigMap picks up an
// update, which arrives as a swap of symlinks rather than a write to the
// file: the routes change without a restart.
func TestGatewayReloadsConfigMapUpdate(t *testing.T) {
	const (
		before = "gateway:\n  default_routes: false\n  routes:\n    - {path: /one/, service: titles}\n"
		after  = "gateway:\n  default_routes: false\n  routes:\n    - {path: /two/, service: titles}\n"
	)
	w := &atomicWriter{dir: t.TempDir()}
	w.write(t, map[string]string{"shoal.yaml": before})

	// Every service exists; a routed request is answered 200 by the fake
	// transport, an unrouted one 404 by the gateway.
	gw := gateway.New(resolverFunc(func(s string) []discovery.Instance {
		return []discovery.Instance{{ID: s + "-1", Service: s, Addr: "192.0.2.1:80", State: discovery.StateServing}}
	}), roundTripFunc(func(r *http.Request) (*http.Response, error) {
		return &http.Response{StatusCode: 200, Header: http.Header{}, Body: io.NopCloser(strings.NewReader("ok")), Request: r}, nil
	}))
	rl := gateway.NewReloader(filepath.Join(w.dir, "shoal.yaml"), gw, slog.New(slog.NewTextHandler(io.Discard, nil)))
	rl.Interval = 5 * time.Millisecond
	if err := rl.Reload(); err != nil {
		t.Fatal(err)
	}
	status := func(p string) int {
		rec := httptest.NewRecorder()
		gw.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, p, nil))
		return rec.Code
	}
	if a, b := status("/one/x"), status("/two/x"); a != 200 || b != 404 {
		t.Fatalf("before the update: /one/ %d, /two/ %d; want 200, 404", a, b)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- rl.Run(ctx) }()
	defer func() {
		cancel()
		<-done
	}()

	w.write(t, map[string]string{"shoal.yaml": after})
	deadline := time.Now().Add(10 * time.Second)
	for status("/two/x") != 200 {
		if time.Now().After(deadline) {
			t.Fatal("the gateway never served the updated routes")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if s := status("/one/x"); s != 404 {
		t.Errorf("/one/ after the update: %d, want 404", s)
	}
}
