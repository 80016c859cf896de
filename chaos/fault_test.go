package chaos

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestParse(t *testing.T) {
	tests := []struct {
		in   string
		want []Fault
		text string // String of the faults, if not in
	}{
		{"ratings:delay=300ms", []Fault{{Service: "ratings", Action: Delay, Delay: 300 * time.Millisecond, Fraction: 1}}, ""},
		{"catalog:error=503,p=0.5", []Fault{{Service: "catalog", Action: Error, Status: 503, Fraction: 0.5}}, ""},
		{"api>ratings:reset", []Fault{{Caller: "api", Service: "ratings", Action: Reset, Fraction: 1}}, ""},
		{"search:stall; api>search:blackhole,p=0.25", []Fault{
			{Service: "search", Action: Stall, Fraction: 1},
			{Caller: "api", Service: "search", Action: Blackhole, Fraction: 0.25},
		}, "search:stall;api>search:blackhole,p=0.25"},
		{"search:stall=2s", []Fault{{Service: "search", Action: Stall, Delay: 2 * time.Second, Fraction: 1}}, ""},
		{" ratings : abort , p=1 ;", []Fault{{Service: "ratings", Action: Abort, Fraction: 1}}, "ratings:abort"},
		{"gateway>catalog:delay=1m30s", []Fault{{Caller: "gateway", Service: "catalog", Action: Delay, Delay: 90 * time.Second, Fraction: 1}}, "gateway>catalog:delay=1m30s"},
	}
	for _, tt := range tests {
		got, err := Parse(tt.in)
		if err != nil {
			t.Errorf("Parse(%q): %v", tt.in, err)
			continue
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("Parse(%q) (-want +got):\n%s", tt.in, diff)
		}
		text := tt.text
		if text == "" {
			text = tt.in
		}
		if s := Format(got); s != text {
			t.Errorf("Format(Parse(%q)) = %q, want %q", tt.in, s, text)
		}
	}
}

func TestParseRefuses(t *testing.T) {
	tests := []struct{ in, says string }{
		{"", "no fault"},
		{"ratings", "hop:action"},
		{"Ratings:abort", "not a service name"},
		{"ratings:explode", "unknown action"},
		{"ratings:delay", "needs a duration"},
		{"ratings:delay=-1s", "positive duration"},
		{"ratings:delay=11m", "positive duration"},
		{"ratings:error=200", "400 to 599"},
		{"ratings:error=x", "400 to 599"},
		{"ratings:abort=1", "takes no value"},
		{"ratings:reset", "link hop"},
		{"ratings:blackhole", "link hop"},
		{"api>ratings:stall", "service hop"},
		{"ratings:abort,p=0", "fraction"},
		{"ratings:abort,p=1.5", "fraction"},
		{"ratings:abort,q=1", "unknown option"},
		{">ratings:abort", "caller"},
		{strings.Repeat("a:abort;", 17), "at most 16"},
		{strings.Repeat("x", 2000), "at most"},
	}
	for _, tt := range tests {
		_, err := Parse(tt.in)
		if err == nil || !strings.Contains(err.Error(), tt.says) {
			t.Errorf("Parse(%.40q) = %v, want an error saying %q", tt.in, err, tt.says)
		}
	}
}

// What Parse reads, Format writes back the same.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"ratings:delay=300ms", "catalog:error=503,p=0.5", "api>ratings:reset;search:stall=1s", "a>b:abort,p=0.001"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		faults, err := Parse(s)
		if err != nil {
			return
		}
		again, err := Parse(Format(faults))
		if err != nil {
			t.Fatalf("Parse(Format(Parse(%q))) = %v", s, err)
		}
		if diff := cmp.Diff(faults, again); diff != "" {
			t.Fatalf("round trip of %q (-first +again):\n%s", s, diff)
		}
	})
}

func TestDraw(t *testing.T) {
	f := func(s string) []Fault {
		fs, err := Parse(s)
		if err != nil {
			t.Fatal(err)
		}
		return fs
	}
	p := Draw(f("ratings:delay=100ms;ratings:delay=50ms;ratings:error=503;ratings:abort"))
	if p.Delay != 150*time.Millisecond || p.End == nil || p.End.Action != Error || len(p.Applied) != 3 {
		t.Errorf("delays then an error: %+v", p)
	}
	if p := Draw(f("ratings:delay=10ms")); p.End != nil || p.Delay != 10*time.Millisecond {
		t.Errorf("a delay alone: %+v", p)
	}
	// A fraction is drawn per request: about that share fires.
	fired := 0
	const n = 20000
	for range n {
		if len(Draw(f("ratings:abort,p=0.2")).Applied) > 0 {
			fired++
		}
	}
	if share := float64(fired) / n; share < 0.18 || share > 0.22 {
		t.Errorf("p=0.2 fired for %.3f of requests", share)
	}
}
