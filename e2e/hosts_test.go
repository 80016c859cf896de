package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/shoal-dev/shoal/discovery"
)

// TestHosts runs flix on three "hosts", network namespaces joined by a
// bridge in a fourth (the switch), with addresses that exist only there
// (10.77.0.0/24): the test process reaches them only by dialling from
// inside a namespace (nsDialer). h1 runs the whole manifest, h2 the
// gateway and the services GET /titles/N needs, h3 those services without
// a gateway; one instance of each per host. Load comes from a client
// namespace. Scenarios: an intruder without the keys cannot join; h3 cut
// off for 10 s and healed; every process of h3 killed.
//
// Everything is named with hostsPrefix and removed at the end, and left
// overs of a crashed run at the start. It needs root and ip(8).

const (
	hostsPrefix = "shoalhx"
	hostsNet    = "10.77.0."
	hostsRate   = 40 // requests per second, split over the two gateways
	hostsDL     = 5 * time.Second
	cutFor      = 10 * time.Second
)

// nsName is the namespace called name; vethName the switch side of its
// link (interface names are at most 15 bytes).
func nsName(name string) string   { return hostsPrefix + "-" + name }
func vethName(name string) string { return hostsPrefix + name }

// fabric is the namespaces and the bridge.
type fabric struct{ t *testing.T }

func ipCmd(args ...string) error {
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// newFabric checks for root and ip, removes leftovers, and makes the
// switch namespace with its bridge.
func newFabric(t *testing.T) *fabric {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("TestHosts needs root (it creates network namespaces with ip netns add); run it as root, as CI does")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Fatal("TestHosts needs ip(8) from iproute2 to create network namespaces: install iproute2")
	}
	f := &fabric{t}
	f.removeAll()
	t.Cleanup(f.removeAll)
	sw := nsName("sw")
	for _, args := range [][]string{
		{"netns", "add", sw},
		{"-n", sw, "link", "add", "br0", "type", "bridge"},
		{"-n", sw, "link", "set", "br0", "up"},
	} {
		if err := ipCmd(args...); err != nil {
			t.Fatalf("%v (does this machine support network namespaces?)", err)
		}
	}
	return f
}

// removeAll deletes every namespace of the prefix; their links go with
// them.
func (f *fabric) removeAll() {
	out, _ := exec.Command("ip", "netns", "list").Output()
	for line := range strings.Lines(string(out)) {
		name, _, _ := strings.Cut(strings.TrimSpace(line), " ")
		if strings.HasPrefix(name, hostsPrefix+"-") {
			f.killAll(name)
			if err := ipCmd("netns", "del", name); err != nil {
				f.t.Log(err)
			}
		}
	}
}

// addHost makes namespace name with address hostsNet+octet on the bridge.
func (f *fabric) addHost(name string, octet int) string {
	f.t.Helper()
	ns, sw, veth := nsName(name), nsName("sw"), vethName(name)
	ip := hostsNet + strconv.Itoa(octet)
	for _, args := range [][]string{
		{"netns", "add", ns},
		{"-n", ns, "link", "set", "lo", "up"},
		{"link", "add", veth, "netns", sw, "type", "veth", "peer", "name", "eth0", "netns", ns},
		{"-n", sw, "link", "set", veth, "master", "br0"},
		{"-n", sw, "link", "set", veth, "up"},
		{"-n", ns, "addr", "add", ip + "/24", "dev", "eth0"},
		{"-n", ns, "link", "set", "eth0", "up"},
	} {
		if err := ipCmd(args...); err != nil {
			f.t.Fatal(err)
		}
	}
	return ip
}

// setLink takes host name's link to the switch down or up.
func (f *fabric) setLink(name, state string) {
	f.t.Helper()
	if err := ipCmd("-n", nsName("sw"), "link", "set", vethName(name), state); err != nil {
		f.t.Fatal(err)
	}
}

// killAll SIGKILLs every process in namespace ns at once: a host losing
// power.
func (f *fabric) killAll(ns string) int {
	out, _ := exec.Command("ip", "netns", "pids", ns).Output()
	n := 0
	for _, field := range strings.Fields(string(out)) {
		if pid, err := strconv.Atoi(field); err == nil && syscall.Kill(pid, syscall.SIGKILL) == nil {
			n++
		}
	}
	return n
}

// nsDialer dials from inside namespace ns: the socket is made on a thread
// switched into it (a socket stays in the namespace it was made in).
func nsDialer(t *testing.T, ns string) func(ctx context.Context, network, addr string) (net.Conn, error) {
	t.Helper()
	target, err := os.Open("/run/netns/" + ns)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { target.Close() })
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		type res struct {
			c   net.Conn
			err error
		}
		ch := make(chan res, 1)
		go func() {
			runtime.LockOSThread()
			home, err := os.Open("/proc/thread-self/ns/net")
			if err != nil {
				runtime.UnlockOSThread()
				ch <- res{nil, err}
				return
			}
			defer home.Close()
			if err := setns(target); err != nil {
				runtime.UnlockOSThread()
				ch <- res{nil, err}
				return
			}
			c, err := new(net.Dialer).DialContext(ctx, network, addr)
			if setns(home) == nil {
				runtime.UnlockOSThread() // else the thread ends with this goroutine
			}
			ch <- res{c, err}
		}()
		r := <-ch
		return r.c, r.err
	}
}

func setns(f *os.File) error {
	if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
		return fmt.Errorf("setns %s: %w", f.Name(), err)
	}
	return nil
}

// nsClient is an HTTP client whose connections start in namespace ns.
func nsClient(t *testing.T, ns string) *http.Client {
	tr := &http.Transport{DialContext: nsDialer(t, ns), MaxIdleConnsPerHost: 64}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

// node is one host of the system: its namespace, folder and shoal up.
type node struct {
	name, ip, dir string
	only          []string
	everyIface    bool // --bind 0.0.0.0 --advertise ip rather than --bind ip
	up            *proc
	admin         *http.Client // reaches its loopback admin listeners
}

func (n *node) ns() string { return nsName(n.name) }

// start runs shoal up for n in its namespace.
func (n *node) start(t *testing.T, args ...string) {
	t.Helper()
	all := []string{"netns", "exec", n.ns(), filepath.Join(binDir, "shoal"), "up", "-f", n.dir, "--bind", n.ip}
	if n.everyIface {
		all = append(all[:len(all)-1], "0.0.0.0", "--advertise", n.ip)
	}
	all = append(all, args...)
	if len(n.only) > 0 {
		all = append(all, "--only", strings.Join(n.only, ","))
	}
	n.up = startCmd(t, "shoal up on "+n.name, exec.Command("ip", all...), "NO_COLOR=1")
}

// shoal runs the CLI in n's namespace against its folder.
func (n *node) shoal(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", n.ns(), filepath.Join(binDir, "shoal"), "-f", n.dir}, args...)...)
	cmd.Env = append(os.Environ(), "NO_COLOR=1")
	out, err := cmd.CombinedOutput()
	return string(out), err
}

type hostRow struct {
	psEntry
	Host string `json:"host"`
}

// ps is shoal ps -o json on n: every host's instances.
func (n *node) ps() ([]hostRow, error) {
	out, err := n.shoal("ps", "-o", "json")
	if err != nil {
		return nil, fmt.Errorf("shoal ps on %s: %v: %s", n.name, err, out)
	}
	var rows []hostRow
	if err := json.Unmarshal([]byte(out[strings.Index(out, "["):]), &rows); err != nil {
		return nil, fmt.Errorf("shoal ps on %s: %v: %s", n.name, err, out)
	}
	return rows, nil
}

// catalogs reads /infoz of every SDK instance in rows of hosts, all at
// once: what each instance's catalog holds, per service. Instances that do
// not answer are left out.
func catalogs(hosts map[string]*node, rows []hostRow) map[string]map[string]int {
	out := map[string]map[string]int{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, r := range rows {
		h := hosts[r.Host]
		if r.Admin == "" || h == nil || r.State != "serving" {
			continue
		}
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+r.Admin+"/infoz", nil)
			resp, err := h.admin.Do(req)
			if err != nil {
				return
			}
			defer resp.Body.Close()
			var info struct {
				Services map[string]int `json:"services"`
			}
			if json.NewDecoder(resp.Body).Decode(&info) == nil {
				mu.Lock()
				out[r.Host+" "+r.Service] = info.Services
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return out
}

// census counts rows per service, the supervisors included, as a catalog
// would hold them.
func census(rows []hostRow, hosts int) map[string]int {
	c := map[string]int{"shoal-supervisor": hosts}
	for _, r := range rows {
		c[r.Service]++
	}
	return c
}

// agree reports whether every catalog in cats holds want and whether there
// are n of them, and describes the first that does not.
func agree(cats map[string]map[string]int, want map[string]int, n int) (bool, string) {
	if len(cats) < n {
		return false, fmt.Sprintf("%d of %d instances answered /infoz", len(cats), n)
	}
	for _, k := range slices.Sorted(maps.Keys(cats)) {
		if !maps.Equal(cats[k], want) {
			return false, fmt.Sprintf("%s sees %v, want %v", k, cats[k], want)
		}
	}
	return true, ""
}

// hostsSystem is flix running on the three hosts of a fabric, every
// catalog agreeing and both gateways answering.
type hostsSystem struct {
	f        *fabric
	h        [3]*node
	hosts    map[string]*node // by address
	rows     []hostRow        // h1's shoal ps once every instance served
	full     map[string]int   // what every catalog holds
	sdk      int              // SDK instances (those with /infoz)
	client   *http.Client     // from the client namespace
	gateways []string
	intruder string // the intruder namespace's address
}

// startHosts makes the fabric and runs flix on it, one instance of each
// service per host, until both gateways answer 50 GET /titles in a row.
func startHosts(t *testing.T) *hostsSystem {
	t.Helper()
	f := newFabric(t)
	text, _ := referenceManifest(t)
	text = regexp.MustCompile(`instances: \d+`).ReplaceAllString(text, "instances: 1")
	// One gateway per host, on the same port in each host's namespace.
	text = regexp.MustCompile(`port: \[\d+, \d+\]`).ReplaceAllString(text, "port: [8080]")
	titles := []string{"api", "catalog", "ratings"} // what GET /titles/N reaches
	hosts := map[string]*node{}
	var h [3]*node
	for i, name := range []string{"h1", "h2", "h3"} {
		h[i] = &node{name: name, ip: f.addHost(name, i+1), dir: scratchDir(t)}
		h[i].admin = nsClient(t, h[i].ns())
		hosts[h[i].ip] = h[i]
		if err := os.WriteFile(filepath.Join(h[i].dir, "shoal.yaml"), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	h[1].only = append([]string{"gateway"}, titles...)
	h[1].everyIface = true
	h[2].only = titles
	clientIP := f.addHost("client", 100)
	intruderIP := f.addHost("intruder", 4)
	client := nsClient(t, nsName("client"))
	t.Logf("hosts %s, %s, %s; client %s; intruder %s", h[0].ip, h[1].ip, h[2].ip, clientIP, intruderIP)

	// h1 makes the keys; the others get copies: h2 in a folder of its own
	// (--secrets), h3 in its manifest's .shoal.
	begin := time.Now()
	h[0].start(t)
	secrets := filepath.Join(h[0].dir, ".shoal")
	waitFor(t, 60*time.Second, "h1's keys", func() bool {
		for _, p := range []string{"identity/ca.pem", "gossip.key", "chaos.key"} {
			if _, err := os.Stat(filepath.Join(secrets, p)); err != nil {
				return false
			}
		}
		return true
	})
	join := "--join=" + h[0].ip + ":7946"
	// Joining without the keys is refused, naming what is missing.
	if out, err := h[1].shoal("up", "--bind", h[1].ip, join, "--only", "api", "--secrets", t.TempDir()); err == nil || !strings.Contains(out, "joining a running system needs") {
		t.Fatalf("shoal up --join without keys: %v\n%s", err, out)
	}
	h2secrets := t.TempDir()
	copyKeys(t, secrets, h2secrets)
	copyKeys(t, secrets, filepath.Join(h[2].dir, ".shoal"))
	h[1].start(t, join, "--secrets", h2secrets)
	h[2].start(t, join)

	// 10 services on h1, 4 on h2, 3 on h3.
	const total = 10 + 4 + 3
	var rows []hostRow
	waitFor(t, 170*time.Second, "every host's instances serving in h1's shoal ps", func() bool {
		for _, n := range h {
			select {
			case <-n.up.exited:
				t.Fatalf("shoal up on %s exited:\n%s", n.name, n.up.out.String())
			default:
			}
		}
		var err error
		if rows, err = h[0].ps(); err != nil {
			return false
		}
		serving := 0
		for _, r := range rows {
			if r.State == "serving" {
				serving++
			}
		}
		return serving == total
	})
	t.Logf("3 hosts, %d instances serving in %v", total, time.Since(begin).Round(100*time.Millisecond))
	for _, r := range rows {
		if hosts[r.Host] == nil || !strings.HasPrefix(r.Addr, r.Host+":") {
			t.Fatalf("ps row %+v: want the host's address and an address on it", r)
		}
	}
	if out, err := h[2].shoal("ps"); err != nil || !strings.Contains(out, "HOST") || !strings.Contains(out, h[0].ip) {
		t.Fatalf("shoal ps on h3 does not list h1's instances: %v\n%s", err, out)
	}
	sdk := 0
	for _, r := range rows {
		if r.Admin != "" {
			sdk++
		}
	}
	full := census(rows, 3)
	waitFor(t, 30*time.Second, "every catalog to hold every host's instances", func() bool {
		ok, _ := agree(catalogs(hosts, rows), full, sdk)
		return ok
	})

	gateways := []string{"http://" + h[0].ip + ":8080", "http://" + h[1].ip + ":8080"}
	steady := 0
	waitFor(t, 60*time.Second, "50 successful GET /titles in a row at both gateways", func() bool {
		r := getTitle(client, gateways[steady%2], steady, hostsDL)
		if r.err != nil || r.status != 200 {
			steady = 0
			return false
		}
		steady++
		return steady >= 50
	})
	return &hostsSystem{f: f, h: h, hosts: hosts, rows: rows, full: full, sdk: sdk, client: client, gateways: gateways, intruder: intruderIP}
}

func TestHosts(t *testing.T) {
	sys := startHosts(t)
	f, h, hosts, rows, full, sdk, client, gateways := sys.f, sys.h, sys.hosts, sys.rows, sys.full, sys.sdk, sys.client, sys.gateways
	intruderIP := sys.intruder
	drive := func(dur time.Duration, events ...event) summary {
		return summarize(run(hostsRate, dur, func(i int) result { return getTitle(client, gateways[i%2], i, hostsDL) }, events...))
	}
	cmd := "go test ./e2e -run TestHosts -v (as root)"

	t.Run("no keys, no entry", func(t *testing.T) {
		key, _ := discovery.NewKey()
		p := startCmd(t, "intruder", exec.Command("ip", "netns", "exec", nsName("intruder"), filepath.Join(binDir, "hello")),
			"SHOAL_NAME=intruder", "SHOAL_ADDR="+intruderIP+":8080", "SHOAL_GOSSIP_ADDR="+intruderIP+":0",
			"SHOAL_SEEDS="+h[0].ip+":7946,"+h[1].ip+":7946", "SHOAL_GOSSIP_KEY="+discovery.EncodeKeys(key))
		waitFor(t, 30*time.Second, "the intruder to give up joining for now", func() bool {
			return strings.Contains(p.out.String(), "no seed answered")
		})
		// Several probe rounds later, still nobody has it.
		time.Sleep(3 * time.Second)
		if ok, why := agree(catalogs(hosts, rows), full, sdk); !ok {
			t.Fatalf("a catalog changed with an intruder about: %s", why)
		}
		p.signal(syscall.SIGKILL)
	})

	t.Run("cut h3 off for 10s", func(t *testing.T) {
		var cutAt time.Time
		var conv <-chan convergence
		s := drive(cutFor+8*time.Second,
			event{3 * time.Second, func() { cutAt = time.Now(); f.setLink("h3", "down") }},
			event{3*time.Second + cutFor, func() {
				f.setLink("h3", "up")
				conv = converge(hosts, rows, full, sdk, 60*time.Second)
			}})
		t.Logf("load at the gateways of h1 and h2: %v", s)
		if s.failed > 0 {
			t.Errorf("%d of %d requests failed at the majority side's gateways", s.failed, s.total)
		}
		c := <-conv
		if c.took < 0 {
			t.Fatalf("catalogs not converged 60s after the heal: %s", c.why)
		}
		t.Logf("cut at %v for %v; every catalog, h3's included, held every host's instances again %v after the heal (%s)",
			cutAt.Format(time.TimeOnly), cutFor, c.took.Round(10*time.Millisecond), cmd)
		t.Logf("BENCH hosts partition: failed %d/%d, converged %.1fs after heal", s.failed, s.total, c.took.Seconds())
		if all, err := h[0].ps(); err != nil || len(all) != len(rows) {
			t.Errorf("after the heal, h1's shoal ps lists %d instances, want %d (%v)", len(all), len(rows), err)
		}
	})

	t.Run("kill every process of h3", func(t *testing.T) {
		var survivors []hostRow
		for _, r := range rows {
			if r.Host != h[2].ip {
				survivors = append(survivors, r)
			}
		}
		want := census(survivors, 2)
		n := 0
		for _, r := range survivors {
			if r.Admin != "" {
				n++
			}
		}
		bound := discovery.RemovalBound(discovery.ProfileLAN, len(rows)+3)
		var conv <-chan convergence
		s := drive(15*time.Second, event{3 * time.Second, func() {
			t.Logf("killed %d processes on h3", f.killAll(h[2].ns()))
			conv = converge(hosts, survivors, want, n, bound+10*time.Second)
		}})
		t.Logf("load at the gateways of h1 and h2: %v", s)
		if s.failed > 0 {
			t.Errorf("%d of %d requests failed", s.failed, s.total)
		}
		c := <-conv
		if c.took < 0 || c.took > bound {
			t.Fatalf("h3's instances still in a catalog %v after the kill (LAN bound %v): %s", c.took, bound, c.why)
		}
		t.Logf("h3's instances gone from every catalog %v after the kill; LAN bound for %d members %v (%s)", c.took.Round(10*time.Millisecond), len(rows)+3, bound, cmd)
		t.Logf("BENCH hosts kill: failed %d/%d, removed in %.1fs (bound %.1fs)", s.failed, s.total, c.took.Seconds(), bound.Seconds())
		<-h[2].up.exited
	})
}

// convergence is how long the catalogs took to agree, or -1 and the last
// disagreement.
type convergence struct {
	took time.Duration
	why  string
}

// converge polls, in the background, the catalogs of the SDK instances in
// rows until they all hold want (n of them answering), and reports how
// long that took from now; -1 after within. The goroutine ends by within.
func converge(hosts map[string]*node, rows []hostRow, want map[string]int, n int, within time.Duration) <-chan convergence {
	start := time.Now()
	out := make(chan convergence, 1)
	go func() {
		var why string
		for time.Since(start) < within {
			var ok bool
			if ok, why = agree(catalogs(hosts, rows), want, n); ok {
				out <- convergence{took: time.Since(start)}
				return
			}
			time.Sleep(50 * time.Millisecond) // polling interval
		}
		out <- convergence{took: -1, why: why}
	}()
	return out
}

// copyKeys copies the system's keys from a .shoal folder to dst, as an
// operator would: the CA's files (not the certificates of h1's running
// processes), the gossip key and the chaos key, readable by the owner only.
func copyKeys(t *testing.T, from, dst string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(dst, "identity"), 0o700); err != nil {
		t.Fatal(err)
	}
	files := []string{"gossip.key", "chaos.key"}
	pems, _ := filepath.Glob(filepath.Join(from, "identity", "*.pem"))
	for _, p := range pems {
		files = append(files, filepath.Join("identity", filepath.Base(p)))
	}
	for _, name := range files {
		b, err := os.ReadFile(filepath.Join(from, name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}
