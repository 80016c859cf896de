package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/shoal-dev/shoal/gateway"
	"github.com/shoal-dev/shoal/manifest"
)

// defaultManifest is read when -f is not given.
const defaultManifest = "shoal.yaml"

// env is what the commands need from the process, so tests can run them
// without touching the real one.
type env struct {
	stdout, stderr io.Writer
	getenv         func(string) string
	// isTerminal reports whether stdout is a terminal (for colours).
	isTerminal func() bool
}

func osEnv() env {
	return env{stdout: os.Stdout, stderr: os.Stderr, getenv: os.Getenv, isTerminal: stdoutIsTerminal}
}

// run runs the shoal command line args in e and returns the exit status:
// 0, 1 for a failure, 2 for a usage mistake.
func run(ctx context.Context, e env, args []string) int {
	root := newRoot(e)
	root.SetArgs(args)
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return 0
	}
	if cmd == nil || cmd.Name() == "help" {
		cmd = root // "shoal help sacle": the usage to read is shoal's
	}
	var p *manifest.Error
	switch {
	case errors.As(err, &p):
		// Manifest problems start with file:line:column so editors can
		// jump there.
		fmt.Fprintln(e.stderr, err)
		fmt.Fprintln(e.stderr, "shoal: fix the manifest and run the command again; nothing was started")
		return 1
	case errors.As(err, new(usageError)):
		fmt.Fprintln(e.stderr, "shoal:", err)
		fmt.Fprintf(e.stderr, "Run '%s --help' for usage.\n", cmd.CommandPath())
		return 2
	default:
		fmt.Fprintln(e.stderr, "shoal:", err)
		return 1
	}
}

// newRoot builds the shoal command tree.
func newRoot(e env) *cobra.Command {
	var file string
	root := &cobra.Command{
		Use:   "shoal",
		Short: "Run and operate a Shoal system of microservices on this machine",
		Long: `shoal runs a whole system of services from a manifest (shoal.yaml) with one
command, and lets you kill, restart and scale its parts from a second terminal
while it keeps serving.

  shoal up                 build and start everything in ./shoal.yaml
  shoal ps                 list every instance and its state
  shoal kill catalog/1     SIGKILL one instance; the supervisor restarts it
  shoal dashboard          print the URL of the running system's dashboard
  shoal profile catalog    CPU profile of every catalog instance, merged

Rehearsing failure:

  shoal chaos monkey       kill, freeze or slow random instances, over and over
  shoal chaos token F      sign a fault (F) for chosen requests
  shoal chaos key          the operator's public key, for pods (SHOAL_FAULT_KEY)
  shoal experiment run X   run experiment X: control vs experiment, a verdict

Beyond one machine (docs/DEPLOY.md):

  shoal up --bind IP --join HOST:7946 --only S1,S2
                           run part of the system on this host, joined to
                           the others (copy .shoal's keys first)
  shoal image -o DIR       build an OCI image per service, without Docker
  shoal export kubernetes -o DIR
                           write the Kubernetes objects of the system

ps, scale, restart, kill, logs, down, profile, chaos and experiment find the running
'shoal up' through .shoal/state.json in the manifest's folder: run them from
that folder (or one below it), or point -f at the manifest.`,
		Example: `  go run ./cmd/shoal up
  shoal -f ~/src/shop/shoal.yaml ps
  shoal scale catalog=5
  shoal kill ratings --signal STOP`,
		SilenceUsage:      true,
		SilenceErrors:     true,
		TraverseChildren:  true, // so "shoal -f FILE logs -f" parses -f twice, as docker compose does
		CompletionOptions: cobra.CompletionOptions{HiddenDefaultCmd: true},
		// With TraverseChildren cobra does not check for an unknown command:
		// subcommandArgs does.
		Args:    subcommandArgs,
		RunE:    func(c *cobra.Command, _ []string) error { return c.Help() },
		Version: version(debug.ReadBuildInfo()),
		// Without -f, the nearest shoal.yaml in this folder or above, said
		// when it is above: the command acts on a system elsewhere.
		PersistentPreRun: func(c *cobra.Command, _ []string) {
			if c.Flags().Lookup("file") == nil || file != defaultManifest {
				return
			}
			if found := findUp(file); found != file {
				file = found
				fmt.Fprintf(e.stderr, "shoal: using %s\n", found)
			}
		},
	}
	root.SetVersionTemplate("shoal {{.Version}}\n")
	root.SetOut(e.stdout)
	root.SetErr(e.stderr)
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		// "shoal export kubernets -o k8s": the flag is unknown because the
		// subcommand is.
		if args := c.Flags().Args(); c.HasAvailableSubCommands() && len(args) > 0 {
			return unknownCommand(c, args[0])
		}
		return usageError{err}
	})
	addFileFlag(root, &file, true)
	root.SetHelpCommand(newHelp())

	root.AddCommand(
		newUp(e, &file),
		newPS(e, &file),
		newScale(e, &file),
		newRestart(e, &file),
		newKill(e, &file),
		newLogs(e, &file),
		newDown(e, &file),
		newDashboard(e, &file),
		newProfile(e, &file),
		newChaos(e, &file),
		newExperiment(e, &file),
		newGateway(e),
		newImage(e, &file),
		newExport(e, &file),
		newAgent(e),
		newVersion(e),
	)
	return root
}

// addFileFlag adds -f/--file. logs uses -f for --follow, so there (and only
// there) the manifest is --file or a -f before the command name.
func addFileFlag(c *cobra.Command, file *string, short bool) {
	usage := "manifest `FILE` (or its folder); the folder holds the .shoal state of the running system. By default the nearest shoal.yaml in this folder or above"
	if short {
		c.Flags().StringVarP(file, "file", "f", defaultManifest, usage)
	} else {
		c.Flags().StringVar(file, "file", defaultManifest, usage)
	}
}

// manifestFile is the manifest -f names: FILE itself, or FILE/shoal.yaml
// when FILE is a folder. Without -f, the root command has made it the
// nearest shoal.yaml (findUp).
func manifestFile(file string) string {
	if fi, err := os.Stat(file); err == nil && fi.IsDir() {
		return filepath.Join(file, defaultManifest)
	}
	return file
}

// findUp returns the nearest name in the working folder or one of its
// parents, as docker compose finds compose.yaml and git .git: a command
// run in a subfolder of the system (examples/, cmd/web/) acts on it. If
// there is none, name as it is, for the error to say where it looked.
func findUp(name string) string {
	if _, err := os.Stat(name); err == nil {
		return name
	}
	dir, err := os.Getwd()
	if err != nil {
		return name
	}
	for {
		p := filepath.Join(dir, name)
		if _, err := os.Stat(p); err == nil {
			return p
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return name
		}
		dir = parent
	}
}

// loadManifest loads the manifest -f names (file) for the command cmd. A
// missing one is explained: how to name it, then hint.
func loadManifest(cmd, file, hint string) (*manifest.Manifest, error) {
	m, err := manifest.Load(manifestFile(file))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s: %w; give the manifest's path with -f FILE%s", cmd, err, hint)
	}
	return m, err
}

// loadRunnable is loadManifest followed by the gateway's own checks (its
// key files), as its instances will run them, so that a bad key stops the
// command before it starts or writes anything.
func loadRunnable(cmd, file, hint string) (*manifest.Manifest, error) {
	m, err := loadManifest(cmd, file, hint)
	if err != nil {
		return nil, err
	}
	if m.Gateway != nil {
		if err := gateway.Check(m.Gateway, m.Dir); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// exactArgs is cobra.ExactArgs with a usage error that shows the form.
func exactArgs(n int, form string) cobra.PositionalArgs {
	return func(c *cobra.Command, args []string) error {
		if len(args) != n {
			return usagef("%s: want %s, got %d argument(s)", c.Name(), form, len(args))
		}
		return nil
	}
}

// newHelp is cobra's help command, but for an unknown command, which it
// does not see for a root with Args: the usage error of a mistyped one.
func newHelp() *cobra.Command {
	return &cobra.Command{
		Use:   "help [command]",
		Short: "Help about any command",
		ValidArgsFunction: func(c *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
			cmd, _, err := c.Root().Find(args)
			if err != nil {
				return nil, cobra.ShellCompDirectiveNoFileComp
			}
			var names []cobra.Completion
			for _, sub := range cmd.Commands() {
				if sub.IsAvailableCommand() && strings.HasPrefix(sub.Name(), toComplete) {
					names = append(names, cobra.CompletionWithDesc(sub.Name(), sub.Short))
				}
			}
			return names, cobra.ShellCompDirectiveNoFileComp
		},
		RunE: func(c *cobra.Command, args []string) error {
			cmd, rest, err := c.Root().Find(args)
			if err == nil && len(rest) > 0 && cmd.HasAvailableSubCommands() {
				err = unknownCommand(cmd, rest[0])
			}
			if err != nil {
				return err
			}
			cmd.InitDefaultHelpFlag() // so that the help shows -h, as --help's does
			cmd.InitDefaultVersionFlag()
			return cmd.Help()
		},
	}
}

// subcommandArgs is the Args of a command that groups others (shoal,
// chaos, experiment, export): an argument is an unknown subcommand.
func subcommandArgs(c *cobra.Command, args []string) error {
	if len(args) > 0 {
		return unknownCommand(c, args[0])
	}
	return nil
}

// unknownCommand is the usage error for name, not a subcommand of c: with
// the nearest ones (as cobra finds them), or the list of them.
func unknownCommand(c *cobra.Command, name string) error {
	if c.SuggestionsMinimumDistance <= 0 {
		c.SuggestionsMinimumDistance = 2 // cobra's default
	}
	var near, all []string
	for _, s := range c.SuggestionsFor(name) {
		near = append(near, strconv.Quote(s))
	}
	if len(near) > 0 {
		return usagef("unknown command %q for %q; did you mean %s?", name, c.CommandPath(), strings.Join(near, " or "))
	}
	for _, sub := range c.Commands() {
		if sub.IsAvailableCommand() {
			all = append(all, sub.Name())
		}
	}
	return usagef("unknown command %q for %q; its commands: %s", name, c.CommandPath(), strings.Join(all, ", "))
}

// signalContext is ctx cancelled by SIGINT, SIGTERM or SIGHUP (the
// terminal was closed: stop gracefully rather than die and leave the
// instances to the parent-death signal). After the first signal the default
// handling comes back, so a second Ctrl-C ends a shutdown that takes too
// long (as shoal.Service.Main does).
func signalContext(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	context.AfterFunc(ctx, stop)
	return ctx, stop
}

// stdoutIsTerminal reports whether stdout is a character device: a terminal
// in practice (a redirect to /dev/null also counts, which is harmless).
func stdoutIsTerminal() bool {
	fi, err := os.Stdout.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// useColor: colours on a terminal unless NO_COLOR is set (no-color.org) or
// TERM is dumb.
func useColor(e env) bool {
	return e.isTerminal() && e.getenv("NO_COLOR") == "" && e.getenv("TERM") != "dumb"
}
