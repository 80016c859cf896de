package manifest_test

import (
	"fmt"

	"github.com/shoal-dev/shoal/manifest"
)

// Every mistake at once, each at its place, with its key path and the fix.
func ExampleParse() {
	_, err := manifest.Parse("shoal.yaml", []byte(`services:
  catalog:
    build: ./catalog
    replicas: 3
  ratings:
    build: ./ratings
    instances: 0
gateway:
  routes:
    - {path: /v1/titles/, service: catalog, timeout: 2}
`))
	fmt.Println(err)

	m, err := manifest.Parse("shoal.yaml", []byte("services:\n  catalog: {build: ./catalog, instances: 3}\n"))
	fmt.Println(m.Services[0].Name, m.Services[0].Instances, m.Services[0].Health, m.DrainTimeout, err)
	// Output:
	// shoal.yaml:4:5: services.catalog.replicas: unknown key; did you mean instances?
	// shoal.yaml:7:16: services.ratings.instances: 0 is out of range; use 1 to 100 (to stop a service, remove it or comment it out)
	// shoal.yaml:10:54: gateway.routes[0].timeout: needs a unit: timeout: 2ms or timeout: 2s?
	// catalog 3 /readyz 10s <nil>
}
