package gateway

// Client addresses: who a request came from, for per-client rate limits,
// the access log and the services' X-Forwarded-For. The connection's peer,
// unless the configuration names it a trusted proxy (a load balancer in
// front of the gateway): then X-Forwarded-For says, read from the right
// (the hop the nearest proxy added) and only as far as the proxies that
// wrote it are trusted. Everything left of the first untrusted hop was
// written by the client, who can claim any address there.

import (
	"net/http"
	"net/netip"
	"net/textproto"
	"strings"
)

// clientAddr returns the address r came from, as clientIP does when no
// proxy is trusted. A malformed hop stops the walk at the last address
// read, which a trusted proxy wrote. It allocates only for requests from a
// trusted proxy.
func clientAddr(r *http.Request, proxies []netip.Prefix) string {
	peer := clientIP(r)
	if len(proxies) == 0 {
		return peer
	}
	a, ok := hopAddr(peer)
	if !ok || !trustedProxy(a, proxies) {
		return peer
	}
	vs := r.Header["X-Forwarded-For"]
	for i := len(vs) - 1; i >= 0; i-- {
		rest := vs[i]
		for rest != "" {
			hop := rest
			if j := strings.LastIndexByte(rest, ','); j >= 0 {
				hop, rest = rest[j+1:], rest[:j]
			} else {
				rest = ""
			}
			h, ok := hopAddr(textproto.TrimString(hop))
			if !ok {
				return a.String()
			}
			a = h
			if !trustedProxy(a, proxies) {
				return a.String()
			}
		}
	}
	// Proxies all the way: the farthest one is as close to the client as
	// anyone says.
	return a.String()
}

// hopAddr reads an address as peers and proxies write it: an IP, or an
// IP and port ("192.0.2.1:443", "[2001:db8::1]:443"), IPv4 in IPv6 unmapped
// so that one client has one spelling (and one rate-limit bucket).
func hopAddr(s string) (netip.Addr, bool) {
	a, err := netip.ParseAddr(s)
	if err != nil {
		ap, err := netip.ParseAddrPort(s)
		if err != nil {
			return netip.Addr{}, false
		}
		a = ap.Addr()
	}
	return a.Unmap().WithZone(""), true
}

func trustedProxy(a netip.Addr, proxies []netip.Prefix) bool {
	for _, p := range proxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}
