package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/chaos"
	"github.com/shoal-dev/shoal/chaos/monkey"
)

func TestChaosHelp(t *testing.T) {
	checkHelp(t, [][]string{{"chaos"}, {"chaos", "monkey"}, {"chaos", "token"}, {"experiment"}, {"experiment", "run"}},
		[]string{"chaos", "experiment"})
}

func TestChaosUsageErrors(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "shoal.yaml")
	if err := os.WriteFile(file, []byte("services:\n  web:\n    command: [./web]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"chaos", "token", "ratings:explode"}, `shoal: chaos token: fault "ratings:explode": unknown action "explode"`},
		{[]string{"chaos", "token"}, "shoal: token: want FAULTS"},
		// Mistakes in flags name the flags, not the manifest's keys.
		{[]string{"chaos", "monkey", "-f", file, "--every", "1s", "--rate", "2"}, "shoal: chaos monkey: give --every (a fixed interval) or --rate (random times), not both\n"},
		{[]string{"chaos", "monkey", "-f", file, "--every", "0s"}, "shoal: chaos monkey: --every 0s: want a positive time between two actions, e.g. --every 2s\n"},
		{[]string{"chaos", "monkey", "-f", file, "--every", "-1s"}, "shoal: chaos monkey: --every -1s: want a positive"},
		{[]string{"chaos", "monkey", "-f", file, "--rate", "0"}, "shoal: chaos monkey: --rate 0: want a positive mean number of actions per second, e.g. --rate 0.5\n"},
		{[]string{"chaos", "monkey", "-f", file, "--rate", "101"}, "shoal: chaos monkey: --rate: 101: want a mean number of actions per second from 0 to 100, e.g. --rate 0.5\n"},
		{[]string{"chaos", "monkey", "-f", file, "--action", "klil"}, `shoal: chaos monkey: --action: "klil" is not an action: want kill, stop, slow` + "\n"},
		{[]string{"chaos", "monkey", "-f", file, "--service", "api", "--stop-for", "-1s"}, `shoal: chaos monkey: --stop-for: -1s must not be negative; --service: "api" is not a service of this manifest; services: web` + "\n"},
		{[]string{"experiment", "run", "x.yaml", "-o", "xml"}, `shoal: experiment run: -o "xml": use table or json`},
		{[]string{"experiment"}, "shoal: experiment: want a subcommand: run"},
	} {
		code, _, errOut := runCLI(t, tt.args...)
		if code != 2 || !strings.HasPrefix(errOut, tt.want) {
			t.Errorf("shoal %s: status %d, stderr:\n%s\nwant status 2 and:\n%s", strings.Join(tt.args, " "), code, errOut, tt.want)
		}
	}
	// Not running: said as for every control command.
	code, _, errOut := runCLI(t, "chaos", "monkey", "-f", file)
	if code != 1 || !strings.Contains(errOut, "no shoal up is running") {
		t.Errorf("chaos monkey without shoal up: %d %s", code, errOut)
	}
}

func TestChaosToken(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "shoal.yaml")
	want := "shoal: chaos token: no operator key in " + chaos.KeyFile(dir) + ": shoal up makes one when it starts, or make it now with shoal chaos key\n"
	if code, _, errOut := runCLI(t, "chaos", "token", "ratings:abort", "-f", file); code != 1 || errOut != want {
		t.Errorf("no key: status %d, stderr %q, want 1 and %q", code, errOut, want)
	}
	if err := os.MkdirAll(filepath.Dir(chaos.KeyFile(dir)), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(chaos.KeyFile(dir), []byte("junk"), 0o600); err != nil {
		t.Fatal(err)
	}
	want = "shoal: chaos token: " + chaos.KeyFile(dir) + " holds no PEM private key\n"
	if code, _, errOut := runCLI(t, "chaos", "token", "ratings:abort", "-f", file); code != 1 || errOut != want {
		t.Errorf("a bad key: status %d, stderr %q, want 1 and %q", code, errOut, want)
	}
	if err := os.Remove(chaos.KeyFile(dir)); err != nil {
		t.Fatal(err)
	}
	key, err := chaos.LoadOrCreateKey(chaos.KeyFile(dir))
	if err != nil {
		t.Fatal(err)
	}
	// With the manifest there, a fault on a service it lacks would never
	// fire: refused, with the one meant.
	if err := os.WriteFile(file, []byte("services:\n  api: {build: ./api}\n  ratings: {build: ./ratings}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	want = "shoal: chaos token: \"ratngs\" is not a service of " + file + "; did you mean ratings?\n"
	if code, out, errOut := runCLI(t, "chaos", "token", "api>ratngs:reset", "-f", file); code != 2 || out != "" || !strings.HasPrefix(errOut, want) {
		t.Errorf("a fault on no service: status %d, stdout %q, stderr %q, want 2 and %q", code, out, errOut, want)
	}
	code, out, errOut := runCLI(t, "chaos", "token", "ratings:delay=300ms;api>ratings:reset", "-f", file, "--for", "1h")
	if code != 0 {
		t.Fatalf("status %d: %s", code, errOut)
	}
	v, _ := chaos.NewVerifier(chaos.PublicKey(key), "api")
	set, err := v.Verify(strings.TrimSpace(out))
	if err != nil {
		t.Fatal(err)
	}
	if got := chaos.Format(set.Faults()); got != "ratings:delay=300ms;api>ratings:reset" || time.Until(set.Expires()) < 59*time.Minute {
		t.Errorf("token for %q until %v", got, set.Expires())
	}
}

func TestDescribeMonkey(t *testing.T) {
	for _, tt := range []struct {
		cfg  monkey.Config
		want string
	}{
		{monkey.Config{}, "kill a random instance every 10s, never the last serving one"},
		{monkey.Config{Actions: []string{"kill", "stop"}, Services: []string{"catalog"}, Rate: 0.5, For: time.Minute, AllowLast: true, DryRun: true},
			"kill or stop an instance of catalog 0.5 times a second on average for 1m0s, dry run"},
		{monkey.Config{Every: 2 * time.Second, Exclude: []string{"gateway"}}, "kill a random instance (not gateway) every 2s, never the last serving one"},
	} {
		if got := describeMonkey(tt.cfg); got != tt.want {
			t.Errorf("describeMonkey(%+v) = %q, want %q", tt.cfg, got, tt.want)
		}
	}
}

func TestChaosKey(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "shoal.yaml")
	code, out, errOut := runCLI(t, "chaos", "key", "-f", file)
	if code != 0 || !strings.Contains(errOut, "made the operator's key pair: "+chaos.KeyFile(dir)) {
		t.Fatalf("first call: status %d, stderr %q", code, errOut)
	}
	key, err := chaos.LoadKey(chaos.KeyFile(dir))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(out); got != chaos.PublicKey(key) {
		t.Errorf("printed %q, want the public half of %s", got, chaos.KeyFile(dir))
	}
	if fi, err := os.Stat(chaos.KeyFile(dir)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("the key file: %v %v, want mode 0600", fi, err)
	}
	code, again, errOut := runCLI(t, "chaos", "key", "-f", file)
	if code != 0 || again != out || errOut != "" {
		t.Errorf("second call: status %d, %q (first %q), stderr %q: want the same key, no note", code, again, out, errOut)
	}
}
