package manifest

import (
	"fmt"
	"reflect"

	"github.com/goccy/go-yaml/ast"
)

// Document is a YAML file of Shoal's other than a manifest (an experiment:
// see package chaos/experiment), decoded into tagged structs by the
// manifest's rules: strictly (an unknown key is a mistake, with the
// nearest known key as a suggestion), every mistake reported at once with
// its file, line and column, anchors and aliases bounded. The Document
// remembers where each setting is, so that the checks of its values point
// at the text too.
type Document struct {
	src *source
}

// DecodeDocument decodes data, the file name (as messages show it), into
// v, a pointer to a struct whose yaml tags (and example tags, for the
// messages) are the file's schema. The error joins an *Error per mistake.
// It reads no files.
func DecodeDocument(name string, data []byte, v any) (*Document, error) {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.Elem().Kind() != reflect.Struct {
		return nil, fmt.Errorf("manifest: DecodeDocument into %T: want a pointer to a struct", v)
	}
	doc := &Document{src: newSource(name)}
	f, err := parseYAML(data)
	if err != nil {
		return nil, syntaxError(name, err, data)
	}
	var body ast.Node
	for _, d := range f.Docs {
		if d == nil || d.Body == nil {
			continue
		}
		if body != nil {
			at := nodePos(d.Body)
			return nil, &Error{File: name, Line: at.line, Column: at.col, Msg: "the file is one YAML document; remove the second '---'"}
		}
		body = d.Body
	}
	if body == nil {
		return nil, &Error{File: name, Line: 1, Msg: "the file is empty"}
	}
	d := &decoder{file: name, src: doc.src, anchors: anchors(body)}
	if err := d.decodeValue(body, rv.Elem()); err != nil {
		return nil, err
	}
	if err := Join(d.errs...); err != nil {
		return nil, err
	}
	return doc, nil
}

// Errorf returns a problem with the setting at path (a key path such as
// hypothesis[2].latency.max), placed where the file sets it or else its
// nearest enclosing setting.
func (d *Document) Errorf(path, format string, args ...any) *Error {
	return d.src.errorf(path, format, args...)
}

// Has reports whether the file sets path.
func (d *Document) Has(path string) bool { return d.src.has(path) }
