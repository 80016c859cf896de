package manifest

import (
	"errors"
	"fmt"
	"strings"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"
)

// The YAML syntax tree, as goccy/go-yaml parses it: parsing, positions,
// anchors, aliases and merge keys. Nothing outside this package sees it.

// maxAliasDepth bounds alias and merge-key resolution, which would loop
// forever on a self-referencing anchor.
const maxAliasDepth = 16

// parseYAML parses data into a syntax tree. Duplicate keys are let
// through: the decoder reports them with a clearer message, alongside
// every other problem. The parser is third-party code fed with user input,
// so a panic in it becomes an error rather than taking down its caller.
func parseYAML(data []byte) (f *ast.File, err error) {
	defer func() {
		if r := recover(); r != nil {
			f, err = nil, fmt.Errorf("the YAML parser failed (%v); check the file's syntax", r)
		}
	}()
	return parser.ParseBytes(data, 0, parser.AllowDuplicateMapKey())
}

// syntaxError turns the parser's error into a problem at its place, with a
// hint for the most common cause (tabs).
func syntaxError(file string, err error, data []byte) *Error {
	var ye yaml.Error
	if !errors.As(err, &ye) || ye.GetToken() == nil || ye.GetToken().Position == nil {
		return &Error{File: file, Msg: "invalid YAML: " + firstLine(err.Error())}
	}
	p := ye.GetToken().Position
	msg := "invalid YAML: " + ye.GetMessage()
	lines := strings.Split(string(data), "\n")
	if p.Line >= 1 && p.Line <= len(lines) && strings.HasPrefix(strings.TrimLeft(lines[p.Line-1], " "), "\t") {
		msg += "; indent with spaces, not tabs"
	}
	return &Error{File: file, Line: p.Line, Column: p.Column, Msg: msg}
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return s
}

// nodePos is where n starts: a block mapping at its first key (its token
// is the first colon), anything else at its token.
func nodePos(n ast.Node) pos {
	switch v := n.(type) {
	case nil:
		return pos{}
	case *ast.MappingNode:
		if !v.IsFlowStyle && len(v.Values) > 0 && v.Values[0] != nil && v.Values[0].Key != nil {
			return nodePos(v.Values[0].Key)
		}
	case *ast.MappingValueNode:
		if v.Key != nil {
			return nodePos(v.Key)
		}
	case *ast.AnchorNode, *ast.TagNode:
		// Their token is the &name or !tag that starts them.
	}
	if tk := n.GetToken(); tk != nil && tk.Position != nil {
		return pos{tk.Position.Line, tk.Position.Column}
	}
	return pos{}
}

// anchors maps each anchor of the document to its value.
func anchors(body ast.Node) map[string]ast.Node {
	out := map[string]ast.Node{}
	for _, n := range ast.Filter(ast.AnchorType, body) {
		a, ok := n.(*ast.AnchorNode)
		if ok && a.Name != nil && a.Value != nil {
			out[a.Name.GetToken().Value] = a.Value
		}
	}
	return out
}

// resolve strips anchors and tags and follows aliases. str reports a !!str
// tag (a scalar then reads as a string whatever it looks like). It returns
// nil for an undefined or too deeply nested alias, after reporting it.
func (d *decoder) resolve(n ast.Node) (out ast.Node, str bool) {
	for range maxAliasDepth {
		switch v := n.(type) {
		case *ast.AnchorNode:
			n = v.Value
		case *ast.TagNode:
			if v.Start != nil && v.Start.Value == "!!str" {
				str = true
			}
			if v.Value == nil {
				return &ast.NullNode{BaseNode: &ast.BaseNode{}, Token: v.Start}, str
			}
			n = v.Value
		case *ast.AliasNode:
			name := ""
			if v.Value != nil {
				name = v.Value.GetToken().Value
			}
			target, ok := d.anchors[name]
			if !ok {
				d.fail(nodePos(v), "", "alias *%s refers to no anchor; define it first with &%s", name, name)
				return nil, false
			}
			n = target
		default:
			return n, str
		}
	}
	d.fail(nodePos(n), "", "aliases nest too deeply (or refer to themselves); write the value out")
	return nil, false
}

// anchorName is the anchor n defines, or refers to if it is an alias
// (possibly tagged).
func anchorName(n ast.Node) (string, bool) {
	for range maxAliasDepth {
		switch v := n.(type) {
		case *ast.AnchorNode:
			if v.Name != nil {
				return v.Name.GetToken().Value, true
			}
			n = v.Value
		case *ast.TagNode:
			n = v.Value
		case *ast.AliasNode:
			if v.Value == nil {
				return "", false
			}
			return v.Value.GetToken().Value, true
		default:
			return "", false
		}
	}
	return "", false
}

// entry is one key: value of a mapping, after merge keys are expanded.
type entry struct {
	key   string
	at    pos // the key's place
	value ast.Node
}

// entries lists a mapping's keys in file order, with "<<" merges expanded
// (explicit keys win) and duplicate keys reported. p is the mapping's path.
func (d *decoder) entries(m ast.Node, p string) []entry {
	var out []entry
	seen := map[string]pos{}
	var merged []entry
	for _, mv := range mappingValues(m) {
		if mv.Key.IsMergeKey() {
			merged = append(merged, d.mergeEntries(mv.Value, p, 0)...)
			continue
		}
		key, ok := keyText(mv.Key)
		at := nodePos(mv.Key)
		if !ok {
			d.fail(at, p, "keys must be plain names, not %s", mv.Key.Type().YAMLName())
			continue
		}
		if first, dup := seen[key]; dup {
			d.fail(at, child(p, key), "is set twice (first on line %d); keep one", first.line)
			continue
		}
		seen[key] = at
		out = append(out, entry{key: key, at: at, value: mv.Value})
	}
	for _, e := range merged {
		if _, ok := seen[e.key]; !ok {
			seen[e.key] = e.at
			out = append(out, e)
		}
	}
	return out
}

// mappingValues lists the entries of a mapping node.
func mappingValues(n ast.Node) []*ast.MappingValueNode {
	var mvs []*ast.MappingValueNode
	switch v := n.(type) {
	case *ast.MappingNode:
		mvs = v.Values
	case *ast.MappingValueNode:
		mvs = []*ast.MappingValueNode{v}
	}
	out := mvs[:0:0]
	for _, mv := range mvs {
		if mv != nil && mv.Key != nil {
			out = append(out, mv)
		}
	}
	return out
}

// mergeEntries expands the value of a "<<" key: a mapping (usually an
// alias of one) or a list of them, earlier ones winning.
func (d *decoder) mergeEntries(v ast.Node, p string, depth int) []entry {
	if depth > maxAliasDepth {
		d.fail(nodePos(v), p, "merge keys (<<) nest too deeply; write the keys out")
		return nil
	}
	at := nodePos(v)
	v, _ = d.resolve(v)
	var out []entry
	seen := map[string]bool{}
	add := func(es []entry) {
		for _, e := range es {
			if !seen[e.key] {
				seen[e.key] = true
				out = append(out, e)
			}
		}
	}
	switch n := v.(type) {
	case nil:
	case *ast.MappingNode, *ast.MappingValueNode:
		for _, mv := range mappingValues(n) {
			if mv.Key.IsMergeKey() {
				add(d.mergeEntries(mv.Value, p, depth+1))
			} else if key, ok := keyText(mv.Key); ok {
				add([]entry{{key: key, at: nodePos(mv.Key), value: mv.Value}})
			}
		}
	case *ast.SequenceNode:
		for _, it := range n.Values {
			add(d.mergeEntries(it, p, depth+1))
		}
	default:
		d.fail(at, p, "<< merges a mapping, e.g. <<: *defaults where defaults is &defaults {instances: 2}")
	}
	return out
}

// keyText is the text of a scalar key (a service called 8080 is "8080").
func keyText(k ast.MapKeyNode) (string, bool) {
	var n ast.Node = k
	for range maxAliasDepth {
		switch v := n.(type) {
		case *ast.TagNode:
			n = v.Value
		case *ast.AnchorNode:
			n = v.Value
		default:
			return scalarText(n)
		}
	}
	return "", false
}

// scalarText is the text of a scalar as written (args: [--port, 8080] is
// two strings); ok is false for null, mappings and lists.
func scalarText(n ast.Node) (string, bool) {
	switch v := n.(type) {
	case *ast.StringNode:
		return v.Value, true
	case *ast.LiteralNode:
		if v.Value == nil {
			return "", true
		}
		return v.Value.Value, true
	case *ast.IntegerNode, *ast.FloatNode, *ast.BoolNode, *ast.InfinityNode, *ast.NanNode:
		return v.GetToken().Value, true
	}
	return "", false
}
