package chaos

import (
	"context"
	"time"
)

// Header carries a fault token from hop to hop: the SDK's server reads
// (and removes) it from a request, and its client transport sets it on
// every call made with that request's context.
const Header = "Shoal-Fault"

// InjectedHeader is set on an answer a fault changed (delayed, or made an
// error), naming the fault: a caller looking at a strange answer learns
// that it was rehearsal.
const InjectedHeader = "Shoal-Fault-Injected"

// Set is the faults of one verified token, sorted for the service that
// verified it. It is immutable and safe to share.
type Set struct {
	token   string
	faults  []Fault
	here    []Fault            // service hops of the verifying service
	links   map[string][]Fault // its link hops, by callee
	expires time.Time
}

func newSet(token string, faults []Fault, self string, expires time.Time) *Set {
	s := &Set{token: token, faults: faults, expires: expires}
	for _, f := range faults {
		switch {
		case !f.Link() && f.Service == self:
			s.here = append(s.here, f)
		case f.Link() && f.Caller == self:
			if s.links == nil {
				s.links = map[string][]Fault{}
			}
			s.links[f.Service] = append(s.links[f.Service], f)
		}
	}
	return s
}

// Token is the signed token, as the Shoal-Fault header carries it on.
func (s *Set) Token() string { return s.token }

// Faults are all the token's faults, for every hop.
func (s *Set) Faults() []Fault { return s.faults }

// Here are the faults for the verifying service's own hop.
func (s *Set) Here() []Fault { return s.here }

// Link returns the faults for the verifying service's calls to service.
func (s *Set) Link(service string) []Fault { return s.links[service] }

// Expires is when the token stops being honoured.
func (s *Set) Expires() time.Time { return s.expires }

type setKey struct{}

// NewContext returns ctx carrying set: calls made with it carry the token
// on, and a client transport applies the set's link faults to them.
func NewContext(ctx context.Context, set *Set) context.Context {
	return context.WithValue(ctx, setKey{}, set)
}

// FromContext returns the Set ctx carries, or nil.
func FromContext(ctx context.Context) *Set {
	s, _ := ctx.Value(setKey{}).(*Set)
	return s
}

// Plan is what the faults of one hop, drawn for one request, do to it:
// the latency to add first, then the fault that ends the request there,
// if any.
type Plan struct {
	Delay time.Duration
	End   *Fault // nil: the request goes on after Delay
	// Applied lists the faults that fired, for InjectedHeader.
	Applied []Fault
}

// Draw decides what faults (one hop's, in order) do to one request: each
// fires with its fraction; delays add up; the first other fault that
// fires ends the request there and those after it are not drawn.
func Draw(faults []Fault) Plan {
	var p Plan
	for i := range faults {
		f := &faults[i]
		if !f.fires() {
			continue
		}
		p.Applied = append(p.Applied, *f)
		if f.terminal() {
			p.End = f
			return p
		}
		p.Delay += f.Delay
	}
	return p
}

// Wait blocks for d or until ctx ends, and returns ctx's cause then.
func Wait(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}
