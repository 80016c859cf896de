package client

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/shoal-dev/shoal/balance"
)

// ErrInstanceSilent: the attempt's instance held it, answered nothing (no
// other request either) and did not answer a liveness check: it is frozen
// (SIGSTOP, a stuck runtime, a partition), so the attempt went elsewhere.
var ErrInstanceSilent = errors.New("instance silent: no answer to anything, not even a liveness check")

// The silent-instance rule. An attempt may use the whole deadline: a slow
// answer is not a failure. But a frozen instance answers nothing at all, and
// an attempt that could fail over should not wait out its deadline there.
// So an attempt looks at its instance every so often while it waits for
// headers:
//
//   - if the instance answered anything (to any attempt of this Transport)
//     within the last quietAfter, it is alive: wait on;
//   - otherwise it is quiet: one attempt checks it with OPTIONS * (answered
//     by the HTTP server itself, before any handler or admission control; any
//     HTTP answer counts) bounded by checkTimeout. An answer proves it alive
//     and counts as one: every attempt on it waits on. No answer makes it
//     silent and ejects it at once (balance.Host.CheckDone), and every
//     attempt on it that could fail over ends with ErrInstanceSilent.
//
// Hedging can hide a dead instance from that rule: each attempt on it is
// outrun by a hedge to another instance within the hedge delay, long
// before it could be quiet, so nothing ever checks it, it stays in
// rotation, and every pick of it costs a hedge (or, once the hedge budget
// is spent, a quiet period and a check). So an attempt that loses a hedge
// race has its instance checked in the background (suspect) if that has
// answered nothing, idle time included, for quietAfter.
//
// A busy instance answers other requests, or the check, within milliseconds;
// a frozen one answers nothing. The checks of one attempt back off (the
// interval doubles up to checkMax), so a long report costs a few checks.
const (
	quietAfter   = 250 * time.Millisecond
	checkTimeout = 500 * time.Millisecond
	checkMax     = time.Second
	// recheck is how soon an attempt looks again while another attempt's
	// check of the same instance is in flight.
	recheck = checkTimeout / 5
)

// watch is an attempt's one timer. It fires for up to three reasons, each
// optional: the hedge delay (the first attempt of a hedged call), the
// silent-instance checks (an attempt that could fail over), and an explicit
// per-try timeout (Config.PerTryTimeout). It covers the wait for response
// headers only: end stops it as the attempt gets its answer.
type watch struct {
	rt     http.RoundTripper // the attempt's, for the liveness check
	host   *balance.Host
	scheme string
	cancel context.CancelCauseFunc

	mu       sync.Mutex
	timer    *time.Timer
	hedge    *hedge    // sends the hedge at hedgeAt; nil once sent or when none
	hedgeAt  time.Time //
	perTryAt time.Time // zero: no per-try timeout
	checkAt  time.Time // zero: no check due
	every    time.Duration
	ended    bool
	cause    error // ErrAttemptTimeout or ErrInstanceSilent once the watch ended the attempt
}

// start arms the watch of an attempt begun at now; check says whether to
// watch for a silent instance. It arms no timer if there is nothing to
// watch for.
func (w *watch) start(now time.Time, perTry time.Duration, check bool) {
	if perTry > 0 {
		w.perTryAt = now.Add(perTry)
	}
	if check {
		w.every = quietAfter
		w.checkAt = now.Add(quietAfter)
	}
	next := w.next()
	if next.IsZero() {
		return
	}
	w.mu.Lock() // fire may run as soon as the timer exists
	w.timer = time.AfterFunc(next.Sub(now), w.fire)
	w.mu.Unlock()
}

// next is the earliest pending reason to fire; zero if none. Caller holds
// w.mu or has not armed the timer yet.
func (w *watch) next() time.Time {
	var at time.Time
	for _, t := range [...]time.Time{w.hedgeAt, w.perTryAt, w.checkAt} {
		if !t.IsZero() && (at.IsZero() || t.Before(at)) {
			at = t
		}
	}
	return at
}

// rearm sets the timer for the next reason, if any. Caller holds w.mu.
func (w *watch) rearm(now time.Time) {
	if next := w.next(); !next.IsZero() {
		w.timer.Reset(max(next.Sub(now), 0))
	}
}

// end is called once the attempt has its answer or error: the timer does
// nothing from now on. It reports why the watch ended the attempt, if it
// did (ErrAttemptTimeout, ErrInstanceSilent), else nil.
func (w *watch) end() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.ended = true
	if w.timer != nil {
		w.timer.Stop()
	}
	return w.cause
}

// stop ends the attempt for cause. Caller holds w.mu.
func (w *watch) stop(cause error) {
	w.cause = cause
	w.cancel(cause)
}

// fire runs on the timer's goroutine. It does at most one blocking thing
// (send the hedge, or check the instance) and re-arms the timer first for
// whatever else is pending, so that runs on a goroutine of its own.
func (w *watch) fire() {
	w.mu.Lock()
	if w.ended || w.cause != nil {
		w.mu.Unlock()
		return
	}
	now := time.Now()
	if !w.perTryAt.IsZero() && !now.Before(w.perTryAt) {
		w.stop(ErrAttemptTimeout)
		w.mu.Unlock()
		return
	}
	if w.hedge != nil && !now.Before(w.hedgeAt) && w.hedge.t.localLate(w.hedge.delay) {
		// This process is itself late to run its goroutines
		// (saturation.go): the attempt is late because of us, and a hedge
		// would only add load. Ask again after another delay.
		w.hedgeAt = now.Add(w.hedge.delay)
		w.rearm(now)
		w.mu.Unlock()
		return
	}
	if w.hedge != nil && !now.Before(w.hedgeAt) {
		hg := w.hedge
		w.hedge, w.hedgeAt = nil, time.Time{}
		w.rearm(now)
		w.mu.Unlock()
		hg.launch()
		return
	}
	if w.checkAt.IsZero() || now.Before(w.checkAt) {
		w.rearm(now) // woken early: a Reset raced with the timer
		w.mu.Unlock()
		return
	}
	switch q := w.host.Quiet(now); {
	case q < quietAfter:
		// It answered lately: alive. Look again later, less often.
		w.checkAt = now.Add(max(quietAfter-q, w.every))
		w.every = min(2*w.every, checkMax)
	case w.host.Silent():
		w.stop(ErrInstanceSilent)
		w.mu.Unlock()
		return
	case w.host.ClaimCheck():
		w.checkAt = time.Time{}
		w.rearm(now)
		w.mu.Unlock()
		w.check()
		return
	default:
		w.checkAt = now.Add(recheck) // another attempt is checking it
	}
	w.rearm(now)
	w.mu.Unlock()
}

// check asks the quiet instance whether it is alive and acts on the answer.
func (w *watch) check() {
	alive := alive(w.rt, w.scheme, w.host.Instance().Addr)
	w.host.CheckDone(alive)
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.ended || w.cause != nil {
		return
	}
	if !alive {
		w.stop(ErrInstanceSilent)
		return
	}
	now := time.Now()
	w.checkAt = now.Add(w.every)
	w.every = min(2*w.every, checkMax)
	w.rearm(now)
}

// suspect checks h, whose attempt lost a hedge race, if it has answered
// nothing for quietAfter and no other check of it is in flight. The check
// runs on a goroutine of its own, which ends within checkTimeout.
func suspect(rt http.RoundTripper, scheme string, h *balance.Host) {
	if h.Unanswered(time.Now()) < quietAfter || !h.ClaimCheck() {
		return
	}
	go func() { h.CheckDone(alive(rt, scheme, h.Instance().Addr)) }()
}

// alive reports whether the server at addr answers OPTIONS *, sent through
// rt, within checkTimeout. Go's net/http server answers it itself (neither the handler
// nor admission control sees it), and any HTTP answer, an error status
// included, proves a live process; a frozen one accepts the connection (the
// kernel does) and answers nothing.
func alive(rt http.RoundTripper, scheme, addr string) bool {
	ctx, cancel := context.WithTimeout(context.Background(), checkTimeout)
	defer cancel()
	req := (&http.Request{
		Method: http.MethodOptions,
		URL:    &url.URL{Scheme: scheme, Host: addr, Opaque: "*"},
		Host:   addr,
		Header: http.Header{},
	}).WithContext(ctx)
	resp, err := rt.RoundTrip(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return true
}
