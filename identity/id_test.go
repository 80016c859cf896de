package identity

import (
	"strings"
	"testing"
)

func TestParseID(t *testing.T) {
	tests := []struct {
		in      string
		want    ID
		wantErr string
	}{
		{"spiffe://flix/profiles", ID{"flix", "profiles"}, ""},
		{"spiffe://acme.example/api-v2", ID{"acme.example", "api-v2"}, ""},
		{"spiffe://a_b/c_d.e", ID{"a_b", "c_d.e"}, ""},
		{"http://flix/profiles", ID{}, "not a spiffe:// ID"},
		{"SPIFFE://flix/profiles", ID{}, "not a spiffe:// ID"},
		{"spiffe://flix", ID{}, "no service path"},
		{"spiffe://flix/", ID{}, "service name"},
		{"spiffe:///profiles", ID{}, "system name"},
		{"spiffe://flix/profiles/extra", ID{}, "service name"},
		{"spiffe://flix:443/profiles", ID{}, "system name"},
		{"spiffe://user@flix/profiles", ID{}, "system name"},
		{"spiffe://flix/profiles?x=1", ID{}, "service name"},
		{"spiffe://flix/profiles#f", ID{}, "service name"},
		{"spiffe://flix/Profiles", ID{}, "lowercase"},
		{"spiffe://Flix/profiles", ID{}, "lowercase"},
		{"spiffe://flix/pro%66iles", ID{}, "service name"},
		{"spiffe://flix/..", ID{}, "empty"},
		{"spiffe://flix/-x", ID{}, "starting with '-'"},
		{"spiffe://flix/10.0.0.1", ID{}, "IP address"},
		{"spiffe://flix/" + strings.Repeat("a", 64), ID{}, "1 to 63"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseID(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseID(%q) = %v, %v; want error containing %q", tt.in, got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ParseID(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
			}
			if got.String() != tt.in {
				t.Errorf("String() = %q, want %q", got.String(), tt.in)
			}
			if u := got.URL().String(); u != tt.in {
				t.Errorf("URL() = %q, want %q", u, tt.in)
			}
		})
	}
}

// FuzzParseID: any input either fails or round-trips exactly, and what
// parses is a valid ID (so a certificate or header can never smuggle a
// name that another check would read differently).
func FuzzParseID(f *testing.F) {
	for _, s := range []string{"spiffe://flix/profiles", "spiffe://a.b/c", "spiffe://flix/x/y", "spiffe://flix:1/x", "spiffe://%66/x", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		id, err := ParseID(s)
		if err != nil {
			return
		}
		if id.String() != s {
			t.Fatalf("ParseID(%q) = %v, which prints as %q", s, id, id.String())
		}
		if _, err := NewID(id.TrustDomain, id.Service); err != nil {
			t.Fatalf("ParseID(%q) accepted an invalid ID: %v", s, err)
		}
		back, err := ParseID(id.URL().String())
		if err != nil || back != id {
			t.Fatalf("URL() of %v does not parse back: %v, %v", id, back, err)
		}
	})
}
