package h1

import (
	"net/http"
	"strconv"
)

// AppendFields appends h's fields as field lines (see AppendField).
func AppendFields(dst []byte, h http.Header) []byte {
	for k, vs := range h {
		dst = AppendField(dst, k, vs)
	}
	return dst
}

// AppendField appends one field line per value, as net/http writes
// headers: a field with an invalid name is dropped, and CR or LF in a
// value becomes a space, so that no value can start a field (or a
// message) of its own.
func AppendField(dst []byte, k string, vs []string) []byte {
	if !validToken(k) {
		return dst
	}
	for _, v := range vs {
		dst = append(dst, k...)
		dst = append(dst, ':', ' ')
		n := len(dst)
		dst = append(dst, v...)
		for i, c := range dst[n:] {
			if c == '\r' || c == '\n' {
				dst[n+i] = ' '
			}
		}
		dst = append(dst, '\r', '\n')
	}
	return dst
}

// AppendStatusLine appends "HTTP/1.1 <code> <reason>\r\n".
func AppendStatusLine(dst []byte, code int) []byte {
	dst = append(dst, "HTTP/1.1 "...)
	dst = strconv.AppendInt(dst, int64(code), 10)
	dst = append(dst, ' ')
	if text := http.StatusText(code); text != "" {
		dst = append(dst, text...)
	} else {
		dst = append(dst, "status code "...)
		dst = strconv.AppendInt(dst, int64(code), 10)
	}
	return append(dst, '\r', '\n')
}
