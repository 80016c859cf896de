package shoal

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strconv"
	"strings"
)

// ReadJSON decodes the request's body into v: one JSON object, of at most
// maxBytes, with only the fields v has. Its errors say what was wrong in
// words for the caller, naming the offending field where there is one, to
// answer with a 400 invalid_argument.
func ReadJSON(w http.ResponseWriter, r *http.Request, maxBytes int64, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBytes))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return bodyError(err, maxBytes)
	}
	if dec.More() {
		return errors.New("body: want a single JSON object")
	}
	return nil
}

// bodyError words a decoding error of ReadJSON for the caller.
func bodyError(err error, maxBytes int64) error {
	var (
		tooBig    *http.MaxBytesError
		wrongType *json.UnmarshalTypeError
		syntax    *json.SyntaxError
	)
	switch {
	case errors.As(err, &tooBig):
		return fmt.Errorf("body: want at most %d bytes", maxBytes)
	case errors.Is(err, io.EOF):
		return errors.New("body: empty; want a JSON object")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return errors.New("body: the JSON ends early; want a whole JSON object")
	case errors.As(err, &syntax):
		return fmt.Errorf("body: not JSON at byte %d: %s", syntax.Offset, strings.TrimPrefix(syntax.Error(), "json: "))
	case errors.As(err, &wrongType) && wrongType.Field == "":
		return fmt.Errorf("body: is %s; want %s", jsonValue(wrongType.Value), jsonKind(wrongType.Type))
	case errors.As(err, &wrongType):
		return fmt.Errorf("body: field %q is %s; want %s", wrongType.Field, jsonValue(wrongType.Value), jsonKind(wrongType.Type))
	}
	// Unknown fields ("json: unknown field \"pin\"") and the rest.
	return fmt.Errorf("body: %s", strings.TrimPrefix(err.Error(), "json: "))
}

// jsonKind names, for the caller, what JSON decodes into a value of type t.
func jsonKind(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Int, reflect.Int64:
		return "an integer"
	case reflect.Int8, reflect.Int16, reflect.Int32:
		return fmt.Sprintf("an integer from %d to %d", -1<<(t.Bits()-1), 1<<(t.Bits()-1)-1)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return fmt.Sprintf("an integer from 0 to %d", ^uint64(0)>>(64-t.Bits()))
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Slice, reflect.Array:
		return "an array"
	}
	return "an object"
}

// jsonValue words the Value of a json.UnmarshalTypeError: "string",
// "number", "number 3.5", "bool", "object", "array".
func jsonValue(v string) string {
	if n, ok := strings.CutPrefix(v, "number "); ok {
		return n
	}
	switch v {
	case "object", "array":
		return "an " + v
	case "bool":
		return "a boolean"
	}
	return "a " + v
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
