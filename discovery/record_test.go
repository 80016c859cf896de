package discovery

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func validInstance() Instance {
	return Instance{ID: "ratings-7f3a", Service: "ratings", Addr: "127.0.0.1:8081", Version: "v1.2.3", State: StateServing}
}

func TestRecordRoundTrip(t *testing.T) {
	tests := []Instance{
		validInstance(),
		{ID: "x", Service: "a", Addr: "h:1", State: StateDraining},
		{ID: "host:7946", Service: "A.b_c-d", Addr: "[::1]:65535", Version: "build 42 (dirty)", State: StateServing},
		{ID: strings.Repeat("i", maxIDLen), Service: strings.Repeat("s", maxServiceLen), Addr: "localhost:80", Version: strings.Repeat("v", maxVersionLen), State: StateDraining},
	}
	for _, in := range tests {
		t.Run(in.ID, func(t *testing.T) {
			b, err := encodeRecord(in)
			if err != nil {
				t.Fatal(err)
			}
			if len(b) > MaxRecordSize {
				t.Fatalf("record is %d bytes, over %d", len(b), MaxRecordSize)
			}
			out, err := decodeRecord(b)
			if err != nil {
				t.Fatalf("decodeRecord(%q): %v", b, err)
			}
			if d := cmp.Diff(in, out); d != "" {
				t.Errorf("round trip (-in +out):\n%s", d)
			}
		})
	}
}

func TestDecodeRecordRejects(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		wantErr string
	}{
		{"empty", "", "empty metadata"},
		{"unknown format", "\x02{}", "unknown instance record format"},
		{"not json", "\x01hello", "malformed"},
		{"truncated", "\x01{\"id\":\"a\"", "malformed"},
		{"json null", "\x01null", "instance ID"},
		{"wrong types", "\x01{\"id\":1}", "malformed"},
		{"missing service", `{"id":"a","addr":"h:1","st":"serving"}`, "service name"},
		{"missing addr", `{"id":"a","svc":"s","st":"serving"}`, "Addr"},
		{"addr without port", `{"id":"a","svc":"s","addr":"h","st":"serving"}`, "Addr"},
		{"addr port 0", `{"id":"a","svc":"s","addr":"h:0","st":"serving"}`, "port"},
		{"addr port too big", `{"id":"a","svc":"s","addr":"h:70000","st":"serving"}`, "port"},
		{"addr empty host", `{"id":"a","svc":"s","addr":":80","st":"serving"}`, "host"},
		{"unknown state", `{"id":"a","svc":"s","addr":"h:1","st":"sleeping"}`, "State"},
		{"missing state", `{"id":"a","svc":"s","addr":"h:1"}`, "State"},
		{"space in ID", `{"id":"a b","svc":"s","addr":"h:1","st":"serving"}`, "instance ID"},
		{"control char in version", `{"id":"a","svc":"s","addr":"h:1","ver":"\u0007","st":"serving"}`, "Version"},
		{"non-ASCII service", `{"id":"a","svc":"sé","addr":"h:1","st":"serving"}`, "service name"},
		{"slash in service", `{"id":"a","svc":"a/b","addr":"h:1","st":"serving"}`, "service name"},
		{"too long", "\x01" + strings.Repeat(" ", MaxRecordSize), "over the"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := tt.in
			if strings.HasPrefix(in, "{") {
				in = "\x01" + in
			}
			_, err := decodeRecord([]byte(in))
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("decodeRecord(%q) error = %v, want one containing %q", in, err, tt.wantErr)
			}
		})
	}
}

func TestDecodeRecordIgnoresUnknownFields(t *testing.T) {
	got, err := decodeRecord([]byte("\x01" + `{"id":"a","svc":"s","addr":"h:1","st":"draining","zone":"eu-1"}`))
	if err != nil {
		t.Fatal(err)
	}
	if want := (Instance{ID: "a", Service: "s", Addr: "h:1", State: StateDraining}); got != want {
		t.Errorf("got %+v, want %+v", got, want)
	}
}

// FuzzDecodeRecord feeds arbitrary bytes, as a hostile or broken peer could
// send, to the metadata decoder: it must never panic, and whatever it
// accepts must be a valid instance that survives an encode/decode round trip
// and fits memberlist's limit.
func FuzzDecodeMeta(f *testing.F) {
	for _, in := range []Instance{validInstance(), {ID: "x", Service: "a", Addr: "[::1]:1", State: StateDraining}} {
		b, _ := encodeRecord(in)
		f.Add(b)
	}
	f.Add([]byte{})
	f.Add([]byte{recordFormatV1})
	f.Add([]byte("\x01null"))
	f.Add([]byte("\x01{\"id\":\"\\ud800\",\"svc\":\"s\",\"addr\":\"h:1\",\"st\":\"serving\"}"))
	f.Add([]byte("\x01{\"id\":\"a\",\"id\":\"b\",\"svc\":\"s\",\"addr\":\"h:1\",\"st\":\"serving\"}"))
	f.Add([]byte("\x02garbage"))
	f.Fuzz(func(t *testing.T, b []byte) {
		inst, err := decodeRecord(b)
		if err != nil {
			return
		}
		if err := inst.Validate(); err != nil {
			t.Fatalf("decoded an invalid instance %+v: %v", inst, err)
		}
		again, err := encodeRecord(inst)
		if err != nil {
			t.Fatalf("re-encode %+v: %v", inst, err)
		}
		if len(again) > MaxRecordSize {
			t.Fatalf("accepted record re-encodes to %d bytes", len(again))
		}
		back, err := decodeRecord(again)
		if err != nil {
			t.Fatalf("re-encoded record does not decode: %v", err)
		}
		if back != inst {
			t.Fatalf("round trip changed the record: %+v -> %+v", inst, back)
		}
	})
}
