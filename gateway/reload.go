package gateway

import (
	"bytes"
	"context"
	"crypto/sha256"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/shoal-dev/shoal/manifest"
)

// DefaultReloadInterval is how often a Reloader checks its file.
const DefaultReloadInterval = time.Second

// Reloader keeps a Gateway's routes in step with the gateway: key of a
// manifest file. Reload applies the file at once (call it at start, and on
// SIGHUP); Run checks the file every Interval and reloads it when it
// changed. A file that does not validate is refused, its errors (with
// file:line) logged at ERROR, and the routes in use stay; a good one
// replaces them atomically and is logged at INFO.
//
// Editors save by writing a new file and renaming it over the old one, so
// the path is looked up afresh at every check: a change is a new
// modification time or size, confirmed by a new content hash.
type Reloader struct {
	// Interval between checks of the file; zero means
	// DefaultReloadInterval. Set it before Run.
	Interval time.Duration

	path string
	gw   *Gateway
	log  *slog.Logger

	mu      sync.Mutex // serializes reloads; guards the fields below
	modTime time.Time
	size    int64
	sum     [sha256.Size]byte
	read    bool // the file has been read once
	missing bool // the last check could not stat the file (logged once)
}

// NewReloader returns a Reloader applying the file at path to gw, logging
// to logger (nil means slog.Default()). It does no I/O.
func NewReloader(path string, gw *Gateway, logger *slog.Logger) *Reloader {
	if logger == nil {
		logger = slog.Default()
	}
	return &Reloader{path: path, gw: gw, log: logger}
}

// Reload reads the file and applies it, changed or not. It returns the
// error that made it keep the routes in use, after logging it. Safe to
// call from any goroutine, also while Run runs.
func (r *Reloader) Reload() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	fi, err := os.Stat(r.path)
	if err != nil {
		r.log.Error("gateway config not reloaded: keeping the routes in use", "file", r.path, "err", err)
		return err
	}
	return r.load(fi, true)
}

// Run checks the file every Interval until ctx ends, then returns nil.
func (r *Reloader) Run(ctx context.Context) error {
	iv := r.Interval
	if iv <= 0 {
		iv = DefaultReloadInterval
	}
	tick := time.NewTicker(iv)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			r.check()
		}
	}
}

// check reloads the file if it changed since it was last read.
func (r *Reloader) check() {
	r.mu.Lock()
	defer r.mu.Unlock()
	fi, err := os.Stat(r.path)
	if err != nil {
		if !r.missing {
			r.missing = true
			r.log.Error("gateway config unreadable: keeping the routes in use", "file", r.path, "err", err)
		}
		return
	}
	r.missing = false
	if r.read && fi.ModTime().Equal(r.modTime) && fi.Size() == r.size {
		return
	}
	_ = r.load(fi, false) // logged
}

// load reads the file whose stat is fi and applies it if its content
// changed, or always with force (key files it names may have changed).
// r.mu is held.
func (r *Reloader) load(fi os.FileInfo, force bool) error {
	data, err := os.ReadFile(r.path)
	if err != nil {
		r.log.Error("gateway config unreadable: keeping the routes in use", "file", r.path, "err", err)
		return err
	}
	sum := sha256.Sum256(data)
	changed := !r.read || !bytes.Equal(sum[:], r.sum[:])
	// Noted even when refused: a bad file is reported once, not every
	// Interval, and retried when it changes again.
	r.modTime, r.size, r.sum, r.read = fi.ModTime(), fi.Size(), sum, true
	if !changed && !force {
		return nil
	}
	cfg, err := manifest.ParseGateway(r.path, data)
	if err == nil {
		dir := filepath.Dir(r.path)
		if abs, aerr := filepath.Abs(dir); aerr == nil {
			dir = abs
		}
		err = r.gw.SetConfig(cfg, dir)
	}
	if err != nil {
		r.log.Error("gateway config refused: keeping the routes in use", "file", r.path, "err", err)
		return err
	}
	r.log.Info("gateway config loaded", "file", r.path, "routes", len(cfg.Routes),
		"default_routes", cfg.DefaultRouting())
	return nil
}
