package discovery

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
)

// addrRule decides whether the HTTP address a member advertises is
// consistent with where it gossips from (see Config.AllowedCIDRs and
// Config.ServeOnOtherIP, and "Advertised addresses" in the package doc).
type addrRule struct {
	cidrs   []netip.Prefix
	otherIP bool
}

func newAddrRule(c Config) addrRule {
	r := addrRule{otherIP: c.ServeOnOtherIP}
	for _, s := range c.AllowedCIDRs {
		r.cidrs = append(r.cidrs, netip.MustParsePrefix(s).Masked()) // validated
	}
	return r
}

// check reports why inst, heard from a member gossiping from gossipIP, must
// not enter the catalog, or nil. inst is already valid.
func (r addrRule) check(inst Instance, gossipIP net.IP) error {
	if r.otherIP && len(r.cidrs) == 0 {
		return nil
	}
	host, _, _ := net.SplitHostPort(inst.Addr) // Validate checked it
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return fmt.Errorf("HTTP address %q is a host name: only an IP address can be checked against where the member gossips from", inst.Addr)
	}
	ip = ip.Unmap().WithZone("")
	if len(r.cidrs) > 0 && !r.allowed(ip) {
		return fmt.Errorf("HTTP address %q is outside AllowedCIDRs", inst.Addr)
	}
	if r.otherIP {
		return nil
	}
	g, ok := netip.AddrFromSlice(gossipIP)
	if !ok {
		return errors.New("no gossip address")
	}
	g = g.Unmap()
	switch {
	case g.IsLoopback() && !ip.IsLoopback():
		return fmt.Errorf("HTTP address %q is not loopback, but the member gossips from loopback %s", inst.Addr, g)
	case !g.IsLoopback() && ip != g:
		return fmt.Errorf("HTTP address %q is not on the member's gossip address %s (set ServeOnOtherIP if that is intended)", inst.Addr, g)
	}
	return nil
}

func (r addrRule) allowed(ip netip.Addr) bool {
	for _, p := range r.cidrs {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}
