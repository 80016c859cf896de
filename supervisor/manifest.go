package supervisor

import (
	"time"

	"github.com/shoal-dev/shoal/client"
	"github.com/shoal-dev/shoal/gateway"
)

// Manifest is a parsed, validated shoal.yaml.
type Manifest struct {
	// Name of the system, shown by ps and up.
	Name string `yaml:"name"`
	// Services in the order the file lists them (start order).
	Services []*ServiceSpec `yaml:"-"`
	// DrainTimeout given to every instance (SHOAL_DRAIN_TIMEOUT); default 10s.
	DrainTimeout time.Duration `yaml:"drain_timeout"`
	// Gateway is the gateway: key, the front door's routes, checked with
	// the manifest (shoal gateway --config reads it again, and reloads it
	// when the file changes); nil without the key (default routes only).
	Gateway *gateway.Config `yaml:"gateway"`

	// Path is the manifest file; Dir its folder, against which build paths
	// and the .shoal state folder are resolved. Set by the loader.
	Path string `yaml:"-"`
	Dir  string `yaml:"-"`
}

// Register says who announces an instance in gossip discovery.
type Register string

const (
	// RegisterSDK: the program uses the shoal SDK and joins gossip itself.
	RegisterSDK Register = "sdk"
	// RegisterSupervisor: the supervisor joins gossip on the program's
	// behalf once its health check passes (any program that speaks HTTP).
	RegisterSupervisor Register = "supervisor"
)

// ServiceSpec is one service of the manifest. Exactly one of Build and
// Command is set.
type ServiceSpec struct {
	Name string `yaml:"-"` // the key under services:

	// Build is a Go package path (e.g. ./examples/flix/catalog), relative to
	// the manifest's folder, built once with go build into .shoal/bin.
	Build string `yaml:"build"`
	// Command is any program and its arguments (e.g. [python3, trailers.py]),
	// run from the manifest's folder.
	Command []string `yaml:"command"`
	// Args are appended to the built binary's command line.
	Args []string `yaml:"args"`
	// Instances to run; default 1.
	Instances int `yaml:"instances"`
	// Env is added to every instance's environment.
	Env map[string]string `yaml:"env"`
	// Health is the path polled for readiness; default /readyz for SDK
	// programs, / for others.
	Health string `yaml:"health"`
	// Port fixes the instances' ports (one per instance, e.g. the gateway's
	// 8080 and 8081); otherwise the supervisor assigns free ones.
	Port []int `yaml:"port"`
	// Register defaults to sdk for build:, supervisor for command:.
	Register Register `yaml:"register"`
	// Dependencies sets the client policy for the services this one calls,
	// by service name, with the keys of client.Config (timeout, hedge,
	// throttle, max_in_flight...). It reaches SDK programs as
	// SHOAL_DEPENDENCIES and overrides what their code sets, field by field.
	Dependencies map[string]client.Config `yaml:"dependencies"`

	// Line is where the service is defined in the file, for messages.
	Line int `yaml:"-"`
}
