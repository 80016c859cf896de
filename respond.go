package shoal

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"

	"github.com/shoal-dev/shoal/internal/loglevel"
	"github.com/shoal-dev/shoal/internal/statuswriter"
)

// WriteJSON answers with v as JSON and the given status.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = newEncoder(w).Encode(v)
}

// EncodeJSON returns v as JSON, the bytes WriteJSON writes: for an answer
// kept to be given again (under an idempotency key) as it was first.
func EncodeJSON(v any) ([]byte, error) {
	var b bytes.Buffer
	err := newEncoder(&b).Encode(v)
	return b.Bytes(), err
}

func newEncoder(w io.Writer) *json.Encoder {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false) // the type is JSON: paths like /<service>/<path> stay readable
	return enc
}

// ErrorBody is the JSON error every Shoal service and the gateway answer
// with: {"error": {"code": "...", "message": "..."}}.
type ErrorBody struct {
	Error ErrorDetail `json:"error"`
}

// ErrorDetail is the inside of an ErrorBody: a stable, machine-readable
// code and a message for people that says what to do.
type ErrorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// WriteError answers with an ErrorBody and the given status.
func WriteError(w http.ResponseWriter, status int, code, msg string) {
	WriteJSON(w, status, ErrorBody{Error: ErrorDetail{Code: code, Message: msg}})
}

// WriteUnavailable answers 503 unavailable, with Retry-After, for a failure
// that passes (a database restarting, a lock held too long, a dependency
// down), so that the caller's client retries or fails over. what names the
// part that failed ("the ratings store"); err goes to the log (slog's
// default logger, which Setup makes the service's) with the request, at
// debug level if the caller left (its hedge won elsewhere), warn if its
// deadline passed (slow, not broken), error otherwise.
func WriteUnavailable(w http.ResponseWriter, r *http.Request, what string, err error) {
	slog.Log(r.Context(), loglevel.Failure(r.Context()), what+" failed", "method", r.Method, "path", r.URL.Path, "err", err)
	statuswriter.MarkLogged(w)
	w.Header().Set("Retry-After", "1")
	WriteError(w, http.StatusServiceUnavailable, "unavailable", what+" is unavailable; retry shortly")
}
