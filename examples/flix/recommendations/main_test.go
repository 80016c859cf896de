package main

import (
	"testing"

	"github.com/shoal-dev/shoal/store/storetest"
)

// Every test must leave no goroutine behind (storetest.Main checks), and
// PostgreSQL, when a test uses it, is started once for all.
func TestMain(m *testing.M) { storetest.Main(m) }
