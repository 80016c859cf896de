package discovery

import (
	"context"
	"fmt"
	"testing"
	"testing/synctest"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func inst(id, service string, st State) Instance {
	return Instance{ID: id, Service: service, Addr: "127.0.0.1:8080", State: st}
}

func TestCatalogUpsertRemove(t *testing.T) {
	a1 := inst("a1", "a", StateServing)
	a2 := inst("a2", "a", StateServing)
	b1 := inst("b1", "b", StateServing)
	type op struct {
		upsert *Instance
		remove string
	}
	up := func(i Instance) op { return op{upsert: &i} }
	rm := func(id string) op { return op{remove: id} }

	tests := []struct {
		name        string
		ops         []op
		wantVersion uint64
		wantAll     []Instance
		wantSvcs    []string
	}{
		{"empty", nil, 0, nil, nil},
		{"one", []op{up(a1)}, 1, []Instance{a1}, []string{"a"}},
		{"sorted by service then ID", []op{up(b1), up(a2), up(a1)}, 3, []Instance{a1, a2, b1}, []string{"a", "b"}},
		{"identical upsert is no change", []op{up(a1), up(a1)}, 1, []Instance{a1}, []string{"a"}},
		{"replace by ID", []op{up(a1), up(inst("a1", "a", StateDraining))}, 2,
			[]Instance{inst("a1", "a", StateDraining)}, []string{"a"}},
		{"instance moves service", []op{up(a1), up(inst("a1", "b", StateServing))}, 2,
			[]Instance{inst("a1", "b", StateServing)}, []string{"b"}},
		{"remove", []op{up(a1), up(a2), rm("a1")}, 3, []Instance{a2}, []string{"a"}},
		{"remove last of a service drops it", []op{up(a1), up(b1), rm("a1")}, 3, []Instance{b1}, []string{"b"}},
		{"remove unknown is no change", []op{up(a1), rm("zz")}, 1, []Instance{a1}, []string{"a"}},
		{"remove all", []op{up(a1), rm("a1")}, 2, []Instance{}, []string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := NewCatalog()
			for _, o := range tt.ops {
				if o.upsert != nil {
					c.Upsert(*o.upsert)
				} else {
					c.Remove(o.remove)
				}
			}
			s := c.Snapshot()
			if s.Version() != tt.wantVersion {
				t.Errorf("Version() = %d, want %d", s.Version(), tt.wantVersion)
			}
			if d := cmp.Diff(tt.wantAll, s.All(), cmpopts.EquateEmpty()); d != "" {
				t.Errorf("All() (-want +got):\n%s", d)
			}
			if d := cmp.Diff(tt.wantSvcs, s.Services(), cmpopts.EquateEmpty()); d != "" {
				t.Errorf("Services() (-want +got):\n%s", d)
			}
			if s.Len() != len(s.All()) {
				t.Errorf("Len() = %d, want %d", s.Len(), len(s.All()))
			}
			for _, svc := range s.Services() {
				list := c.Instances(svc)
				if len(list) == 0 {
					t.Errorf("Instances(%q) empty for a listed service", svc)
				}
				for i := 1; i < len(list); i++ {
					if list[i-1].ID >= list[i].ID {
						t.Errorf("Instances(%q) not sorted by ID: %v", svc, list)
					}
				}
			}
		})
	}
}

// The client caches per-service state and detects a change by comparing the
// slice's first element and length: an unrelated change must keep the same
// backing array, a change to the service must not.
func TestCatalogSharesUnchangedServices(t *testing.T) {
	c := NewCatalog()
	c.Upsert(inst("a1", "a", StateServing))
	c.Upsert(inst("a2", "a", StateServing))
	c.Upsert(inst("b1", "b", StateServing))
	same := func(x, y []Instance) bool { return len(x) == len(y) && len(x) > 0 && &x[0] == &y[0] }

	tests := []struct {
		name    string
		change  func()
		service string
		shared  bool
	}{
		{"other service added", func() { c.Upsert(inst("c1", "c", StateServing)) }, "a", true},
		{"other service changed", func() { c.Upsert(inst("b1", "b", StateDraining)) }, "a", true},
		{"other service removed", func() { c.Remove("c1") }, "a", true},
		{"no-op upsert", func() { c.Upsert(inst("a1", "a", StateServing)) }, "a", true},
		{"state change", func() { c.Upsert(inst("a1", "a", StateDraining)) }, "a", false},
		{"member added", func() { c.Upsert(inst("a3", "a", StateServing)) }, "a", false},
		{"member removed", func() { c.Remove("a3") }, "a", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := c.Instances(tt.service)
			beforeCopy := append([]Instance(nil), before...)
			tt.change()
			after := c.Instances(tt.service)
			if got := same(before, after); got != tt.shared {
				t.Errorf("shared backing array = %v, want %v", got, tt.shared)
			}
			if d := cmp.Diff(beforeCopy, before); d != "" {
				t.Errorf("old snapshot's slice was modified (-old +now):\n%s", d)
			}
		})
	}
}

func TestCatalogInstancesDoesNotAllocate(t *testing.T) {
	c := NewCatalog()
	for i := range 10 {
		c.Upsert(inst(fmt.Sprint("r", i), "ratings", StateServing))
	}
	if n := testing.AllocsPerRun(1000, func() { _ = c.Instances("ratings") }); n != 0 {
		t.Errorf("Instances allocates %v times per call, want 0", n)
	}
}

func TestSnapshotLookup(t *testing.T) {
	c := NewCatalog()
	c.Upsert(inst("a1", "a", StateServing))
	c.Upsert(inst("b1", "b", StateDraining))
	for _, tt := range []struct {
		id    string
		found bool
	}{{"a1", true}, {"b1", true}, {"c1", false}, {"", false}} {
		got, ok := c.Snapshot().Lookup(tt.id)
		if ok != tt.found || (ok && got.ID != tt.id) {
			t.Errorf("Lookup(%q) = %v, %v; want found=%v", tt.id, got, ok, tt.found)
		}
	}
}

// Watch runs in a synctest bubble: synctest.Wait makes "the watcher has
// caught up" exact, and the bubble fails the test if the watcher goroutine
// outlives its context.
func TestCatalogWatch(t *testing.T) {
	t.Run("current snapshot at once, then each change", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			c := NewCatalog()
			c.Upsert(inst("a1", "a", StateServing))
			ctx, cancel := context.WithCancel(t.Context())
			ch := c.Watch(ctx)
			if s := <-ch; s.Version() != 1 {
				t.Fatalf("first snapshot version %d, want 1", s.Version())
			}
			c.Upsert(inst("a2", "a", StateServing))
			if s := <-ch; s.Version() != 2 || s.Len() != 2 {
				t.Fatalf("second snapshot version %d len %d, want 2, 2", s.Version(), s.Len())
			}
			cancel()
			if _, open := <-ch; open {
				// One more send may win the race with cancellation; the next receive must see the close.
				if _, open := <-ch; open {
					t.Fatal("channel still open after cancel")
				}
			}
		})
	})
	t.Run("slow reader skips to latest", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			c := NewCatalog()
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			ch := c.Watch(ctx)
			for i := range 5 {
				c.Upsert(inst(fmt.Sprint("a", i), "a", StateServing))
			}
			synctest.Wait()
			if s := <-ch; s.Version() != 5 {
				t.Fatalf("slow reader got version %d, want the latest (5)", s.Version())
			}
			synctest.Wait()
			select {
			case s := <-ch:
				t.Fatalf("got version %d with no new change", s.Version())
			default:
			}
		})
	})
	t.Run("closed when ctx already done", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			ctx, cancel := context.WithCancel(t.Context())
			cancel()
			ch := NewCatalog().Watch(ctx)
			synctest.Wait()
			for range ch { // drains at most one snapshot, then sees the close
			}
		})
	})
	t.Run("many watchers all see the change", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			c := NewCatalog()
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			var chans []<-chan *Snapshot
			for range 10 {
				ch := c.Watch(ctx)
				<-ch // version 0
				chans = append(chans, ch)
			}
			c.Upsert(inst("a1", "a", StateServing))
			for i, ch := range chans {
				if s := <-ch; s.Version() != 1 {
					t.Errorf("watcher %d got version %d, want 1", i, s.Version())
				}
			}
		})
	})
}

func BenchmarkCatalogInstances(b *testing.B) {
	c := NewCatalog()
	for i := range 50 {
		c.Upsert(inst(fmt.Sprint("r", i), fmt.Sprint("svc", i%5), StateServing))
	}
	b.ReportAllocs()
	for b.Loop() {
		_ = c.Instances("svc3")
	}
}

func BenchmarkCatalogUpsert(b *testing.B) {
	c := NewCatalog()
	for i := range 200 {
		c.Upsert(inst(fmt.Sprint("r", i), fmt.Sprint("svc", i%20), StateServing))
	}
	states := [2]State{StateServing, StateDraining}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		c.Upsert(inst("r7", "svc7", states[i%2]))
		i++
	}
}
