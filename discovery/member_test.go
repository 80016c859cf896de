package discovery

import (
	"context"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
)

func TestNewRejects(t *testing.T) {
	huge := Instance{ // every field at its limit: valid, but too big in total
		ID:      strings.Repeat("i", maxIDLen),
		Service: strings.Repeat("s", maxServiceLen),
		Addr:    strings.Repeat("h", 250) + ":1",
		Version: strings.Repeat("v", maxVersionLen),
	}
	tests := []struct {
		name    string
		cfg     Config
		self    Instance
		wantErr string
	}{
		{"bad config", Config{Profile: "moon"}, validInstance(), `Profile "moon"`},
		{"no ID", LocalConfig(), Instance{Service: "s", Addr: "h:1"}, "instance ID"},
		{"no service", LocalConfig(), Instance{ID: "a", Addr: "h:1"}, "service name"},
		{"bad addr", LocalConfig(), Instance{ID: "a", Service: "s", Addr: "h"}, `Addr "h"`},
		{"bad state", LocalConfig(), Instance{ID: "a", Service: "s", Addr: "h:1", State: "up"}, `State "up"`},
		{"record over 512 bytes", LocalConfig(), huge, "over memberlist's 512-byte metadata limit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.cfg, tt.self)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("New() error = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestNewDefaultsStateAndDoesNoIO(t *testing.T) {
	self := validInstance()
	self.State = ""
	m, err := New(Config{Keys: [][]byte{make([]byte, 32)}}, self) // the LAN default binds 0.0.0.0: a key is required
	if err != nil {
		t.Fatal(err)
	}
	if got := m.Self().State; got != StateServing {
		t.Errorf("Self().State = %q, want serving", got)
	}
	if m.GossipAddr() != "" || m.NumMembers() != 0 || m.Catalog().Snapshot().Len() != 0 {
		t.Error("New bound or joined something")
	}
	select {
	case <-m.Ready():
		t.Error("Ready closed before Run")
	default:
	}
}

func TestSetStateWithoutRun(t *testing.T) {
	m, err := New(LocalConfig(), validInstance())
	if err != nil {
		t.Fatal(err)
	}
	if err := m.SetState(t.Context(), StateDraining); err != nil {
		t.Fatalf("SetState before Run: %v", err)
	}
	if got := m.Self().State; got != StateDraining {
		t.Errorf("Self().State = %q, want draining", got)
	}
	if got, _ := decodeRecord(*m.meta.Load()); got.State != StateDraining {
		t.Errorf("advertised record state = %q, want draining", got.State)
	}
	if err := m.SetState(t.Context(), "asleep"); err == nil || !strings.Contains(err.Error(), `"asleep"`) {
		t.Errorf("SetState(asleep) = %v, want an error naming the state", err)
	}
}

func TestRunBindError(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cfg := LocalConfig()
	cfg.BindAddr = ln.Addr().String()
	m, err := New(cfg, validInstance())
	if err != nil {
		t.Fatal(err)
	}
	err = m.Run(t.Context())
	if err == nil || !strings.Contains(err.Error(), cfg.BindAddr) {
		t.Fatalf("Run() on a taken port = %v, want an error naming %s", err, cfg.BindAddr)
	}
	select {
	case <-m.Ready():
		t.Error("Ready closed although binding failed")
	default:
	}
}

func TestRunTwiceAndKillBeforeRun(t *testing.T) {
	m, err := New(LocalConfig(), validInstance())
	if err != nil {
		t.Fatal(err)
	}
	m.Kill()
	if err := m.Run(t.Context()); err != nil { // binds, sees Kill, stops
		t.Fatalf("Run after Kill: %v", err)
	}
	if err := m.Run(t.Context()); err == nil || !strings.Contains(err.Error(), "more than once") {
		t.Fatalf("second Run = %v, want an error", err)
	}
}

// A single member lists itself, and removes itself when it leaves.
func TestRunSingleMember(t *testing.T) {
	m, err := New(LocalConfig(), validInstance())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	<-m.Ready()
	if _, port, err := net.SplitHostPort(m.GossipAddr()); err != nil || port == "0" {
		t.Errorf("GossipAddr() = %q, want a bound host:port", m.GossipAddr())
	}
	if got := m.Catalog().Instances("ratings"); len(got) != 1 || got[0] != m.Self() {
		t.Errorf("catalog = %v, want just self", got)
	}
	if n := m.NumMembers(); n != 1 {
		t.Errorf("NumMembers() = %d, want 1", n)
	}
	// No peers: the update needs no broadcast and returns at once.
	sctx, scancel := context.WithTimeout(ctx, time.Second)
	defer scancel()
	if err := m.SetState(sctx, StateDraining); err != nil {
		t.Fatalf("SetState: %v", err)
	}
	if got := m.Catalog().Instances("ratings"); len(got) != 1 || got[0].State != StateDraining {
		t.Errorf("catalog after SetState = %v, want self draining", got)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run() = %v", err)
	}
	if n := m.Catalog().Snapshot().Len(); n != 0 {
		t.Errorf("catalog after leave has %d instances, want 0 (self left)", n)
	}
	if n := m.NumMembers(); n != 0 {
		t.Errorf("NumMembers() after Run = %d, want 0", n)
	}
}

func TestSeedsOtherThan(t *testing.T) {
	tests := []struct {
		seeds []string
		self  string
		want  []string
	}{
		{[]string{"127.0.0.1:7000", "127.0.0.1:7001"}, "127.0.0.1:7000", []string{"127.0.0.1:7001"}},
		{[]string{"[::1]:7000", "[0:0::1]:7000"}, "[::1]:7000", nil},
		{[]string{"seed:7000"}, "127.0.0.1:7000", []string{"seed:7000"}},
		{nil, "127.0.0.1:7000", nil},
	}
	for _, tt := range tests {
		m := &Member{cfg: Config{Seeds: tt.seeds, BindAddr: "127.0.0.1:0"}}
		got := m.seedsOtherThan(tt.self)
		if strings.Join(got, ",") != strings.Join(tt.want, ",") {
			t.Errorf("seeds %v without %s = %v, want %v", tt.seeds, tt.self, got, tt.want)
		}
	}
}

// catalogEvents is what memberlist drives; feed it nodes directly, including
// the garbage a broken or hostile peer could advertise.
func TestCatalogEvents(t *testing.T) {
	good := validInstance()
	goodMeta, _ := encodeRecord(good)
	draining := good
	draining.State = StateDraining
	drainingMeta, _ := encodeRecord(draining)
	node := func(name string, meta []byte) *memberlist.Node {
		return &memberlist.Node{Name: name, Addr: net.IPv4(127, 0, 0, 1), Port: 7946, Meta: meta}
	}
	type event struct {
		kind string // join, update, leave
		node *memberlist.Node
	}
	tests := []struct {
		name     string
		events   []event
		want     []Instance
		wantWarn int
	}{
		{"join", []event{{"join", node(good.ID, goodMeta)}}, []Instance{good}, 0},
		{"update", []event{{"join", node(good.ID, goodMeta)}, {"update", node(good.ID, drainingMeta)}}, []Instance{draining}, 0},
		{"leave", []event{{"join", node(good.ID, goodMeta)}, {"leave", node(good.ID, goodMeta)}}, nil, 0},
		{"garbage join ignored", []event{{"join", node("x", []byte("\x01{garbage"))}}, nil, 1},
		{"no meta ignored", []event{{"join", node("x", nil)}}, nil, 1},
		{"ID differs from node name", []event{{"join", node("impostor", goodMeta)}}, nil, 1},
		{"update to garbage removes", []event{{"join", node(good.ID, goodMeta)}, {"update", node(good.ID, []byte{0xff})}}, nil, 1},
		{"garbage then fixed", []event{{"join", node(good.ID, []byte{0})}, {"update", node(good.ID, goodMeta)}}, []Instance{good}, 1},
		{"leave of unknown node", []event{{"leave", node("ghost", nil)}}, nil, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			logs := NewLogWatch()
			e := &catalogEvents{catalog: NewCatalog(), log: slog.New(logs)}
			for _, ev := range tt.events {
				switch ev.kind {
				case "join":
					e.NotifyJoin(ev.node)
				case "update":
					e.NotifyUpdate(ev.node)
				case "leave":
					e.NotifyLeave(ev.node)
				}
			}
			got := e.catalog.Snapshot().All()
			if len(got) != len(tt.want) || (len(got) > 0 && got[0] != tt.want[0]) {
				t.Errorf("catalog = %v, want %v", got, tt.want)
			}
			if logs.Warns() != tt.wantWarn {
				t.Errorf("%d warnings, want %d: %s", logs.Warns(), tt.wantWarn, logs.Text())
			}
		})
	}
}
