package manifest

import (
	"fmt"
	"strconv"
	"strings"
)

// pos is a place in the file, 1-based; zero when unknown.
type pos struct{ line, col int }

// source records where the settings of a decoded manifest are in its
// file, by key path, so that the checks of decoded values can point at the
// text. A nil *source stands for settings built in code: problems then
// carry a path but no place.
type source struct {
	file string
	at   map[string]pos    // where each setting is: its value if a scalar, else its key
	keys map[string]pos    // where each setting's key is
	text map[string]string // scalars as written, for messages quoting them
	// strayUnder holds the paths of mappings where an unknown key was
	// reported: a missing key there was probably meant.
	strayUnder map[string]bool
	// bad holds the paths of settings that did not decode: checks of
	// their values would only repeat the problem.
	bad map[string]bool
}

func newSource(file string) *source {
	return &source{file: file, at: map[string]pos{}, keys: map[string]pos{}, text: map[string]string{}, strayUnder: map[string]bool{}, bad: map[string]bool{}}
}

// has reports whether the file sets path.
func (s *source) has(path string) bool {
	if s == nil {
		return false
	}
	_, ok := s.at[path]
	return ok
}

// ok reports whether the file sets path to a value that decoded; true for
// settings built in code.
func (s *source) ok(path string) bool {
	return s == nil || s.has(path) && !s.bad[path]
}

// badUnder reports whether path or a setting under it did not decode.
func (s *source) badUnder(path string) bool {
	if s == nil {
		return false
	}
	for p := range s.bad {
		if p == path || strings.HasPrefix(p, path+".") || strings.HasPrefix(p, path+"[") {
			return true
		}
	}
	return false
}

// placed returns where the file sets path.
func (s *source) placed(path string) (pos, bool) {
	if s == nil {
		return pos{}, false
	}
	at, ok := s.at[path]
	return at, ok
}

// written is path's scalar as the file writes it, or def.
func (s *source) written(path, def string) string {
	if s == nil {
		return def
	}
	if t, ok := s.text[path]; ok {
		return t
	}
	return def
}

// errorf returns the problem with the setting at path, placed where the
// file sets it or else its nearest enclosing setting.
func (s *source) errorf(path, format string, args ...any) *Error {
	e := &Error{Path: path, Msg: fmt.Sprintf(format, args...)}
	if s == nil {
		return e
	}
	e.File = s.file
	for p := path; ; p = parent(p) {
		if at, ok := s.at[p]; ok {
			e.Line, e.Column = at.line, at.col
			return e
		}
		if p == "" {
			return e
		}
	}
}

// keyErrorf is errorf for a problem with the key of the setting at path
// (a name), placed at the key.
func (s *source) keyErrorf(path, format string, args ...any) *Error {
	e := s.errorf(path, format, args...)
	if s != nil {
		if at, ok := s.keys[path]; ok {
			e.Line, e.Column = at.line, at.col
		}
	}
	return e
}

// child is the path of key under the mapping at p: p.key, or
// p["odd key"] for keys that are not plain names.
func child(p, key string) string {
	if !plainKey(key) {
		return p + "[" + strconv.Quote(key) + "]"
	}
	if p == "" {
		return key
	}
	return p + "." + key
}

// item is the path of the i-th item of the list at p.
func item(p string, i int) string { return p + "[" + strconv.Itoa(i) + "]" }

// parent is the path of the setting enclosing p; "" at the top.
func parent(p string) string {
	// A quoted key may hold dots and brackets, but never an unescaped
	// `["`: the last one opens it.
	if strings.HasSuffix(p, `"]`) {
		return p[:strings.LastIndex(p, `["`)]
	}
	i := strings.LastIndexAny(p, ".[")
	if i < 0 {
		return ""
	}
	return p[:i]
}

func plainKey(k string) bool {
	if k == "" {
		return false
	}
	for _, r := range k {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-') {
			return false
		}
	}
	return true
}
