package discovery

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strconv"

	"github.com/hashicorp/memberlist"
)

// An instance record travels as memberlist node metadata: one format byte,
// then compact JSON. The format byte lets a later release change the encoding
// while old members reject records they cannot read (and ignore that node)
// instead of misreading them. JSON keeps records readable in debug logs and
// its decoder is robust to arbitrary input; unknown fields are ignored so a
// newer member may add some.
const recordFormatV1 byte = 1

// MaxRecordSize is the largest encoded instance record: memberlist's limit on
// node metadata. [New] rejects an instance whose record would exceed it.
const MaxRecordSize = memberlist.MetaMaxSize

// Field limits. They keep records well inside MaxRecordSize and reject
// garbage from the network early.
const (
	maxIDLen      = 128
	maxServiceLen = 63 // a DNS label: the client resolves http://<service>/
	maxAddrLen    = 261
	maxVersionLen = 64
)

type wireRecord struct {
	ID      string `json:"id"`
	Service string `json:"svc"`
	Addr    string `json:"addr"`
	Version string `json:"ver,omitempty"`
	State   State  `json:"st"`
}

// encodeRecord returns the metadata bytes for inst. It does not validate.
func encodeRecord(inst Instance) ([]byte, error) {
	var buf bytes.Buffer
	buf.WriteByte(recordFormatV1)
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // no \u003c for '<': records stay small and readable
	// A conversion, not a literal: a field added to Instance must be added
	// here too (or this stops compiling).
	if err := enc.Encode(wireRecord(inst)); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// decodeRecord parses metadata received from the network. Any input is
// safe: it returns an error for anything that is not a valid record.
func decodeRecord(b []byte) (Instance, error) {
	switch {
	case len(b) == 0:
		return Instance{}, errors.New("no instance record (empty metadata)")
	case len(b) > MaxRecordSize:
		return Instance{}, fmt.Errorf("instance record is %d bytes, over the %d-byte limit", len(b), MaxRecordSize)
	case b[0] != recordFormatV1:
		return Instance{}, fmt.Errorf("unknown instance record format %#02x", b[0])
	}
	var w wireRecord
	if err := json.Unmarshal(b[1:], &w); err != nil {
		return Instance{}, fmt.Errorf("malformed instance record: %w", err)
	}
	inst := Instance(w)
	if err := inst.Validate(); err != nil {
		return Instance{}, err
	}
	return inst, nil
}

// Validate reports whether inst can be advertised: ID is 1–128 printable
// ASCII characters without spaces; Service is 1–63 of [A-Za-z0-9._-];
// Addr is "host:port" with a non-empty host and a port in 1–65535; Version is
// at most 64 printable ASCII characters; State is StateServing or
// StateDraining. The error names the bad field and value.
func (inst Instance) Validate() error {
	if err := checkID(inst.ID); err != nil {
		return err
	}
	if err := checkService(inst.Service); err != nil {
		return err
	}
	if err := checkServeAddr(inst.Addr); err != nil {
		return err
	}
	if len(inst.Version) > maxVersionLen || !printableASCII(inst.Version, true) {
		return fmt.Errorf("instance %q: Version %q must be at most %d printable ASCII characters", inst.ID, inst.Version, maxVersionLen)
	}
	if !inst.State.valid() {
		return fmt.Errorf("instance %q: State %q is unknown (want %q or %q)", inst.ID, inst.State, StateServing, StateDraining)
	}
	return nil
}

func (s State) valid() bool { return s == StateServing || s == StateDraining }

func checkID(id string) error {
	if id == "" || len(id) > maxIDLen || !printableASCII(id, false) {
		return fmt.Errorf("instance ID %q must be 1 to %d printable ASCII characters without spaces", id, maxIDLen)
	}
	return nil
}

func checkService(s string) error {
	ok := s != "" && len(s) <= maxServiceLen
	for i := 0; ok && i < len(s); i++ {
		c := s[i]
		ok = 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.'
	}
	if !ok {
		return fmt.Errorf("service name %q must be 1 to %d characters of [A-Za-z0-9._-]", s, maxServiceLen)
	}
	return nil
}

func checkServeAddr(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err == nil && (host == "" || len(addr) > maxAddrLen || !printableASCII(host, false)) {
		err = errors.New("host must be non-empty printable ASCII")
	}
	if err == nil {
		err = checkPort(port, false)
	}
	if err != nil {
		return fmt.Errorf("instance Addr %q is not a usable host:port: %w", addr, err)
	}
	return nil
}

// checkPort accepts a decimal port in 1–65535, or 0 when zeroOK.
func checkPort(port string, zeroOK bool) error {
	lo := uint64(1)
	if zeroOK {
		lo = 0
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || n < lo {
		return fmt.Errorf("port %q must be a number in %d-65535", port, lo)
	}
	return nil
}

func printableASCII(s string, spaceOK bool) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c > '~' || c < ' ' || (c == ' ' && !spaceOK) {
			return false
		}
	}
	return true
}
