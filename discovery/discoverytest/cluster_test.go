package discoverytest_test

import (
	"bytes"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/discovery"
	"github.com/shoal-dev/shoal/discovery/discoverytest"
)

func TestMain(m *testing.M) { discoverytest.VerifyTestMain(m) }

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
	c.WaitConverged(t, 2*time.Second)

	left := c.Members()[0] // the seed may leave: the others stay joined
	c.Leave(t, left)
	c.WaitFor(t, time.Second, "left", discoverytest.Lacks(left.Self().ID))

	c.Kill(t, added)
	c.WaitFor(t, 5*time.Second, "crashed", discoverytest.Lacks(added.Self().ID))
	c.WaitFor(t, time.Second, "survivors", discoverytest.Exactly(c.IDs()...))
	if got := len(c.Members()); got != 2 {
		t.Errorf("%d members running, want 2", got)
	}
}
