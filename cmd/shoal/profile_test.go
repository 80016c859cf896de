package main

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"net/http/pprof"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/pprof/profile"

	"github.com/shoal-dev/shoal"
	"github.com/shoal-dev/shoal/chaos"
	"github.com/shoal-dev/shoal/internal/bearer"
	"github.com/shoal-dev/shoal/internal/testfault"
	"github.com/shoal-dev/shoal/supervisor"
)

// adminStandIn serves net/http/pprof as an instance of service does on its
// admin listener: to a bearer of a profile token op signed for service.
func adminStandIn(t *testing.T, op *chaos.Signer, service string) string {
	return adminStandInSeen(t, op, service, func(*http.Request) {})
}

// adminStandInSeen is adminStandIn that calls seen with every request.
func adminStandInSeen(t *testing.T, op *chaos.Signer, service string, seen func(*http.Request)) string {
	v, err := chaos.NewVerifier(op.PublicKey(), service)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen(r)
		if _, err := v.VerifyProfile(bearer.Token(r)); err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		mux.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String()
}

// cpuStandIn serves a small CPU profile of one sample in main.serve, as a
// second instance would: one process can run only one CPU profile at a
// time, so two real ones cannot come from this test's process.
func cpuStandIn(t *testing.T) string {
	fn := &profile.Function{ID: 1, Name: "main.serve"}
	loc := &profile.Location{ID: 1, Line: []profile.Line{{Function: fn}}}
	p := &profile.Profile{
		SampleType: []*profile.ValueType{{Type: "samples", Unit: "count"}, {Type: "cpu", Unit: "nanoseconds"}},
		PeriodType: &profile.ValueType{Type: "cpu", Unit: "nanoseconds"},
		Period:     10_000_000,
		Sample:     []*profile.Sample{{Location: []*profile.Location{loc}, Value: []int64{1, 10_000_000}}},
		Location:   []*profile.Location{loc},
		Function:   []*profile.Function{fn},
		// The window of TestProfileInstances, as a real instance reports it.
		DurationNanos: int64(time.Second),
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { p.Write(w) }))
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String()
}

func TestProfileInstances(t *testing.T) {
	broken := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "no profiling here", http.StatusInternalServerError)
	}))
	defer broken.Close()
	op := testfault.NewSigner(t)
	st := []supervisor.InstanceStatus{
		{Service: "catalog", Index: 1, State: "serving", Admin: adminStandIn(t, op, "catalog")},
		{Service: "catalog", Index: 2, State: "serving", Admin: adminStandIn(t, op, "catalog")},
		// reviews trusts another operator: it refuses op's token.
		{Service: "reviews", Index: 1, State: "serving", Admin: adminStandIn(t, testfault.NewSigner(t), "reviews")},
		{Service: "ratings", Index: 1, State: "serving", Admin: broken.Listener.Addr().String()},
		{Service: "trailers", Index: 1, State: "serving"},
		{Service: "search", Index: 1, State: "crashed", Admin: "127.0.0.1:1"},
	}
	second := st[1].Admin
	for _, kind := range []string{"cpu", "heap", "allocs", "goroutine"} {
		t.Run(kind, func(t *testing.T) {
			st[1].Admin = second
			if kind == "cpu" {
				st[1].Admin = cpuStandIn(t)
			}
			dir := filepath.Join(t.TempDir(), "out")
			var out bytes.Buffer
			window := time.Second
			if kind == "heap" || kind == "goroutine" {
				window = 0 // a snapshot
			}
			if err := profileInstances(context.Background(), &out, st, kind, window, dir, op); err != nil {
				t.Fatalf("%v\n%s", err, out.String())
			}
			for _, want := range []string{
				"trailers/1: skipped: no admin listener",
				"search/1: skipped: crashed",
				"ratings/1: GET http://" + st[3].Admin,
				"500 Internal Server Error: no profiling here",
				"reviews/1: GET http://" + st[2].Admin, "401 Unauthorized: chaos: invalid operator token",
				"catalog: 2 instance(s) -> " + filepath.Join(dir, "catalog."+kind+".pb.gz"),
			} {
				if !strings.Contains(out.String(), want) {
					t.Errorf("output lacks %q:\n%s", want, out.String())
				}
			}
			f, err := os.Open(filepath.Join(dir, "catalog."+kind+".pb.gz"))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			p, err := profile.Parse(f)
			if err != nil {
				t.Fatal(err)
			}
			// A heap or allocs profile samples one allocation in 512 KB:
			// a quiet second of this process may give none. CPU (the
			// stand-in's sample) and goroutines always have some.
			wantSamples := kind == "cpu" || kind == "goroutine"
			if len(p.SampleType) == 0 || (wantSamples && len(p.Sample) == 0) {
				t.Errorf("profile: %d sample types, %d samples", len(p.SampleType), len(p.Sample))
			}
			if kind == "cpu" && !hasFunction(p, "main.serve") {
				t.Error("the merged CPU profile lacks the second instance's main.serve")
			}
			// Two instances over one window: the window, not the sum.
			if kind == "cpu" && time.Duration(p.DurationNanos) > window*3/2 {
				t.Errorf("merged profile of %v: duration %v, want the window", window, time.Duration(p.DurationNanos))
			}
			if entries, _ := os.ReadDir(dir); len(entries) != 1 {
				t.Errorf("%d files in %s, want catalog's only (ratings failed)", len(entries), dir)
			}
		})
	}
}

func TestProfileNothingToProfile(t *testing.T) {
	var out bytes.Buffer
	st := []supervisor.InstanceStatus{{Service: "trailers", Index: 1, State: "serving"}}
	err := profileInstances(context.Background(), &out, st, "cpu", time.Second, t.TempDir(), testfault.NewSigner(t))
	if err == nil || !strings.Contains(err.Error(), "no serving SDK instance") {
		t.Errorf("err %v", err)
	}
}

func TestProfileUsage(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"profile", "--kind", "wall"}, `shoal: profile: --kind "wall": use one of cpu, heap`},
		{[]string{"profile", "--seconds", "0"}, "shoal: profile: --seconds 0: want 1 to 600"},
		{[]string{"profile", "--kind", "heap", "--seconds", "10"}, "shoal: profile: --seconds: a heap profile is a snapshot, taken at once; --seconds is for cpu, allocs, block, mutex"},
		{[]string{"profile", "Catalog"}, `shoal: profile: "Catalog": "Catalog" is not a service name`},
		{[]string{"profile", "--token"}, "shoal: profile --token: name the SERVICE each token is for"},
		{[]string{"profile", "--token", "catalog/1"}, `shoal: profile --token: "catalog/1": a token is for a service, every instance of it: name catalog`},
	} {
		code, _, errOut := runCLI(t, tt.args...)
		if code != 2 || !strings.HasPrefix(errOut, tt.want) {
			t.Errorf("shoal %s: status %d, stderr %q, want 2 and %q", strings.Join(tt.args, " "), code, errOut, tt.want)
		}
	}
}

func hasFunction(p *profile.Profile, name string) bool {
	for _, f := range p.Function {
		if f.Name == name {
			return true
		}
	}
	return false
}

func TestProfileToken(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "shoal.yaml")
	if code, _, errOut := runCLI(t, "profile", "--token", "catalog", "-f", file); code != 1 || !strings.Contains(errOut, "shoal up makes it in") {
		t.Errorf("no key: %d %s", code, errOut)
	}
	key, err := chaos.LoadOrCreateKey(chaos.KeyFile(dir))
	if err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runCLI(t, "profile", "--token", "catalog", "ratings", "-f", file, "--for", "1h")
	if code != 0 {
		t.Fatalf("status %d: %s", code, errOut)
	}
	tokens := strings.Fields(out)
	if len(tokens) != 2 {
		t.Fatalf("%d tokens, want one for each of catalog and ratings: %q", len(tokens), out)
	}
	for i, service := range []string{"catalog", "ratings"} {
		v, _ := chaos.NewVerifier(chaos.PublicKey(key), service)
		if _, err := v.VerifyProfile(tokens[i]); err != nil {
			t.Errorf("%s's token: %v", service, err)
		}
		if _, err := v.VerifyProfile(tokens[1-i]); err == nil {
			t.Errorf("%s took the other service's token", service)
		}
	}
}

// TestProfileSnapshotAtOnce: a heap or goroutine profile, or allocs without
// --seconds, is taken at once, not after the CPU profile's 30 s window;
// allocs with --seconds is the delta over that window.
func TestProfileSnapshotAtOnce(t *testing.T) {
	var admin atomic.Value
	file := fakeSupervisor(t, func(w http.ResponseWriter, _ *http.Request) {
		st := []supervisor.InstanceStatus{{Service: "catalog", Index: 1, State: "serving", Admin: admin.Load().(string)}}
		shoal.WriteJSON(w, http.StatusOK, supervisor.HostsStatus{Instances: st})
	})
	key, err := chaos.LoadOrCreateKey(chaos.KeyFile(filepath.Dir(file)))
	if err != nil {
		t.Fatal(err)
	}
	requests := make(chan string, 10)
	admin.Store(adminStandInSeen(t, chaos.NewSigner(key), "catalog", func(r *http.Request) { requests <- r.URL.RequestURI() }))
	for _, tc := range []struct {
		args []string
		want string // the request to the admin listener
	}{
		{[]string{"--kind", "heap"}, "/debug/pprof/heap"},
		{[]string{"--kind", "goroutine"}, "/debug/pprof/goroutine"},
		{[]string{"--kind", "allocs"}, "/debug/pprof/allocs"},
		{[]string{"--kind", "allocs", "--seconds", "1"}, "/debug/pprof/allocs?seconds=1"},
	} {
		begin := time.Now()
		code, out, errOut := runCLI(t, append([]string{"profile", "catalog", "-f", file, "-o", t.TempDir()}, tc.args...)...)
		if code != 0 {
			t.Fatalf("profile %s: status %d, stderr %s\n%s", tc.args, code, errOut, out)
		}
		// The CPU window is 30 s: far longer than a snapshot or the delta.
		if took := time.Since(begin); took > 15*time.Second {
			t.Errorf("profile %s took %v", tc.args, took)
		}
		if got := <-requests; got != tc.want {
			t.Errorf("profile %s asked for %s, want %s", tc.args, got, tc.want)
		}
	}
}
