// Command scenario runs fault scenarios against 3 replicas of a test service
// (./replica, real processes on 127.0.0.1) and compares, in the same run,
// Shoal's client with a naive client and with nginx in front of the same
// replicas. Each scenario prints one table (a row per arm) and a verdict per
// goal.
//
//	go run ./bench/scenario [-rate 300] [-chain-rate 30] [-scale 1] [-rounds 1] [-arms shoal,nginx] [-md FILE] [NAME...]
//
// Names: slow-replica, gray-failure, dead-dependency, overload, stragglers,
// kill; none means all. Load is open loop at a fixed rate (vegeta, as a
// library), every request recorded with its status, latency and the replica
// that answered (X-Replica). Every call has a 1 s deadline. Each arm gets
// fresh replicas; with -rounds N the arms run interleaved N times (the order
// rotating) and the table shows per-column medians.
//
// Arms: shoal (client.Transport over the runner's own gossip member,
// default config), naive (round robin over the static addresses, 3 retries
// on error or 5xx, no budget, no ejection: package naive), nginx (Debian's
// nginx with bench/peers/nginx-scenario.conf; installed with apt-get when
// missing). Run it from the repository; it writes only to a temporary
// folder, and kills every process it started on exit and on Ctrl-C.
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/shoal-dev/shoal/bench/internal/proc"
	"github.com/shoal-dev/shoal/bench/internal/stats"
)

// bench is the run's configuration and shared resources.
type bench struct {
	rate          int
	chainRate     int
	scale         float64
	rounds        int
	warmup        time.Duration
	workers       int
	work          time.Duration
	tmp           string
	replicaBin    string
	nginxBin      string
	nginxTemplate string
	verbose       bool
	arms          []string // -arms: run only these arms; nil: all
	warnings      []string // about the load generator, for the next table
	logSeq        atomic.Int64
}

// d scales a scenario's nominal duration by -scale.
func (b *bench) d(x time.Duration) time.Duration {
	return time.Duration(float64(x) * b.scale).Round(time.Millisecond)
}

func main() {
	b := &bench{}
	flag.IntVar(&b.rate, "rate", 300, "offered load, requests per second (overload: 2× measured capacity)")
	flag.IntVar(&b.chainRate, "chain-rate", 30, "dead-dependency chain: offered load at A (naive may send 64× that to C)")
	flag.Float64Var(&b.scale, "scale", 1, "multiplies every scenario duration (0.2 for a quick look)")
	flag.IntVar(&b.rounds, "rounds", 1, "rounds per scenario, arms interleaved; tables show medians")
	flag.DurationVar(&b.warmup, "warmup", time.Second, "unrecorded load before each arm's measurement")
	flag.IntVar(&b.workers, "workers", 2, "overload: worker slots per replica")
	flag.DurationVar(&b.work, "work", 20*time.Millisecond, "overload: time a request holds a worker slot")
	md := flag.String("md", "", "also write the tables as Markdown to this file")
	conf := flag.String("nginx-conf", "", "nginx config template (default <module>/bench/peers/nginx-scenario.conf)")
	keep := flag.Bool("keep", false, "keep the temporary folder (process logs)")
	flag.BoolVar(&b.verbose, "v", false, "print each arm's most frequent failures to stderr")
	arms := flag.String("arms", "", "run only these arms, comma-separated (shoal, shoal-nohedge, naive, nginx); default all")
	flag.Parse()
	if *arms != "" {
		b.arms = strings.Split(*arms, ",")
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, b, *md, *conf, *keep, flag.Args())
	stop()
	proc.KillAll()
	if err != nil {
		fmt.Fprintln(os.Stderr, "scenario:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, b *bench, md, conf string, keep bool, names []string) error {
	begin := time.Now()
	all := scenarios()
	selected, err := selectScenarios(all, names)
	if err != nil {
		return err
	}
	if b.arms != nil {
		for i := range selected {
			selected[i].arms = slices.DeleteFunc(slices.Clone(selected[i].arms), func(a string) bool { return !slices.Contains(b.arms, a) })
		}
	}
	if b.rate < 1 || b.chainRate < 1 || b.scale <= 0 || b.rounds < 1 || b.workers < 1 || b.work <= 0 {
		return fmt.Errorf("-rate, -chain-rate, -scale, -rounds, -workers and -work must be positive")
	}
	if b.tmp, err = os.MkdirTemp("", "shoal-scenario-"); err != nil {
		return err
	}
	if keep {
		fmt.Fprintln(os.Stderr, "scenario: logs in", b.tmp)
	} else {
		defer os.RemoveAll(b.tmp)
	}
	if err := b.prepare(selected, conf); err != nil {
		return err
	}
	command := "go run ./bench/scenario " + strings.Join(os.Args[1:], " ")
	fmt.Printf("%s\n%d CPUs; every call has a %v deadline; default rate %d/s; durations × %g; %d round(s)\n",
		command, runtime.NumCPU(), deadline, b.rate, b.scale, b.rounds)

	var tables []*table
	for _, sc := range selected {
		t, err := b.runScenario(ctx, sc)
		if err != nil {
			return fmt.Errorf("%s: %w", sc.title, err)
		}
		t.text(os.Stdout)
		tables = append(tables, t)
	}
	total := time.Since(begin).Round(time.Second)
	fmt.Printf("\ntotal wall time: %v\n", total)
	if md != "" {
		return writeMarkdown(md, command, b, tables, total)
	}
	return nil
}

func selectScenarios(all []scenario, names []string) ([]scenario, error) {
	if len(names) == 0 {
		return all, nil
	}
	var out []scenario
	for _, n := range names {
		found := false
		for _, sc := range all {
			if sc.name == n {
				out, found = append(out, sc), true
			}
		}
		if !found {
			var known []string
			for _, sc := range all {
				known = append(known, sc.name)
			}
			return nil, fmt.Errorf("unknown scenario %q (known: %s)", n, strings.Join(slices.Compact(known), ", "))
		}
	}
	return out, nil
}

// prepare builds the replica and, if an arm needs it, finds (or installs)
// nginx and reads the config template.
func (b *bench) prepare(selected []scenario, conf string) error {
	b.replicaBin = filepath.Join(b.tmp, "replica")
	build := exec.Command("go", "build", "-o", b.replicaBin, "github.com/shoal-dev/shoal/bench/scenario/replica")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		return fmt.Errorf("building the replica: %w", err)
	}
	needNginx := false
	for _, sc := range selected {
		needNginx = needNginx || slices.Contains(sc.arms, armNginx)
	}
	if !needNginx {
		return nil
	}
	if conf == "" {
		out, err := exec.Command("go", "env", "GOMOD").Output()
		if err != nil {
			return fmt.Errorf("go env GOMOD: %w", err)
		}
		conf = filepath.Join(filepath.Dir(string(bytes.TrimSpace(out))), "bench", "peers", "nginx-scenario.conf")
	}
	text, err := os.ReadFile(conf)
	if err != nil {
		return err
	}
	b.nginxTemplate = string(text)
	b.nginxBin, err = ensureNginx()
	return err
}

// runScenario runs every arm of sc, -rounds times, interleaved.
func (b *bench) runScenario(ctx context.Context, sc scenario) (*table, error) {
	s := &setup{rate: b.rate}
	if sc.prepare != nil {
		if err := sc.prepare(ctx, b, s); err != nil {
			return nil, err
		}
	}
	began := time.Now()
	perArm := map[string][]metrics{}
	for round := range b.rounds {
		for i := range sc.arms {
			arm := sc.arms[(i+round)%len(sc.arms)]
			m, err := sc.run(ctx, b, arm, s)
			if err != nil {
				return nil, fmt.Errorf("arm %s: %w", arm, err)
			}
			for k, v := range s.extra {
				m[k] = v
			}
			perArm[arm] = append(perArm[arm], m)
		}
	}
	t := &table{title: sc.title, cols: sc.cols, arms: sc.arms, goals: sc.goals, rows: map[string]metrics{}}
	t.about = append([]string{fmt.Sprintf("offered %d/s open loop per arm, 1 s deadline per call, 3 replicas, %d round(s)%s; took %v",
		s.rate, b.rounds, medianNote(b.rounds), time.Since(began).Round(time.Second))}, s.about...)
	for arm, ms := range perArm {
		t.rows[arm] = stats.Median(ms)
	}
	t.notes, b.warnings = append(t.notes, b.warnings...), nil
	return t, nil
}

func medianNote(rounds int) string {
	if rounds > 1 {
		return " (medians)"
	}
	return ""
}

func writeMarkdown(path, command string, b *bench, tables []*table, total time.Duration) error {
	var w bytes.Buffer
	fmt.Fprintf(&w, "Command (from the repository root):\n\n```\n%s\n```\n\n", command)
	fmt.Fprintf(&w, "%d CPUs, loopback only; every call has a %v deadline; durations × %g; %d round(s). Total wall time %v.\n",
		runtime.NumCPU(), deadline, b.scale, b.rounds, total)
	for _, t := range tables {
		t.markdown(&w)
	}
	return os.WriteFile(path, w.Bytes(), 0o644)
}
