package discovery

import (
	"context"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
)

// Catalog is a local, always-readable view of every known instance.
//
// Reads ([Catalog.Snapshot], [Catalog.Instances]) never block and never
// allocate: they load an immutable [Snapshot] through an atomic pointer, so
// they are safe on the request path from any number of goroutines. Writes
// ([Catalog.Upsert], [Catalog.Remove]) are serialized by a mutex, build a new
// snapshot that shares every unchanged per-service slice with the previous
// one, and publish it atomically. A [Member] is the usual writer; tests and
// static setups may write directly.
//
// The zero value is not usable; call [NewCatalog].
type Catalog struct {
	mu  sync.Mutex          // serializes writers; readers never take it
	ids map[string]Instance // every instance by ID; guarded by mu
	cur atomic.Pointer[Snapshot]
}

// NewCatalog returns an empty catalog at version 0.
func NewCatalog() *Catalog {
	c := &Catalog{ids: make(map[string]Instance)}
	c.cur.Store(&Snapshot{next: make(chan struct{})})
	return c
}

// Snapshot returns the current snapshot. It never blocks.
func (c *Catalog) Snapshot() *Snapshot { return c.cur.Load() }

// Instances returns the instances of service in the current snapshot, sorted
// by ID: the same as c.Snapshot().Instances(service). It never blocks and does
// not allocate. The slice is shared and must not be modified. The same backing
// array is returned until the set of that service's instances (or one of
// their records) changes, so a caller can cache derived state and detect a
// change by comparing the first element's address and the length.
func (c *Catalog) Instances(service string) []Instance {
	return c.cur.Load().byService[service]
}

// Upsert adds inst, or replaces the instance with the same ID. A new snapshot
// is published only if something changed.
func (c *Catalog) Upsert(inst Instance) {
	c.mu.Lock()
	defer c.mu.Unlock()
	old, had := c.ids[inst.ID]
	if had && old == inst {
		return
	}
	c.ids[inst.ID] = inst

	prev := c.cur.Load()
	byService := cloneServices(prev.byService, 1)
	if had && old.Service != inst.Service {
		setService(byService, old.Service, withoutID(byService[old.Service], old.ID))
	}
	setService(byService, inst.Service, withInstance(byService[inst.Service], inst))
	c.publish(prev, byService)
}

// Remove deletes the instance with the given ID, if present, and publishes a
// new snapshot when it was.
func (c *Catalog) Remove(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	old, had := c.ids[id]
	if !had {
		return
	}
	delete(c.ids, id)

	prev := c.cur.Load()
	byService := cloneServices(prev.byService, 0)
	setService(byService, old.Service, withoutID(byService[old.Service], id))
	c.publish(prev, byService)
}

// Watch returns a channel that receives the current snapshot at once and then
// every newer one. A reader that falls behind skips straight to the latest
// snapshot: intermediate versions are not queued. The channel is closed when
// ctx ends.
//
// Watch starts one goroutine, owned by the caller through ctx: it exits, and
// closes the channel, when ctx is done. Cancel ctx when you stop reading.
func (c *Catalog) Watch(ctx context.Context) <-chan *Snapshot {
	ch := make(chan *Snapshot)
	go func() {
		defer close(ch)
		s := c.cur.Load()
		for {
			select {
			case ch <- s:
			case <-s.next: // superseded before the reader took it
				s = c.cur.Load()
				continue
			case <-ctx.Done():
				return
			}
			select {
			case <-s.next:
				s = c.cur.Load()
			case <-ctx.Done():
				return
			}
		}
	}()
	return ch
}

// publish installs a snapshot built from byService as the successor of prev.
// c.mu must be held.
func (c *Catalog) publish(prev *Snapshot, byService map[string][]Instance) {
	s := &Snapshot{
		version:   prev.version + 1,
		byService: byService,
		next:      make(chan struct{}),
	}
	if len(byService) == len(prev.services) && allPresent(byService, prev.services) {
		s.services = prev.services
	} else {
		s.services = make([]string, 0, len(byService))
		for name := range byService {
			s.services = append(s.services, name)
		}
		slices.Sort(s.services)
	}
	n := 0
	for _, list := range byService {
		n += len(list)
	}
	s.all = make([]Instance, 0, n)
	for _, name := range s.services {
		s.all = append(s.all, byService[name]...)
	}
	c.cur.Store(s)
	close(prev.next) // wakes watchers, who then load s
}

// Snapshot is an immutable view of the catalog at one version. All slices it
// returns are shared and must not be modified.
type Snapshot struct {
	version   uint64
	byService map[string][]Instance // each sorted by ID, never empty
	services  []string              // sorted keys of byService
	all       []Instance            // by service, then ID
	next      chan struct{}         // closed when a newer snapshot replaces this one
}

// Instances returns the instances of service, sorted by ID, or nil if there
// are none. It does not allocate.
func (s *Snapshot) Instances(service string) []Instance { return s.byService[service] }

// Services returns the names of the services that have at least one
// instance, sorted.
func (s *Snapshot) Services() []string { return s.services }

// All returns every instance, sorted by service and then by ID.
func (s *Snapshot) All() []Instance { return s.all }

// Version is 0 for an empty new catalog and increases by one with each change.
func (s *Snapshot) Version() uint64 { return s.version }

// Len returns the number of instances in the snapshot.
func (s *Snapshot) Len() int { return len(s.all) }

// Lookup returns the instance with the given ID.
func (s *Snapshot) Lookup(id string) (Instance, bool) {
	for _, list := range s.byService {
		if i, ok := slices.BinarySearchFunc(list, id, cmpID); ok {
			return list[i], true
		}
	}
	return Instance{}, false
}

func cmpID(inst Instance, id string) int { return strings.Compare(inst.ID, id) }

// cloneServices copies the service map; the per-service slices stay shared.
func cloneServices(m map[string][]Instance, extra int) map[string][]Instance {
	out := make(map[string][]Instance, len(m)+extra)
	for k, v := range m {
		out[k] = v
	}
	return out
}

func setService(m map[string][]Instance, service string, list []Instance) {
	if len(list) == 0 {
		delete(m, service)
		return
	}
	m[service] = list
}

// withInstance returns a new sorted slice with inst added or replaced by ID.
// list itself is never modified: older snapshots still share it.
func withInstance(list []Instance, inst Instance) []Instance {
	i, found := slices.BinarySearchFunc(list, inst.ID, cmpID)
	if found {
		out := slices.Clone(list)
		out[i] = inst
		return out
	}
	out := make([]Instance, 0, len(list)+1)
	out = append(out, list[:i]...)
	out = append(out, inst)
	return append(out, list[i:]...)
}

// withoutID returns a new slice without the instance id (nil when empty).
func withoutID(list []Instance, id string) []Instance {
	i, found := slices.BinarySearchFunc(list, id, cmpID)
	if !found {
		return list
	}
	if len(list) == 1 {
		return nil
	}
	out := make([]Instance, 0, len(list)-1)
	out = append(out, list[:i]...)
	return append(out, list[i+1:]...)
}

func allPresent(m map[string][]Instance, names []string) bool {
	for _, n := range names {
		if _, ok := m[n]; !ok {
			return false
		}
	}
	return true
}
