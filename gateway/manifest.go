package gateway

// Reading the gateway: key of a manifest with its lines: the YAML syntax
// tree is walked for the lines of keys and routes and to check durations
// and sizes, then decoded strictly.

import (
	"errors"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"
)

// ParseManifest reads the gateway: key of a manifest (shoal.yaml) named
// name, decodes it strictly (an unknown key is a mistake) and validates
// it. Without a gateway: key it returns a zero Config: default routes
// only. Every mistake is a *ConfigError with the file and line, joined with
// errors.Join. It reads no files.
func ParseManifest(name string, data []byte) (*Config, error) {
	p, err := findGateway(data)
	if err != nil {
		return nil, withFile(name, err)
	}
	cfg := &Config{keyLines: p.keyLines}
	if p.node == nil {
		return cfg, nil
	}
	if errs := p.checkScalars(p.node); len(errs) > 0 {
		return nil, withFile(name, errors.Join(errs...))
	}
	if err := decode(p.node, cfg); err != nil {
		line, msg := p.line, firstLine(yaml.FormatError(err, false, false))
		if m := yamlPos.FindStringSubmatch(msg); m != nil {
			line, _ = strconv.Atoi(m[1])
			msg = m[2]
		}
		return nil, withFile(name, &ConfigError{Line: line, Msg: p.where(line) + ": " + msg})
	}
	cfg.keyLines = p.keyLines
	if len(p.routeLines) == len(cfg.Routes) {
		for i := range cfg.Routes {
			cfg.Routes[i].Line = p.routeLines[i]
		}
	}
	if err := cfg.Validate(); err != nil {
		return nil, withFile(name, err)
	}
	return cfg, nil
}

// LoadFile reads the gateway: key of the manifest at path (see
// ParseManifest).
func LoadFile(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	return ParseManifest(path, data)
}

// withFile sets the file of every *ConfigError in err.
func withFile(name string, err error) error {
	var errs []error
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	} else {
		errs = []error{err}
	}
	for _, e := range errs {
		var ce *ConfigError
		if errors.As(e, &ce) {
			ce.File = name
		}
	}
	return err
}

// decode decodes n into cfg strictly. The decoder is third-party code fed
// with user input, so a panic in it becomes an error.
func decode(n ast.Node, cfg *Config) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("the YAML decoder failed (%v); check the settings' syntax", r)
		}
	}()
	return yaml.NodeToValue(n, cfg, yaml.DisallowUnknownField())
}

// yamlPos is the position go-yaml puts before its messages.
var yamlPos = regexp.MustCompile(`^\[(\d+):\d+\] (.*)$`)

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return s
}

// parsed is the gateway: node of a manifest and the lines of its parts.
type parsed struct {
	node       ast.Node       // the gateway: value; nil when absent or empty
	line       int            // the gateway: key's line
	keyLines   map[string]int // keys of the gateway: mapping
	routeLines []int          // where each item of routes: starts
}

// findGateway parses data and finds its gateway: key. The parser is
// third-party code fed with user input, so a panic in it becomes an error.
func findGateway(data []byte) (p parsed, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = &ConfigError{Msg: fmt.Sprintf("gateway: the YAML parser failed (%v); check the file's syntax", r)}
		}
	}()
	f, err := parser.ParseBytes(data, 0, parser.AllowDuplicateMapKey())
	if err != nil {
		line := 0
		var ye yaml.Error
		if errors.As(err, &ye) && ye.GetToken() != nil && ye.GetToken().Position != nil {
			line = ye.GetToken().Position.Line
		}
		return p, &ConfigError{Line: line, Msg: "gateway: invalid YAML: " + firstLine(err.Error())}
	}
	var body ast.Node
	for _, d := range f.Docs {
		if d != nil && d.Body != nil {
			body = d.Body
			break
		}
	}
	for _, kv := range mappingValues(unwrap(body)) {
		if k, ok := keyName(kv.Key); !ok || k != "gateway" {
			continue
		}
		p.line = nodeLine(kv.Key)
		v := unwrap(kv.Value)
		switch v.(type) {
		case nil, *ast.NullNode:
			return p, nil
		case *ast.AliasNode:
			return p, &ConfigError{Line: p.line, Msg: "gateway: write the settings out rather than as an alias"}
		case *ast.MappingNode, *ast.MappingValueNode:
		default:
			return p, &ConfigError{Line: p.line, Msg: "gateway: is a mapping of settings, e.g.\n\ngateway:\n  routes:\n    - {path: /v1/titles/, service: catalog}"}
		}
		p.node = v
		p.keyLines = map[string]int{}
		for _, e := range mappingValues(v) {
			k, _ := keyName(e.Key)
			if _, dup := p.keyLines[k]; !dup {
				p.keyLines[k] = nodeLine(e.Key)
			}
			if seq, ok := unwrap(e.Value).(*ast.SequenceNode); ok && k == "routes" {
				for _, item := range seq.Values {
					p.routeLines = append(p.routeLines, nodeLine(item))
				}
			}
		}
		return p, nil // the supervisor reports a second gateway: key
	}
	return p, nil
}

// where names the part of the configuration at line for messages.
func (p *parsed) where(line int) string {
	start := p.keyLines["routes"]
	if start == 0 || line < start {
		return "gateway"
	}
	for _, l := range p.keyLines { // the key after routes: ends it
		if l > start && line >= l {
			return "gateway"
		}
	}
	i := -1
	for j, l := range p.routeLines {
		if l <= line {
			i = j
		}
	}
	if i < 0 {
		return "gateway"
	}
	return fmt.Sprintf("gateway: routes[%d]", i)
}

// Keys whose values are durations or sizes, checked before decoding so
// that a mistake gets its own line and an example.
var (
	durationKeys = map[string]bool{"timeout": true, "max_age": true, "leeway": true}
	sizeKeys     = map[string]bool{"max_body": true}
)

// checkScalars reports duration and size values that do not parse.
func (p *parsed) checkScalars(n ast.Node) []error {
	var errs []error
	switch v := unwrap(n).(type) {
	case *ast.MappingNode, *ast.MappingValueNode:
		for _, kv := range mappingValues(v) {
			k, _ := keyName(kv.Key)
			line := nodeLine(kv.Key)
			val := unwrap(kv.Value)
			bad := func(format string, args ...any) {
				errs = append(errs, &ConfigError{Line: line, Msg: p.where(line) + ": " + fmt.Sprintf(format, args...)})
			}
			switch {
			case durationKeys[k]:
				switch s := val.(type) {
				case *ast.StringNode:
					if _, err := time.ParseDuration(strings.TrimSpace(s.Value)); err != nil {
						bad("%s %q is not a duration; write a number with a unit (ms, s, m), e.g. %s: 2s", k, s.Value, k)
					}
				case *ast.IntegerNode, *ast.FloatNode:
					bad("%s needs a unit, e.g. %s: %ss", k, k, s.GetToken().Value)
				case nil, *ast.NullNode:
				default:
					bad("%s must be a duration, e.g. %s: 2s", k, k)
				}
			case sizeKeys[k]:
				text, ok := scalarText(val)
				if _, null := val.(*ast.NullNode); null || val == nil {
					break
				}
				if !ok {
					bad("%s must be a size, e.g. %s: 1MB", k, k)
				} else if _, err := ParseSize(text); err != nil {
					bad("%s: %v", k, err)
				}
			default:
				errs = append(errs, p.checkScalars(val)...)
			}
		}
	case *ast.SequenceNode:
		for _, item := range v.Values {
			errs = append(errs, p.checkScalars(item)...)
		}
	}
	return errs
}

// unwrap strips anchors and tags.
func unwrap(n ast.Node) ast.Node {
	for range 16 {
		switch v := n.(type) {
		case *ast.AnchorNode:
			n = v.Value
		case *ast.TagNode:
			n = v.Value
		default:
			return n
		}
	}
	return n
}

// mappingValues lists a mapping's entries; nil for other nodes.
func mappingValues(n ast.Node) []*ast.MappingValueNode {
	switch v := n.(type) {
	case *ast.MappingNode:
		return v.Values
	case *ast.MappingValueNode:
		return []*ast.MappingValueNode{v}
	}
	return nil
}

func keyName(k ast.MapKeyNode) (string, bool) {
	if k == nil {
		return "", false
	}
	return scalarText(unwrap(k))
}

// scalarText is the text of a scalar as written.
func scalarText(n ast.Node) (string, bool) {
	switch v := n.(type) {
	case *ast.StringNode:
		return v.Value, true
	case *ast.IntegerNode, *ast.FloatNode, *ast.BoolNode:
		return v.GetToken().Value, true
	}
	return "", false
}

func nodeLine(n ast.Node) int {
	if n == nil {
		return 0
	}
	if tk := n.GetToken(); tk != nil && tk.Position != nil {
		return tk.Position.Line
	}
	return 0
}
