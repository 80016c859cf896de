package balance_test

import (
	"slices"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/balance"
	"github.com/shoal-dev/shoal/discovery"
)

// serving returns serving instances of service "svc" with the given IDs.
func serving(ids ...string) []discovery.Instance {
	out := make([]discovery.Instance, len(ids))
	for i, id := range ids {
		out[i] = discovery.Instance{ID: id, Service: "svc", Addr: id + ":80", State: discovery.StateServing}
	}
	return out
}

// withState returns a copy of c with the instances named in ids set to st.
func withState(c []discovery.Instance, st discovery.State, ids ...string) []discovery.Instance {
	out := slices.Clone(c)
	for i := range out {
		if slices.Contains(ids, out[i].ID) {
			out[i].State = st
		}
	}
	return out
}

// others returns the IDs in c other than id.
func others(c []discovery.Instance, id string) []string {
	var out []string
	for _, in := range c {
		if in.ID != id {
			out = append(out, in.ID)
		}
	}
	return out
}

// hostOf returns the Host of instance id, by picking with every other
// instance tried.
func hostOf(t testing.TB, b *balance.Balancer, c []discovery.Instance, id string) *balance.Host {
	t.Helper()
	h, err := b.Pick(c, others(c, id))
	if err != nil {
		t.Fatalf("Pick for %s: %v", id, err)
	}
	if got := h.Instance().ID; got != id {
		t.Fatalf("Pick for %s returned %s", id, got)
	}
	return h
}

// record runs one request of duration d on h ending with o. Inside a
// synctest bubble time.Sleep advances the fake clock only.
func record(h *balance.Host, d time.Duration, o balance.Outcome) {
	start := h.Start()
	time.Sleep(d)
	h.Finish(start, o)
}

// stats returns b's stats by ID.
func stats(b *balance.Balancer) map[string]balance.HostStats {
	m := make(map[string]balance.HostStats)
	for _, s := range b.Stats() {
		m[s.ID] = s
	}
	return m
}

// testConfig is DefaultConfig with short, round ejection times.
func testConfig() balance.Config {
	c := balance.DefaultConfig()
	c.Ejection.BaseTime = time.Second
	c.Ejection.MaxTime = 5 * time.Second
	return c
}
