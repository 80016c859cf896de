package chaos

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Action is what a fault does to a request at its hop.
type Action string

// Actions. At a service hop (the callee's server): Delay, Error, Abort,
// Stall. At a link hop (the caller's transport, per attempt): Delay,
// Error, Reset, Abort, Blackhole.
const (
	// Delay adds latency: the server waits before its handler runs, the
	// link before the attempt is sent. The request then goes on as usual.
	Delay Action = "delay"
	// Error answers with a status (error=503) without running the handler
	// (server) or reaching the service (link).
	Error Action = "error"
	// Abort breaks the connection without an answer after the request
	// arrived: the server closes it without running the handler; the link
	// delivers the request and loses the answer. The service may have acted
	// (on a link it did), so only idempotent requests are retried.
	Abort Action = "abort"
	// Stall accepts the request and answers nothing (server): not until
	// the duration given (stall=2s) or, without one, the caller's deadline
	// has passed; then the connection is closed.
	Stall Action = "stall"
	// Reset fails the attempt as a connection reset before the request is
	// sent (link only): the caller may retry it anywhere.
	Reset Action = "reset"
	// Blackhole sends the attempt nowhere and answers nothing until the
	// caller gives up on it (link only).
	Blackhole Action = "blackhole"
)

// Fault is one rule: at its hop, apply an action to a fraction of the
// requests that pass. The zero Caller makes a service hop (applied by the
// Service's server when a request arrives); a Caller makes a link hop
// (applied by the Caller's client transport to each attempt it sends to
// Service).
type Fault struct {
	Caller  string // "" for a service hop
	Service string
	Action  Action
	// Delay is the latency of Delay, and how long Stall holds a request
	// (0: until the caller's deadline).
	Delay time.Duration
	// Status is the answer of Error: 400 to 599.
	Status int
	// Fraction of the requests reaching the hop the fault applies to, in
	// (0, 1]. Each arrival is drawn on its own.
	Fraction float64
}

// MaxDelay bounds a fault's duration, and a stall without one.
const MaxDelay = 10 * time.Minute

// Limits of the syntax.
const (
	maxFaults  = 16
	maxSpecLen = 1024
)

// Link reports whether f is a link hop: caller>service.
func (f Fault) Link() bool { return f.Caller != "" }

// Services returns the services faults name (a hop's service, a link's
// caller), sorted, each once: what to check against the system's, since a
// fault aimed at a service that does not run never fires, and a token or
// an experiment with one would test nothing and say nothing of it.
func Services(faults []Fault) []string {
	var out []string
	for _, f := range faults {
		for _, name := range []string{f.Caller, f.Service} {
			if name != "" && !slices.Contains(out, name) {
				out = append(out, name)
			}
		}
	}
	slices.Sort(out)
	return out
}

// fires draws whether f applies to one request.
func (f Fault) fires() bool { return f.Fraction >= 1 || rand.Float64() < f.Fraction }

// terminal reports whether f ends the request at its hop when it fires
// (every action but Delay).
func (f Fault) terminal() bool { return f.Action != Delay }

// String is f in the syntax Parse reads.
func (f Fault) String() string {
	var b strings.Builder
	if f.Caller != "" {
		b.WriteString(f.Caller + ">")
	}
	b.WriteString(f.Service + ":" + string(f.Action))
	switch {
	case f.Action == Delay || f.Action == Stall && f.Delay > 0:
		b.WriteString("=" + f.Delay.String())
	case f.Action == Error:
		b.WriteString("=" + strconv.Itoa(f.Status))
	}
	if f.Fraction < 1 {
		b.WriteString(",p=" + strconv.FormatFloat(f.Fraction, 'g', -1, 64))
	}
	return b.String()
}

// Format writes faults as Parse reads them, separated by ";".
func Format(faults []Fault) string {
	parts := make([]string, len(faults))
	for i, f := range faults {
		parts[i] = f.String()
	}
	return strings.Join(parts, ";")
}

// Parse reads faults written as
//
//	faults = fault *( ";" fault )
//	fault  = hop ":" action [ "," "p=" fraction ]
//	hop    = service | caller ">" service
//	action = "delay=" duration | "error=" status | "abort" | "stall" [ "=" duration ]
//	       | "reset" | "blackhole"
//
// for example "ratings:delay=300ms", "catalog:error=503,p=0.5" or
// "api>ratings:reset;search:stall". Service names are those of the
// manifest (lowercase letters, digits and '-'); durations are Go's
// (300ms, 2s), at most 10m; a fraction is in (0, 1], 1 when left out.
// reset and blackhole belong to links; stall to services.
func Parse(s string) ([]Fault, error) {
	if len(s) > maxSpecLen {
		return nil, fmt.Errorf("chaos: fault list of %d bytes: at most %d", len(s), maxSpecLen)
	}
	var out []Fault
	for part := range strings.SplitSeq(s, ";") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		f, err := parseOne(part)
		if err != nil {
			return nil, fmt.Errorf("chaos: fault %q: %w", part, err)
		}
		out = append(out, f)
	}
	switch {
	case len(out) == 0:
		return nil, errors.New(`chaos: no fault given; write one like "ratings:delay=300ms"`)
	case len(out) > maxFaults:
		return nil, fmt.Errorf("chaos: %d faults: at most %d", len(out), maxFaults)
	}
	return out, nil
}

func parseOne(s string) (Fault, error) {
	hop, rest, ok := strings.Cut(s, ":")
	if !ok {
		return Fault{}, errors.New(`want hop:action, e.g. ratings:delay=300ms or api>ratings:reset`)
	}
	f := Fault{Fraction: 1}
	if caller, svc, link := strings.Cut(hop, ">"); link {
		f.Caller, f.Service = strings.TrimSpace(caller), strings.TrimSpace(svc)
		if !hopName(f.Caller) {
			return Fault{}, fmt.Errorf("caller %q is not a service name", f.Caller)
		}
	} else {
		f.Service = strings.TrimSpace(hop)
	}
	if !hopName(f.Service) {
		return Fault{}, fmt.Errorf("service %q is not a service name", f.Service)
	}
	action, opts, _ := strings.Cut(rest, ",")
	name, arg, hasArg := strings.Cut(strings.TrimSpace(action), "=")
	f.Action = Action(name)
	switch f.Action {
	case Delay, Stall:
		if !hasArg {
			if f.Action == Delay {
				return Fault{}, errors.New("delay needs a duration, e.g. delay=300ms")
			}
			break
		}
		d, err := time.ParseDuration(arg)
		if err != nil || d <= 0 || d > MaxDelay {
			return Fault{}, fmt.Errorf("%s=%s: want a positive duration up to %v, e.g. 300ms", name, arg, MaxDelay)
		}
		f.Delay = d
	case Error:
		n, err := strconv.Atoi(arg)
		if err != nil || n < 400 || n > 599 {
			return Fault{}, fmt.Errorf("error=%s: want a status from 400 to 599, e.g. error=503", arg)
		}
		f.Status = n
	case Abort, Reset, Blackhole:
		if hasArg {
			return Fault{}, fmt.Errorf("%s takes no value", name)
		}
	default:
		return Fault{}, fmt.Errorf("unknown action %q: want delay, error, abort, stall, reset or blackhole", name)
	}
	switch {
	case f.Link() && f.Action == Stall:
		return Fault{}, errors.New("stall is for a service hop; on a link, blackhole holds an attempt")
	case !f.Link() && (f.Action == Reset || f.Action == Blackhole):
		return Fault{}, fmt.Errorf("%s is for a link hop (caller>service), e.g. api>%s:%s", f.Action, f.Service, f.Action)
	}
	for opt := range strings.SplitSeq(opts, ",") {
		opt = strings.TrimSpace(opt)
		if opt == "" {
			continue
		}
		k, v, _ := strings.Cut(opt, "=")
		if k != "p" {
			return Fault{}, fmt.Errorf("unknown option %q: the only one is p=<fraction>", k)
		}
		p, err := strconv.ParseFloat(v, 64)
		if err != nil || !(p > 0 && p <= 1) {
			return Fault{}, fmt.Errorf("p=%s: want a fraction in (0, 1], e.g. p=0.1", v)
		}
		f.Fraction = p
	}
	return f, nil
}

// hopName reports whether s may name a service in a hop: the characters
// of a manifest's service names.
func hopName(s string) bool {
	if s == "" || len(s) > 63 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}
