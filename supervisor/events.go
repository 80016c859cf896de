package supervisor

import (
	"sync"
	"time"
)

// Event kinds in the event feed.
const (
	EventReady     = "ready"     // an instance serves (first start or after a restart)
	EventExit      = "exit"      // an instance exited unasked (it is restarted)
	EventUnhealthy = "unhealthy" // a serving instance failed its health checks
	EventHealthy   = "healthy"   // an unhealthy instance answers again
	EventStop      = "stop"      // an instance was stopped on purpose
	EventSignal    = "signal"    // kill, stop or continue sent by a user
	EventScale     = "scale"     // a service was scaled
	EventRestart   = "restart"   // a rolling restart began or ended
	EventBreaker   = "breaker"   // callers' breakers opened or closed for an instance
	EventEjection  = "ejection"  // callers refused to eject an instance (cap reached)
	EventReload    = "reload"    // a gateway loaded (or refused) its routes
	EventChaos     = "chaos"     // the monkey or an experiment acted on an instance (chaos.go)
)

// Event is one entry of the event feed.
type Event struct {
	Seq      uint64    `json:"seq"` // from 1, in order
	Time     time.Time `json:"time"`
	Kind     string    `json:"kind"`
	Level    string    `json:"level"` // info, warn or error
	Service  string    `json:"service,omitempty"`
	Instance string    `json:"instance,omitempty"` // service/index
	Message  string    `json:"message"`
}

// eventRing keeps the last eventsKept events. Safe for concurrent use;
// add never blocks.
type eventRing struct {
	mu     sync.Mutex
	buf    []Event // oldest first once full, from next
	next   int
	seq    uint64
	notify func() // called after each add, outside the lock
}

// eventsKept bounds the event feed.
const eventsKept = 1000

func (r *eventRing) add(e Event) {
	r.mu.Lock()
	r.seq++
	e.Seq = r.seq
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	if e.Level == "" {
		e.Level = "info"
	}
	if len(r.buf) < eventsKept {
		r.buf = append(r.buf, e)
	} else {
		r.buf[r.next] = e
		r.next = (r.next + 1) % eventsKept
	}
	notify := r.notify
	r.mu.Unlock()
	if notify != nil {
		notify()
	}
}

// since returns the events with Seq > after, oldest first, at most limit
// (the newest ones; 0: all).
func (r *eventRing) since(after uint64, limit int) []Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []Event
	n := len(r.buf)
	for i := range n {
		if e := r.buf[(r.next+i)%n]; e.Seq > after {
			out = append(out, e)
		}
	}
	if limit > 0 && len(out) > limit {
		out = out[len(out)-limit:]
	}
	return out
}
