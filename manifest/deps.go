package manifest

import (
	"encoding/json"

	"github.com/shoal-dev/shoal/client"
)

// DependenciesJSON is how a service's dependencies: reach its instances, as
// the value of SHOAL_DEPENDENCIES (shoal up's environment, an exported
// pod's): the JSON the SDK decodes, with only the settings the manifest
// set, so that the value reads like the manifest (an unset setting is zero,
// which the SDK takes as "keep the code's"). Durations are nanoseconds.
func DependenciesJSON(deps map[string]client.Config) string {
	b, err := json.Marshal(deps)
	if err != nil {
		panic("manifest: dependencies do not encode: " + err.Error()) // Validate refuses every non-finite number
	}
	var tree map[string]any
	if err := json.Unmarshal(b, &tree); err != nil {
		panic("manifest: dependencies do not decode: " + err.Error())
	}
	for svc, cfg := range tree {
		tree[svc] = dropZeros(cfg) // a service named with no setting keeps its {}
	}
	b, _ = json.Marshal(tree)
	return string(b)
}

// dropZeros removes from a decoded JSON value the members of objects that
// are zero (0, false, "", null, or objects left empty), at any depth.
func dropZeros(v any) any {
	m, ok := v.(map[string]any)
	if !ok {
		return v
	}
	for k, x := range m {
		x = dropZeros(x)
		if zero(x) {
			delete(m, k)
			continue
		}
		m[k] = x
	}
	return m
}

func zero(v any) bool {
	switch x := v.(type) {
	case nil:
		return true
	case float64:
		return x == 0
	case bool:
		return !x
	case string:
		return x == ""
	case map[string]any:
		return len(x) == 0
	case []any:
		return len(x) == 0
	}
	return false
}
