package supervisor

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"strings"
)

// Who may send spans to the OTLP receiver. It listens on loopback, which
// every process of the machine reaches, so it trusts no sender for where
// it connects from: an export must bear a token (Authorization: Bearer),
// an HMAC under a key the supervisor draws at start and never writes down.
// An instance's token is bound to its instance ID (OTEL_EXPORTER_OTLP_TRACES_HEADERS
// carries it): the receiver stores only the spans whose resource names
// that instance, so a service broken into cannot write spans for another
// into the dashboard. The state file (mode 0600, like the control token)
// holds a token for any instance, for the operator's own programs.
type otlpAuth struct{ key [32]byte }

// otlpAnyInstance is what the operator's token is bound to: any instance.
const otlpAnyInstance = "*"

func newOTLPAuth() *otlpAuth {
	a := &otlpAuth{}
	_, _ = rand.Read(a.key[:]) // never fails (crypto/rand panics instead)
	return a
}

// token is the bearer token of instance (otlpAnyInstance: any).
func (a *otlpAuth) token(instance string) string { return instance + "." + a.mac(instance) }

func (a *otlpAuth) mac(instance string) string {
	h := hmac.New(sha256.New, a.key[:])
	h.Write([]byte("shoal-otlp\x00" + instance))
	return hex.EncodeToString(h.Sum(nil))
}

// verify returns the instance r's bearer token is bound to, and whether
// the token is one of a's.
func (a *otlpAuth) verify(r *http.Request) (instance string, ok bool) {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		return "", false
	}
	i := strings.LastIndexByte(tok, '.')
	if i < 0 {
		return "", false
	}
	instance = tok[:i]
	return instance, hmac.Equal([]byte(tok[i+1:]), []byte(a.mac(instance)))
}

// headerEnv is the value of OTEL_EXPORTER_OTLP_TRACES_HEADERS that makes an
// OpenTelemetry exporter send instance's token (values are URL-decoded).
func (a *otlpAuth) headerEnv(instance string) string {
	return "authorization=Bearer%20" + a.token(instance)
}
