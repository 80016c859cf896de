package client

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"time"

	"github.com/shoal-dev/shoal/balance"
	"github.com/shoal-dev/shoal/discovery"
)

// Causes with which a hedged call cancels the attempt whose answer it does
// not use.
var (
	errHedgeWon  = errors.New("a hedged attempt answered first")
	errHedgeLost = errors.New("the first attempt answered first")
)

// hedge is the state a call's first attempt shares with its hedge, a
// second attempt on another instance sent when the first has not answered
// after the hedge delay. The first answer wins; the other attempt is
// canceled. Sending a hedge never cancels the attempt it races. It lives in
// the call and the first attempt's watch sends it (launch), on the watch's
// one timer, so a hedged call that is answered in time costs nothing more
// than one that is not hedged.
type hedge struct {
	delay time.Duration // 0: the call is not hedged

	// What the hedge needs to be sent; set before the first attempt starts.
	t         *Transport
	c         *call
	dep       *dependency
	ctx       context.Context
	req       *http.Request
	deadline  time.Time
	instances []discovery.Instance
	first     [1]string // the first attempt's instance, for Pick
	traced    bool      // the call is recorded: the hedge gets a span

	mu           sync.Mutex
	done         sync.Cond // signalled when result is set; L is &mu
	launched     bool      // the hedge delay passed: fire ran or is running
	won          int8      // 0 undecided, wonFirst or wonHedge
	cancelFirst  context.CancelCauseFunc
	cancelHedged context.CancelCauseFunc // the hedge's context; nil until sent
	result       *hedgeResult            // set by fire
}

const (
	wonFirst = 1
	wonHedge = 2
)

// hedgeAttempt is what attempt and a hedge tell each other.
type hedgeAttempt struct {
	n      int                     // the attempt's number
	cancel context.CancelCauseFunc // set by attempt
}

// hedgeResult is how the hedge ended; sent is false if no hedge was sent
// (no other instance, the hedge budget spent, or the call already decided).
type hedgeResult struct {
	sent bool
	resp *http.Response
	f    failure
	a    Attempt
}

// arm is called by the first attempt once its context exists. For a hedged
// call it has the attempt's watch send the hedge after the hedge delay.
func (hg *hedge) arm(w *watch, cancel context.CancelCauseFunc, instance string, start time.Time) {
	if hg.delay <= 0 {
		return
	}
	hg.cancelFirst = cancel
	hg.first[0] = instance
	w.hedge, w.hedgeAt = hg, start.Add(hg.delay)
}

// launch sends the hedge, on the watch's goroutine. From now on the first
// attempt, if it fails, waits for the hedge's result.
func (hg *hedge) launch() {
	hg.mu.Lock()
	hg.launched = true
	hg.mu.Unlock()
	hg.fire()
}

// fire sends the hedge, on the timer's goroutine, and leaves its result in
// hg.result. If it answers first it cancels the first attempt.
func (hg *hedge) fire() {
	hg.mu.Lock()
	if hg.won != 0 || hg.ctx.Err() != nil {
		hg.finish(&hedgeResult{})
		return
	}
	h, err := hg.dep.bal.Pick(hg.instances, hg.first[:])
	if err != nil {
		hg.finish(&hedgeResult{})
		return
	}
	if !hg.dep.hedger.TryHedge() {
		h.Unpick()
		hg.finish(&hedgeResult{})
		return
	}
	ctx, cancel := context.WithCancelCause(hg.ctx)
	hg.cancelHedged = cancel
	hg.mu.Unlock()

	req := hg.req
	if req.GetBody != nil {
		body, err := req.GetBody()
		if err != nil {
			h.Unpick()
			cancel(nil)
			hg.mu.Lock()
			hg.cancelHedged = nil
			hg.finish(&hedgeResult{})
			return
		}
		req = req.Clone(req.Context())
		req.Body = body
	}
	ha := hedgeAttempt{n: 1}
	resp, f, a := hg.t.attempt(ctx, hg.c, hg.dep, req, h, hg.deadline, false, &ha)
	hg.t.observe(hg.dep, a)
	hg.mu.Lock()
	switch {
	case f == noFailure && hg.won == 0:
		hg.won = wonHedge
		hg.cancelFirst(errHedgeWon)
	case f == noFailure:
		// The first attempt answered while this one was on its way back.
		resp.Body.Close()
		resp, f = nil, hedgeLost
		ha.cancel(errHedgeLost)
	}
	hg.finish(&hedgeResult{sent: true, resp: resp, f: f, a: a})
}

// finish records the hedge's result and wakes the call. Called with hg.mu
// held; releases it.
func (hg *hedge) finish(r *hedgeResult) {
	hg.result = r
	hg.done.Broadcast()
	hg.mu.Unlock()
}

// hedged makes the call's first attempt on h, hedged after delay, and
// returns the answer used: the first attempt's, or the hedge's. If both
// failed it returns the first attempt's failure, with the hedge's recorded
// in c.failed.
func (t *Transport) hedged(ctx context.Context, c *call, req *http.Request, h *balance.Host, deadline time.Time, instances []discovery.Instance, delay time.Duration) (*http.Response, failure, Attempt) {
	hg := &c.hedge
	hg.delay = delay
	hg.done.L = &hg.mu
	hg.t, hg.c, hg.dep, hg.ctx, hg.req, hg.deadline, hg.instances = t, c, c.dep, ctx, req, deadline, instances
	hg.traced = c.trace.span != nil
	resp, f, a := t.attempt(ctx, c, c.dep, req, h, deadline, false, nil)
	t.observe(c.dep, a)
	hg.delay = 0 // later attempts are not hedged
	hg.mu.Lock()
	if hg.won == 0 && (f == noFailure || !hg.launched) {
		// Answered first, or failed before the hedge delay: no hedge is
		// sent from now on, and one on its way is canceled.
		hg.won = wonFirst
		if hg.cancelHedged != nil {
			hg.cancelHedged(errHedgeLost)
		}
		hg.mu.Unlock()
		return resp, f, a
	}
	// Bounded: the hedge ends by the call's deadline at the latest.
	for hg.result == nil {
		hg.done.Wait()
	}
	r := hg.result
	hg.mu.Unlock()
	if f == noFailure {
		// The hedge won the race to the lock: its answer is used.
		resp.Body.Close()
		resp = nil
	}
	if !r.sent {
		return resp, f, a
	}
	c.tried[c.n] = r.a.Instance
	c.n++
	if r.f == noFailure {
		c.dep.hedger.Won()
		if resp != nil {
			drain(resp.Body)
		}
		c.cancelAttempt(nil)
		c.cancelAttempt = hg.cancelHedged
		return r.resp, noFailure, r.a
	}
	c.failed = append(c.failed, r.a)
	if r.resp != nil {
		drain(r.resp.Body)
	}
	hg.cancelHedged(nil)
	return resp, f, a
}
