package supervisor

import (
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/token"

	"github.com/shoal-dev/shoal/client"
)

// Readers of the loader for setting values: strings, lists, numbers, ports,
// environment, durations; each reports type mistakes with an example.

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

// str reads a string setting. A number or boolean is a type mistake here
// (build: 3 is surely not meant), except when tagged !!str.
func (l *loader) str(e mapEntry, what, example string) (string, bool) {
	raw := e.value
	for {
		if a, ok := raw.(*ast.AnchorNode); ok {
			raw = a.Value
			continue
		}
		break
	}
	if t, ok := raw.(*ast.TagNode); ok && t.Start != nil && t.Start.Value == "!!str" {
		if s, ok := scalarText(t.Value); ok {
			return s, true
		}
	}
	switch v := l.resolve(e.value).(type) {
	case nil:
		return "", false
	case *ast.StringNode, *ast.LiteralNode:
		s, _ := scalarText(v)
		return s, true
	case *ast.NullNode:
		l.errorf(e.line, "%s has no value; write e.g. %s", what, example)
	default:
		l.errorf(e.line, "%s must be a string, e.g. %s", what, example)
	}
	return "", false
}

// strList reads a list of strings (numbers are kept as written). nonEmpty
// rejects an empty list.
func (l *loader) strList(e mapEntry, what, example string, nonEmpty bool) []string {
	v := l.resolve(e.value)
	seq, ok := v.(*ast.SequenceNode)
	if !ok {
		switch v.(type) {
		case nil:
		case *ast.StringNode, *ast.LiteralNode:
			l.errorf(e.line, "%s must be a list, one item per argument (no shell splitting), e.g. %s", what, example)
		case *ast.NullNode:
			l.errorf(e.line, "%s has no value; write e.g. %s", what, example)
		default:
			l.errorf(e.line, "%s must be a list of strings, e.g. %s", what, example)
		}
		return nil
	}
	out := make([]string, 0, len(seq.Values))
	bad := false
	for _, item := range seq.Values {
		iv := l.resolve(item)
		if iv == nil {
			bad = true
			continue
		}
		s, ok := scalarText(iv)
		if !ok {
			at := nodeLine(item)
			if at == 0 {
				at = e.line
			}
			l.errorf(at, "%s: each item must be a string (quote it if needed), e.g. %s", what, example)
			bad = true
			continue
		}
		out = append(out, s)
	}
	if bad {
		return nil
	}
	if nonEmpty && len(out) == 0 {
		l.errorf(e.line, "%s is empty; give the program and its arguments, e.g. %s", what, example)
		return nil
	}
	return out
}

// intNode reads a whole number, returning it (clamped to ±2^62, beyond
// every range checked) and its text as written; typeMsg is the complete
// message for a value of another type.
func (l *loader) intNode(v ast.Node, at int, typeMsg string) (int64, string, bool) {
	const limit = 1 << 62
	switch n := v.(type) {
	case nil:
		return 0, "", false
	case *ast.IntegerNode:
		text := n.GetToken().Value
		switch x := n.Value.(type) {
		case int64:
			return max(-limit, min(x, limit)), text, true
		case uint64:
			return int64(min(x, limit)), text, true
		}
	case *ast.StringNode:
		// An unquoted integer too big for 64 bits stays a string.
		if tk := n.GetToken(); tk != nil && tk.Type == token.StringType && bigInt(n.Value) {
			if n.Value[0] == '-' {
				return -limit, n.Value, true
			}
			return limit, n.Value, true
		}
	case *ast.FloatNode:
		// 3.0 is a whole number written oddly; 3.5 is not.
		if f := n.Value; f == math.Trunc(f) && !math.IsInf(f, 0) {
			return int64(max(-limit, min(f, limit))), n.GetToken().Value, true
		}
	}
	l.errorf(at, "%s", typeMsg)
	return 0, "", false
}

// bigInt says whether s is an optionally signed string of digits.
func bigInt(s string) bool {
	s = strings.TrimLeft(s, "+-")
	return s != "" && strings.Trim(s, "0123456789") == ""
}

// ports reads port: a list of port numbers (or one number, for a single
// instance).
func (l *loader) ports(e mapEntry, what string) []int {
	typeMsg := fmt.Sprintf("%s: port must be a list of port numbers, one per instance, e.g. port: [8080, 8081]", what)
	v := l.resolve(e.value)
	var items []ast.Node
	switch n := v.(type) {
	case nil:
		return nil
	case *ast.SequenceNode:
		items = n.Values
	case *ast.IntegerNode:
		items = []ast.Node{n}
	default:
		l.errorf(e.line, "%s", typeMsg)
		return nil
	}
	out := make([]int, 0, len(items))
	seen := map[int64]bool{}
	for _, item := range items {
		at := nodeLine(item)
		if at == 0 {
			at = e.line
		}
		p, text, ok := l.intNode(l.resolve(item), at, typeMsg)
		if !ok {
			return nil
		}
		if p < 1 || p > 65535 {
			l.errorf(at, "%s: port %s is not a TCP port; use 1 to 65535 (e.g. 8080)", what, text)
			return nil
		}
		if seen[p] {
			l.errorf(at, "%s: port %d is listed twice; give each instance its own port", what, p)
			return nil
		}
		seen[p] = true
		out = append(out, int(p))
	}
	return out
}

// portExample suggests a port list of the right length.
func portExample(have []int, n int) string {
	if n < 1 || n > 10 {
		return "port: [8080, 8081]"
	}
	base := 8080
	if len(have) > 0 && have[0]+n-1 <= 65535 {
		base = have[0]
	}
	ps := make([]string, n)
	for i := range ps {
		ps[i] = fmt.Sprint(base + i)
	}
	return "instances: " + fmt.Sprint(n) + " with port: [" + strings.Join(ps, ", ") + "]"
}

// env reads env: a mapping from variable name to value (numbers and
// booleans kept as written).
func (l *loader) env(e mapEntry, what string) map[string]string {
	m, ok := l.resolve(e.value).(*ast.MappingNode)
	if !ok {
		if l.resolve(e.value) != nil {
			l.errorf(e.line, "%s: env must be a mapping of variable names to values, e.g. env: {LOG_LEVEL: debug}", what)
		}
		return nil
	}
	out := map[string]string{}
	for _, kv := range l.entries(m, what+": env", func(key string, first int) string {
		return fmt.Sprintf("%s: env %s is set twice (first on line %d); keep one", what, key, first)
	}) {
		if !validEnvName(kv.key) {
			l.errorf(kv.line, "%s: env name %q: use letters, digits and '_', not starting with a digit, e.g. LOG_LEVEL", what, kv.key)
			continue
		}
		v := l.resolve(kv.value)
		if v == nil {
			continue
		}
		s, ok := scalarText(v)
		if !ok {
			if _, null := v.(*ast.NullNode); null {
				l.errorf(kv.line, "%s: env %s has no value; write %s: \"\" for an empty one", what, kv.key, kv.key)
			} else {
				l.errorf(kv.line, "%s: env %s must be a single value, e.g. %s: debug", what, kv.key, kv.key)
			}
			continue
		}
		out[kv.key] = s
	}
	return out
}

func validEnvName(s string) bool {
	if s == "" || s[0] >= '0' && s[0] <= '9' {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_') {
			return false
		}
	}
	return true
}

// duration reads drain_timeout: a Go duration string such as 10s or 1m30s.
// A bare number is refused: its unit would be a guess.
func (l *loader) duration(e mapEntry) time.Duration {
	const example = "drain_timeout: 10s"
	switch v := l.resolve(e.value).(type) {
	case nil:
	case *ast.StringNode:
		d, err := time.ParseDuration(strings.TrimSpace(v.Value))
		if err != nil {
			l.errorf(e.line, "drain_timeout %q is not a duration; write a number with a unit (ms, s, m), e.g. %s", v.Value, example)
			return 0
		}
		if d <= 0 {
			l.errorf(e.line, "drain_timeout must be positive, e.g. %s", example)
			return 0
		}
		return d
	case *ast.IntegerNode, *ast.FloatNode:
		l.errorf(e.line, "drain_timeout needs a unit, e.g. drain_timeout: %ss", v.GetToken().Value)
	case *ast.NullNode:
		l.errorf(e.line, "drain_timeout has no value; write e.g. %s", example)
	default:
		l.errorf(e.line, "drain_timeout must be a duration, e.g. %s", example)
	}
	return 0
}

// yamlPos is the position go-yaml puts before its messages.
var yamlPos = regexp.MustCompile(`^\[(\d+):\d+\] (.*)$`)

// dependencies reads dependencies: a mapping from the name of a service
// this one calls to its client policy, decoded strictly (an unknown key is
// an error with its line) and validated.
func (l *loader) dependencies(e mapEntry, what string) map[string]client.Config {
	m, ok := l.resolve(e.value).(*ast.MappingNode)
	if !ok {
		if l.resolve(e.value) != nil {
			l.errorf(e.line, "%s: dependencies must map service names to client policies, e.g. dependencies: {ratings: {timeout: 300ms}}", what)
		}
		return nil
	}
	out := map[string]client.Config{}
	for _, kv := range l.entries(m, what+": dependencies", func(key string, first int) string {
		return fmt.Sprintf("%s: dependencies: %s is set twice (first on line %d); keep one", what, key, first)
	}) {
		if !ValidServiceName(kv.key) {
			l.errorf(kv.line, "%s: dependencies: %q is not a service name", what, kv.key)
			continue
		}
		var c client.Config
		if v := l.resolve(kv.value); v != nil {
			if err := yaml.NodeToValue(v, &c, yaml.DisallowUnknownField()); err != nil {
				line, msg := kv.line, firstLineOf(yaml.FormatError(err, false, false))
				if m := yamlPos.FindStringSubmatch(msg); m != nil {
					line, _ = strconv.Atoi(m[1])
					msg = m[2]
				}
				l.errorf(line, "%s: dependencies: %s: %s", what, kv.key, msg)
				continue
			}
		}
		if err := (client.Config{Dependencies: map[string]client.Config{kv.key: c}}).Validate(); err != nil {
			l.errorf(kv.line, "%s: %s", what, strings.TrimPrefix(err.Error(), "client: "))
			continue
		}
		out[kv.key] = c
	}
	return out
}
