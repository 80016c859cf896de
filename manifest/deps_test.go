package manifest

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/client"
)

func TestParseDependencies(t *testing.T) {
	const head = "services:\n  api:\n    build: ./api\n    dependencies:\n"
	const tail = "  ratings: {build: ./ratings}\n  catalog: {build: ./catalog}\n" // the services api calls
	m, err := Parse("shoal.yaml", []byte(head+
		"      ratings:\n        timeout: 300ms\n        hedge: {disabled: true}\n        max_in_flight: 64\n"+
		"      catalog: {max_attempts: 2}\n"+tail))
	if err != nil {
		t.Fatal(err)
	}
	deps := m.Services[0].Dependencies
	r, c := deps["ratings"], deps["catalog"]
	if r.Timeout != 300*time.Millisecond || !r.Hedge.Disabled || r.MaxInFlight != 64 || c.MaxAttempts != 2 {
		t.Fatalf("dependencies = %+v", deps)
	}
	// They reach the instances as JSON the SDK decodes back, with only
	// what the manifest set.
	env := DependenciesJSON(deps)
	if want := `{"catalog":{"max_attempts":2},"ratings":{"hedge":{"disabled":true},"max_in_flight":64,"timeout":300000000}}`; env != want {
		t.Errorf("DependenciesJSON = %s, want %s", env, want)
	}
	var back map[string]client.Config
	dec := json.NewDecoder(strings.NewReader(env))
	dec.DisallowUnknownFields() // as the SDK decodes it
	if err := dec.Decode(&back); err != nil || !reflect.DeepEqual(back, deps) {
		t.Fatalf("round trip: %v, %+v", err, back)
	}
	if got := DependenciesJSON(map[string]client.Config{"ratings": {}}); got != `{"ratings":{}}` {
		t.Errorf("a dependency with no setting: %s", got)
	}

	bad := []struct{ yaml, want string }{
		{"      ratings:\n        timout: 1s\n", `shoal.yaml:6:9: services.api.dependencies.ratings.timout: unknown key; did you mean timeout?`},
		{"      ratings: {max_attempts: 20}\n", "shoal.yaml:5:7: services.api.dependencies.ratings: max_attempts 20 out of range [1, 8]"},
		{"      ratings: {hedge: {percentile: 1.5}}\n", "shoal.yaml:5:7: services.api.dependencies.ratings: resilience: hedge.percentile 1.5"},
		{"      Bad_Name: {}\n", `shoal.yaml:5:7: services.api.dependencies.Bad_Name: "Bad_Name" is not a service name`},
		{"      ratings: {timeout: fast}\n", `shoal.yaml:5:26: services.api.dependencies.ratings.timeout: "fast" is not a duration`},
		{"      ratings: {hedge: [1]}\n", "shoal.yaml:5:17: services.api.dependencies.ratings.hedge: must be a mapping of settings"},
		{"      ratings: {dependencies: {catalog: {}}}\n", "shoal.yaml:5:7: services.api.dependencies.ratings: dependencies do not nest"},
		{"      ratings: {budget: {min_per_second: .inf}}\n", "shoal.yaml:5:7: services.api.dependencies.ratings: retry budget: min_per_second +Inf must be a finite number"},
		{"      ratngs: {max_in_flight: 64}\n", `shoal.yaml:5:7: services.api.dependencies.ratngs: "ratngs" is not a service of this manifest; did you mean ratings?`},
	}
	for _, tt := range bad {
		_, err := Parse("shoal.yaml", []byte(head+tt.yaml+tail))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%q: err = %v, want it to contain %q", tt.yaml, err, tt.want)
		}
	}
}
