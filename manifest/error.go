package manifest

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// MaxProblems bounds the problems one error lists, so that a badly broken
// file does not flood the terminal; a last one says how many were left out.
const MaxProblems = 20

// Error is one mistake in a manifest: where it is, which setting, and what
// to write instead. Load and Parse return every Error they find, joined
// with errors.Join in file order, so errors.As finds the first one and the
// message lists one per line.
type Error struct {
	File   string // the manifest's name as given to Load or Parse; "" for settings built in code
	Line   int    // 1-based; 0 when the problem concerns the whole file or no file
	Column int    // 1-based; 0 if unknown
	// Path is the setting's key path, e.g. services.catalog.instances or
	// gateway.routes[2].timeout; "" for the file as a whole.
	Path string
	Msg  string
}

func (e *Error) Error() string {
	var b strings.Builder
	switch {
	case e.File != "" && e.Line > 0 && e.Column > 0:
		fmt.Fprintf(&b, "%s:%d:%d: ", e.File, e.Line, e.Column)
	case e.File != "" && e.Line > 0:
		fmt.Fprintf(&b, "%s:%d: ", e.File, e.Line)
	case e.File != "":
		b.WriteString(e.File + ": ")
	}
	if e.Path != "" {
		b.WriteString(e.Path + ": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Join is errors.Join for manifest problems: the *Errors among errs (and
// among the errors they join) in file order, repeats dropped (a mistake
// in an anchor merged into several places is reported once), at most
// MaxProblems. Other errors keep their place after them. It returns nil
// when errs hold no error.
func Join(errs ...error) error {
	var list []*Error
	var other []error
	for _, err := range errs {
		for _, e := range flatten(err) {
			var me *Error
			if errors.As(e, &me) {
				list = append(list, me)
			} else {
				other = append(other, e)
			}
		}
	}
	slices.SortStableFunc(list, func(a, b *Error) int {
		return cmp.Or(cmp.Compare(a.Line, b.Line), cmp.Compare(a.Column, b.Column))
	})
	type key struct {
		line, col int
		msg       string
	}
	seen := map[key]bool{}
	var out []error
	for _, e := range list {
		k := key{e.Line, e.Column, e.Msg}
		if e.Line > 0 && seen[k] {
			continue
		}
		seen[k] = true
		out = append(out, e)
	}
	out = append(out, other...)
	if n := len(out); n > MaxProblems {
		file := ""
		if len(list) > 0 {
			file = list[0].File
		}
		out = append(out[:MaxProblems], &Error{File: file, Msg: fmt.Sprintf("%d more problems not shown", n-MaxProblems)})
	}
	return errors.Join(out...)
}

// flatten lists the errors err joins, or err itself.
func flatten(err error) []error {
	if err == nil {
		return nil
	}
	j, ok := err.(interface{ Unwrap() []error })
	if !ok {
		return []error{err}
	}
	var out []error
	for _, e := range j.Unwrap() {
		out = append(out, flatten(e)...)
	}
	return out
}
