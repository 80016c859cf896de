# `make check` is exactly what CI runs (.ci/run calls it).
GO ?= go
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2

.PHONY: check fmt vet lint test bench-compile tidy bench

check: fmt vet lint tidy test bench-compile

fmt:
	@out="$$(gofmt -l .)"; if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

lint:
	$(GO) run $(STATICCHECK) ./...

tidy:
	$(GO) mod tidy -diff

# The test command of the README: every package's tests, then the
# end-to-end tests on their own. Those run the reference system (about 30
# processes) at 50 journeys/s and count failures; the other packages' tests
# running beside them on a 2-core machine would starve it.
#
# SHUFFLE=<seed> runs the tests in the order of that seed (go test prints
# the seed of a package whose tests fail); the default picks a new one.
SHUFFLE ?= on
test:
	$(GO) test -race -timeout 20m -shuffle=$(SHUFFLE) $$($(GO) list ./... | grep -v '/e2e$$')
	$(GO) test -race -timeout 20m -shuffle=$(SHUFFLE) ./e2e

# Benchmarks are not timed tests: CI runs each once to keep them compiling.
bench-compile:
	$(GO) test -run '^$$' -bench . -benchtime 1x ./...

# The client-overhead figures of docs/BENCHMARKS.md.
bench:
	$(GO) test -run '^$$' -bench 'BenchmarkCall|BenchmarkOverhead' -count 10 ./client
