package supervisor

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/shoal-dev/shoal/chaos"
	"github.com/shoal-dev/shoal/discovery"
	"github.com/shoal-dev/shoal/handoff"
	"github.com/shoal-dev/shoal/identity"
	"github.com/shoal-dev/shoal/manifest"
)

// Options configures a Supervisor. The zero value works (output discarded).
type Options struct {
	// Out receives progress, the status table and the instances' logs,
	// each line prefixed "service/index | " (os.Stdout in the CLI).
	Out io.Writer
	// Color colours the prefixes, one colour per service.
	Color bool
	// Logger receives the supervisor's own diagnostics; nil discards them.
	Logger *slog.Logger
	// Dashboard, if set, is served on a loopback port of its own; its URL
	// is printed with the status table and kept in the state file.
	Dashboard DashboardFunc
	// Host places this supervisor in a system that spans several hosts;
	// zero: the whole system on this machine, on loopback (hosts.go).
	Host HostOptions
}

// DefaultDrainTimeout is given to instances when the manifest sets none.
const DefaultDrainTimeout = 10 * time.Second

// SupervisorService is the service name the supervisor's own gossip member
// advertises.
const SupervisorService = "shoal-supervisor"

// Supervisor runs the services of one manifest. Create it with New and call
// Run once; the control API (see FindRunning) reaches it while it runs.
type Supervisor struct {
	m      *Manifest
	opts   Options
	host   host
	log    *slog.Logger
	con    *console
	drain  time.Duration
	order  []*service
	byName map[string]*service
	insts  int // instances the manifest has this supervisor run
	logs   *logHub
	keys   *keys      // the system's CA and gossip keyring; set by Run before any instance starts
	token  string     // control API secret, also in the state file
	col    *collector // spans, metrics, events (collect.go)
	ran    atomic.Bool
	// faultKey is the operator's public key every instance gets
	// (SHOAL_FAULT_KEY); chaos the stops and slows under way (chaos.go).
	faultKey     string
	faultKeyFile string // where its private half is
	chaos        chaosState

	seed      *discovery.Member // set before any instance starts
	launched  atomic.Bool       // builds done and every instance started: scale and restart may run
	streaming atomic.Bool       // instance lines go to Out once the status table is printed
	down      chan struct{}     // closed by a down request
	downOnce  sync.Once
	wg        sync.WaitGroup // instance goroutines

	mu      sync.Mutex    // guards closing and every service's insts
	closing bool          // no instance may be added any more
	changed chan struct{} // closed and replaced when any instance changes; guarded by mu
}

// service is one manifest entry at run time.
type service struct {
	spec     *ServiceSpec
	name     string
	color    int
	path     string   // program to run: the built binary or Command[0]
	args     []string // its arguments
	register Register
	health   string
	scheme   string       // of its gateway URLs: https when it serves TLS to the outside
	probe    *http.Client // its health checks (keys.prober); set by Run
	probeVia string       // their scheme
	op       sync.Mutex   // serializes scale and restart of this service
	insts    []*instance  // by index; during a restart two may share one; guarded by Supervisor.mu
}

// New checks m and returns a supervisor for it. It does no I/O.
func New(m *Manifest, opts Options) (*Supervisor, error) {
	if m == nil {
		return nil, errors.New("supervisor: nil manifest")
	}
	if m.Dir == "" {
		return nil, errors.New("supervisor: manifest has no Dir (the folder of shoal.yaml)")
	}
	if opts.Out == nil {
		opts.Out = io.Discard
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Supervisor{
		m: m, opts: opts, log: log,
		drain:   m.DrainTimeout,
		byName:  map[string]*service{},
		logs:    newLogHub(),
		token:   randomHex(16),
		col:     newCollector(m.Dir),
		down:    make(chan struct{}),
		changed: make(chan struct{}),
	}
	if s.drain <= 0 {
		s.drain = DefaultDrainTimeout
	}
	var err error
	if s.host, err = newHost(opts.Host, m); err != nil {
		return nil, err
	}
	width := len("shoal")
	for i, spec := range m.Services {
		if spec == nil || spec.Name == "" {
			return nil, fmt.Errorf("supervisor: service %d has no name", i+1)
		}
		if _, dup := s.byName[spec.Name]; dup {
			return nil, fmt.Errorf("supervisor: service %q is defined twice", spec.Name)
		}
		if (spec.Build == "") == (len(spec.Command) == 0) {
			return nil, fmt.Errorf("supervisor: service %q: set exactly one of build and command", spec.Name)
		}
		if !runs(opts.Host.Only, spec.Name) {
			continue // another host runs it
		}
		svc := &service{spec: spec, name: spec.Name, color: i, register: spec.Register, health: spec.Health, scheme: schemeOf(spec)}
		if spec.Build != "" {
			svc.args = spec.Args
		} else {
			svc.path, svc.args = spec.Command[0], append(slices.Clip(spec.Command[1:]), spec.Args...)
		}
		if svc.register == "" {
			svc.register = RegisterSDK
			if spec.Build == "" {
				svc.register = RegisterSupervisor
			}
		}
		if svc.health == "" {
			svc.health = "/readyz"
			if svc.register == RegisterSupervisor {
				svc.health = "/"
			}
		}
		s.order = append(s.order, svc)
		s.byName[spec.Name] = svc
		s.insts += instancesOf(spec)
		width = max(width, len(spec.Name)+1+len(strconv.Itoa(max(instancesOf(spec), 9))))
	}
	s.con = newConsole(opts.Out, opts.Color, width)
	return s, nil
}

func instancesOf(spec *ServiceSpec) int {
	if spec.Instances <= 0 {
		return 1
	}
	return spec.Instances
}

// Run starts the system and supervises it until ctx ends or a down request
// arrives; then it stops every instance gracefully and returns nil. It
// returns an error, after stopping what it started, if the state folder
// cannot be written, a supervisor already runs for the manifest's folder, or
// a build fails. Run may be called once.
func (s *Supervisor) Run(ctx context.Context) error {
	if !s.ran.CompareAndSwap(false, true) {
		return errors.New("supervisor: Run called twice")
	}
	// Output goes through one writer so that a stalled reader of Out
	// delays only it (see console); at the end it gets consoleFlush to write
	// what is left, then is abandoned if Out still blocks.
	conStop, conDone := make(chan struct{}), make(chan struct{})
	go func() { // owned by Run: ends once conStop is closed and the queue written
		defer close(conDone)
		s.con.run(conStop)
	}()
	defer func() {
		close(conStop)
		t := time.NewTimer(consoleFlush)
		defer t.Stop()
		select {
		case <-conDone:
		case <-t.C:
		}
	}()

	dir := s.m.Dir
	for _, d := range []string{binDir(dir), dataDir(dir)} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("supervisor: %w", err)
		}
	}
	if err := s.loadFaultKey(s.secrets()); err != nil {
		return err
	}
	// The lock closes the race between two shoal up started at once; the
	// kernel releases it when this process dies, however it dies.
	lock, err := os.OpenFile(filepath.Join(dir, ".shoal", "up.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return fmt.Errorf("supervisor: %w", err)
	}
	// Registered first, so it runs last: the lock is released, and only then
	// the state file removed, so that once `shoal down` sees the state file
	// gone a new shoal up can take the lock. (The control API is closed by
	// then, so the new one takes the state file for a stale one.)
	var written *stateFile
	defer func() {
		lock.Close()
		if written != nil {
			removeStateIfOurs(dir, *written)
		}
	}()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		r, ferr := FindRunning(dir)
		if ferr == nil {
			return fmt.Errorf("supervisor: shoal up is already running for %s (pid %d, control %s): stop it with `shoal down` first", dir, r.PID, r.Control)
		}
		return fmt.Errorf("supervisor: shoal up is already running for %s (%s is locked: %v; %v)", dir, lock.Name(), err, ferr)
	}
	if _, err := FindRunning(dir); err == nil {
		// Unlocked yet answering: a supervisor from a build without the lock.
		return fmt.Errorf("supervisor: shoal up is already running for %s: stop it with `shoal down` first", dir)
	}

	if s.keys, err = openKeys(s.m, s.secrets(), len(s.host.join) > 0, os.Getenv); err != nil {
		return err
	}
	for _, svc := range s.order {
		svc.probe, svc.probeVia = s.keys.prober(svc)
	}
	stopMaintenance, maintenanceDone := make(chan struct{}), make(chan struct{})
	go func() { // owned by Run: ends once stopMaintenance is closed
		defer close(maintenanceDone)
		s.runMaintenance(stopMaintenance)
	}()
	defer func() {
		close(stopMaintenance)
		<-maintenanceDone
	}()

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("supervisor: control API: %w", err)
	}
	// The peer API (hosts.go) is what the supervisor's gossip record
	// points at: other hosts' supervisors ask it for this host's instances.
	peerLn, err := net.Listen("tcp", s.host.listen(0))
	if err != nil {
		ln.Close()
		return fmt.Errorf("supervisor: peer API: %w", err)
	}
	stopPeer := s.servePeer(peerLn)
	defer stopPeer()
	gcfg := s.host.gossip(s.host.gossipPort)
	gcfg.Seeds, gcfg.Logger, gcfg.Keys = s.host.join, s.log, s.keys.gossip
	seed, err := discovery.New(gcfg, discovery.Instance{ID: SupervisorService + "-" + randomHex(4), Service: SupervisorService,
		Addr: s.host.addr(peerLn.Addr().(*net.TCPAddr).Port)})
	if err != nil {
		ln.Close()
		return fmt.Errorf("supervisor: %w", err)
	}
	gctx, stopGossip := context.WithCancel(context.WithoutCancel(ctx))
	gossipDone := make(chan error, 1)
	go func() { gossipDone <- seed.Run(gctx) }() // owned by Run: ends with stopGossip
	select {
	case <-seed.Ready():
	case err := <-gossipDone:
		stopGossip()
		ln.Close()
		return fmt.Errorf("supervisor: gossip: %w", err)
	}
	s.seed = seed
	defer func() {
		stopGossip()
		<-gossipDone
	}()

	srv := &http.Server{Handler: s.controlHandler(), ReadHeaderTimeout: 5 * time.Second}
	serveDone := make(chan struct{})
	go func() { // owned by Run: ends with srv.Close
		defer close(serveDone)
		_ = srv.Serve(ln)
	}()
	defer func() {
		srv.Close() // cuts log followers too
		<-serveDone
	}()

	stopCollector, err := s.startCollector(ctx)
	if err != nil {
		return err
	}
	defer stopCollector()

	st := stateFile{PID: os.Getpid(), Control: ln.Addr().String(), Manifest: s.m.Path, Started: time.Now().UTC(),
		Gossip: seed.GossipAddr(), Token: s.token, StopTimeout: s.stopTimeout(), Dashboard: s.col.dashURL, OTLP: s.col.otlpURL,
		OTLPToken: s.col.otlp.token(otlpAny), OperatorKey: s.faultKeyFile}
	if err := writeState(dir, st); err != nil {
		return err
	}
	written = &st

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() { // owned by Run: ends when ctx (cancelled on return) is done
		select {
		case <-s.down:
			cancel()
		case <-ctx.Done():
		}
	}()

	runErr := s.start(ctx)
	if runErr == nil {
		<-ctx.Done()
	}
	s.shutdown()
	return runErr
}

// start builds, starts every instance, waits for them and prints the table.
func (s *Supervisor) start(ctx context.Context) error {
	begin := time.Now()
	if err := s.build(ctx); err != nil {
		if ctx.Err() != nil {
			return nil // stopped while building: not an error
		}
		return err
	}
	for _, svc := range s.order {
		for i := 1; i <= instancesOf(svc.spec); i++ {
			if err := s.addInstance(svc, i); err != nil {
				return err
			}
		}
	}
	s.launched.Store(true)
	s.con.printf("starting %d instances of %d services ...\n", s.insts, len(s.order))
	err := s.waitFor(ctx, func() bool {
		for _, svc := range s.order {
			for _, in := range svc.insts {
				in.mu.Lock()
				// Unhealthy has served: one frozen at start must not hold
				// back the table, the URLs and the logs.
				settled := in.state == StateServing || in.state == StateUnhealthy || in.attempts > 0 || in.restarts > 0
				in.mu.Unlock()
				if !settled {
					return false
				}
			}
		}
		return true
	})
	if err != nil {
		return nil // stopped while starting: not an error
	}
	st := s.ps()
	serving := 0
	for _, in := range st {
		if in.State == StateServing {
			serving++
		}
	}
	s.con.printf("%d/%d instances serving in %v\n\n", serving, len(st), time.Since(begin).Round(10*time.Millisecond))
	var table strings.Builder
	_ = WriteTable(&table, st)
	s.con.printf("%s", table.String())
	for _, u := range s.gatewayURLs() {
		s.con.printf("\ngateway: %s", u)
	}
	if s.col.dashURL != "" {
		s.con.printf("\ndashboard: %s", s.col.dashURL)
	}
	if s.host.multi() {
		g := s.seed.GossipAddr()
		s.con.printf("\ngossip: %s (another host joins with: shoal up --join %s --only SERVICES)", g, g)
	}
	if w := s.notJoined(); w != "" {
		s.con.printf("\n%s", w)
	}
	s.con.printf("\n\n")
	s.streaming.Store(true)
	return nil
}

// schemeOf is https for a service given a certificate to serve (the SDK's
// SHOAL_TLS_CERT_FILE or --tls-cert-file), http otherwise.
func schemeOf(spec *ServiceSpec) string {
	if spec.Env["SHOAL_TLS_CERT_FILE"] != "" {
		return "https"
	}
	for _, a := range spec.Args {
		if name, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "="); name == "tls-cert-file" && strings.HasPrefix(a, "-") {
			return "https"
		}
	}
	return "http"
}

// gatewayURLs lists the addresses of a service named gateway.
func (s *Supervisor) gatewayURLs() []string {
	g := s.byName["gateway"]
	if g == nil {
		return nil
	}
	var out []string
	for _, st := range s.ps() {
		if st.Service == g.name {
			out = append(out, g.scheme+"://"+st.Addr)
		}
	}
	return out
}

// buildFlags make release-style binaries: no symbol tables or DWARF (about
// a third smaller) and no local paths baked in.
var buildFlags = []string{"-trimpath", "-ldflags=-s -w"}

// GoBuild builds the Go package pkg, relative to dir, into the binary out
// with the flags of every Shoal build. env, if any, is added to this
// process's environment for the go command (the deploy package adds
// CGO_ENABLED=0, GOOS and GOARCH to build container images). The error
// carries go build's output.
func GoBuild(ctx context.Context, dir, pkg, out string, env ...string) error {
	cmd := exec.CommandContext(ctx, "go", append(append([]string{"build"}, buildFlags...), "-o", out, pkg)...)
	cmd.Dir = dir
	if len(env) > 0 {
		cmd.Env = append(os.Environ(), env...)
	}
	if msg, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s in %s: %w\n%s", pkg, dir, err, msg)
	}
	return nil
}

// build runs go build once per distinct package, in manifest order.
func (s *Supervisor) build(ctx context.Context) error {
	built := map[string]string{}
	for _, svc := range s.order {
		pkg := svc.spec.Build
		if pkg == "" {
			continue
		}
		if bin, ok := built[pkg]; ok {
			svc.path = bin
			continue
		}
		bin := filepath.Join(binDir(s.m.Dir), svc.name)
		s.con.printf("building %s ... ", svc.name)
		begin := time.Now()
		if err := GoBuild(ctx, s.m.Dir, pkg, bin); err != nil {
			s.con.printf("failed\n")
			return fmt.Errorf("supervisor: build %s: %w", svc.name, err)
		}
		s.con.printf("ok (%.1fs)\n", time.Since(begin).Seconds())
		built[pkg], svc.path = bin, bin
	}
	return nil
}

// instances lists every instance, services in manifest order, then by
// index. The caller holds s.mu.
func (s *Supervisor) instances() []*instance {
	var all []*instance
	for _, svc := range s.order {
		all = append(all, svc.insts...)
	}
	return all
}

// serviceNames lists the services this supervisor runs, in manifest order.
func (s *Supervisor) serviceNames() []string {
	names := make([]string, len(s.order))
	for i, svc := range s.order {
		names[i] = svc.name
	}
	return names
}

// shutdown stops every instance in parallel and waits for all of them.
func (s *Supervisor) shutdown() {
	s.mu.Lock()
	s.closing = true
	all := s.instances()
	s.mu.Unlock()
	s.streaming.Store(false) // the drain lines would bury the summary
	if len(all) > 0 {
		s.con.printf("\nstopping %d instances (drain timeout %v) ...\n", len(all), s.drain)
	}
	for _, in := range all {
		in.requestStop()
	}
	s.wg.Wait()
	if len(all) > 0 {
		s.con.printf("stopped\n")
	}
}

// stopTimeout bounds how long shutdown takes once every instance is asked
// to stop: agent drain, the drain timeout, killGrace, agent leave and the
// supervisor's own gossip leave. Remote.Down waits this long.
func (s *Supervisor) stopTimeout() time.Duration {
	return s.drain + killGrace + 30*time.Second
}

// addInstance starts a new slot for svc at index.
func (s *Supervisor) addInstance(svc *service, index int) error {
	_, err := s.newInstance(svc, index, nil)
	return err
}

// newInstance starts a slot for svc at index. Its first process serves on
// handed, a socket handed over by the instance it replaces, or else on one
// bound now, so that its address is known (and a fixed port found taken)
// before it starts. newInstance owns handed from the call on.
func (s *Supervisor) newInstance(svc *service, index int, handed *handoff.Port) (*instance, error) {
	in := &instance{sup: s, svc: svc, index: index, fixed: index <= len(svc.spec.Port), next: handed,
		state: StateStarting, stop: make(chan struct{}), done: make(chan struct{})}
	if in.next == nil {
		sock, err := in.reserve()
		if err != nil {
			return nil, fmt.Errorf("supervisor: %w", err)
		}
		in.next = sock
	}
	in.port = in.next.Addr().Port
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		in.next.Close()
		return nil, errors.New("supervisor: shutting down")
	}
	svc.insts = append(svc.insts, in)
	slices.SortStableFunc(svc.insts, func(a, b *instance) int { return a.index - b.index })
	s.wg.Add(1)
	s.mu.Unlock()
	go in.run()
	s.notify()
	return in, nil
}

// remove drops a stopped slot from its service.
func (s *Supervisor) remove(in *instance) {
	s.mu.Lock()
	in.svc.insts = slices.DeleteFunc(in.svc.insts, func(x *instance) bool { return x == in })
	s.mu.Unlock()
	s.notify()
}

// notify wakes every waitFor.
func (s *Supervisor) notify() {
	s.mu.Lock()
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()
}

// waitFor returns nil once cond (called with s.mu held) is true, or ctx's
// error.
func (s *Supervisor) waitFor(ctx context.Context, cond func() bool) error {
	for {
		s.mu.Lock()
		ok, ch := cond(), s.changed
		s.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}
}

// env is the environment of one instance process: files are its identity
// (zero for a plaintext program), admin its admin listener's address (""
// for a program that is not an SDK one).
func (s *Supervisor) env(svc *service, port int, id string, files identity.Files, admin string) []string {
	env := os.Environ()
	for _, k := range slices.Sorted(maps.Keys(svc.spec.Env)) {
		env = append(env, k+"="+svc.spec.Env[k])
	}
	if len(svc.spec.Dependencies) > 0 {
		env = append(env, "SHOAL_DEPENDENCIES="+manifest.DependenciesJSON(svc.spec.Dependencies))
	}
	env = append(env, s.otelEnv(svc, id)...)
	env = append(env, maxProcsEnv(svc, s.insts)...)
	env = append(env, s.keys.env(files)...)
	if admin != "" {
		env = append(env, "SHOAL_ADMIN_ADDR="+admin)
	}
	if _, set := svc.spec.Env[chaos.EnvKey]; !set {
		env = append(env, chaos.EnvKey+"="+s.faultKey)
	}
	env = append(env, s.host.instanceEnv(port, s.seed.GossipAddr())...)
	return append(env,
		"PORT="+strconv.Itoa(port),
		"SHOAL_NAME="+svc.name,
		"SHOAL_INSTANCE="+id,
		"SHOAL_DRAIN_TIMEOUT="+s.drain.String(),
		"SHOAL_DATA_DIR="+dataDir(s.m.Dir),
	)
}

// gossipConfig is the preset of the members the supervisor runs for
// programs it registers (this host's, see host.gossip), with the system's
// keyring.
func (s *Supervisor) gossipConfig(seeds []string) discovery.Config {
	cfg := s.host.gossip(0)
	cfg.Seeds = seeds
	cfg.Logger = s.log
	cfg.Keys = s.keys.gossip
	return cfg
}

// logLine records one line of an instance and shows it on Out.
func (s *Supervisor) logLine(svc *service, index int, text string) {
	s.logs.add(svc.name, index, text)
	s.noticeLine(svc, index, text)
	if s.streaming.Load() {
		s.con.line(svc.name+"/"+strconv.Itoa(index), svc.color, text)
	}
}

// showLast shows on Out the last n lines of an instance not shown yet.
// Only the instance's run goroutine calls it.
func (s *Supervisor) showLast(in *instance, n int) {
	lines, last, _ := s.logs.since(in.svc.name, in.index, in.shown)
	in.shown = last
	for _, l := range lines[max(0, len(lines)-n):] {
		s.con.line(in.name(), in.svc.color, l.text)
	}
}

// say reports an event of the supervisor's own on Out and in the log.
func (s *Supervisor) say(msg string) {
	s.log.Info(msg)
	s.con.line("shoal", -1, msg)
}

// secrets is the folder of the system's keys.
func (s *Supervisor) secrets() string {
	if s.opts.Host.Secrets != "" {
		return s.opts.Host.Secrets
	}
	return filepath.Join(s.m.Dir, ".shoal")
}

func binDir(dir string) string  { return filepath.Join(dir, ".shoal", "bin") }
func dataDir(dir string) string { return filepath.Join(dir, ".shoal", "data") }

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
