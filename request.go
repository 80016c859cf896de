package shoal

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
)

// ReadJSON decodes the request's body into v: one JSON object, of at most
// maxBytes, with only the fields v has. Its errors say what was wrong in
// words for the caller, to answer with a 400 invalid_argument.
func ReadJSON(w http.ResponseWriter, r *http.Request, maxBytes int64, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBytes))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		if tooBig := (*http.MaxBytesError)(nil); errors.As(err, &tooBig) {
			return fmt.Errorf("body: want at most %d bytes", maxBytes)
		}
		return fmt.Errorf("body: want a JSON object (%v)", err)
	}
	if dec.More() {
		return errors.New("body: want a single JSON object")
	}
	return nil
}

// QueryInt reads query parameter name as an integer from lo to hi, def if
// the request has none. A bad value is answered 400 invalid_argument, and
// QueryInt reports false.
func QueryInt(w http.ResponseWriter, r *http.Request, name string, def, lo, hi int) (int, bool) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return def, true
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		WriteError(w, http.StatusBadRequest, "invalid_argument", fmt.Sprintf("%s=%q: want an integer from %d to %d", name, v, lo, hi))
		return 0, false
	}
	return n, true
}
