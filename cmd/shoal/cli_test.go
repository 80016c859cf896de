package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/supervisor"
)

// runCLI runs the command line in a fake environment and returns the exit
// status and what it printed.
func runCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	e := env{
		stdout:     &out,
		stderr:     &errOut,
		getenv:     func(string) string { return "" },
		isTerminal: func() bool { return false },
	}
	code = run(context.Background(), e, args)
	return code, out.String(), errOut.String()
}

// checkHelp checks that each command of cmds answers --help with its
// form, its name and an example, and that shoal --help lists each command
// of listed.
func checkHelp(t *testing.T, cmds [][]string, listed []string) {
	t.Helper()
	for _, cmd := range cmds {
		code, out, errOut := runCLI(t, append(cmd, "--help")...)
		if code != 0 || !strings.Contains(out, "Usage:") || !strings.Contains(out, "Examples:") || !strings.Contains(out, "shoal "+strings.Join(cmd, " ")) {
			t.Errorf("%s --help: status %d, stderr %s; want usage and examples:\n%s", cmd, code, errOut, out)
		}
	}
	_, out, _ := runCLI(t, "--help")
	for _, cmd := range listed {
		if !strings.Contains(out, "\n  "+cmd+" ") {
			t.Errorf("shoal --help does not list %s:\n%s", cmd, out)
		}
	}
}

func TestHelp(t *testing.T) {
	checkHelp(t, [][]string{{"up"}, {"ps"}, {"scale"}, {"restart"}, {"kill"}, {"logs"}, {"down"}, {"gateway"}},
		[]string{"up", "ps", "scale", "restart", "kill", "logs", "down", "gateway"})
	// shoal help CMD is CMD --help.
	_, want, _ := runCLI(t, "chaos", "--help")
	if code, out, errOut := runCLI(t, "help", "chaos"); code != 0 || out != want {
		t.Errorf("help chaos: status %d, stderr %s, stdout:\n%s\nwant chaos --help's:\n%s", code, errOut, out, want)
	}
	_, out, _ := runCLI(t, "up", "--help")
	for _, flag := range []string{"--bind IP", "--advertise IP", "--join HOST:PORT", "--only SERVICES", "--secrets DIR", "--gossip-port PORT"} {
		if !strings.Contains(out, flag) {
			t.Errorf("up --help lacks %s:\n%s", flag, out)
		}
	}
	_, out, _ = runCLI(t, "gateway", "--help")
	for _, flag := range []string{"--addr", "--seeds", "--name"} {
		if !strings.Contains(out, flag) {
			t.Errorf("gateway --help lacks the SDK flag %s:\n%s", flag, out)
		}
	}
}

// TestUpHostMistakes: a wrong --only or --join stops up before it starts
// anything, naming the value.
func TestUpHostMistakes(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "shoal.yaml"), []byte("name: x\nservices:\n  a:\n    command: [\"true\"]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--only", "a,b"}, `only: no service "b"`},
		{[]string{"--join", "10.0.0.1"}, `join address "10.0.0.1": want host:port`},
		{[]string{"--bind", "0.0.0.0"}, "give the address the other hosts reach"},
	} {
		code, _, errOut := runCLI(t, append([]string{"up", "-f", dir}, tc.args...)...)
		if code != 1 || !strings.Contains(errOut, tc.want) {
			t.Errorf("up %v: status %d, stderr %q; want 1 and %q", tc.args, code, errOut, tc.want)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, ".shoal")); err == nil {
		t.Error("up made its state folder before refusing the options")
	}
}

func TestUsageErrors(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"scale", "catalog:5"}, `shoal: scale: "catalog:5": want SERVICE=N, e.g. shoal scale catalog=5`},
		{[]string{"scale"}, "shoal: scale: want SERVICE=N, e.g. shoal scale catalog=5, got 0 argument(s)"},
		{[]string{"kill", "catalog/x"}, `shoal: kill: "catalog/x": INDEX must be a number from 1`},
		{[]string{"kill", "catalog", "--signal", "PAUSE"}, `shoal: kill: --signal "PAUSE": use one of KILL, TERM, STOP, CONT, INT, HUP`},
		{[]string{"restart", "a", "b"}, "shoal: restart: want SERVICE, e.g. shoal restart ratings, got 2 argument(s)"},
		{[]string{"ps", "-o", "yaml"}, `shoal: ps: -o "yaml": use table or json`},
		{[]string{"ps", "--bogus"}, "shoal: unknown flag: --bogus"},
		{[]string{"logs", "a", "b"}, "shoal: logs: want at most one SERVICE or SERVICE/INDEX, got 2 arguments"},
		// -f is --follow for logs: a manifest after it is named as such.
		{[]string{"logs", "-f", "trial/shoal.yaml", "watchlist"}, `shoal: logs: "trial/shoal.yaml" is no SERVICE: -f is --follow here; give the manifest as --file trial/shoal.yaml, or shoal -f trial/shoal.yaml logs`},
		{[]string{"logs", "-f", "shoal.yml"}, `shoal: logs: "shoal.yml" is no SERVICE: -f is --follow here`},
		{[]string{"logs", "--trace", "abc"}, `shoal: logs: --trace "abc": want a trace ID, 32 hex digits not all 0, e.g. --trace 4bf92f3577b34da6a3ce929d0e0e4736`},
		{[]string{"logs", "--trace", strings.Repeat("0", 32)}, `shoal: logs: --trace "000`},
		// A mistyped command, of shoal or of a group of commands.
		{[]string{"sacle", "catalog=5"}, "shoal: unknown command \"sacle\" for \"shoal\"; did you mean \"scale\"?\nRun 'shoal --help' for usage.\n"},
		{[]string{"-f", "x.yaml", "kil", "catalog/1"}, "shoal: unknown command \"kil\" for \"shoal\"; did you mean \"kill\"?\n"},
		{[]string{"frob"}, "shoal: unknown command \"frob\" for \"shoal\"; its commands: agent, chaos, dashboard, down, "},
		{[]string{"chaos", "monky"}, "shoal: unknown command \"monky\" for \"shoal chaos\"; did you mean \"monkey\"?\nRun 'shoal chaos --help' for usage.\n"},
		{[]string{"export", "kubernets", "-o", "k8s"}, "shoal: unknown command \"kubernets\" for \"shoal export\"; did you mean \"kubernetes\"?\nRun 'shoal export --help' for usage.\n"},
		{[]string{"experiment", "rn", "x.yaml"}, "shoal: unknown command \"rn\" for \"shoal experiment\"; did you mean \"run\"?\n"},
		{[]string{"help", "chaos", "monky"}, "shoal: unknown command \"monky\" for \"shoal chaos\"; did you mean \"monkey\"?\n"},
		// The usage of the command concerned.
		{[]string{"ps", "--bogus"}, "shoal: unknown flag: --bogus\nRun 'shoal ps --help' for usage.\n"},
	}
	for _, tt := range tests {
		code, _, errOut := runCLI(t, tt.args...)
		if code != 2 || !strings.HasPrefix(errOut, tt.want) {
			t.Errorf("shoal %s: status %d, stderr:\n%s\nwant status 2 and:\n%s", strings.Join(tt.args, " "), code, errOut, tt.want)
		}
	}
}

func TestNotRunning(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "shoal.yaml")
	tests := [][]string{
		{"ps", "-f", file},
		{"-f", file, "ps"},
		{"scale", "catalog=2", "--file", file},
		{"restart", "catalog", "-f", file},
		{"kill", "catalog/1", "-f", file},
		{"logs", "catalog", "-f", "--file", file},
		{"-f", file, "logs", "-f", "catalog"},
		{"down", "-f", file},
		{"ps", "-f", dir}, // a folder means its shoal.yaml
	}
	for _, args := range tests {
		code, _, errOut := runCLI(t, args...)
		want := "no shoal up is running for " + file + "; start one with: shoal up -f " + dir
		if code != 1 || !strings.Contains(errOut, want) {
			t.Errorf("shoal %s: status %d, stderr:\n%s\nwant status 1 and %q", strings.Join(args, " "), code, errOut, want)
		}
	}
}

func TestUpManifestError(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "shoal.yaml")
	if err := os.WriteFile(file, []byte("services:\n  web:\n    command: [./web]\n    instance: 3\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runCLI(t, "up", "-f", file)
	want := file + `:4:5: services.web.instance: unknown key; did you mean instances?` + "\nshoal: fix the manifest and run the command again; nothing was started\n"
	if code != 1 || errOut != want || out != "" {
		t.Errorf("up with a mistake: status %d, stdout %q, stderr:\n%s\nwant status 1 and stderr:\n%s", code, out, errOut, want)
	}

	// The gateway's key files are read before anything starts.
	if err := os.WriteFile(file, []byte("services:\n  web:\n    command: [./web]\ngateway:\n  auth:\n    api_keys: [{name: k, sha256: "+strings.Repeat("ab", 32)+"}]\n    jwt: {algorithms: [ES256], key_file: keys/none.pub, audience: x}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errOut = runCLI(t, "up", "-f", file)
	want = file + ":5:3: gateway.auth: jwt: key_file: "
	if code != 1 || !strings.HasPrefix(errOut, want) || !strings.Contains(errOut, "none.pub") || !strings.Contains(errOut, "nothing was started") || out != "" {
		t.Errorf("up with a missing key file: status %d, stdout %q, stderr:\n%s\nwant status 1 and stderr starting:\n%s", code, out, errOut, want)
	}
	// The commands that read a manifest say how to name one.
	for _, args := range [][]string{{"up"}, {"image", "-o", dir}, {"export", "kubernetes", "-o", dir}} {
		code, _, errOut = runCLI(t, append(args, "-f", filepath.Join(dir, "missing.yaml"))...)
		if code != 1 || !strings.Contains(errOut, "missing.yaml") || !strings.Contains(errOut, "; give the manifest's path with -f FILE") {
			t.Errorf("%s with no manifest: status %d, stderr %s", args[0], code, errOut)
		}
	}
}

func TestUseColor(t *testing.T) {
	tests := []struct {
		tty       bool
		noColor   string
		term      string
		wantColor bool
	}{
		{tty: true, term: "xterm", wantColor: true},
		{tty: false, term: "xterm"},
		{tty: true, noColor: "1", term: "xterm"},
		{tty: true, term: "dumb"},
	}
	for _, tt := range tests {
		e := env{
			isTerminal: func() bool { return tt.tty },
			getenv: func(k string) string {
				return map[string]string{"NO_COLOR": tt.noColor, "TERM": tt.term}[k]
			},
		}
		if got := useColor(e); got != tt.wantColor {
			t.Errorf("useColor(tty %v, NO_COLOR %q, TERM %q) = %v", tt.tty, tt.noColor, tt.term, got)
		}
	}
}

// TestHangupStopsGracefully: closing the terminal (SIGHUP) ends shoal up's
// context like Ctrl-C instead of killing it outright.
func TestHangupStopsGracefully(t *testing.T) {
	ctx, stop := signalContext(context.Background())
	defer stop()
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ctx.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("SIGHUP did not end the context")
	}
}

// TestPSHelp: ps --help names every state an instance can be in and every
// key of -o json.
func TestPSHelp(t *testing.T) {
	_, out, _ := runCLI(t, "ps", "--help")
	want := slices.Clone(supervisor.States)
	for f := range reflect.TypeFor[supervisor.InstanceStatus]().Fields() {
		key, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		want = append(want, key)
	}
	for _, w := range want {
		if !regexp.MustCompile(`\b` + w + `\b`).MatchString(out) {
			t.Errorf("ps --help does not name %s:\n%s", w, out)
		}
	}
}

// From a subfolder of the system, the default manifest is the nearest
// shoal.yaml above, as docker compose finds compose.yaml: shoal ps in
// examples/ asks about the system one folder up.
func TestManifestFoundUp(t *testing.T) {
	root := t.TempDir()
	sub := filepath.Join(root, "examples", "web")
	if err := os.MkdirAll(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	top := filepath.Join(root, "shoal.yaml")
	if err := os.WriteFile(top, []byte("services:\n  web: {command: [./web]}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Chdir(sub)
	if got := findUp(defaultManifest); got != top {
		t.Errorf("findUp from %s = %q, want %q", sub, got, top)
	}
	want := "shoal: using " + top + "\nshoal: ps: no shoal up is running for " + top
	if code, _, errOut := runCLI(t, "ps"); code != 1 || !strings.HasPrefix(errOut, want) {
		t.Errorf("ps from a subfolder: status %d, stderr %q, want 1 and %q", code, errOut, want)
	}
	// A named file is taken as named.
	if code, _, errOut := runCLI(t, "ps", "-f", "other.yaml"); code != 1 || strings.Contains(errOut, "using") {
		t.Errorf("ps -f other.yaml: status %d, stderr %q", code, errOut)
	}
	// Where the folder has its own, it is that one, and nothing is said.
	own := filepath.Join(sub, "shoal.yaml")
	if err := os.WriteFile(own, []byte("services:\n  web: {command: [./web]}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := findUp(defaultManifest); got != defaultManifest {
		t.Errorf("findUp with one in the folder = %q, want %q", got, defaultManifest)
	}
}
