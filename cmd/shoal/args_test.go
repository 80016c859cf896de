package main

import (
	"errors"
	"testing"
)

func TestParseScale(t *testing.T) {
	tests := []struct {
		arg     string
		service string
		n       int
		err     string
	}{
		{arg: "catalog=5", service: "catalog", n: 5},
		{arg: "catalog=0", service: "catalog", n: 0},
		{arg: "my-api=100", service: "my-api", n: 100},
		{arg: "catalog:5", err: `scale: "catalog:5": want SERVICE=N, e.g. shoal scale catalog=5`},
		{arg: "catalog", err: `scale: "catalog": want SERVICE=N, e.g. shoal scale catalog=5`},
		{arg: "catalog=five", err: `scale: "catalog=five": N must be a whole number; want SERVICE=N, e.g. shoal scale catalog=5`},
		{arg: "catalog=-1", err: `scale: "catalog=-1": N must be 0 to 100; want SERVICE=N, e.g. shoal scale catalog=5`},
		{arg: "catalog=101", err: `scale: "catalog=101": N must be 0 to 100; want SERVICE=N, e.g. shoal scale catalog=5`},
		{arg: "Catalog=5", err: `scale: "Catalog=5": "Catalog" is not a service name (lowercase letters, digits and '-'); want SERVICE=N, e.g. shoal scale catalog=5`},
		{arg: "=5", err: `scale: "=5": "" is not a service name (lowercase letters, digits and '-'); want SERVICE=N, e.g. shoal scale catalog=5`},
	}
	for _, tt := range tests {
		service, n, err := parseScale(tt.arg)
		if got := errString(err); got != tt.err {
			t.Errorf("parseScale(%q) error:\n got: %s\nwant: %s", tt.arg, got, tt.err)
			continue
		}
		if err == nil && (service != tt.service || n != tt.n) {
			t.Errorf("parseScale(%q) = %q, %d; want %q, %d", tt.arg, service, n, tt.service, tt.n)
		}
		if err != nil && !errors.As(err, new(usageError)) {
			t.Errorf("parseScale(%q): %T is not a usage error", tt.arg, err)
		}
	}
}

func TestParseTarget(t *testing.T) {
	tests := []struct {
		arg     string
		service string
		index   int
		err     string
	}{
		{arg: "catalog", service: "catalog", index: -1},
		{arg: "catalog/1", service: "catalog", index: 1},
		{arg: "catalog/12", service: "catalog", index: 12},
		{arg: "catalog/0", err: `kill: "catalog/0": INDEX must be a number from 1 (see shoal ps); want SERVICE or SERVICE/INDEX, e.g. shoal kill catalog/1`},
		{arg: "catalog/", err: `kill: "catalog/": INDEX must be a number from 1 (see shoal ps); want SERVICE or SERVICE/INDEX, e.g. shoal kill catalog/1`},
		{arg: "catalog/x", err: `kill: "catalog/x": INDEX must be a number from 1 (see shoal ps); want SERVICE or SERVICE/INDEX, e.g. shoal kill catalog/1`},
		{arg: "catalog:1", err: `kill: "catalog:1": "catalog:1" is not a service name (lowercase letters, digits and '-'); want SERVICE or SERVICE/INDEX, e.g. shoal kill catalog/1`},
		{arg: "", err: `kill: "": "" is not a service name (lowercase letters, digits and '-'); want SERVICE or SERVICE/INDEX, e.g. shoal kill catalog/1`},
	}
	for _, tt := range tests {
		service, index, err := parseTarget("kill", tt.arg)
		if got := errString(err); got != tt.err {
			t.Errorf("parseTarget(%q) error:\n got: %s\nwant: %s", tt.arg, got, tt.err)
			continue
		}
		if err == nil && (service != tt.service || index != tt.index) {
			t.Errorf("parseTarget(%q) = %q, %d; want %q, %d", tt.arg, service, index, tt.service, tt.index)
		}
	}
}

func TestParseService(t *testing.T) {
	if s, err := parseService("restart", "ratings"); err != nil || s != "ratings" {
		t.Errorf("parseService(ratings) = %q, %v", s, err)
	}
	want := `restart: "ratings/1" is not a service name (lowercase letters, digits and '-'); e.g. shoal restart catalog`
	if _, err := parseService("restart", "ratings/1"); errString(err) != want {
		t.Errorf("parseService(ratings/1) error:\n got: %v\nwant: %s", err, want)
	}
}

func TestParseSignal(t *testing.T) {
	tests := []struct{ in, want, err string }{
		{in: "KILL", want: "KILL"},
		{in: "kill", want: "KILL"},
		{in: "SIGTERM", want: "TERM"},
		{in: "sigstop", want: "STOP"},
		{in: "CONT", want: "CONT"},
		{in: "HUP", want: "HUP"},
		{in: "9", err: `kill: --signal "9": use one of KILL, TERM, STOP, CONT, INT, HUP, e.g. --signal STOP`},
		{in: "PAUSE", err: `kill: --signal "PAUSE": use one of KILL, TERM, STOP, CONT, INT, HUP, e.g. --signal STOP`},
		{in: "", err: `kill: --signal "": use one of KILL, TERM, STOP, CONT, INT, HUP, e.g. --signal STOP`},
	}
	for _, tt := range tests {
		got, err := parseSignal(tt.in)
		if errString(err) != tt.err || got != tt.want {
			t.Errorf("parseSignal(%q) = %q, %v; want %q, %q", tt.in, got, err, tt.want, tt.err)
		}
	}
}

func TestParseFormat(t *testing.T) {
	tests := []struct{ in, want, err string }{
		{in: "", want: "table"},
		{in: "table", want: "table"},
		{in: "json", want: "json"},
		{in: "yaml", err: `ps: -o "yaml": use table or json, e.g. shoal ps -o json`},
	}
	for _, tt := range tests {
		got, err := parseFormat(tt.in)
		if errString(err) != tt.err || got != tt.want {
			t.Errorf("parseFormat(%q) = %q, %v; want %q, %q", tt.in, got, err, tt.want, tt.err)
		}
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
