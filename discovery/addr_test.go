package discovery

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
)

func TestAddrRule(t *testing.T) {
	inst := func(addr string) Instance {
		return Instance{ID: "x", Service: "catalog", Addr: addr, State: StateServing}
	}
	loop, lan, lan6 := net.ParseIP("127.0.0.1"), net.ParseIP("10.0.0.5"), net.ParseIP("fd00::5")
	def := addrRule{}
	cidrs := newAddrRule(Config{AllowedCIDRs: []string{"10.0.0.0/24", "127.0.0.0/8"}})
	cidrsOther := newAddrRule(Config{AllowedCIDRs: []string{"10.0.0.0/24"}, ServeOnOtherIP: true})
	other := addrRule{otherIP: true}
	tests := []struct {
		name    string
		rule    addrRule
		addr    string
		gossip  net.IP
		wantErr string
	}{
		{"loopback, same IP", def, "127.0.0.1:8080", loop, ""},
		{"loopback, other loopback IP", def, "127.0.0.2:8080", loop, ""},
		{"loopback, IPv6 loopback", def, "[::1]:8080", loop, ""},
		{"loopback gossip, metadata address", def, "169.254.169.254:80", loop, "not loopback"},
		{"loopback gossip, LAN address", def, "10.0.0.5:80", loop, "not loopback"},
		{"loopback gossip, host name", def, "metadata.google.internal:80", loop, "host name"},
		{"LAN, same IP", def, "10.0.0.5:8080", lan, ""},
		{"LAN, IPv4-mapped same IP", def, "[::ffff:10.0.0.5]:8080", lan, ""},
		{"LAN, another host", def, "10.0.0.6:8080", lan, "not on the member's gossip address"},
		{"LAN, loopback", def, "127.0.0.1:8080", lan, "not on the member's gossip address"},
		{"IPv6 LAN, same IP", def, "[fd00::5]:8080", lan6, ""},
		{"CIDRs, inside and same IP", cidrs, "10.0.0.5:8080", lan, ""},
		{"CIDRs, outside", cidrs, "192.168.1.5:8080", net.ParseIP("192.168.1.5"), "outside AllowedCIDRs"},
		{"CIDRs and other IP, inside", cidrsOther, "10.0.0.9:8080", lan, ""},
		{"CIDRs and other IP, outside", cidrsOther, "169.254.169.254:80", lan, "outside AllowedCIDRs"},
		{"CIDRs and other IP, host name", cidrsOther, "db:80", lan, "host name"},
		{"other IP, no CIDRs: anything", other, "anything.example:80", lan, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.rule.check(inst(tt.addr), tt.gossip)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("check = %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("check = %v, want an error containing %q", err, tt.wantErr)
			}
		})
	}
}

// TestForgedAddressNotInCatalog: a process holding the gossip key (so it can
// join) announces catalog at the cloud metadata address, as issue 13's SSRF
// finding describes. It is a gossip peer, but no member puts it in its
// catalog. It runs bare memberlist, as an attacker would, not our Member,
// which refuses to start with such a record.
func TestForgedAddressNotInCatalog(t *testing.T) {
	key := bytes.Repeat([]byte{9}, 32)
	cfg := LocalConfig()
	cfg.Keys = [][]byte{key}
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil)) // the refusals are expected
	honest, err := New(cfg, Instance{ID: "catalog-1", Service: "catalog", Addr: "127.0.0.1:18080"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- honest.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	<-honest.Ready()

	for _, forged := range []string{"169.254.169.254:80", "10.0.0.1:8080"} {
		mc := cfg.withDefaults().memberlistConfig("evil-" + forged)
		mc.Logger = log.New(io.Discard, "", 0)
		rec, err := encodeRecord(Instance{ID: "evil-" + forged, Service: "catalog", Addr: forged, State: StateServing})
		if err != nil {
			t.Fatal(err)
		}
		mc.Delegate = rawMeta(rec)
		evil, err := memberlist.Create(mc)
		if err != nil {
			t.Fatal(err)
		}
		defer evil.Shutdown()
		if _, err := evil.Join([]string{honest.GossipAddr()}); err != nil {
			t.Fatal(err)
		}
	}
	// Wait for the join to be seen (both are peers), then check the catalog.
	deadline := time.Now().Add(5 * time.Second)
	for honest.NumMembers() < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("NumMembers = %d, want 3", honest.NumMembers())
		}
		time.Sleep(5 * time.Millisecond)
	}
	got := honest.Catalog().Instances("catalog")
	if len(got) != 1 || got[0].ID != "catalog-1" {
		t.Fatalf("catalog lists %v, want only catalog-1", got)
	}
}

// TestMemberRefusesInconsistentSelf: our own Member does not start with a
// record its peers would refuse, and says why.
func TestMemberRefusesInconsistentSelf(t *testing.T) {
	cfg := LocalConfig()
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	m, err := New(cfg, Instance{ID: "x", Service: "catalog", Addr: "169.254.169.254:80"})
	if err != nil {
		t.Fatal(err)
	}
	err = m.Run(t.Context())
	if err == nil || !strings.Contains(err.Error(), "not loopback") {
		t.Fatalf("Run = %v, want an error about the address", err)
	}
}

// TestUnencryptedOffLoopback: New refuses gossip that would leave the
// machine without a key, naming the variable to set.
func TestUnencryptedOffLoopback(t *testing.T) {
	self := Instance{ID: "x", Service: "catalog", Addr: "127.0.0.1:8080"}
	for _, cfg := range []Config{
		{BindAddr: "0.0.0.0:0"},
		{BindAddr: "10.0.0.5:7946"},
		{BindAddr: "127.0.0.1:0", AdvertiseAddr: "192.0.2.1:7946"},
		DefaultConfig(),
	} {
		_, err := New(cfg, self)
		if !errors.Is(err, ErrUnencrypted) || !strings.Contains(err.Error(), EnvGossipKey) {
			t.Errorf("New(%+v) = %v, want ErrUnencrypted naming %s", cfg, err, EnvGossipKey)
		}
		cfg.Keys = [][]byte{bytes.Repeat([]byte{1}, 16)}
		if _, err := New(cfg, self); err != nil {
			t.Errorf("New(%+v) with a key = %v", cfg, err)
		}
	}
}

type rawMeta []byte

func (m rawMeta) NodeMeta(int) []byte                  { return m }
func (rawMeta) NotifyMsg([]byte)                       {}
func (rawMeta) GetBroadcasts(int, int) [][]byte        { return nil }
func (rawMeta) LocalState(bool) []byte                 { return nil }
func (rawMeta) MergeRemoteState(buf []byte, join bool) {}
