package gateway

import (
	"net/http"
	"net/netip"
	"testing"
)

func TestClientAddr(t *testing.T) {
	proxies := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("2001:db8:ffff::/48")}
	tests := []struct {
		name, peer string
		xff        []string
		proxies    []netip.Prefix
		want       string
	}{
		{"no proxies: the peer", "192.0.2.1:5000", []string{"203.0.113.1"}, nil, "192.0.2.1"},
		{"untrusted peer", "192.0.2.1:5000", []string{"203.0.113.1"}, proxies, "192.0.2.1"},
		{"trusted peer", "10.1.1.1:5000", []string{"203.0.113.1"}, proxies, "203.0.113.1"},
		{"nearest untrusted hop", "10.1.1.1:5000", []string{"198.51.100.7, 203.0.113.1, 10.2.2.2"}, proxies, "203.0.113.1"},
		{"hops over several fields", "10.1.1.1:5000", []string{"198.51.100.7", "203.0.113.1 , 10.2.2.2"}, proxies, "203.0.113.1"},
		{"all trusted: the farthest", "10.1.1.1:5000", []string{"10.3.3.3, 10.2.2.2"}, proxies, "10.3.3.3"},
		{"no field: the proxy", "10.1.1.1:5000", nil, proxies, "10.1.1.1"},
		{"malformed hop stops the walk", "10.1.1.1:5000", []string{"203.0.113.1, bogus, 10.2.2.2"}, proxies, "10.2.2.2"},
		{"empty hop stops the walk", "10.1.1.1:5000", []string{"203.0.113.1,"}, proxies, "10.1.1.1"},
		{"with ports", "10.1.1.1:5000", []string{"203.0.113.1:443"}, proxies, "203.0.113.1"},
		{"IPv6 with port", "[2001:db8:ffff::1]:5000", []string{"[2001:db8::7]:443"}, proxies, "2001:db8::7"},
		{"IPv4 in IPv6 is one client", "10.1.1.1:5000", []string{"::ffff:203.0.113.1"}, proxies, "203.0.113.1"},
		{"peer as mapped IPv6", "[::ffff:10.1.1.1]:5000", []string{"203.0.113.1"}, proxies, "203.0.113.1"},
	}
	for _, tt := range tests {
		r := &http.Request{RemoteAddr: tt.peer, Header: http.Header{}}
		if tt.xff != nil {
			r.Header["X-Forwarded-For"] = tt.xff
		}
		if got := clientAddr(r, tt.proxies); got != tt.want {
			t.Errorf("%s: clientAddr = %q, want %q", tt.name, got, tt.want)
		}
	}
}

// Without trusted proxies (the default), finding the client costs what
// it did: no allocation.
func TestClientAddrNoAllocs(t *testing.T) {
	r := &http.Request{RemoteAddr: "192.0.2.1:5000", Header: http.Header{"X-Forwarded-For": {"203.0.113.1"}}}
	proxies := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	if n := testing.AllocsPerRun(100, func() { clientAddr(r, nil); clientAddr(r, proxies) }); n != 0 {
		t.Errorf("%v allocations", n)
	}
}
