package manifest

import (
	"slices"
	"strings"
	"time"
)

// Chaos is the chaos: section of a manifest: failure rehearsal. nil
// without one.
type Chaos struct {
	// Monkey is the chaos monkey's settings: shoal chaos monkey starts
	// from them (its flags override each), and with enabled: true shoal up
	// runs the monkey too, for as long as the system runs.
	Monkey *Monkey `yaml:"monkey" example:"{every: 2s, actions: [kill], exclude: [gateway]}"`
}

// The monkey's actions on an instance.
const (
	// MonkeyKill SIGKILLs the instance's process: a crash. The supervisor
	// restarts it.
	MonkeyKill = "kill"
	// MonkeyStop freezes the process (SIGSTOP) for stop_for, then resumes
	// it: a hung machine that comes back.
	MonkeyStop = "stop"
	// MonkeySlow freezes the process for pause of every 100 ms, for
	// slow_for: a machine much slower than its peers.
	MonkeySlow = "slow"
)

// MonkeyActions are the actions a monkey may take.
var MonkeyActions = []string{MonkeyKill, MonkeyStop, MonkeySlow}

// Monkey acts on random instances of a running system, over and over:
// kills, freezes or slows one at a time, so that the system's resilience
// is exercised rather than assumed. Every action is an event of the
// supervisor's feed (and the dashboard's). The zero Monkey kills a random
// instance every 10 seconds, never the last serving one of a service,
// until stopped.
type Monkey struct {
	// Enabled makes shoal up run the monkey from the moment every instance
	// is ready. shoal chaos monkey runs it either way.
	Enabled bool `yaml:"enabled" example:"true"`
	// Actions to pick from, at random, each time: kill, stop, slow;
	// default [kill].
	Actions []string `yaml:"actions" example:"[kill, stop]"`
	// Every is the time between two actions; default 10s. Use rate
	// instead for actions at random times.
	Every time.Duration `yaml:"every" example:"2s"`
	// Rate is the mean number of actions per second, at random times (a
	// Poisson process: exponential gaps), instead of every.
	Rate float64 `yaml:"rate" example:"0.5"`
	// For is how long the monkey runs; default until it is stopped
	// (Ctrl-C, or shoal up's end).
	For time.Duration `yaml:"for" example:"10m"`
	// Services the monkey picks from; default every service.
	Services []string `yaml:"services" example:"[catalog, ratings]"`
	// Exclude lists services the monkey never picks.
	Exclude []string `yaml:"exclude" example:"[gateway]"`
	// AllowLast lets it take down the last serving instance of a service.
	// Off by default: a monkey that takes a whole service down tests
	// fallbacks, not failover, and should be asked for.
	AllowLast bool `yaml:"allow_last" example:"true"`
	// DryRun picks instances and records what it would do, and does
	// nothing.
	DryRun bool `yaml:"dry_run" example:"true"`
	// StopFor is how long stop freezes an instance; default 5s.
	StopFor time.Duration `yaml:"stop_for" example:"5s"`
	// SlowFor is how long slow lasts; default 10s.
	SlowFor time.Duration `yaml:"slow_for" example:"10s"`
	// Pause is slow's share of time frozen, in (0, 1); default 0.5.
	Pause float64 `yaml:"pause" example:"0.8"`
}

// Validate reports every setting of m that cannot work; services names
// the manifest's services (nil: not checked against any).
func (m Monkey) Validate(services []string) error {
	c := &checker{}
	c.monkey("chaos.monkey", &m, services)
	return Join(c.errs...)
}

func (c *checker) chaos(p string, ch *Chaos, services []string) {
	if ch.Monkey != nil {
		c.monkey(p+".monkey", ch.Monkey, services)
	}
}

func (c *checker) monkey(p string, m *Monkey, services []string) {
	for i, a := range m.Actions {
		if !slices.Contains(MonkeyActions, a) {
			c.errorf(item(p+".actions", i), "%q is not an action: want %s", a, strings.Join(MonkeyActions, ", "))
		}
	}
	switch {
	case m.Every < 0:
		c.errorf(p+".every", "%v must not be negative", m.Every)
	case m.Rate < 0 || m.Rate > 100:
		c.errorf(p+".rate", "%v: want a mean number of actions per second from 0 to 100, e.g. rate: 0.5", m.Rate)
	case m.Every > 0 && m.Rate > 0:
		c.errorf(p, "has both every: and rate:; keep every for a fixed interval, or rate for random times")
	}
	for key, d := range map[string]time.Duration{"for": m.For, "stop_for": m.StopFor, "slow_for": m.SlowFor} {
		if d < 0 {
			c.errorf(p+"."+key, "%v must not be negative", d)
		}
	}
	if m.Pause != 0 && !(m.Pause > 0 && m.Pause < 1) {
		c.errorf(p+".pause", "%v: want a share of time in (0, 1), e.g. pause: 0.5", m.Pause)
	}
	for _, list := range []struct {
		key   string
		names []string
	}{{"services", m.Services}, {"exclude", m.Exclude}} {
		for i, name := range list.names {
			switch {
			case services != nil && !slices.Contains(services, name):
				c.errorf(item(p+"."+list.key, i), "%q is not a service of this manifest; services: %s", name, strings.Join(services, ", "))
			case list.key == "exclude" && slices.Contains(m.Services, name):
				c.errorf(item(p+"."+list.key, i), "%q is both in services and in exclude", name)
			}
		}
	}
}
