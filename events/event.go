package events

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"time"

	"github.com/shoal-dev/shoal/store"
)

// Path is where a subscriber mounts its Inbox, and where an Outbox POSTs
// each event: http://<subscriber>/_events.
const Path = "/_events"

// The headers of a delivery. Its body is the event's payload, JSON.
const (
	HeaderID    = "Shoal-Event-Id"
	HeaderTopic = "Shoal-Event-Topic"
	HeaderTime  = "Shoal-Event-Time" // CreatedAt, RFC 3339 with milliseconds, UTC
)

// MaxPayload is the largest payload, in bytes, that Publish accepts and an
// Inbox reads.
const MaxPayload = 1 << 20

// Event is a fact a service published under a topic.
type Event struct {
	// ID is unique per event: a UUIDv7 (time-ordered, random), the key
	// subscribers deduplicate on.
	ID    string `json:"id"`
	Topic string `json:"topic"`
	// Payload is the JSON the publisher gave, compacted.
	Payload json.RawMessage `json:"payload"`
	// CreatedAt is when Publish ran, to the millisecond, on the
	// publisher's clock. Events arrive in no particular order: handlers
	// that keep only the latest state compare it.
	CreatedAt time.Time `json:"created_at"`
}

// newID returns a UUIDv7 (RFC 9562) for now: 48 bits of Unix milliseconds,
// then 74 random bits. IDs sort by time (to the millisecond), which keeps
// the tables' primary key indexes append-mostly.
func newID(now time.Time) string {
	var u [16]byte
	rand.Read(u[6:]) // never fails (crypto/rand)
	binary.BigEndian.PutUint64(u[:8], uint64(now.UnixMilli())<<16|uint64(binary.BigEndian.Uint16(u[6:8])))
	u[6] = u[6]&0x0f | 0x70 // version 7
	u[8] = u[8]&0x3f | 0x80 // variant 10
	var s [36]byte
	hex.Encode(s[0:8], u[0:4])
	s[8] = '-'
	hex.Encode(s[9:13], u[4:6])
	s[13] = '-'
	hex.Encode(s[14:18], u[6:8])
	s[18] = '-'
	hex.Encode(s[19:23], u[8:10])
	s[23] = '-'
	hex.Encode(s[24:], u[10:])
	return string(s[:])
}

// validID accepts IDs of 1 to 128 characters that are safe in a header and
// a log line: letters, digits and "-_.:".
func validID(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for i := range len(s) {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' || c == ':') {
			return false
		}
	}
	return true
}

// validTopic: topics follow the rule of IDs (they are compared as is).
func validTopic(s string) bool { return validID(s) }

// validService accepts names that make a host name: letters, digits, '-'
// and '.', starting with a letter or digit.
func validService(s string) bool {
	if s == "" || len(s) > 253 || s[0] == '-' || s[0] == '.' {
		return false
	}
	for i := range len(s) {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

// Tables, in the service's own database.
const (
	eventsTable      = "shoal_outbox_events"
	deliveriesTable  = "shoal_outbox_deliveries"
	deadLettersTable = "shoal_outbox_dead_letters"
	inboxTable       = "shoal_inbox"
)

// The migration lists, by store.DB.Migrate name.
const (
	outboxMigrations = "events.outbox"
	inboxMigrations  = "events.inbox"
)

// outboxSchema: a delivery row is pending while delivered_at is NULL; it
// is due once next_at has passed, and someone's (a Run's claim) until
// lease_until; it has been pending since pending_since (its event's
// creation, or its redelivery from the dead letters). A delivery given up
// on moves to the dead letters, its event staying in the events table.
// Times are Unix milliseconds.
var outboxSchema = []store.Migration{{SQL: `
CREATE TABLE ` + eventsTable + ` (
	id         TEXT   NOT NULL PRIMARY KEY,
	topic      TEXT   NOT NULL,
	payload    TEXT   NOT NULL,
	created_at BIGINT NOT NULL
);
CREATE INDEX ` + eventsTable + `_created ON ` + eventsTable + ` (created_at);
CREATE TABLE ` + deliveriesTable + ` (
	event_id     TEXT    NOT NULL,
	service      TEXT    NOT NULL,
	attempts     INTEGER NOT NULL,
	next_at      BIGINT  NOT NULL,
	lease_until  BIGINT  NOT NULL,
	delivered_at BIGINT  NULL,
	last_error   TEXT    NOT NULL,
	PRIMARY KEY (event_id, service)
);
CREATE INDEX ` + deliveriesTable + `_due ON ` + deliveriesTable + ` (delivered_at, next_at)`,
}, {SQL: `
ALTER TABLE ` + deliveriesTable + ` ADD COLUMN pending_since BIGINT NOT NULL DEFAULT 0;
UPDATE ` + deliveriesTable + ` SET pending_since = COALESCE((SELECT e.created_at FROM ` + eventsTable + ` e WHERE e.id = event_id), 0);
CREATE TABLE ` + deadLettersTable + ` (
	event_id   TEXT    NOT NULL,
	service    TEXT    NOT NULL,
	attempts   INTEGER NOT NULL,
	last_error TEXT    NOT NULL,
	dead_at    BIGINT  NOT NULL,
	PRIMARY KEY (event_id, service)
);
CREATE INDEX ` + deadLettersTable + `_dead_at ON ` + deadLettersTable + ` (dead_at)`,
}}

var inboxSchema = []store.Migration{{SQL: `
CREATE TABLE ` + inboxTable + ` (
	id          TEXT   NOT NULL PRIMARY KEY,
	topic       TEXT   NOT NULL,
	received_at BIGINT NOT NULL
);
CREATE INDEX ` + inboxTable + `_received ON ` + inboxTable + ` (received_at)`,
}}

func millis(t time.Time) int64 { return t.UnixMilli() }
