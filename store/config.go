package store

import (
	"fmt"
	"strings"
)

// Config tunes how OpenConfig opens a database. The zero value works: zero
// fields take DefaultConfig's values.
type Config struct {
	// Synchronous is SQLite's synchronous setting (ignored on
	// PostgreSQL, whose synchronous_commit is the server's): when a
	// commit returns, how much of it is on disk.
	//
	//   - FULL (the default): the write-ahead log is synced at every
	//     commit. An acknowledged write survives a power cut or a kernel
	//     crash.
	//   - NORMAL: synced at checkpoints only. Survives the process being
	//     killed, not a power cut, which may lose the last commits
	//     (never corrupt the file). Cheaper: see docs/BENCHMARKS.md.
	//   - EXTRA: FULL, and the folder is synced when the log is reset.
	//   - OFF: never synced; for throwaway data.
	//
	// FULL is the default for every store, not just those that publish
	// events: every service acknowledges its writes to someone (a
	// client's 200, an idempotency record, the inbox's 204 that makes the
	// producer forget an event), and a commit lost after that breaks
	// what the acknowledgement promised, across services.
	//
	// EnvSynchronous overrides it in Open and OpenConfig.
	Synchronous string `json:"synchronous" yaml:"synchronous"`
}

// DefaultSynchronous is Config.Synchronous's default.
const DefaultSynchronous = "FULL"

// DefaultConfig syncs every commit to disk (synchronous FULL).
func DefaultConfig() Config { return Config{Synchronous: DefaultSynchronous} }

// withDefaults fills the zero fields of c from DefaultConfig, and spells
// Synchronous in upper case.
func (c Config) withDefaults() Config {
	if c.Synchronous == "" {
		c.Synchronous = DefaultSynchronous
	}
	c.Synchronous = strings.ToUpper(c.Synchronous)
	return c
}

// Validate reports a setting that cannot work, naming the field as
// written in config files. Zero fields are valid: they take their
// defaults.
func (c Config) Validate() error {
	switch c.withDefaults().Synchronous {
	case "OFF", "NORMAL", "FULL", "EXTRA":
		return nil
	}
	return fmt.Errorf("store: synchronous %q: want FULL, NORMAL, EXTRA or OFF", c.Synchronous)
}
