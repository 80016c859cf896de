package main

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/shoal-dev/shoal/discovery/discoverytest"
)

// referenceManifest is the repository's shoal.yaml.
var referenceManifest string

// Every test must leave no goroutine behind. Gossip members run here, so
// the check waits out memberlist's probes still in flight at shutdown (see
// discoverytest.VerifyTestMain).
//
// The tests run in a folder of their own: a command without -f looks for
// the nearest shoal.yaml above the working folder (findUp), which from
// this package's folder would be the repository's, and a developer's
// running system behind it.
func TestMain(m *testing.M) {
	var err error
	referenceManifest, err = filepath.Abs(filepath.Join("..", "..", "shoal.yaml"))
	if err == nil {
		err = os.Chdir(os.TempDir())
	}
	if err == nil && findUp(defaultManifest) != defaultManifest {
		err = fmt.Errorf("%s lies in or under the temporary folder %s: the tests need one without", findUp(defaultManifest), os.TempDir())
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "cmd/shoal tests:", err)
		os.Exit(1)
	}
	discoverytest.VerifyTestMain(m)
}
