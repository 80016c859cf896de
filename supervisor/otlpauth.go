package supervisor

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"strings"

	"github.com/shoal-dev/shoal/internal/bearer"
)

// Who may send spans to the OTLP receiver. It listens on loopback, which
// every process of the machine reaches, so it trusts no sender for where
// it connects from: an export must bear a token (Authorization: Bearer),
// an HMAC under a key the supervisor draws at start and never writes down.
// An instance's token is bound to its service and instance ID
// (OTEL_EXPORTER_OTLP_TRACES_HEADERS carries it): the receiver stores only
// the spans whose resource names that service and instance (or names
// none: they are the sender's), so a service broken into cannot write
// spans as another into the dashboard. The state file (mode 0600, like
// the control token) holds a token for any sender, for the operator's own
// programs.
type otlpAuth struct{ key [32]byte }

// sender is who a token was made for: an instance of a service, or
// otlpAny.
type sender struct{ service, instance string }

// otlpAny is the sender of the operator's token: any instance.
var otlpAny = sender{"*", "*"}

func newOTLPAuth() *otlpAuth {
	a := &otlpAuth{}
	_, _ = rand.Read(a.key[:]) // never fails (crypto/rand panics instead)
	return a
}

// token is the bearer token of from: SERVICE/INSTANCE.MAC.
func (a *otlpAuth) token(from sender) string {
	name := from.service + "/" + from.instance
	return name + "." + a.mac(name)
}

func (a *otlpAuth) mac(name string) string {
	h := hmac.New(sha256.New, a.key[:])
	h.Write([]byte("shoal-otlp\x00" + name))
	return hex.EncodeToString(h.Sum(nil))
}

// verify returns who r's bearer token was made for, and whether it is one
// of a's.
func (a *otlpAuth) verify(r *http.Request) (sender, bool) {
	tok := bearer.Token(r)
	i := strings.LastIndexByte(tok, '.')
	if i < 0 {
		return sender{}, false
	}
	name := tok[:i]
	service, instance, ok := strings.Cut(name, "/")
	if !ok || !hmac.Equal([]byte(tok[i+1:]), []byte(a.mac(name))) {
		return sender{}, false
	}
	return sender{service, instance}, true
}

// headerEnv is the value of OTEL_EXPORTER_OTLP_TRACES_HEADERS that makes an
// OpenTelemetry exporter send from's token (values are URL-decoded), after
// the headers of extra in the same form.
func (a *otlpAuth) headerEnv(from sender, extra string) string {
	if extra != "" {
		extra += ","
	}
	return extra + "authorization=Bearer%20" + a.token(from)
}
