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
// canceled. It lives in the call, so a call that is never hedged pays for
// none of it but the timer.
type hedge struct {
	delay time.Duration // 0: the call is not hedged
	timer *time.Timer
	done  chan hedgeResult // the hedge's one result, size 1

	// What the hedge needs to be sent; set before the timer is armed.
	t         *Transport
	c         *call
	dep       *dependency
	ctx       context.Context
	req       *http.Request
	deadline  time.Time
	instances []discovery.Instance
	first     [1]string // the first attempt's instance, for Pick

	mu           sync.Mutex
	won          int8 // 0 undecided, wonFirst or wonHedge
	cancelFirst  context.CancelCauseFunc
	cancelHedged context.CancelCauseFunc // the hedge's context; nil until sent
}

const (
	wonFirst = 1
	wonHedge = 2
)

// hedgeAttempt is what attempt needs to know of a hedge.
type hedgeAttempt struct{ n int }

// hedgeResult is how the hedge ended; sent is false if no hedge was sent
// (no other instance, the hedge budget spent, or the call already decided).
type hedgeResult struct {
	sent bool
	resp *http.Response
	f    failure
	a    Attempt
}

// arm is called by the first attempt once its context exists: it records
// how to cancel it and, for a hedged call, starts the hedge timer.
func (hg *hedge) arm(cancel context.CancelCauseFunc, instance string) {
	if hg.delay <= 0 || hg.timer != nil {
		return
	}
	hg.cancelFirst = cancel
	hg.first[0] = instance
	hg.timer = time.AfterFunc(hg.delay, hg.fire)
}

// fire sends the hedge, on the timer's goroutine, and reports its result on
// hg.done. If it answers first it cancels the first attempt.
func (hg *hedge) fire() {
	hg.mu.Lock()
	if hg.won != 0 || hg.ctx.Err() != nil {
		hg.mu.Unlock()
		hg.done <- hedgeResult{}
		return
	}
	h, err := hg.dep.bal.Pick(hg.instances, hg.first[:])
	if err != nil || !hg.dep.hedger.TryHedge() {
		hg.mu.Unlock()
		hg.done <- hedgeResult{}
		return
	}
	ctx, cancel := context.WithCancelCause(hg.ctx)
	hg.cancelHedged = cancel
	hg.mu.Unlock()

	req := hg.req
	if req.GetBody != nil {
		body, err := req.GetBody()
		if err != nil {
			h.Finish(h.Start(), balance.Canceled) // never sent: neutral for the host
			hg.done <- hedgeResult{}
			return
		}
		req = req.Clone(req.Context())
		req.Body = body
	}
	resp, f, a := hg.t.attempt(ctx, hg.c, hg.dep, req, h, hg.deadline, false, &hedgeAttempt{n: 1})
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
	}
	hg.mu.Unlock()
	hg.done <- hedgeResult{sent: true, resp: resp, f: f, a: a}
}

// hedged makes the call's first attempt on h, hedged after delay, and
// returns the answer used: the first attempt's, or the hedge's. If both
// failed it returns the first attempt's failure, with the hedge's recorded
// in c.failed.
func (t *Transport) hedged(ctx context.Context, c *call, req *http.Request, h *balance.Host, deadline time.Time, instances []discovery.Instance, delay time.Duration) (*http.Response, failure, Attempt) {
	hg := &c.hedge
	hg.delay, hg.done = delay, make(chan hedgeResult, 1)
	hg.t, hg.c, hg.dep, hg.ctx, hg.req, hg.deadline, hg.instances = t, c, c.dep, ctx, req, deadline, instances
	resp, f, a := t.attempt(ctx, c, c.dep, req, h, deadline, false, nil)
	t.observe(c.dep, a)
	hg.delay = 0 // later attempts are not hedged
	if hg.timer == nil || hg.timer.Stop() {
		return resp, f, a // answered before the hedge delay
	}
	hg.mu.Lock()
	if f == noFailure && hg.won == 0 {
		hg.won = wonFirst
		if hg.cancelHedged != nil {
			hg.cancelHedged(errHedgeLost)
		}
		hg.mu.Unlock()
		return resp, f, a
	}
	hg.mu.Unlock()
	if f == noFailure {
		// The hedge won the race to the lock: its answer is used.
		resp.Body.Close()
		resp = nil
	}
	// Bounded: the hedge has its own per-try timeout within the deadline.
	r := <-hg.done
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
