// Command gateway is the gateway benchmark (issue 5): Shoal's gateway side
// by side with nginx, HAProxy and Caddy, in front of the same backend, in
// the same run.
//
//	go run ./bench/gateway [-rounds 5] [-duration 10s] [-rate 2000] [-arms direct,shoal,...]
//	                       [-md FILE] [-profile FILE] [-shoal-rev REV]
//
// The backend is 3 replicas of a Shoal SDK service (./backend, real
// processes on 127.0.0.1) answering GET /work with 1 KiB. The Shoal gateway
// (cmd/shoal, `shoal gateway`, one process) finds them by gossip; the peers
// get their addresses in configs rendered from the templates under
// bench/peers/ (nginx-gateway.conf, haproxy-gateway.cfg, Caddyfile-gateway).
// Every proxy serves GET /echo/work and sends it to /work at a replica.
//
// Arms: direct (no proxy), shoal, shoal-auth (the route needs an API key,
// sent by the load generator, and has a rate limit that never refuses in
// the test: shoal-auth.yaml, passed as --config), nginx, haproxy, caddy,
// and go-proxy (./stdproxy: Go's httputil.ReverseProxy and nothing else,
// the floor under any gateway built on net/http, to tell the Shoal
// gateway's own cost from the standard library's).
// Missing peers and wrk are installed from Debian packages (apt-get update,
// then apt-get install) by this command, which is run by hand, never in CI.
// An arm that cannot be installed, configured or started is reported as
// unavailable, with the reason, and the run goes on.
//
// Each round runs every arm once, in an order rotated by one each round, and
// measures two things per arm:
//
//   - latency at a fixed rate: -rate requests/s (default 2,000), open loop
//     (vegeta as a library; a request leaves on schedule whatever earlier
//     ones do) for -latency-duration, every request's latency recorded; the
//     added latency is arm − direct, per percentile, per round. Direct
//     spreads its load round robin over the 3 replicas, so that each
//     replica serves the same load as behind a proxy and the difference is
//     the proxy hop alone.
//   - peak throughput: wrk -t2 -c64 -d<duration> --latency (closed loop,
//     keep-alive), Requests/sec. Direct loads one replica (wrk has one
//     target): a reference, not a goal. Alongside: the proxy's CPU time per
//     request (all its processes, from /proc), which the machine's other
//     work disturbs far less than throughput, and the requests the replicas
//     served per request answered (hedges and retries make it exceed 1).
//
// Each value is the median over rounds; ratios (× nginx, × caddy) and added
// latencies are computed per round and then their median is taken, so that
// slow drift in the machine's load cancels. Both the Shoal gateway and the
// replicas run with SHOAL_ADMISSION=off by default (-admission): the peers
// have no adaptive concurrency limit, and under a closed loop of 64
// connections it would turn load into fast 503s, measuring something else.
//
// The load generator, the proxies and the replicas share the machine's
// cores (nothing is pinned); the tables say how many there are. Shoal (the
// gateway and the replicas) is built from the working tree, or with
// -shoal-rev from a git revision (git archive into the temporary folder: the
// working tree is not touched), or with -shoal-src from another copy of the
// module, to compare a change with its base; -gateway-env sets variables
// (GOGC, GOMAXPROCS) for the Shoal gateway alone.
//
// Profiling: with -profile FILE, after the rounds, a gateway built from
// ./profile (the wiring of `shoal gateway` plus net/http/pprof) is loaded
// with wrk while a CPU profile is taken (FILE) and then its allocations
// (FILE.allocs); -profile-arm shoal-auth profiles it with the shoal-auth
// arm's config:
//
//	go run ./bench/gateway -arms direct,shoal -rounds 1 -duration 30s -profile cpu.pprof
//	go tool pprof -top -cum cpu.pprof
//	go tool pprof -sample_index=alloc_space -top cpu.pprof.allocs
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/shoal-dev/shoal/bench/internal/proc"
)

// bench is the run's configuration and shared state.
type bench struct {
	rounds      int
	duration    time.Duration // peak, per arm per round
	latDuration time.Duration // fixed rate, per arm per round
	warmup      time.Duration
	rate        int
	conns       int
	admission   string
	authConfig  string // a file replacing shoal-auth.yaml
	profile     string // CPU profile output, or ""
	profileArm  string // shoal or shoal-auth
	md          string
	keep        bool

	root       string
	tmp        string
	wrk        string
	backendBin string
	shoalBin   string
	shoalErr   error  // why the shoal arms cannot run
	shoalRev   string // build Shoal from this git revision, not the working tree
	shoalSrc   string // or from this copy of the module
	gatewayEnv []string
	shoalAbout string // where the Shoal binaries come from, for the report
	versions   string // of the peers and wrk, for the report
	loadBefore string // load average when the rounds began
	profileBin string
	pprofAddr  string
	replicas   []string // HTTP addresses
	// replicaAdmins are their admin listeners' addresses (/infoz).
	replicaAdmins []string
	gossip        []string // their gossip addresses
}

func main() {
	b := &bench{}
	flag.IntVar(&b.rounds, "rounds", 5, "rounds, arms interleaved (order rotated each round); tables show medians")
	flag.DurationVar(&b.duration, "duration", 10*time.Second, "wrk peak-throughput run per arm per round")
	flag.DurationVar(&b.latDuration, "latency-duration", 10*time.Second, "fixed-rate run per arm per round")
	flag.DurationVar(&b.warmup, "warmup", time.Second, "unrecorded load before each measurement")
	flag.IntVar(&b.rate, "rate", 2000, "fixed-rate load, requests per second")
	flag.IntVar(&b.conns, "connections", 64, "wrk connections (keep-alive)")
	flag.StringVar(&b.admission, "admission", "off", "SHOAL_ADMISSION of the Shoal gateway and the replicas: on or off")
	arms := flag.String("arms", strings.Join(allArms, ","), "comma-separated arms: "+strings.Join(allArms, ", "))
	flag.StringVar(&b.authConfig, "auth-config", "", "shoal-auth arm: gateway config template (default: the embedded shoal-auth.yaml)")
	flag.StringVar(&b.shoalRev, "shoal-rev", "", "build the Shoal gateway from this git revision (git archive into the temporary folder) instead of the working tree")
	flag.StringVar(&b.shoalSrc, "shoal-src", "", "build Shoal from this copy of the module instead of the working tree (e.g. a patched git archive)")
	flag.Func("gateway-env", "KEY=VALUE added to the Shoal gateway's environment only (e.g. GOGC=400); repeatable", func(v string) error {
		if !strings.Contains(v, "=") {
			return fmt.Errorf("%q: want KEY=VALUE", v)
		}
		b.gatewayEnv = append(b.gatewayEnv, v)
		return nil
	})
	flag.StringVar(&b.profile, "profile", "", "after the rounds, write a CPU profile of the Shoal gateway under wrk load to this file")
	flag.StringVar(&b.profileArm, "profile-arm", armShoal, "-profile: the gateway profiled, "+armShoal+" or "+armShoalAuth)
	flag.StringVar(&b.md, "md", "", "also write the tables as Markdown to this file")
	flag.BoolVar(&b.keep, "keep", false, "keep the temporary folder (process logs, rendered configs)")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, b, strings.Split(*arms, ","))
	stop()
	proc.KillAll()
	if err != nil {
		fmt.Fprintln(os.Stderr, "gateway bench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, b *bench, names []string) error {
	began := time.Now()
	if b.rounds < 1 || b.duration < time.Second || b.latDuration <= 0 || b.rate < 1 || b.conns < 2 {
		return errors.New("-rounds, -rate and -latency-duration must be positive, -duration at least 1s, -connections at least 2")
	}
	if b.profileArm != armShoal && b.profileArm != armShoalAuth {
		return fmt.Errorf("-profile-arm %q: want %s or %s", b.profileArm, armShoal, armShoalAuth)
	}
	if b.admission != "on" && b.admission != "off" {
		return fmt.Errorf("-admission %q: want on or off", b.admission)
	}
	for _, n := range names {
		if !slices.Contains(allArms, n) {
			return fmt.Errorf("unknown arm %q (known: %s)", n, strings.Join(allArms, ", "))
		}
	}
	var err error
	if b.root, err = moduleRoot(); err != nil {
		return err
	}
	if b.tmp, err = os.MkdirTemp("", "shoal-gateway-bench-"); err != nil {
		return err
	}
	if b.keep {
		fmt.Fprintln(os.Stderr, "gateway bench: logs and configs in", b.tmp)
	} else {
		defer os.RemoveAll(b.tmp)
	}
	if err := b.prepare(names); err != nil {
		return err
	}
	if err := b.startReplicas(ctx); err != nil {
		return err
	}
	var arms []*arm
	for _, n := range names {
		a := b.startArm(ctx, n)
		if a.unavailable != "" {
			fmt.Fprintf(os.Stderr, "gateway bench: %s unavailable: %s\n", n, a.unavailable)
		}
		arms = append(arms, a)
	}
	command := "go run ./bench/gateway " + strings.Join(os.Args[1:], " ")
	b.loadBefore = loadAverage()
	fmt.Printf("%s\n%s; load average %s\n", strings.TrimSpace(command), machineNote(), b.loadBefore)
	res := newResults(arms)
	for round := range b.rounds {
		for i := range arms {
			a := arms[(i+round)%len(arms)]
			if a.unavailable != "" {
				continue
			}
			m, err := b.measure(ctx, a)
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if err != nil {
				a.unavailable = fmt.Sprintf("failed in round %d: %v", round+1, err)
				fmt.Fprintf(os.Stderr, "gateway bench: %s %s\n", a.name, a.unavailable)
				continue
			}
			res.add(a.name, round, m)
			fmt.Printf("round %d %-10s %s\n", round+1, a.name, m.brief())
		}
	}
	for _, a := range arms {
		a.stop()
	}
	if b.profile != "" {
		if err := b.runProfile(ctx); err != nil {
			fmt.Fprintln(os.Stderr, "gateway bench: profile:", err)
		}
	}
	r := res.report(b, command, time.Since(began))
	fmt.Print("\n" + r)
	if b.md != "" {
		return os.WriteFile(b.md, []byte(r), 0o644)
	}
	return nil
}

// prepare installs what is missing and builds the binaries.
func (b *bench) prepare(names []string) error {
	cmds := []string{"wrk"}
	for _, n := range names {
		if _, peer := peerFiles[n]; peer {
			cmds = append(cmds, n)
		}
	}
	install(cmds)
	var err error
	if b.wrk, err = lookWrk(); err != nil {
		return err
	}
	b.versions = versions(names)
	// Everything Shoal is built from one source: the working tree, or
	// with -shoal-rev that revision plus this tree's bench/gateway mains.
	src, about, err := b.shoalSource()
	if err != nil {
		return err
	}
	b.shoalAbout = about
	mains := []string{"backend"}
	if b.profile != "" {
		mains = append(mains, "profile")
	}
	for _, m := range mains {
		if src != b.root {
			rel := filepath.Join("bench", "gateway", m, "main.go")
			if err := copyFile(filepath.Join(b.root, rel), filepath.Join(src, rel)); err != nil {
				return err
			}
		}
	}
	if b.backendBin, err = b.goBuild(src, "./bench/gateway/backend", "backend"); err != nil {
		return err
	}
	if slices.Contains(names, armShoal) || slices.Contains(names, armShoalAuth) {
		b.shoalBin, b.shoalErr = b.goBuild(src, "./cmd/shoal", "shoal")
	}
	if b.profile != "" {
		// The harness follows this tree's wiring; an older -shoal-rev may
		// not build it, which costs the profile, not the run.
		if b.profileBin, err = b.goBuild(src, "./bench/gateway/profile", "gateway-profile"); err != nil {
			fmt.Fprintln(os.Stderr, "gateway bench: no profile:", err)
			b.profile = ""
		}
	}
	return nil
}

func copyFile(from, to string) error {
	data, err := os.ReadFile(from)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
		return err
	}
	return os.WriteFile(to, data, 0o644)
}

// machineNote says what the numbers were measured on.
func machineNote() string {
	return fmt.Sprintf("%d CPUs (%s/%s, %s); load generator (wrk, vegeta), proxies and replicas share them, nothing pinned",
		runtime.NumCPU(), runtime.GOOS, runtime.GOARCH, runtime.Version())
}

// loadAverage is the 1, 5 and 15 minute load averages (/proc/loadavg):
// how busy the machine was with other work.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}
