package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/shoal-dev/shoal/chaos"
	"github.com/shoal-dev/shoal/chaos/experiment"
	"github.com/shoal-dev/shoal/chaos/monkey"
	"github.com/shoal-dev/shoal/manifest"
	"github.com/shoal-dev/shoal/supervisor"
)

func newChaos(e env, file *string) *cobra.Command {
	c := &cobra.Command{
		Use:   "chaos",
		Short: "Rehearse failure: the chaos monkey, and fault tokens for chosen requests",
		Long: `chaos rehearses failure in the running system (shoal up), so that failover
and fallbacks are exercised rather than trusted.

  monkey   kill, freeze or slow random instances, over and over
  token    sign a fault for chosen requests (the Shoal-Fault header)
  key      print the operator's public key, for instances shoal up does
           not start (shoal export kubernetes --operator-key)

Experiments that compare a control and an experiment cohort and end with a
verdict are 'shoal experiment run'.`,
		Example: `  shoal chaos monkey --every 2s --for 1m
  curl -H "Shoal-Fault: $(shoal chaos token 'ratings:delay=300ms')" http://127.0.0.1:8080/titles/1`,
		Args: subcommandArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			return usagef("chaos: want a subcommand: monkey, token or key")
		},
	}
	addFileFlag(c, file, true)
	c.AddCommand(newChaosMonkey(e, file), newChaosToken(e, file), newChaosKey(e, file))
	return c
}

func newChaosKey(e env, file *string) *cobra.Command {
	c := &cobra.Command{
		Use:   "key",
		Short: "Print the operator's public key (SHOAL_FAULT_KEY), making the key pair if there is none",
		Long: `key prints the public half of the operator's key, the key that signs fault,
experiment and profile tokens (shoal chaos token, shoal experiment run,
shoal profile). shoal up gives it to every instance it starts; instances it
does not start need it as SHOAL_FAULT_KEY to honour those tokens, e.g. the
pods of shoal export kubernetes --operator-key.

The private half stays where shoal up keeps it (.shoal/chaos.key, or its
--secrets folder), readable by its owner only; if there is none yet, key
makes it there. Whoever can read it can inject faults and read profiles.`,
		Example: `  shoal export kubernetes -o k8s --operator-key "$(shoal chaos key)"`,
		Args:    exactArgs(0, "no arguments"),
		RunE: func(c *cobra.Command, _ []string) error {
			path := supervisor.OperatorKeyFile(filepath.Dir(manifestFile(*file)))
			_, statErr := os.Stat(path)
			key, err := chaos.LoadOrCreateKey(path)
			if err != nil {
				return chaosError("chaos key", err)
			}
			if errors.Is(statErr, os.ErrNotExist) {
				fmt.Fprintf(e.stderr, "made the operator's key pair: %s (keep it private; shoal up uses it)\n", path)
			}
			fmt.Fprintln(e.stdout, chaos.PublicKey(key))
			return nil
		},
	}
	addFileFlag(c, file, true)
	return c
}

func newChaosMonkey(e env, file *string) *cobra.Command {
	var cfg monkey.Config
	c := &cobra.Command{
		Use:   "monkey [--every D | --rate N] [--for D] [--action kill|stop|slow]... [--service S]... [--exclude S]...",
		Short: "Kill, freeze or slow a random instance at an interval, until Ctrl-C",
		Long: `monkey acts on a random serving instance of the running system at an interval
(--every) or at random times (--rate, a mean number a second), until --for
has passed or Ctrl-C:

  kill  SIGKILL, a crash; the supervisor restarts the instance
  stop  freeze it (SIGSTOP) for --stop-for, then resume it
  slow  freeze it for --pause of every 100 ms, for --slow-for

It never takes down the last serving instance of a service unless
--allow-last says so, and with --dry-run it only says what it would do.
Every action (and every dry-run one) is an event in the supervisor's feed,
shown by the dashboard.

The manifest's chaos.monkey section gives the defaults; each flag given
overrides its key. With chaos.monkey.enabled: true, shoal up runs the
monkey itself, for as long as the system runs.`,
		Example: `  shoal chaos monkey --every 2s --for 1m
  shoal chaos monkey --rate 0.5 --action kill --action stop --exclude gateway
  shoal chaos monkey --action slow --pause 0.8 --service ratings --dry-run`,
		Args: exactArgs(0, "no arguments (configure it with flags or chaos.monkey in the manifest)"),
		RunE: func(c *cobra.Command, _ []string) error {
			m, err := manifest.Load(manifestFile(*file))
			if err != nil {
				return err
			}
			var base monkey.Config
			if m.Chaos != nil && m.Chaos.Monkey != nil {
				base = *m.Chaos.Monkey
			}
			if err := checkMonkeyFlags(c, cfg); err != nil {
				return err
			}
			overrideMonkey(c, &base, cfg)
			services := make([]string, len(m.Services))
			for i, s := range m.Services {
				services[i] = s.Name
			}
			if err := base.Validate(services); err != nil {
				// The manifest's own section was checked by Load: this is
				// about the flags.
				return monkeyFlagError(c, err)
			}
			r, err := remote("chaos monkey", *file)
			if err != nil {
				return err
			}
			ctx, stop := signalContext(c.Context())
			defer stop()
			mk := &monkey.Monkey{Config: base, Target: r, Report: func(res monkey.Result) { printTurn(e, res) }}
			fmt.Fprintf(e.stdout, "monkey: %s (Ctrl-C stops it)\n", describeMonkey(base))
			results, err := mk.Run(ctx)
			acted := 0
			for _, res := range results {
				if res.Err == nil {
					acted++
				}
			}
			fmt.Fprintf(e.stdout, "monkey: %d action(s) in %d turn(s)\n", acted, len(results))
			if err != nil {
				return controlError("chaos monkey", *file, err)
			}
			return nil
		},
	}
	addFileFlag(c, file, true)
	fl := c.Flags()
	fl.DurationVar(&cfg.Every, "every", 0, "time between two actions (default 10s, or the manifest's)")
	fl.Float64Var(&cfg.Rate, "rate", 0, "mean actions per second, at random times, instead of --every")
	fl.DurationVar(&cfg.For, "for", 0, "how long the monkey runs (default until Ctrl-C)")
	fl.StringSliceVar(&cfg.Actions, "action", nil, "`ACTION` to pick from: kill, stop or slow; repeat it or give a list (default kill)")
	fl.StringSliceVar(&cfg.Services, "service", nil, "only act on `SERVICE`; repeat it or give a list (default every service)")
	fl.StringSliceVar(&cfg.Exclude, "exclude", nil, "never act on `SERVICE`; repeat it or give a list")
	fl.BoolVar(&cfg.AllowLast, "allow-last", false, "may take down the last serving instance of a service")
	fl.BoolVar(&cfg.DryRun, "dry-run", false, "pick and report, and do nothing")
	fl.DurationVar(&cfg.StopFor, "stop-for", 0, "how long stop freezes an instance (default 5s)")
	fl.DurationVar(&cfg.SlowFor, "slow-for", 0, "how long slow lasts (default 10s)")
	fl.Float64Var(&cfg.Pause, "pause", 0, "slow's share of time frozen, in (0, 1) (default 0.5)")
	return c
}

// overrideMonkey sets in base the settings whose flags were given.
func overrideMonkey(c *cobra.Command, base *monkey.Config, flags monkey.Config) {
	set := func(name string, apply func()) {
		if c.Flags().Changed(name) {
			apply()
		}
	}
	// A flag for the interval replaces the manifest's, whichever kind it
	// was; both flags at once are a mistake Validate reports.
	if c.Flags().Changed("every") || c.Flags().Changed("rate") {
		base.Every, base.Rate = 0, 0
	}
	set("every", func() { base.Every = flags.Every })
	set("rate", func() { base.Rate = flags.Rate })
	set("for", func() { base.For = flags.For })
	set("action", func() { base.Actions = flags.Actions })
	set("service", func() { base.Services = flags.Services })
	set("exclude", func() { base.Exclude = flags.Exclude })
	set("allow-last", func() { base.AllowLast = flags.AllowLast })
	set("dry-run", func() { base.DryRun = flags.DryRun })
	set("stop-for", func() { base.StopFor = flags.StopFor })
	set("slow-for", func() { base.SlowFor = flags.SlowFor })
	set("pause", func() { base.Pause = flags.Pause })
}

// checkMonkeyFlags refuses the interval flags the manifest's settings
// cannot get wrong the same way: both, or a value that is not positive (in
// the manifest 0 means the default).
func checkMonkeyFlags(c *cobra.Command, flags monkey.Config) error {
	every, rate := c.Flags().Changed("every"), c.Flags().Changed("rate")
	switch {
	case every && rate:
		return usagef("chaos monkey: give --every (a fixed interval) or --rate (random times), not both")
	case every && flags.Every <= 0:
		return usagef("chaos monkey: --every %v: want a positive time between two actions, e.g. --every 2s", flags.Every)
	case rate && flags.Rate <= 0:
		return usagef("chaos monkey: --rate %g: want a positive mean number of actions per second, e.g. --rate 0.5", flags.Rate)
	}
	return nil
}

// monkeyFlagError restates err, the problems Validate found in the
// monkey's settings once the flags applied, in terms of the flags: --action
// rather than chaos.monkey.actions[0].
func monkeyFlagError(c *cobra.Command, err error) error {
	errs := []error{err}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	}
	msgs := make([]string, len(errs))
	for i, e := range errs {
		msgs[i] = e.Error()
		var me *manifest.Error
		if !errors.As(e, &me) {
			continue
		}
		// chaos.monkey.stop_for is --stop-for, chaos.monkey.actions[0]
		// --action.
		key, _, _ := strings.Cut(strings.TrimPrefix(me.Path, "chaos.monkey."), "[")
		flag := strings.ReplaceAll(key, "_", "-")
		if c.Flags().Lookup(flag) == nil {
			flag = strings.TrimSuffix(flag, "s")
		}
		if key != "" && c.Flags().Lookup(flag) != nil {
			msgs[i] = "--" + flag + ": " + strings.ReplaceAll(me.Msg, "e.g. "+key+": ", "e.g. --"+flag+" ")
		}
	}
	return usagef("chaos monkey: %s", strings.Join(msgs, "; "))
}

// describeMonkey says what a monkey will do, in a line.
func describeMonkey(cfg monkey.Config) string {
	actions := cfg.Actions
	if len(actions) == 0 {
		actions = []string{supervisor.ActionKill}
	}
	var b strings.Builder
	b.WriteString(strings.Join(actions, " or "))
	if len(cfg.Services) > 0 {
		b.WriteString(" an instance of " + strings.Join(cfg.Services, ", "))
	} else {
		b.WriteString(" a random instance")
	}
	if len(cfg.Exclude) > 0 {
		b.WriteString(" (not " + strings.Join(cfg.Exclude, ", ") + ")")
	}
	if cfg.Rate > 0 {
		fmt.Fprintf(&b, " %g times a second on average", cfg.Rate)
	} else {
		b.WriteString(" every " + cmp.Or(cfg.Every, monkey.DefaultEvery).String())
	}
	if cfg.For > 0 {
		b.WriteString(" for " + cfg.For.String())
	}
	if !cfg.AllowLast {
		b.WriteString(", never the last serving one")
	}
	if cfg.DryRun {
		b.WriteString(", dry run")
	}
	return b.String()
}

func printTurn(e env, res monkey.Result) {
	at := res.Time.Format("15:04:05")
	switch {
	case res.Err == nil:
		fmt.Fprintf(e.stdout, "%s %s\n", at, res.Done.Message)
	case errors.Is(res.Err, monkey.ErrNothingToPick):
		fmt.Fprintf(e.stdout, "%s nothing to pick: every service allowed is down to its last serving instance\n", at)
	case res.Action.Service != "":
		fmt.Fprintf(e.stdout, "%s %s of %s/%d refused: %v\n", at, res.Action.Action, res.Action.Service, res.Action.Index, res.Err)
	default:
		fmt.Fprintf(e.stdout, "%s %v\n", at, res.Err)
	}
}

// chaosError is err, from package chaos, for the command cmd: "chaos
// token: fault ..." rather than "chaos token: chaos: fault ...".
func chaosError(cmd string, err error) error {
	return fmt.Errorf("%s: %s", cmd, strings.TrimPrefix(err.Error(), "chaos: "))
}

// runMonkey runs the manifest's monkey beside sup while run does, when
// chaos.monkey.enabled says so, and returns run's result once the monkey
// has stopped too.
func runMonkey(ctx context.Context, m *manifest.Manifest, sup *supervisor.Supervisor, run func(context.Context) error) error {
	if m.Chaos == nil || m.Chaos.Monkey == nil || !m.Chaos.Monkey.Enabled {
		return run(ctx)
	}
	mctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	// The supervisor records and prints every action; refusals while it
	// starts or stops need no words.
	wg.Go(func() { _, _ = (&monkey.Monkey{Config: *m.Chaos.Monkey, Target: sup}).Run(mctx) }) // ends with mctx
	err := run(ctx)
	stop()
	wg.Wait()
	return err
}

// checkFaultServices refuses faults that name a service the manifest at
// path does not have: the token would be honoured and never fire. Without
// a manifest there (a token for a system elsewhere), or with one that does
// not parse (shoal up reports that), there is nothing to check against.
func checkFaultServices(path string, faults []chaos.Fault) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	m, err := manifest.Parse(path, data)
	if err != nil {
		return nil
	}
	var names []string
	for _, s := range m.Services {
		names = append(names, s.Name)
	}
	if msgs := manifest.NotServices(chaos.Services(faults), names, path); len(msgs) > 0 {
		return usageError{fmt.Errorf("chaos token: %s", strings.Join(msgs, "\n"))}
	}
	return nil
}

func newChaosToken(e env, file *string) *cobra.Command {
	var ttl time.Duration
	c := &cobra.Command{
		Use:   "token FAULTS [--for D]",
		Short: "Sign a fault for chosen requests: the value of their Shoal-Fault header",
		Long: `token prints a fault token: put it in the Shoal-Fault header of a request sent
to the running system, and the request meets the faults wherever they are in
its call tree. It is signed with the operator's key, which shoal up keeps in
.shoal/chaos.key (readable by you only); every instance verifies it, and a
Shoal-Fault header that is not a valid token (a plain description, a token
of another key, an expired one) is dropped, at the gateway and at every hop.

FAULTS is one or more faults separated by ';':

  SERVICE:delay=D        D more at SERVICE (300ms, 2s)
  SERVICE:error=STATUS   SERVICE answers STATUS (400-599) without working
  SERVICE:abort          SERVICE closes the connection without an answer
  SERVICE:stall[=D]      SERVICE holds the request and answers nothing
  CALLER>SERVICE:delay=D, :error=STATUS, :reset, :abort, :blackhole
                         the link from CALLER to SERVICE misbehaves, in
                         CALLER's client: reset is a connection reset before
                         the request is sent, abort loses the answer,
                         blackhole never answers

each optionally followed by ,p=FRACTION (of the requests reaching the hop).`,
		Example: `  curl -H "Shoal-Fault: $(shoal chaos token 'ratings:delay=300ms')" http://127.0.0.1:8080/titles/1
  shoal chaos token 'catalog:error=503,p=0.5;api>ratings:reset' --for 1h`,
		Args: exactArgs(1, "FAULTS, e.g. shoal chaos token 'ratings:delay=300ms'"),
		RunE: func(c *cobra.Command, args []string) error {
			faults, err := chaos.Parse(args[0])
			if err != nil {
				return usageError{chaosError("chaos token", err)}
			}
			if err := checkFaultServices(manifestFile(*file), faults); err != nil {
				return err
			}
			path := supervisor.OperatorKeyFile(filepath.Dir(manifestFile(*file)))
			key, err := chaos.LoadKey(path)
			if errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("chaos token: no operator key in %s: shoal up makes one when it starts, or make it now with shoal chaos key", path)
			}
			if err != nil {
				return chaosError("chaos token", err)
			}
			tok, err := chaos.NewSigner(key).Faults(faults, ttl)
			if err != nil {
				return usageError{chaosError("chaos token", err)}
			}
			fmt.Fprintln(e.stdout, tok)
			return nil
		},
	}
	addFileFlag(c, file, true)
	c.Flags().DurationVar(&ttl, "for", 10*time.Minute, "how long the token is honoured (at most 24h)")
	return c
}

func newExperiment(e env, file *string) *cobra.Command {
	c := &cobra.Command{
		Use:   "experiment",
		Short: "Run experiments that compare a control and an experiment cohort and end with a verdict",
		Long: `experiment runs chaos experiments described in YAML against the running
system: a hypothesis about its steady state, a control and an experiment
cohort of requests, a fault for the experiment cohort (or for instances),
and a verdict: held, failed, or aborted when the experiment cohort departed
from the control beyond an abort condition. See package chaos/experiment
for the file's keys, and examples/flix/experiments for two experiments.`,
		Example: `  shoal experiment run examples/flix/experiments/ratings-latency.yaml
  shoal experiment run catalog-down.yaml -o json | jq .verdict`,
		Args: subcommandArgs,
		RunE: func(c *cobra.Command, _ []string) error { return usagef("experiment: want a subcommand: run") },
	}
	addFileFlag(c, file, true)
	c.AddCommand(newExperimentRun(e, file))
	return c
}

func newExperimentRun(e env, file *string) *cobra.Command {
	var format string
	var gateways []string
	var quiet bool
	c := &cobra.Command{
		Use:   "run FILE [-o table|json]",
		Short: "Run an experiment; exit 0 only if its hypothesis held",
		Long: `run runs the experiment in FILE against the running system (shoal up for
the manifest -f names): warmup, baseline, then the fault for its duration,
checking its abort conditions every second. It prints, per check of the
hypothesis, the control's value, the experiment's, the difference and the
tolerance, then the verdict:

  held     every check passed                        exit 0
  failed   a check did not pass                      exit 1
  aborted  an abort condition stopped the run early   exit 1

The fault is removed when the run ends, however it ends; a token the run
signed expires a minute after its planned end anyway. Progress goes to
stderr (-q: none), the report to stdout: a table, or JSON with -o json.`,
		Example: `  shoal experiment run examples/flix/experiments/ratings-latency.yaml
  shoal experiment run -f ~/src/shop/shoal.yaml checkout-slow.yaml -o json > report.json`,
		Args: exactArgs(1, "FILE, e.g. shoal experiment run examples/flix/experiments/ratings-latency.yaml"),
		RunE: func(c *cobra.Command, args []string) error {
			if !slices.Contains([]string{"table", "json"}, format) {
				return usagef("experiment run: -o %q: use table or json", format)
			}
			exp, err := experiment.Load(args[0])
			if err != nil {
				return err
			}
			r, err := remote("experiment run", *file)
			if err != nil {
				return err
			}
			ctx, stop := signalContext(c.Context())
			defer stop()
			runner := &experiment.Runner{System: r, Dir: r.Dir, Gateways: gateways}
			if !quiet {
				runner.Log = e.stderr
			}
			rep, err := runner.Run(ctx, exp)
			if err != nil {
				return controlError("experiment run", *file, err)
			}
			if format == "json" {
				err = rep.WriteJSON(e.stdout)
			} else {
				err = rep.WriteTable(e.stdout)
			}
			if err != nil {
				return err
			}
			if !rep.OK() {
				return fmt.Errorf("experiment %s: %s: the hypothesis did not hold", rep.Experiment, rep.Verdict)
			}
			return nil
		},
	}
	addFileFlag(c, file, true)
	c.Flags().StringVarP(&format, "output", "o", "table", "output `FORMAT`: table or json")
	c.Flags().StringSliceVar(&gateways, "gateway", nil, "base `URL` of a gateway instance (default: every serving instance of the experiment's gateway service)")
	c.Flags().BoolVarP(&quiet, "quiet", "q", false, "no progress lines on stderr")
	return c
}
