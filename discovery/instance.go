package discovery

// State is the lifecycle state an instance advertises in gossip.
type State string

// Instance states. A draining instance still answers the requests it has, but
// must not be given new ones.
const (
	StateServing  State = "serving"
	StateDraining State = "draining"
)

// Instance is one running copy of a service, as gossip knows it.
type Instance struct {
	ID      string `json:"id"`      // unique per process; also the memberlist node name
	Service string `json:"service"` // logical service name, e.g. "ratings"
	Addr    string `json:"addr"`    // host:port where it serves HTTP
	Version string `json:"version,omitempty"`
	State   State  `json:"state"`
}
