package main

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/shoal-dev/shoal/manifest"
)

// usageError is a mistake in the command line (exit status 2), as opposed
// to a failure while running (status 1).
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error {
	return usageError{fmt.Errorf(format, args...)}
}

// parseScale parses SERVICE=N (N from 0 to manifest.MaxInstances).
func parseScale(arg string) (service string, n int, err error) {
	const want = "want SERVICE=N, e.g. shoal scale catalog=5"
	name, count, ok := strings.Cut(arg, "=")
	if !ok {
		return "", 0, usagef("scale: %q: %s", arg, want)
	}
	if !manifest.ValidServiceName(name) {
		return "", 0, usagef("scale: %q: %q is not a service name (lowercase letters, digits and '-'); %s", arg, name, want)
	}
	n, err = strconv.Atoi(strings.TrimSpace(count))
	if err != nil {
		return "", 0, usagef("scale: %q: N must be a whole number; %s", arg, want)
	}
	if n < 0 || n > manifest.MaxInstances {
		return "", 0, usagef("scale: %q: N must be 0 to %d; %s", arg, manifest.MaxInstances, want)
	}
	return name, n, nil
}

// parseService parses a bare SERVICE for cmd (restart).
func parseService(cmd, arg string) (string, error) {
	if !manifest.ValidServiceName(arg) {
		return "", usagef("%s: %q is not a service name (lowercase letters, digits and '-'); e.g. shoal %s catalog", cmd, arg, cmd)
	}
	return arg, nil
}

// parseTarget parses SERVICE or SERVICE/INDEX for cmd (kill, logs); index is
// -1 without /INDEX. Instances count from 1, as shoal ps shows them.
func parseTarget(cmd, arg string) (service string, index int, err error) {
	want := fmt.Sprintf("want SERVICE or SERVICE/INDEX, e.g. shoal %s catalog/1", cmd)
	name, idx, hasIndex := strings.Cut(arg, "/")
	if !manifest.ValidServiceName(name) {
		return "", 0, usagef("%s: %q: %q is not a service name (lowercase letters, digits and '-'); %s", cmd, arg, name, want)
	}
	if !hasIndex {
		return name, -1, nil
	}
	index, err = strconv.Atoi(idx)
	if err != nil || index < 1 {
		return "", 0, usagef("%s: %q: INDEX must be a number from 1 (see shoal ps); %s", cmd, arg, want)
	}
	return name, index, nil
}

// signals are the names kill accepts, canonical form first.
var signals = []string{"KILL", "TERM", "STOP", "CONT", "INT", "HUP"}

// parseSignal accepts KILL, kill, SIGKILL and the like, returning the
// canonical name the supervisor expects.
func parseSignal(s string) (string, error) {
	up := strings.TrimPrefix(strings.ToUpper(strings.TrimSpace(s)), "SIG")
	for _, name := range signals {
		if up == name {
			return name, nil
		}
	}
	return "", usagef("kill: --signal %q: use one of %s, e.g. --signal STOP", s, strings.Join(signals, ", "))
}

// parseFormat checks ps -o.
func parseFormat(s string) (string, error) {
	switch s {
	case "", "table":
		return "table", nil
	case "json":
		return "json", nil
	}
	return "", usagef("ps: -o %q: use table or json, e.g. shoal ps -o json", s)
}
