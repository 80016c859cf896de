package experiment

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// The steady-state metrics of a hypothesis may be expressions over the
// instances' own metrics, in a subset of PromQL evaluated here, without a
// Prometheus server:
//
//	expr       = term { ("+" | "-") term }
//	term       = unary { ("*" | "/") unary }
//	unary      = [ "-" ] primary
//	primary    = number | "(" expr ")" | aggregate | call | selector
//	aggregate  = ("sum" | "avg" | "min" | "max" | "count") [ by ] "(" expr ")" [ by ]
//	by         = "by" "(" [ label { "," label } ] ")"
//	call       = ("rate" | "increase") "(" selector ")"
//	           | "histogram_quantile" "(" number "," expr ")"
//	selector   = metric [ "{" [ matcher { "," matcher } ] "}" ] [ "[" duration "]" ]
//	matcher    = label ("=" | "!=" | "=~" | "!~") string
//
// rate and increase read a counter over the window being judged (the
// baseline, the fault phase, or the abort window), or over the range
// given, ending with it; increase does not extrapolate to the window's
// edges as Prometheus does. A bare selector is each series' last value in
// the window (a gauge). Every series carries the labels of its metric and
// shoal_service, shoal_instance (service/index) and shoal_instance_id, as
// in shoal up's Prometheus targets file. Binary operators match series
// with the same labels, or apply a number to each; the expression must
// end as one number (a number, or a vector of one series).

// node is a parsed expression.
type node interface{ String() string }

type (
	numberNode struct{ v float64 }
	unaryNode  struct{ x node }
	binaryNode struct {
		op   byte // + - * /
		l, r node
	}
	aggNode struct {
		op string
		by []string
		x  node
	}
	rangeFunc struct {
		name string // rate, increase
		sel  *selectorNode
	}
	quantileNode struct {
		q float64
		x node
	}
	selectorNode struct {
		name     string
		matchers []matcher
		window   time.Duration // 0: the window being judged
	}
	matcher struct {
		label, op, value string
		re               *regexp.Regexp // =~ and !~, anchored
	}
)

func (n numberNode) String() string { return strconv.FormatFloat(n.v, 'g', -1, 64) }
func (n unaryNode) String() string  { return "-" + n.x.String() }
func (n binaryNode) String() string {
	return "(" + n.l.String() + " " + string(n.op) + " " + n.r.String() + ")"
}
func (n aggNode) String() string {
	return n.op + " by (" + strings.Join(n.by, ", ") + ") (" + n.x.String() + ")"
}
func (n rangeFunc) String() string    { return n.name + "(" + n.sel.String() + ")" }
func (n quantileNode) String() string { return fmt.Sprintf("histogram_quantile(%g, %s)", n.q, n.x) }
func (n *selectorNode) String() string {
	var b strings.Builder
	b.WriteString(n.name)
	if len(n.matchers) > 0 {
		parts := make([]string, len(n.matchers))
		for i, m := range n.matchers {
			parts[i] = m.label + m.op + strconv.Quote(m.value)
		}
		b.WriteString("{" + strings.Join(parts, ",") + "}")
	}
	if n.window > 0 {
		b.WriteString("[" + n.window.String() + "]")
	}
	return b.String()
}

func (m matcher) matches(v string) bool {
	switch m.op {
	case "=":
		return v == m.value
	case "!=":
		return v != m.value
	case "=~":
		return m.re.MatchString(v)
	default:
		return !m.re.MatchString(v)
	}
}

// maxExprLen bounds an expression.
const maxExprLen = 4 << 10

// parseExpr parses an expression in the syntax above.
func parseExpr(s string) (node, error) {
	if len(s) > maxExprLen {
		return nil, fmt.Errorf("expression of %d bytes: at most %d", len(s), maxExprLen)
	}
	p := &exprParser{src: s}
	n, err := p.expr(0)
	if err != nil {
		return nil, err
	}
	if p.skip(); p.i < len(p.src) {
		return nil, p.errorf("unexpected %q", p.src[p.i:])
	}
	return n, nil
}

type exprParser struct {
	src string
	i   int
}

// maxDepth bounds nesting, so that a hostile expression cannot exhaust the
// stack.
const maxDepth = 64

func (p *exprParser) errorf(format string, args ...any) error {
	return fmt.Errorf("at %d: %s", p.i+1, fmt.Sprintf(format, args...))
}

func (p *exprParser) skip() {
	for p.i < len(p.src) && unicode.IsSpace(rune(p.src[p.i])) {
		p.i++
	}
}

// peek reports whether the next token starts with s.
func (p *exprParser) peek(s string) bool {
	p.skip()
	return strings.HasPrefix(p.src[p.i:], s)
}

// peekWord reports whether the next token is the word w.
func (p *exprParser) peekWord(w string) bool {
	if !p.peek(w) {
		return false
	}
	j := p.i + len(w)
	return j >= len(p.src) || !(unicode.IsLetter(rune(p.src[j])) || unicode.IsDigit(rune(p.src[j])) || p.src[j] == '_' || p.src[j] == ':')
}

func (p *exprParser) eat(s string) bool {
	if p.peek(s) {
		p.i += len(s)
		return true
	}
	return false
}

func (p *exprParser) want(s string) error {
	if !p.eat(s) {
		if p.i >= len(p.src) {
			return p.errorf("want %q, the expression ended", s)
		}
		return p.errorf("want %q, found %q", s, p.src[p.i:min(len(p.src), p.i+10)])
	}
	return nil
}

// expr parses a sum: terms joined by + and -.
func (p *exprParser) expr(depth int) (node, error) {
	if depth > maxDepth {
		return nil, p.errorf("nested too deep")
	}
	return p.chain(depth, "+-", p.term)
}

// term parses a product: unary operands joined by * and /.
func (p *exprParser) term(depth int) (node, error) {
	return p.chain(depth, "*/", p.unary)
}

// chain parses operands joined by the one-byte operators ops, left to
// right: a-b-c is (a-b)-c.
func (p *exprParser) chain(depth int, ops string, operand func(depth int) (node, error)) (node, error) {
	l, err := operand(depth)
	if err != nil {
		return nil, err
	}
	for {
		op, ok := p.eatOne(ops)
		if !ok {
			return l, nil
		}
		r, err := operand(depth)
		if err != nil {
			return nil, err
		}
		l = binaryNode{op, l, r}
	}
}

// eatOne eats the next token if it is one of the bytes ops, and returns it.
func (p *exprParser) eatOne(ops string) (byte, bool) {
	for i := range len(ops) {
		if p.eat(ops[i : i+1]) {
			return ops[i], true
		}
	}
	return 0, false
}

func (p *exprParser) unary(depth int) (node, error) {
	if p.eat("-") {
		x, err := p.primary(depth + 1)
		if err != nil {
			return nil, err
		}
		return unaryNode{x}, nil
	}
	return p.primary(depth + 1)
}

var aggregations = []string{"sum", "avg", "min", "max", "count"}

func (p *exprParser) primary(depth int) (node, error) {
	if depth > maxDepth {
		return nil, p.errorf("nested too deep")
	}
	p.skip()
	if p.i >= len(p.src) {
		return nil, p.errorf("the expression ended early")
	}
	if p.eat("(") {
		n, err := p.expr(depth + 1)
		if err != nil {
			return nil, err
		}
		return n, p.want(")")
	}
	if c := p.src[p.i]; c >= '0' && c <= '9' || c == '.' {
		return p.number()
	}
	name := p.ident()
	if name == "" {
		return nil, p.errorf("unexpected %q", p.src[p.i:p.i+1])
	}
	switch {
	case slices.Contains(aggregations, name):
		return p.aggregate(name, depth)
	case name == "rate" || name == "increase":
		if err := p.want("("); err != nil {
			return nil, err
		}
		sel, err := p.selector(p.ident())
		if err != nil {
			return nil, err
		}
		return rangeFunc{name, sel}, p.want(")")
	case name == "histogram_quantile":
		if err := p.want("("); err != nil {
			return nil, err
		}
		q, err := p.number()
		if err != nil {
			return nil, err
		}
		if qv := q.(numberNode).v; !(qv >= 0 && qv <= 1) {
			return nil, p.errorf("quantile %v: want a number from 0 to 1", qv)
		}
		if err := p.want(","); err != nil {
			return nil, err
		}
		x, err := p.expr(depth + 1)
		if err != nil {
			return nil, err
		}
		return quantileNode{q.(numberNode).v, x}, p.want(")")
	}
	if p.peek("(") {
		return nil, p.errorf("unknown function %s: want sum, avg, min, max, count, rate, increase or histogram_quantile", name)
	}
	return p.selector(name)
}

func (p *exprParser) aggregate(op string, depth int) (node, error) {
	var by []string
	var err error
	if p.peekWord("by") {
		if by, err = p.byClause(); err != nil {
			return nil, err
		}
	}
	if err := p.want("("); err != nil {
		return nil, err
	}
	x, err := p.expr(depth + 1)
	if err != nil {
		return nil, err
	}
	if err := p.want(")"); err != nil {
		return nil, err
	}
	if by == nil && p.peekWord("by") {
		if by, err = p.byClause(); err != nil {
			return nil, err
		}
	}
	return aggNode{op, by, x}, nil
}

func (p *exprParser) byClause() ([]string, error) {
	p.eat("by")
	if err := p.want("("); err != nil {
		return nil, err
	}
	by := []string{}
	for !p.eat(")") {
		l := p.ident()
		if l == "" {
			return nil, p.errorf("want a label name in by (...)")
		}
		by = append(by, l)
		if !p.eat(",") && !p.peek(")") {
			return nil, p.errorf("want , or ) in by (...)")
		}
	}
	return by, nil
}

func (p *exprParser) number() (node, error) {
	p.skip()
	j := p.i
	for j < len(p.src) && strings.IndexByte("0123456789.eE", p.src[j]) >= 0 ||
		j > p.i && j < len(p.src) && (p.src[j] == '-' || p.src[j] == '+') && (p.src[j-1] == 'e' || p.src[j-1] == 'E') {
		j++
	}
	v, err := strconv.ParseFloat(p.src[p.i:j], 64)
	if err != nil {
		return nil, p.errorf("%q is not a number", p.src[p.i:j])
	}
	p.i = j
	return numberNode{v}, nil
}

// ident reads a metric or label name ([a-zA-Z_:][a-zA-Z0-9_:]*), "" if
// none is next.
func (p *exprParser) ident() string {
	p.skip()
	j := p.i
	for j < len(p.src) {
		c := p.src[j]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' || c == ':' || j > p.i && c >= '0' && c <= '9' {
			j++
			continue
		}
		break
	}
	name := p.src[p.i:j]
	p.i = j
	return name
}

func (p *exprParser) selector(name string) (*selectorNode, error) {
	if name == "" {
		return nil, p.errorf("want a metric name")
	}
	sel := &selectorNode{name: name}
	if p.eat("{") {
		for !p.eat("}") {
			m, err := p.matcher()
			if err != nil {
				return nil, err
			}
			sel.matchers = append(sel.matchers, m)
			if !p.eat(",") && !p.peek("}") {
				return nil, p.errorf("want , or } between label matchers")
			}
		}
	}
	if p.eat("[") {
		j := strings.IndexByte(p.src[p.i:], ']')
		if j < 0 {
			return nil, p.errorf("want ] after the range")
		}
		d, err := time.ParseDuration(strings.TrimSpace(p.src[p.i : p.i+j]))
		if err != nil || d <= 0 {
			return nil, p.errorf("range %q: want a duration such as 10s", p.src[p.i:p.i+j])
		}
		sel.window = d
		p.i += j + 1
	}
	return sel, nil
}

func (p *exprParser) matcher() (matcher, error) {
	m := matcher{label: p.ident()}
	if m.label == "" {
		return m, p.errorf("want a label name")
	}
	for _, op := range []string{"=~", "!~", "!=", "="} {
		if p.eat(op) {
			m.op = op
			break
		}
	}
	if m.op == "" {
		return m, p.errorf("want =, !=, =~ or !~ after %s", m.label)
	}
	p.skip()
	if p.i >= len(p.src) || p.src[p.i] != '"' && p.src[p.i] != '\'' {
		return m, p.errorf("want a quoted value after %s%s", m.label, m.op)
	}
	q := p.src[p.i]
	j := p.i + 1
	for j < len(p.src) && p.src[j] != q {
		if p.src[j] == '\\' {
			j++
		}
		j++
	}
	if j >= len(p.src) {
		return m, p.errorf("unterminated string")
	}
	raw := p.src[p.i : j+1]
	if q == '\'' {
		raw = `"` + strings.ReplaceAll(raw[1:len(raw)-1], `"`, `\"`) + `"`
	}
	v, err := strconv.Unquote(raw)
	if err != nil {
		return m, p.errorf("bad string %s", p.src[p.i:j+1])
	}
	m.value = v
	p.i = j + 1
	if m.op == "=~" || m.op == "!~" {
		if m.re, err = regexp.Compile("^(?:" + v + ")$"); err != nil {
			return m, p.errorf("regexp %q: %v", v, err)
		}
	}
	return m, nil
}

// metrics lists the metric names an expression reads.
func metrics(n node) []string {
	var out []string
	var walk func(node)
	walk = func(n node) {
		switch n := n.(type) {
		case unaryNode:
			walk(n.x)
		case binaryNode:
			walk(n.l)
			walk(n.r)
		case aggNode:
			walk(n.x)
		case rangeFunc:
			walk(n.sel)
		case quantileNode:
			walk(n.x)
		case *selectorNode:
			if !slices.Contains(out, n.name) {
				out = append(out, n.name)
			}
		}
	}
	walk(n)
	return out
}
