package manifest

import (
	"fmt"
	"math"
	"reflect"
	"strings"
	"sync"
	"time"

	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/token"
)

// The one decode of a manifest: the syntax tree into the tagged structs,
// strictly (an unknown key is a mistake, with the nearest known key as a
// suggestion), reporting every mistake rather than the first. The structs'
// yaml tags are the schema; an example tag gives the example that messages
// show (and the JSON Schema too).
//
// goccy/go-yaml's own decoder is not used for this: it stops at the first
// mistake and reports one unknown key of several, picked at random.

// unmarshaler is implemented by the types that have a YAML form of their
// own: sizes, ports, the services mapping. n is resolved (no alias, anchor
// or tag) and not nil; it may be null.
type unmarshaler interface {
	unmarshalYAML(d *decoder, n ast.Node, p string, f field)
}

// maxValues bounds the values one decode visits. Aliases let a small file
// stand for a huge one (each of a list's items an alias of a list of
// aliases...); a real manifest has a few hundred values, a very large one thousands.
const maxValues = 20_000

// decoder holds the state of one decode.
type decoder struct {
	file    string
	src     *source
	anchors map[string]ast.Node
	errs    []error
	// expanding holds the anchors whose values are being decoded through
	// an alias: an alias of one of them refers to itself.
	expanding map[string]bool
	values    int // visited so far, up to maxValues
}

// field is what the decoder knows of the setting it decodes, for messages.
type field struct {
	key     string // the YAML key; for list items and map values, the enclosing one
	example string // YAML text of an example value; "" if none
	// text: a scalar of any kind is taken as written (items of string
	// lists, values of string maps: args: [--port, 8080]); otherwise a
	// string setting must be a YAML string, as build: 3 is surely a slip.
	text bool
}

// eg is ", e.g. key: example" for messages, or "".
func (f field) eg() string {
	if f.example == "" || f.key == "" {
		return ""
	}
	return ", e.g. " + f.key + ": " + f.example
}

// fail records a problem at at, with the setting at path p.
func (d *decoder) fail(at pos, p, format string, args ...any) {
	d.errs = append(d.errs, &Error{File: d.file, Line: at.line, Column: at.col, Path: p, Msg: fmt.Sprintf(format, args...)})
	if p != "" {
		d.src.bad[p] = true
	}
}

// failAt records a problem with the setting at p, placed where it is.
func (d *decoder) failAt(p, format string, args ...any) {
	d.fail(d.src.at[p], p, format, args...)
}

var (
	durationType    = reflect.TypeFor[time.Duration]()
	unmarshalerType = reflect.TypeFor[unmarshaler]()
)

// decode decodes the document body into m.
func (d *decoder) decode(body ast.Node, m *Manifest) error {
	return d.decodeValue(body, reflect.ValueOf(m).Elem())
}

// decodeValue decodes a document body into the struct v. The syntax tree
// comes from third-party code fed with user input: should a shape of it
// the decoder does not expect make it panic, that is an error, not a crash
// of shoal up or of a gateway reloading its file.
func (d *decoder) decodeValue(body ast.Node, v reflect.Value) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = &Error{File: d.file, Msg: fmt.Sprintf("the YAML decoder failed (%v); check the file's syntax", r)}
		}
	}()
	d.value(body, v, "", field{}, pos{})
	return nil
}

// value decodes raw, the setting at path p whose key (if any) is at keyAt,
// into v.
func (d *decoder) value(raw ast.Node, v reflect.Value, p string, f field, keyAt pos) {
	if d.values++; d.values > maxValues {
		if d.values == maxValues+1 {
			d.fail(nodePos(raw), p, "the file stands for more than %d values (aliases of aliases?); write the values out", maxValues)
		}
		return
	}
	if name, ok := anchorName(raw); ok {
		if d.expanding[name] {
			d.fail(nodePos(raw), p, "alias *%s refers to a value that contains it; write the value out", name)
			return
		}
		if d.expanding == nil {
			d.expanding = map[string]bool{}
		}
		d.expanding[name] = true
		defer delete(d.expanding, name)
	}
	n, str := d.resolve(raw)
	if n == nil {
		return // reported
	}
	// The place of a setting: a scalar's own, else its key's, else (a list
	// item) where it starts.
	at := nodePos(raw)
	if _, scalar := scalarText(n); !scalar && keyAt != (pos{}) {
		at = keyAt
	} else if at == (pos{}) {
		at = keyAt
	}
	d.src.at[p] = at
	if keyAt != (pos{}) {
		d.src.keys[p] = keyAt
	}
	if text, ok := scalarText(n); ok {
		d.src.text[p] = text
	}
	d.resolved(n, str, v, p, f)
}

// resolved decodes n (resolved, tagged !!str if str) into v.
func (d *decoder) resolved(n ast.Node, str bool, v reflect.Value, p string, f field) {
	if reflect.PointerTo(v.Type()).Implements(unmarshalerType) {
		v.Addr().Interface().(unmarshaler).unmarshalYAML(d, n, p, f)
		return
	}
	if v.Type() == durationType {
		d.duration(n, v, p, f)
		return
	}
	switch v.Kind() {
	case reflect.Pointer:
		if null(n) {
			return // not set
		}
		nv := reflect.New(v.Type().Elem())
		d.resolved(n, str, nv.Elem(), p, f)
		v.Set(nv)
	case reflect.Struct:
		d.structure(n, v, p, f)
	case reflect.Map:
		d.mapping(n, v, p, f)
	case reflect.Slice:
		d.list(n, v, p, f)
	case reflect.String:
		d.str(n, str, v, p, f)
	case reflect.Bool:
		b, ok := n.(*ast.BoolNode)
		switch {
		case ok:
			v.SetBool(b.Value)
		case null(n):
			d.failAt(p, "has no value%s", writeEg(f))
		default:
			d.failAt(p, "must be true or false%s", f.eg())
		}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		d.integer(n, v, p, f)
	case reflect.Float32, reflect.Float64:
		d.float(n, v, p, f)
	default:
		// A type the schema should not contain: a bug, said plainly.
		d.failAt(p, "cannot be set from a manifest (a %s)", v.Type())
	}
}

func null(n ast.Node) bool {
	_, ok := n.(*ast.NullNode)
	return ok
}

// writeEg is "; write e.g. key: example" or "".
func writeEg(f field) string {
	if eg := f.eg(); eg != "" {
		return "; write" + strings.TrimPrefix(eg, ",")
	}
	return ""
}

// isMapping reports whether n is a mapping to decode. Null is not (nothing
// is set); any other node is reported: the setting at p must be what.
func (d *decoder) isMapping(n ast.Node, p, what string, f field) bool {
	switch n.(type) {
	case *ast.MappingNode, *ast.MappingValueNode:
		return true
	case *ast.NullNode:
		return false
	default:
		d.failAt(p, "must be %s%s", what, f.eg())
		return false
	}
}

// structure decodes a mapping of settings into the struct v.
func (d *decoder) structure(n ast.Node, v reflect.Value, p string, f field) {
	if !d.isMapping(n, p, "a mapping of settings", f) {
		return
	}
	fs := fieldsOf(v.Type())
	for _, e := range d.entries(n, p) {
		i, ok := fs.index[e.key]
		if !ok {
			d.unknownKey(v.Type(), e, p)
			continue
		}
		sf := v.Type().Field(i)
		d.value(e.value, v.Field(i), child(p, e.key), field{key: e.key, example: sf.Tag.Get("example")}, e.at)
	}
}

// mapping decodes a mapping into the map v, keys taken as written.
func (d *decoder) mapping(n ast.Node, v reflect.Value, p string, f field) {
	if !d.isMapping(n, p, "a mapping", f) {
		return
	}
	if v.Type().Key().Kind() != reflect.String {
		d.failAt(p, "cannot be set from a manifest (a %s)", v.Type())
		return
	}
	if v.IsNil() {
		v.Set(reflect.MakeMap(v.Type()))
	}
	et := v.Type().Elem()
	for _, e := range d.entries(n, p) {
		ep := child(p, e.key)
		if r, _ := d.resolve(e.value); et.Kind() == reflect.String && null(r) {
			d.src.at[ep] = e.at
			d.fail(e.at, ep, "has no value; write %s: \"\" for an empty one", e.key)
			continue
		}
		ev := reflect.New(et).Elem()
		d.value(e.value, ev, ep, field{key: e.key, text: et.Kind() == reflect.String}, e.at)
		v.SetMapIndex(reflect.ValueOf(e.key).Convert(v.Type().Key()), ev)
	}
}

// list decodes a list into the slice v.
func (d *decoder) list(n ast.Node, v reflect.Value, p string, f field) {
	seq, ok := n.(*ast.SequenceNode)
	if !ok {
		switch s := n.(type) {
		case *ast.NullNode:
			d.failAt(p, "has no value%s", writeEg(f))
		case *ast.StringNode:
			if strings.ContainsAny(strings.TrimSpace(s.Value), " \t") {
				d.failAt(p, "must be a list, one item per element (a string is not split at spaces)%s", f.eg())
				return
			}
			d.failAt(p, "must be a list%s", f.eg())
		default:
			d.failAt(p, "must be a list%s", f.eg())
		}
		return
	}
	before := len(d.errs)
	out := reflect.MakeSlice(v.Type(), len(seq.Values), len(seq.Values))
	itemField := field{key: f.key, example: f.example, text: v.Type().Elem().Kind() == reflect.String}
	for i, it := range seq.Values {
		d.value(it, out.Index(i), item(p, i), itemField, pos{})
	}
	v.Set(out)
	if len(d.errs) > before {
		d.src.bad[p] = true
	}
}

// str decodes a string setting.
func (d *decoder) str(n ast.Node, tagged bool, v reflect.Value, p string, f field) {
	text, scalar := scalarText(n)
	switch {
	case scalar && (tagged || f.text):
		v.SetString(text)
		return
	case null(n):
		d.failAt(p, "has no value%s", writeEg(f))
		return
	}
	switch n.(type) {
	case *ast.StringNode, *ast.LiteralNode:
		v.SetString(text)
	default:
		if f.text {
			d.failAt(p, "must be a single value (quote it if needed)%s", f.eg())
		} else {
			d.failAt(p, "must be a string%s", f.eg())
		}
	}
}

// integer decodes a whole number, clamped to ±2^62 (beyond every range
// checked: checks quote the number as written).
func (d *decoder) integer(n ast.Node, v reflect.Value, p string, f field) {
	const limit = 1 << 62
	var x int64
	ok := false
	switch n := n.(type) {
	case *ast.IntegerNode:
		switch i := n.Value.(type) {
		case int64:
			x, ok = max(-limit, min(i, limit)), true
		case uint64:
			x, ok = int64(min(i, limit)), true
		}
	case *ast.StringNode:
		// An unquoted integer too big for 64 bits stays a string.
		if tk := n.GetToken(); tk != nil && tk.Type == token.StringType && digits(n.Value) {
			x, ok = limit, true
			if n.Value[0] == '-' {
				x = -limit
			}
		}
	case *ast.FloatNode:
		// 3.0 is a whole number written oddly; 3.5 is not.
		if fv := n.Value; fv == math.Trunc(fv) && !math.IsInf(fv, 0) {
			x, ok = int64(max(-limit, min(fv, limit))), true
		}
	case *ast.NullNode:
		d.failAt(p, "has no value%s", writeEg(f))
		return
	}
	if !ok {
		d.failAt(p, "must be a whole number%s", f.eg())
		return
	}
	if v.OverflowInt(x) {
		d.failAt(p, "%s is out of range", d.src.written(p, fmt.Sprint(x)))
		return
	}
	v.SetInt(x)
}

// digits says whether s is an optionally signed string of digits.
func digits(s string) bool {
	s = strings.TrimLeft(s, "+-")
	return s != "" && strings.Trim(s, "0123456789") == ""
}

// float decodes a number.
func (d *decoder) float(n ast.Node, v reflect.Value, p string, f field) {
	switch n := n.(type) {
	case *ast.IntegerNode:
		switch i := n.Value.(type) {
		case int64:
			v.SetFloat(float64(i))
		case uint64:
			v.SetFloat(float64(i))
		}
	case *ast.FloatNode:
		v.SetFloat(n.Value)
	case *ast.InfinityNode:
		v.SetFloat(n.Value)
	case *ast.NanNode:
		v.SetFloat(math.NaN())
	case *ast.NullNode:
		d.failAt(p, "has no value%s", writeEg(f))
	default:
		d.failAt(p, "must be a number%s", f.eg())
	}
}

// duration decodes a Go duration string such as 10s or 1m30s. A bare
// number is refused: its unit would be a guess.
func (d *decoder) duration(n ast.Node, v reflect.Value, p string, f field) {
	eg := f
	if eg.example == "" {
		eg.example = "2s"
	}
	switch s := n.(type) {
	case *ast.StringNode:
		t, err := time.ParseDuration(strings.TrimSpace(s.Value))
		if err != nil {
			d.failAt(p, "%q is not a duration; write a number with a unit (ms, s, m)%s", s.Value, eg.eg())
			return
		}
		v.SetInt(int64(t))
	case *ast.IntegerNode, *ast.FloatNode:
		// Both readings: 1500 is more likely milliseconds than 25 minutes.
		num := s.GetToken().Value
		d.failAt(p, "needs a unit: %s: %sms or %s: %ss?", f.key, num, f.key, num)
	case *ast.NullNode:
		d.failAt(p, "has no value%s", writeEg(eg))
	default:
		d.failAt(p, "must be a duration%s", eg.eg())
	}
}

// fields is a struct type's settings: the YAML key of each field.
type fields struct {
	names []string       // in declaration order
	index map[string]int // key → field index
}

var fieldCache sync.Map // reflect.Type → *fields

// fieldsOf returns t's settings: exported fields with a yaml tag other
// than "-".
func fieldsOf(t reflect.Type) *fields {
	if fs, ok := fieldCache.Load(t); ok {
		return fs.(*fields)
	}
	fs := &fields{index: map[string]int{}}
	for i := range t.NumField() {
		sf := t.Field(i)
		name, _, _ := strings.Cut(sf.Tag.Get("yaml"), ",")
		if !sf.IsExported() || name == "" || name == "-" {
			continue
		}
		fs.names = append(fs.names, name)
		fs.index[name] = i
	}
	fieldCache.Store(t, fs)
	return fs
}
