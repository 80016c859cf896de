package supervisor

import (
	"errors"
	"fmt"
	"strings"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"
)

// YAML syntax tree helpers of the loader: parsing, anchors and merge keys,
// mapping entries with their lines.

// parseYAML parses data into an AST. Duplicate keys are let through:
// entries reports them, with a clearer message, alongside every other
// problem. The parser is third-party code fed with user input, so a panic
// in it becomes an error rather than taking down shoal up.
func parseYAML(data []byte) (f *ast.File, err error) {
	defer func() {
		if r := recover(); r != nil {
			f, err = nil, fmt.Errorf("the YAML parser failed (%v); check the file's syntax", r)
		}
	}()
	return parser.ParseBytes(data, 0, parser.AllowDuplicateMapKey())
}

// syntaxError turns the parser's error into file:line: message, with a hint
// for the most common cause (tabs).
func (l *loader) syntaxError(err error, data []byte) error {
	var ye yaml.Error
	if !errors.As(err, &ye) || ye.GetToken() == nil || ye.GetToken().Position == nil {
		return &Problem{File: l.file, Msg: "invalid YAML: " + firstLineOf(err.Error())}
	}
	n := ye.GetToken().Position.Line
	msg := "invalid YAML: " + ye.GetMessage()
	lines := strings.Split(string(data), "\n")
	if n >= 1 && n <= len(lines) && strings.HasPrefix(strings.TrimLeft(lines[n-1], " "), "\t") {
		msg += "; indent with spaces, not tabs"
	}
	return &Problem{File: l.file, Line: n, Msg: msg}
}

func firstLineOf(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return s
}

func (l *loader) collectAnchors(body ast.Node) {
	l.anchors = map[string]ast.Node{}
	for _, n := range ast.Filter(ast.AnchorType, body) {
		a, ok := n.(*ast.AnchorNode)
		if ok && a.Name != nil && a.Value != nil {
			l.anchors[a.Name.GetToken().Value] = a.Value
		}
	}
}

// resolve strips anchors and tags and follows aliases. It returns nil for an
// undefined or too deeply nested alias, after reporting it.
func (l *loader) resolve(n ast.Node) ast.Node {
	for range maxAliasDepth {
		switch v := n.(type) {
		case *ast.AnchorNode:
			n = v.Value
		case *ast.TagNode:
			if v.Value == nil {
				return &ast.NullNode{BaseNode: &ast.BaseNode{}, Token: v.Start}
			}
			n = v.Value
		case *ast.AliasNode:
			name := ""
			if v.Value != nil {
				name = v.Value.GetToken().Value
			}
			target, ok := l.anchors[name]
			if !ok {
				l.errorf(nodeLine(v), "alias *%s refers to no anchor; define it first with &%s", name, name)
				return nil
			}
			n = target
		default:
			return n
		}
	}
	l.errorf(nodeLine(n), "aliases nest too deeply (or refer to themselves); write the value out")
	return nil
}

// nodeLine is n's line in the file, 0 if unknown.
func nodeLine(n ast.Node) int {
	if n == nil {
		return 0
	}
	if tk := n.GetToken(); tk != nil && tk.Position != nil {
		return tk.Position.Line
	}
	return 0
}

// mapEntry is one key: value of a mapping, after merge keys are expanded.
type mapEntry struct {
	key   string
	line  int // the key's line
	value ast.Node
}

// entries lists a mapping's keys in file order, with "<<" merges expanded
// (explicit keys win) and duplicate keys reported. what names the mapping in
// messages ("services", "catalog").
func (l *loader) entries(m *ast.MappingNode, what string, dupMsg func(key string, first int) string) []mapEntry {
	var out []mapEntry
	seen := map[string]int{}
	var merged []mapEntry
	for _, mv := range m.Values {
		if mv == nil || mv.Key == nil {
			continue
		}
		if mv.Key.IsMergeKey() {
			merged = append(merged, l.mergeEntries(mv.Value, what, 0)...)
			continue
		}
		key, ok := keyText(mv.Key)
		if !ok {
			l.errorf(nodeLine(mv.Key), "%s: keys must be plain names, not %s", what, mv.Key.Type().YAMLName())
			continue
		}
		kl := nodeLine(mv.Key)
		if first, dup := seen[key]; dup {
			l.errorf(kl, "%s", dupMsg(key, first))
			continue
		}
		seen[key] = kl
		out = append(out, mapEntry{key: key, line: kl, value: mv.Value})
	}
	for _, e := range merged {
		if _, ok := seen[e.key]; !ok {
			seen[e.key] = e.line
			out = append(out, e)
		}
	}
	return out
}

// mergeEntries expands the value of a "<<" key: a mapping (usually an
// alias of one) or a list of them, earlier ones winning.
func (l *loader) mergeEntries(v ast.Node, what string, depth int) []mapEntry {
	if depth > maxAliasDepth {
		l.errorf(nodeLine(v), "merge keys (<<) nest too deeply; write the keys out")
		return nil
	}
	at := nodeLine(v)
	v = l.resolve(v)
	switch n := v.(type) {
	case nil:
		return nil
	case *ast.MappingNode:
		var out []mapEntry
		seen := map[string]bool{}
		for _, mv := range n.Values {
			if mv == nil || mv.Key == nil {
				continue
			}
			var es []mapEntry
			if mv.Key.IsMergeKey() {
				es = l.mergeEntries(mv.Value, what, depth+1)
			} else if key, ok := keyText(mv.Key); ok {
				es = []mapEntry{{key: key, line: nodeLine(mv.Key), value: mv.Value}}
			}
			for _, e := range es {
				if !seen[e.key] {
					seen[e.key] = true
					out = append(out, e)
				}
			}
		}
		return out
	case *ast.SequenceNode:
		var out []mapEntry
		seen := map[string]bool{}
		for _, item := range n.Values {
			for _, e := range l.mergeEntries(item, what, depth+1) {
				if !seen[e.key] {
					seen[e.key] = true
					out = append(out, e)
				}
			}
		}
		return out
	default:
		l.errorf(at, "%s: << merges a mapping, e.g. <<: *defaults where defaults is &defaults {instances: 2}", what)
		return nil
	}
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
		case *ast.StringNode:
			return v.Value, true
		case *ast.IntegerNode, *ast.FloatNode, *ast.BoolNode, *ast.InfinityNode, *ast.NanNode:
			return v.GetToken().Value, true
		default:
			return "", false
		}
	}
	return "", false
}
