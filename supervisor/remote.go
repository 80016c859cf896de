package supervisor

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/shoal-dev/shoal"
)

// ErrNotRunning is returned (wrapped, with the folder) by FindRunning when
// no supervisor runs for a folder.
var ErrNotRunning = errors.New("no shoal up running")

// stateFile is <dir>/.shoal/state.json, written by Run while it runs.
type stateFile struct {
	PID      int       `json:"pid"`
	Control  string    `json:"control"` // host:port of the control API
	Manifest string    `json:"manifest"`
	Started  time.Time `json:"started"`
	Gossip   string    `json:"gossip"` // the supervisor's gossip address (the seed)
	Token    string    `json:"token"`  // sent in Shoal-Control-Token
	// StopTimeout bounds how long the supervisor takes to stop everything
	// after a down request (the drain timeout plus margins).
	StopTimeout time.Duration `json:"stop_timeout,omitempty"`
	// Dashboard is the dashboard's URL, its token included; "" if none.
	Dashboard string `json:"dashboard,omitempty"`
	// OTLP is the base URL of its OTLP/HTTP span receiver (what instances
	// get in OTEL_EXPORTER_OTLP_ENDPOINT).
	OTLP string `json:"otlp,omitempty"`
	// OTLPToken is the bearer token the receiver asks of a program that is
	// not one of the instances (which get their own); it may send spans of
	// any instance.
	OTLPToken string `json:"otlp_token,omitempty"`
	// OperatorKey is the path of the operator's private key
	// (OperatorKeyFile).
	OperatorKey string `json:"operator_key,omitempty"`
}

// Bounds of control calls, so that none hangs on a supervisor that is
// stopped (SIGSTOP) or wedged. Variables so tests can shorten them.
var (
	pingTimeout = 3 * time.Second  // FindRunning's check
	callTimeout = 10 * time.Second // ps, kill, logs without follow, the down request
	// opTimeout bounds scale and restart, which wait for new instances to
	// get ready and old ones to drain.
	opTimeout = 10 * time.Minute
	// defaultStopTimeout is Down's wait when the state file does not say.
	defaultStopTimeout = 3 * time.Minute
)

// NoAnswerError is returned by FindRunning when the supervisor recorded in
// the state file is alive but its control API fails: it is stopped
// (SIGSTOP), wedged, or the token does not match. The state file is kept.
type NoAnswerError struct {
	PID     int
	Control string
	Err     error
}

func (e *NoAnswerError) Error() string {
	return fmt.Sprintf("supervisor pid %d at %s does not answer: %v", e.PID, e.Control, e.Err)
}

func (e *NoAnswerError) Unwrap() error { return e.Err }

func statePath(dir string) string { return filepath.Join(dir, ".shoal", "state.json") }

func writeState(dir string, st stateFile) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return fmt.Errorf("supervisor: %w", err)
	}
	tmp := statePath(dir) + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("supervisor: write state file: %w", err)
	}
	if err := os.Rename(tmp, statePath(dir)); err != nil {
		return fmt.Errorf("supervisor: write state file: %w", err)
	}
	return nil
}

func readState(dir string) (stateFile, error) {
	var st stateFile
	b, err := os.ReadFile(statePath(dir))
	if err != nil {
		return st, err
	}
	err = json.Unmarshal(b, &st)
	return st, err
}

// removeStateIfOurs removes the state file unless another supervisor has
// replaced it.
func removeStateIfOurs(dir string, st stateFile) {
	if cur, err := readState(dir); err == nil && cur.PID == st.PID && cur.Token == st.Token {
		_ = os.Remove(statePath(dir))
	}
}

// Remote is a running supervisor, reached through its control API. Its
// methods are safe for concurrent use.
type Remote struct {
	Dir      string    // the manifest's folder
	PID      int       // of the supervisor process
	Control  string    // host:port of the control API
	Manifest string    // path of the manifest it runs
	Gossip   string    // its gossip address: a seed for joining the system
	Started  time.Time // when it started
	// Dashboard is the URL of its dashboard, with the token that opens it;
	// "" if it serves none.
	Dashboard string
	// OTLP is the base URL of its OTLP/HTTP span receiver: other programs
	// may send their spans there too (OTEL_EXPORTER_OTLP_ENDPOINT), bearing
	// OTLPToken (Authorization: Bearer).
	OTLP, OTLPToken string

	token       string
	stopTimeout time.Duration
	hc          *http.Client
}

// FindRunning returns the supervisor running for the manifest folder dir.
// It fails with an error wrapping ErrNotRunning when there is no state file,
// its process is gone, or nothing (or another process) listens at its
// control address; such a state file, left by a supervisor that died, is
// removed. A live supervisor whose control API fails (times out, refuses
// the token) gives a *NoAnswerError and the state file is kept.
func FindRunning(dir string) (*Remote, error) {
	notRunning := fmt.Errorf("%w for %s: start one with `shoal up`", ErrNotRunning, dir)
	st, err := readState(dir)
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			_ = os.Remove(statePath(dir)) // unreadable: nobody can use it
		}
		return nil, notRunning
	}
	if !alive(st.PID) {
		removeStateIfOurs(dir, st)
		return nil, notRunning
	}
	r := &Remote{Dir: dir, PID: st.PID, Control: st.Control, Manifest: st.Manifest, Gossip: st.Gossip, Started: st.Started, Dashboard: st.Dashboard, OTLP: st.OTLP, OTLPToken: st.OTLPToken,
		token: st.Token, stopTimeout: st.StopTimeout, hc: &http.Client{}}
	if r.stopTimeout <= 0 {
		r.stopTimeout = defaultStopTimeout
	}
	var ping pingResponse
	err = r.bounded(context.Background(), pingTimeout, func(ctx context.Context) error {
		return r.call(ctx, http.MethodGet, pathPing, nil, &ping)
	})
	switch {
	case errors.Is(err, syscall.ECONNREFUSED), err == nil && ping.PID != st.PID:
		// Nothing listens there, or someone else does: the supervisor died
		// (or is past closing its control API) and its pid may be reused.
		removeStateIfOurs(dir, st)
		return nil, notRunning
	case err != nil:
		return nil, &NoAnswerError{PID: st.PID, Control: st.Control, Err: err}
	}
	return r, nil
}

// alive reports whether a process with pid exists.
func alive(pid int) bool {
	if pid <= 0 {
		return false
	}
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// Error is an error answered by the control API.
type Error struct {
	Status  int    // HTTP status
	Code    string // e.g. unknown_service, bad_request, crash_loop
	Message string
}

func (e *Error) Error() string { return e.Message }

// bounded runs f with ctx limited to d; if that limit (not ctx's own) ends
// the call, the error says so.
func (r *Remote) bounded(ctx context.Context, d time.Duration, f func(ctx context.Context) error) error {
	cctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	err := f(cctx)
	if err != nil && ctx.Err() == nil && errors.Is(cctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("supervisor pid %d at %s did not answer within %v: %w", r.PID, r.Control, d, err)
	}
	return err
}

// call does one request; out may be nil.
func (r *Remote) call(ctx context.Context, method, path string, in, out any) error {
	resp, err := r.do(ctx, method, path, in)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("supervisor: control API %s: %w", path, err)
	}
	return nil
}

// do sends a request and turns a non-2xx answer into *Error.
func (r *Remote) do(ctx context.Context, method, path string, in any) (*http.Response, error) {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://"+r.Control+path, body)
	if err != nil {
		return nil, err
	}
	req.Header.Set(tokenHeader, r.token)
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := r.hc.Do(req)
	if err != nil {
		if errors.Is(err, syscall.ECONNREFUSED) {
			// A live supervisor keeps its control address open.
			return nil, fmt.Errorf("%w for %s: it has stopped (its control address %s refuses connections): %w", ErrNotRunning, r.Dir, r.Control, err)
		}
		return nil, err
	}
	if resp.StatusCode/100 != 2 {
		defer resp.Body.Close()
		var eb shoal.ErrorBody
		if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&eb); err != nil || eb.Error.Message == "" {
			return nil, &Error{Status: resp.StatusCode, Code: "http", Message: fmt.Sprintf("control API %s: %s", path, resp.Status)}
		}
		return nil, &Error{Status: resp.StatusCode, Code: eb.Error.Code, Message: eb.Error.Message}
	}
	return resp, nil
}

// PS lists every instance of this host (of the whole system on one
// machine).
func (r *Remote) PS(ctx context.Context) ([]InstanceStatus, error) {
	var out HostsStatus
	err := r.bounded(ctx, callTimeout, func(ctx context.Context) error {
		return r.call(ctx, http.MethodGet, pathPS, nil, &out)
	})
	return out.Instances, err
}

// HostsStatus is ps of a system on several hosts: every instance of every
// host that answered, and the hosts that did not.
type HostsStatus struct {
	Instances   []InstanceStatus `json:"instances"`
	Unreachable []PeerError      `json:"unreachable,omitempty"`
}

// PSHosts lists the instances of every host of the system, as the
// supervisor's peers in gossip report them (`shoal ps`). PS lists this
// host's only: what its kill, chaos and profile act on.
func (r *Remote) PSHosts(ctx context.Context) (HostsStatus, error) {
	var out HostsStatus
	err := r.bounded(ctx, callTimeout, func(ctx context.Context) error {
		return r.call(ctx, http.MethodGet, pathPS+"?hosts=all", nil, &out)
	})
	return out, err
}

// Scale sets the number of instances of service; it returns once the new
// instances are ready, or the removed ones have drained and stopped.
func (r *Remote) Scale(ctx context.Context, service string, n int) error {
	return r.bounded(ctx, opTimeout, func(ctx context.Context) error {
		return r.call(ctx, http.MethodPost, pathScale, scaleRequest{Service: service, Instances: n}, nil)
	})
}

// Restart replaces the instances of service one at a time, each replacement
// ready before the old instance stops; it returns when all are replaced.
func (r *Remote) Restart(ctx context.Context, service string) error {
	return r.bounded(ctx, opTimeout, func(ctx context.Context) error {
		return r.call(ctx, http.MethodPost, pathRestart, restartRequest{Service: service}, nil)
	})
}

// Kill sends signal (KILL, TERM, STOP, CONT, INT or HUP; "" means KILL) to
// the process of instance index of service (-1: a random one) and returns
// that instance's status as it was when signalled.
func (r *Remote) Kill(ctx context.Context, service string, index int, signal string) (InstanceStatus, error) {
	var st InstanceStatus
	err := r.bounded(ctx, callTimeout, func(ctx context.Context) error {
		return r.call(ctx, http.MethodPost, pathKill, killRequest{Service: service, Index: index, Signal: signal}, &st)
	})
	return st, err
}

// Logs writes the recent lines (up to 1000 per instance) of service (""
// for all) and index (-1 for all) to w as "service/index | line"; with
// follow it then writes new lines until ctx ends, and returns nil. Without
// follow the call is bounded in time; with it, only the wait for the
// answer's first byte is.
func (r *Remote) Logs(ctx context.Context, service string, index int, follow bool, w io.Writer) error {
	return r.FilteredLogs(ctx, LogFilter{Service: service, Index: index}, follow, w)
}

// FilteredLogs is Logs for the lines f selects, such as those of one
// trace.
func (r *Remote) FilteredLogs(ctx context.Context, f LogFilter, follow bool, w io.Writer) error {
	if !follow {
		return r.bounded(ctx, callTimeout, func(ctx context.Context) error {
			return r.logs(ctx, f, false, w)
		})
	}
	return r.logs(ctx, f, true, w)
}

func (r *Remote) logs(ctx context.Context, f LogFilter, follow bool, w io.Writer) error {
	q := url.Values{}
	if f.Service != "" {
		q.Set("service", f.Service)
	}
	q.Set("index", strconv.Itoa(f.Index))
	if f.TraceID != "" {
		q.Set("trace_id", f.TraceID)
	}
	if follow {
		q.Set("follow", "1")
	}
	// Only the wait for the answer's headers is bounded here (the body of a
	// follow lasts as long as ctx); Logs bounds the whole call otherwise.
	hctx, cancel := context.WithCancel(ctx)
	defer cancel()
	timer := time.AfterFunc(callTimeout, cancel)
	resp, err := r.do(hctx, http.MethodGet, pathLogs+"?"+q.Encode(), nil)
	if !timer.Stop() && err != nil && ctx.Err() == nil {
		return fmt.Errorf("supervisor pid %d at %s did not answer within %v: %w", r.PID, r.Control, callTimeout, err)
	}
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, err = io.Copy(w, resp.Body)
	if err != nil && ((follow && ctx.Err() != nil) || errors.Is(err, io.ErrUnexpectedEOF)) {
		return nil // the caller stopped following, or the supervisor stopped
	}
	return err
}

// Down asks the supervisor to stop everything gracefully and returns once it
// has finished: its process exited or it removed its state file (after
// releasing its lock, so a new shoal up may start at once). It waits at most
// the stop timeout the supervisor recorded.
func (r *Remote) Down(ctx context.Context) error {
	err := r.bounded(ctx, callTimeout, func(ctx context.Context) error {
		return r.call(ctx, http.MethodPost, pathDown, nil, nil)
	})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, r.stopTimeout)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		st, err := readState(r.Dir)
		if !alive(r.PID) || errors.Is(err, os.ErrNotExist) || (err == nil && st.Token != r.token) {
			return nil
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			return fmt.Errorf("supervisor (pid %d) is still stopping: %w", r.PID, context.Cause(ctx))
		}
	}
}
