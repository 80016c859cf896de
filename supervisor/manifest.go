package supervisor

import "github.com/shoal-dev/shoal/manifest"

// The supervisor runs a manifest as package manifest decodes and checks it
// (manifest.Load); these are its names in the supervisor's API.
type (
	// Manifest is a checked shoal.yaml.
	Manifest = manifest.Manifest
	// ServiceSpec is one service of the manifest.
	ServiceSpec = manifest.Service
	// Register says who announces an instance in gossip discovery.
	Register = manifest.Register
	// Authorization says which services may call which.
	Authorization = manifest.Authorization
)

// Who registers an instance in gossip discovery.
const (
	RegisterSDK        = manifest.RegisterSDK
	RegisterSupervisor = manifest.RegisterSupervisor
)
