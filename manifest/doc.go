// Package manifest owns shoal.yaml, the file that describes a Shoal system:
// its schema, as the tagged Go structs of this package (Manifest, Service,
// Gateway, Chaos and the client.Config of each dependency), one strict
// decode of the file into them, and one validator. The same decode reads
// Shoal's other YAML files (experiments) through DecodeDocument. shoal up (through the supervisor)
// runs what Load returns; every gateway reads its routes with ParseGateway
// from the same file, again whenever it changes.
//
// Every mistake in a file is reported at once, in file order (at most
// MaxProblems), each as an *Error with the file, line and column, the key
// path (services.catalog.instances, gateway.routes[2].timeout), the value
// as written, and what to write instead: the nearest known key for a typo,
// the setting's example for a value of the wrong type. Anchors, aliases and
// merge keys (<<) work, bounded against self-reference.
//
// The JSON Schema of the file, shoal.schema.json beside this package, is
// generated from the same structs (go generate) so that editors complete
// and check shoal.yaml: put
//
//	# yaml-language-server: $schema=manifest/shoal.schema.json
//
// at the top of the file (the path is relative to it).
package manifest

//go:generate go run ./internal/schemagen -o shoal.schema.json
