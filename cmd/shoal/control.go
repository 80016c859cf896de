package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"reflect"
	"strings"
	"time"

	"github.com/spf13/cobra"
	oteltrace "go.opentelemetry.io/otel/trace"

	"github.com/shoal-dev/shoal/supervisor"
)

// remote finds the shoal up running for the manifest file, with a message
// that says how to start one when there is none.
func remote(cmd, file string) (*supervisor.Remote, error) {
	dir := filepath.Dir(manifestFile(file))
	r, err := supervisor.FindRunning(dir)
	if err != nil {
		return nil, controlError(cmd, file, err)
	}
	return r, nil
}

// controlError explains err from the control API; a supervisor that stopped
// between two calls is reported like one that never ran.
func controlError(cmd, file string, err error) error {
	if errors.Is(err, supervisor.ErrNotRunning) {
		abs, aerr := filepath.Abs(manifestFile(file))
		if aerr != nil {
			abs = file
		}
		start := "shoal up"
		if file != defaultManifest {
			start += " -f " + file
		}
		return fmt.Errorf("%s: no shoal up is running for %s; start one with: %s", cmd, abs, start)
	}
	return fmt.Errorf("%s: %w", cmd, err)
}

func newPS(e env, file *string) *cobra.Command {
	var format string
	c := &cobra.Command{
		Use:   "ps [-o table|json]",
		Short: "List every instance: state, pid, address, restarts, uptime",
		Long: fmt.Sprintf(`ps lists every instance of the running system: service, index (from 1),
instance ID, pid, address, admin address, state, restarts, uptime and how
the last process ended. A system on several hosts (shoal up --join) is
listed whole, from any of them, with a HOST column; a host whose supervisor
does not answer is named on stderr. The states are

  %s

-o json prints an array of objects, for scripts, with the keys

  %s

uptime is in nanoseconds; host is there only on several hosts.`,
			strings.Join(supervisor.States, ", "), strings.Join(jsonKeys(reflect.TypeFor[supervisor.InstanceStatus]()), ", ")),
		Example: `  shoal ps
  shoal ps -o json | jq -r '.[] | select(.state != "serving") | .id'`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(c *cobra.Command, _ []string) error {
			format, err := parseFormat(format)
			if err != nil {
				return err
			}
			r, err := remote("ps", *file)
			if err != nil {
				return err
			}
			h, err := r.PSHosts(c.Context())
			if err != nil {
				return controlError("ps", *file, err)
			}
			for _, u := range h.Unreachable {
				fmt.Fprintf(e.stderr, "shoal: ps: the supervisor on %s did not answer; its instances are not listed: %s\n", u.Host, u.Error)
			}
			return writePS(e, format, h.Instances)
		},
	}
	addFileFlag(c, file, true)
	c.Flags().StringVarP(&format, "output", "o", "table", "output `FORMAT`: table or json")
	return c
}

// jsonKeys lists the JSON keys of the struct type t, in field order.
func jsonKeys(t reflect.Type) []string {
	var keys []string
	for f := range t.Fields() {
		if name, _, _ := strings.Cut(f.Tag.Get("json"), ","); name != "-" && f.IsExported() {
			keys = append(keys, cmp.Or(name, f.Name))
		}
	}
	return keys
}

func writePS(e env, format string, st []supervisor.InstanceStatus) error {
	if format == "json" {
		if st == nil {
			st = []supervisor.InstanceStatus{} // [] rather than null for scripts
		}
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(st)
	}
	return supervisor.WriteTable(e.stdout, st)
}

func newScale(e env, file *string) *cobra.Command {
	c := &cobra.Command{
		Use:   "scale SERVICE=N",
		Short: "Run N instances of a service (removed ones drain first)",
		Long: `scale adds or removes instances of a service until N run. New instances get
traffic once ready; removed instances drain (announce it, finish in-flight
requests) before they stop, so no request fails. N is 0 to 100.`,
		Example: `  shoal scale catalog=5
  shoal scale ratings=1`,
		Args: exactArgs(1, "SERVICE=N, e.g. shoal scale catalog=5"),
		RunE: func(c *cobra.Command, args []string) error {
			service, n, err := parseScale(args[0])
			if err != nil {
				return err
			}
			r, err := remote("scale", *file)
			if err != nil {
				return err
			}
			if err := r.Scale(c.Context(), service, n); err != nil {
				return controlError("scale", *file, err)
			}
			fmt.Fprintf(e.stdout, "%s scaled to %d instance(s)\n", service, n)
			return nil
		},
	}
	addFileFlag(c, file, true)
	return c
}

// restartNote is how long restart waits before it says a restart is under
// way: a refusal comes back well within it. A variable for tests, which
// must not depend on a loaded machine answering within it.
var restartNote = time.Second

func newRestart(e env, file *string) *cobra.Command {
	c := &cobra.Command{
		Use:   "restart SERVICE",
		Short: "Rolling restart: one instance at a time, each new one ready first",
		Long: `restart replaces every instance of a service with a new process, one at a
time: a new instance starts and becomes ready before an old one drains and
stops, so the service keeps serving throughout. Build services are not
rebuilt (restart shoal up for that).`,
		Example: `  shoal restart ratings`,
		Args:    exactArgs(1, "SERVICE, e.g. shoal restart ratings"),
		RunE: func(c *cobra.Command, args []string) error {
			service, err := parseService("restart", args[0])
			if err != nil {
				return err
			}
			r, err := remote("restart", *file)
			if err != nil {
				return err
			}
			// Say what takes a while once it is under way, so that a
			// mistake (an unknown service) is not announced first.
			done := make(chan error, 1)
			go func() { done <- r.Restart(c.Context(), service) }()
			select {
			case err = <-done:
			case <-time.After(restartNote):
				fmt.Fprintf(e.stdout, "restarting %s, one instance at a time...\n", service)
				err = <-done
			}
			if err != nil {
				return controlError("restart", *file, err)
			}
			fmt.Fprintf(e.stdout, "%s restarted\n", service)
			return nil
		},
	}
	addFileFlag(c, file, true)
	return c
}

func newKill(e env, file *string) *cobra.Command {
	var sig string
	c := &cobra.Command{
		Use:   "kill SERVICE[/INDEX] [--signal KILL|TERM|STOP|CONT]",
		Short: "Send a signal to one instance (a random one without /INDEX)",
		Long: `kill sends a signal to one instance's process: the one at INDEX (from 1, as
shoal ps shows), or a random one. The default signal is KILL, a crash
without warning; the supervisor restarts instances that die, with
exponential backoff, and reports a crash loop instead of spinning.

  KILL  crash at once (the default)
  TERM  graceful stop: drain, then exit (the supervisor restarts it)
  STOP  freeze the process (it stays a member but stops answering)
  CONT  resume a frozen process
  INT, HUP are passed through as well.`,
		Example: `  shoal kill catalog/1
  shoal kill catalog --signal TERM
  shoal kill ratings/2 --signal STOP; sleep 5; shoal kill ratings/2 --signal CONT`,
		Args: exactArgs(1, "SERVICE or SERVICE/INDEX, e.g. shoal kill catalog/1"),
		RunE: func(c *cobra.Command, args []string) error {
			service, index, err := parseTarget("kill", args[0])
			if err != nil {
				return err
			}
			signal, err := parseSignal(sig)
			if err != nil {
				return err
			}
			r, err := remote("kill", *file)
			if err != nil {
				return err
			}
			st, err := r.Kill(c.Context(), service, index, signal)
			if err != nil {
				return controlError("kill", *file, err)
			}
			fmt.Fprintln(e.stdout, killReport(st, signal))
			return nil
		},
	}
	addFileFlag(c, file, true)
	c.Flags().StringVarP(&sig, "signal", "s", "KILL", "`SIGNAL` to send: KILL, TERM, STOP, CONT, INT or HUP")
	return c
}

// killReport says what kill did and what happens next.
func killReport(st supervisor.InstanceStatus, signal string) string {
	what := fmt.Sprintf("sent SIG%s to %s/%d (%s, pid %d)", signal, st.Service, st.Index, st.ID, st.PID)
	switch signal {
	case "STOP":
		return fmt.Sprintf("%s: frozen; resume it with: shoal kill %s/%d --signal CONT", what, st.Service, st.Index)
	case "CONT":
		return what + ": resumed"
	default:
		return what + "; the supervisor restarts it when it exits"
	}
}

func newLogs(e env, file *string) *cobra.Command {
	var follow bool
	var trace string
	c := &cobra.Command{
		Use:   "logs [SERVICE[/INDEX]] [-f]",
		Short: "Print recent log lines of a service or instance (-f: keep following)",
		Long: `logs prints the recent log lines (up to 1000 per instance) of every instance
of SERVICE, of one instance with /INDEX, or of every service without an
argument, each prefixed "service/index | ". -f keeps printing new lines until
Ctrl-C. --trace ID prints only the lines that carry that trace ID (the SDK
writes trace_id into every log line of a request), from every instance
unless a SERVICE is given; the dashboard links a trace to these lines. If
no line carries it, logs says so and exits 1, as grep does.

Here -f means --follow: give the manifest as --file FILE, or as -f FILE
before the command name (shoal -f FILE logs -f).`,
		Example: `  shoal logs catalog
  shoal logs catalog/2 -f
  shoal -f ~/src/shop/shoal.yaml logs -f
  shoal logs --trace 4bf92f3577b34da6a3ce929d0e0e4736`,
		Args: func(c *cobra.Command, args []string) error {
			for _, a := range args {
				if follow && (strings.HasSuffix(a, ".yaml") || strings.HasSuffix(a, ".yml")) {
					return usagef("logs: %q is no SERVICE: -f is --follow here; give the manifest as --file %s, or shoal -f %s logs", a, a, a)
				}
			}
			if len(args) > 1 {
				return usagef("logs: want at most one SERVICE or SERVICE/INDEX, got %d arguments", len(args))
			}
			return nil
		},
		RunE: func(c *cobra.Command, args []string) error {
			service, index := "", -1
			if len(args) == 1 {
				var err error
				if service, index, err = parseTarget("logs", args[0]); err != nil {
					return err
				}
			}
			if trace != "" {
				if _, err := oteltrace.TraceIDFromHex(strings.ToLower(trace)); err != nil {
					return usagef("logs: --trace %q: want a trace ID, 32 hex digits not all 0, e.g. --trace 4bf92f3577b34da6a3ce929d0e0e4736", trace)
				}
			}
			r, err := remote("logs", *file)
			if err != nil {
				return err
			}
			ctx, stop := signalContext(c.Context())
			defer stop()
			filter := supervisor.LogFilter{Service: service, Index: index, TraceID: trace}
			out := &countingWriter{w: e.stdout}
			if err := r.FilteredLogs(ctx, filter, follow, out); err != nil && !errors.Is(err, context.Canceled) {
				return controlError("logs", *file, err)
			}
			if trace != "" && out.n == 0 {
				// Exit 1, as grep does when nothing matches: a script can
				// tell.
				of := ""
				if len(args) == 1 {
					of = " of " + args[0]
				}
				return fmt.Errorf("logs: no log line%s carries trace %s (of the last %d lines of each instance)", of, trace, supervisor.LogLines)
			}
			return nil
		},
	}
	addFileFlag(c, file, false)
	c.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing new lines until Ctrl-C")
	c.Flags().StringVar(&trace, "trace", "", "only the lines that carry trace `ID` (32 hex digits)")
	return c
}

// countingWriter is w that counts the bytes written through it.
type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

func newDown(e env, file *string) *cobra.Command {
	c := &cobra.Command{
		Use:   "down",
		Short: "Stop the running system gracefully",
		Long: `down asks the running shoal up to stop every instance gracefully (SIGTERM,
drain, SIGKILL after the drain timeout) and to exit, and returns once it has.`,
		Example: `  shoal down
  shoal down -f ~/src/shop/shoal.yaml`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(c *cobra.Command, _ []string) error {
			r, err := remote("down", *file)
			if err != nil {
				return err
			}
			fmt.Fprintln(e.stdout, "stopping every instance...")
			if err := r.Down(c.Context()); err != nil {
				return controlError("down", *file, err)
			}
			fmt.Fprintln(e.stdout, "stopped")
			return nil
		},
	}
	addFileFlag(c, file, true)
	return c
}
