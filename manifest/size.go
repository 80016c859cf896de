package manifest

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/goccy/go-yaml/ast"
)

// Size is a number of bytes. In YAML it is a whole number, or a number
// with a unit: B, KB, MB, GB (powers of 1000) or KiB, MiB, GiB (powers of
// 1024), e.g. 512KB, 10MB, 1MiB.
type Size int64

// sizePattern is what ParseSize reads, for the JSON Schema.
const sizePattern = `^\s*[0-9]+(\.[0-9]*)?\s*([kKmMgG][iI]?)?[bB]?\s*$`

// ParseSize reads a Size as written in YAML.
func ParseSize(s string) (Size, error) {
	t := strings.TrimSpace(s)
	i := 0
	for i < len(t) && (t[i] >= '0' && t[i] <= '9' || t[i] == '.') {
		i++
	}
	num, unit := t[:i], strings.ToLower(strings.TrimSpace(t[i:]))
	mult, ok := sizeUnits[unit]
	if num == "" || !ok {
		return 0, fmt.Errorf("size %q: write a number of bytes, optionally with a unit (KB, MB, GB, KiB, MiB, GiB), e.g. 10MB", s)
	}
	f, err := strconv.ParseFloat(num, 64)
	if err != nil {
		return 0, fmt.Errorf("size %q: %q is not a number", s, num)
	}
	v := math.Round(f * float64(mult))
	if v >= math.MaxInt64 {
		return 0, fmt.Errorf("size %q is too large", s)
	}
	return Size(v), nil
}

var sizeUnits = map[string]int64{
	"": 1, "b": 1,
	"k": 1e3, "kb": 1e3, "m": 1e6, "mb": 1e6, "g": 1e9, "gb": 1e9,
	"ki": 1 << 10, "kib": 1 << 10, "mi": 1 << 20, "mib": 1 << 20, "gi": 1 << 30, "gib": 1 << 30,
}

// String writes s in the largest binary unit that divides it.
func (s Size) String() string {
	for _, u := range []struct {
		n    Size
		name string
	}{{1 << 30, "GiB"}, {1 << 20, "MiB"}, {1 << 10, "KiB"}} {
		if s != 0 && s%u.n == 0 {
			return strconv.FormatInt(int64(s/u.n), 10) + u.name
		}
	}
	return strconv.FormatInt(int64(s), 10) + "B"
}

// unmarshalYAML reads a Size from a scalar.
func (s *Size) unmarshalYAML(d *decoder, n ast.Node, p string, f field) {
	text, ok := scalarText(n)
	if null(n) {
		d.failAt(p, "has no value%s", writeEg(f))
		return
	}
	if !ok {
		d.failAt(p, "must be a size%s", f.eg())
		return
	}
	v, err := ParseSize(text)
	if err != nil {
		d.failAt(p, "%v", err)
		return
	}
	*s = v
}
