// Command startup measures the reference system's footprint and the
// journeys its gateway serves, the figures of docs/BENCHMARKS.md:
//
//   - per service: the binary's size, the time from exec to a ready health
//     check at a first start (empty data folder: catalog, ratings and
//     profiles write their datasets) and at a restart (data present), and
//     the idle RSS of one instance started alone;
//   - the time `shoal up` takes until every instance serves, with a cold
//     and a warm build cache;
//   - with -load: the whole system under `shoal up` (a scratch copy of the
//     manifest, gateways on free ports), idle, then driven closed-loop with
//     flix journeys (sign in, home page, start playback, progress, rating)
//     through both gateways at each concurrency of -c for -d each, while
//     every instance's RSS is sampled; then `shoal down`, and a check that
//     no process is left.
//
// Usage, from the repository root, on an otherwise quiet machine:
//
//	go run ./bench/startup [-f shoal.yaml] [-runs 10] [-first 3] [-solo=true] [-up=true] [-load=true] [-c 8,32,64,128] [-d 30s] [-md FILE]
//
// It prints a Markdown section (tables, a verdict per goal, the command) on
// stdout and, with -md, into FILE; progress goes to stderr. It writes only
// to temporary folders and to one scratch folder .bench-flix-* at the root
// of the repository (go build must resolve this module), removed at the end.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/shoal-dev/shoal/manifest"
)

type config struct {
	file          string
	runs, first   int
	up, load      bool
	solo          bool
	dur, warmup   time.Duration
	sampleEvery   time.Duration
	conc          []int
	md            string
	settleTimeout time.Duration
	idle          time.Duration
}

func main() {
	var cfg config
	var conc string
	flag.StringVar(&cfg.file, "f", "shoal.yaml", "manifest")
	flag.IntVar(&cfg.runs, "runs", 10, "restarts per service, data present (the median is reported)")
	flag.IntVar(&cfg.first, "first", 3, "first starts per service, empty data folder (the median is reported)")
	flag.BoolVar(&cfg.up, "up", true, "time shoal up, cold and warm build cache")
	flag.BoolVar(&cfg.load, "load", true, "run the system and drive journeys through its gateways")
	flag.BoolVar(&cfg.solo, "solo", true, "measure each service started alone (binary size, time to ready, idle RSS); false: journeys only")
	flag.StringVar(&conc, "c", "8,32,64,128", "journey concurrencies, one load phase each")
	flag.DurationVar(&cfg.dur, "d", 30*time.Second, "duration of each load phase")
	flag.DurationVar(&cfg.warmup, "warmup", 5*time.Second, "journeys at the first concurrency before the first phase, not counted")
	flag.DurationVar(&cfg.sampleEvery, "sample", 500*time.Millisecond, "RSS sampling period")
	flag.DurationVar(&cfg.settleTimeout, "settle", 2*time.Minute, "longest wait for the system to go idle after shoal up")
	flag.DurationVar(&cfg.idle, "idle", time.Minute, "time the system idles before the load (idle figures: its last third)")
	flag.StringVar(&cfg.md, "md", "", "also write the Markdown section to this file")
	flag.Parse()
	for f := range strings.SplitSeq(conc, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			fmt.Fprintf(os.Stderr, "startup: -c %q: want positive integers separated by commas\n", conc)
			os.Exit(2)
		}
		cfg.conc = append(cfg.conc, n)
	}

	// Ctrl-C and SIGTERM: stop what was started (shoal up and instances
	// started alone), then exit.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-sig
		killAll()
		os.Exit(130)
	}()

	res, err := run(cfg)
	killAll()
	if err != nil {
		fmt.Fprintln(os.Stderr, "startup:", err)
		os.Exit(1)
	}
	md := res.markdown()
	fmt.Print(md)
	if cfg.md != "" {
		if err := os.WriteFile(cfg.md, []byte(md), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "startup:", err)
			os.Exit(1)
		}
	}
}

// progress reports what the command is doing, on stderr.
func progress(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s  %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

func run(cfg config) (*results, error) {
	m, err := manifest.Load(cfg.file)
	if err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp("", "shoal-startup-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)

	res := &results{cfg: cfg, command: commandLine(), machine: readMachine(), manifest: m}
	for _, svc := range m.Services {
		if !cfg.solo {
			res.services = append(res.services, unmeasured(svc))
			continue
		}
		progress("%s: build, %d first starts, %d restarts", svc.Name, cfg.first, cfg.runs)
		r, err := measureService(m, svc, tmp, cfg.first, cfg.runs)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", svc.Name, err)
		}
		res.services = append(res.services, r)
	}
	if !cfg.up && !cfg.load {
		return res, nil
	}

	shoal := tmp + "/shoal"
	if err := goBuild(m.Dir, shoal, "./cmd/shoal", nil); err != nil {
		return nil, fmt.Errorf("build shoal: %w", err)
	}
	if cfg.up {
		cold, err := os.MkdirTemp("", "shoal-gocache-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(cold)
		progress("shoal up with a cold build cache")
		meter := startMeter()
		sys, err := startSystem(m, shoal, tmp, cold)
		if err != nil {
			return nil, fmt.Errorf("shoal up (cold build cache): %w", err)
		}
		res.upCold = sys.upTook
		if _, err := sys.down(); err != nil {
			return nil, fmt.Errorf("shoal down (cold build cache): %w", err)
		}
		res.upColdOthers = meter.others()
	}
	progress("shoal up with a warm build cache")
	sys, err := startSystem(m, shoal, tmp, "")
	if err != nil {
		return nil, fmt.Errorf("shoal up (warm build cache): %w", err)
	}
	if cfg.up {
		res.upWarm = sys.upTook
	}
	if cfg.load {
		res.load, err = measureLoad(sys, cfg)
		if err != nil {
			sys.down()
			return nil, err
		}
	}
	progress("shoal down")
	left, err := sys.down()
	if err != nil {
		return nil, fmt.Errorf("shoal down: %w", err)
	}
	if res.load != nil {
		res.load.downTook, res.load.leftOver = sys.downTook, left
	}
	return res, nil
}

// commandLine is how this run was started, as a go run command.
func commandLine() string {
	args := []string{"go", "run", "./bench/startup"}
	for _, a := range os.Args[1:] {
		if strings.ContainsAny(a, " \t'\"$") {
			a = strconv.Quote(a)
		}
		args = append(args, a)
	}
	return strings.Join(args, " ")
}
