package manifest

import (
	"fmt"
	"reflect"
	"slices"
	"strings"

	"github.com/goccy/go-yaml/ast"
)

// keyAliases are the names other tools (Compose, Procfile, Kubernetes)
// use for a setting, suggested when they appear as unknown keys.
var keyAliases = map[string]string{
	"replicas":     "instances",
	"scale":        "instances",
	"count":        "instances",
	"cmd":          "command",
	"run":          "command",
	"exec":         "command",
	"environment":  "env",
	"healthcheck":  "health",
	"health_check": "health",
	"readiness":    "health",
	"ports":        "port",
	"package":      "build",
	"arguments":    "args",
	"drain":        "drain_timeout",
	"timeout":      "drain_timeout",
	"origins":      "allow_origins",
	"prefix":       "path",
	"upstream":     "service",
	"backend":      "service",
}

var (
	manifestType = reflect.TypeFor[Manifest]()
	serviceType  = reflect.TypeFor[Service]()
)

// unknownKey reports e, a key the struct type t does not have, in the
// mapping at p: with the nearest known key, or where the key belongs, or
// the keys known there.
func (d *decoder) unknownKey(t reflect.Type, e entry, p string) {
	d.src.strayUnder[p] = true
	known := fieldsOf(t).names
	msg := "unknown key"
	switch s := suggestKey(e.key, known); {
	case s != "":
		msg += fmt.Sprintf("; did you mean %s?", s)
	case t == manifestType && slices.Contains(fieldsOf(serviceType).names, e.key):
		msg += fmt.Sprintf("; %s is a per-service setting: move it under a service in services:", e.key)
	case t == serviceType && slices.Contains(fieldsOf(manifestType).names, e.key):
		msg += fmt.Sprintf("; %s is set once for the whole system, at the top level (no indentation)", e.key)
	case t == manifestType && d.looksLikeService(e.value):
		msg += fmt.Sprintf("; services go under services:, e.g.\n\nservices:\n  %s:\n    ...", e.key)
	default:
		msg += "; known keys are " + strings.Join(known, ", ")
	}
	d.fail(e.at, child(p, e.key), "%s", msg)
}

// looksLikeService says whether v is a mapping with build: or command:.
func (d *decoder) looksLikeService(v ast.Node) bool {
	v, _ = d.resolve(v)
	for _, mv := range mappingValues(v) {
		if k, ok := keyText(mv.Key); ok && (k == "build" || k == "command") {
			return true
		}
	}
	return false
}

// Suggest returns the one of known that name most likely meant (a case or
// separator slip, or at most 2 edits), or "" if none is near: the manifest's
// did-you-mean, for names checked elsewhere (a service named on the command
// line or in an experiment's fault).
func Suggest(name string, known []string) string { return suggestKey(name, known) }

// suggestKey returns the known key nearest to key: a synonym from another
// tool, a case or separator slip, or an edit distance of at most 2.
func suggestKey(key string, known []string) string {
	norm := strings.ToLower(strings.ReplaceAll(key, "-", "_"))
	if a, ok := keyAliases[norm]; ok && slices.Contains(known, a) {
		return a
	}
	best, bestD := "", 3
	for _, k := range known {
		if k == norm {
			return k
		}
		if d := editDistance(norm, k); d < bestD {
			best, bestD = k, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance between a and b (bytes).
func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return max(len(a), len(b))
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			c := 1
			if a[i-1] == b[j-1] {
				c = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+c)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
