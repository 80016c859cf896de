package discoverytest_test

import (
	"bytes"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/discovery"
	"github.com/shoal-dev/shoal/discovery/discoverytest"
)

func TestMain(m *testing.M) { discoverytest.VerifyTestMain(m) }

// patience bounds each wait: long enough for a machine busy with other
// tests; the timing bounds themselves are measured in the discovery package.
const patience = 30 * time.Second

func TestCluster(t *testing.T) {
	key := bytes.Repeat([]byte{7}, 16)
	c := discoverytest.NewCluster(t, 3,
		discoverytest.WithService("users"),
		discoverytest.WithConfig(func(cfg *discovery.Config) { cfg.Keys = [][]byte{key} }))
	if got := c.IDs(); len(got) != 3 || got[0] != "users-1" {
		t.Fatalf("IDs() = %v", got)
	}
	for _, m := range c.Members() {
		if n := m.NumMembers(); n != 3 {
			t.Errorf("%s: NumMembers() = %d, want 3", m.Self().ID, n)
		}
	}

	added := c.Add(t)
	c.WaitConverged(t, patience)

	left := c.Members()[0] // the seed may leave: the others stay joined
	c.Leave(t, left)
	c.WaitFor(t, patience, "left", discoverytest.Lacks(left.Self().ID))

	c.Kill(t, added)
	c.WaitFor(t, patience, "crashed", discoverytest.Lacks(added.Self().ID))
	c.WaitFor(t, patience, "survivors", discoverytest.Exactly(c.IDs()...))
	if got := len(c.Members()); got != 2 {
		t.Errorf("%d members running, want 2", got)
	}
}
