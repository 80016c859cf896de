package balance

import "time"

// A frozen instance (SIGSTOP, a stuck runtime, a partition that drops
// packets) accepts connections, or seems to, and answers nothing; a busy
// one answers slowly. A caller cannot tell them apart from one slow
// attempt, and abandoning the attempt would throw away healthy slow work.
// What it can see is the host as a whole: a host that holds requests and
// has answered none of them for a while is quiet, and a quiet host that
// also fails a liveness check (a request the server answers without its
// handler, such as OPTIONS *) is silent: frozen, as far as anyone can
// tell. A busy host answers the check at once and keeps its requests.
//
// The Host records the facts (answers, when it went busy, checks); the
// client decides when to look and what a check is.

// Quiet returns how long, at now, the host has held requests without
// answering any: the time since its last answer or, if later, since it went
// from idle to busy. It is 0 while the host holds no request. A liveness
// check that succeeded counts as an answer.
func (h *Host) Quiet(now time.Time) time.Duration {
	if h.inFlight.Load() <= 0 {
		return 0
	}
	return max(time.Duration(int64(now.Sub(h.b.epoch))-h.answered.Load()), 0)
}

// Unanswered returns how long, at now, the host has gone without answering
// anything, busy or idle: the time since its last answer (a passed liveness
// check counts as one) or, if later, since the balancer first saw it. Quiet
// forgives idle time, for an idle host has nothing to answer; but a host
// whose every attempt ends unanswered and soon (each outrun by a hedge to
// another instance) is never quiet for long, and Unanswered is how a
// caller still sees that it answers nothing.
func (h *Host) Unanswered(now time.Time) time.Duration {
	return max(time.Duration(int64(now.Sub(h.b.epoch))-h.heard.Load()), 0)
}

// Silent reports whether a liveness check of the host failed in its current
// quiet period: it holds requests and answers nothing, not even the check.
// Any answer ends it, and so does the host going idle and busy again (a new
// quiet period is checked anew).
func (h *Host) Silent() bool {
	s := h.silent.Load()
	return s != 0 && s > h.answered.Load()
}

// ClaimCheck reports whether the caller may check the host's liveness now.
// One check runs at a time per host: true to one caller, who must then call
// CheckDone; false while another check is in flight.
func (h *Host) ClaimCheck() bool { return h.checking.CompareAndSwap(false, true) }

// CheckDone records the result of the check claimed with ClaimCheck: alive
// if the host answered it. An answer counts as one for Quiet; no answer
// makes the host Silent until it answers again, and ejects it at once (see
// EjectionConfig).
func (h *Host) CheckDone(alive bool) {
	now := h.b.nanotime()
	if alive {
		h.answered.Store(now)
		h.heard.Store(now)
	} else {
		h.silent.Store(max(now, h.answered.Load()+1))
		h.b.silenced(h, now)
	}
	h.checking.Store(false)
}
