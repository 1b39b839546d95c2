# bulkhead — see README.md. Every target works on a machine with only Go 1.26;
# `testdata` also needs the guest toolchains (.ci/run installs them).

GO        ?= go
BIN       := bin/bulkhead
# The version stamped into release builds and images (bulkhead version).
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
# A daemonless builder first: podman, then buildah, then docker.
CONTAINER ?= $(shell command -v podman || command -v buildah || command -v docker)
GUEST_ENV := GOOS=wasip1 GOARCH=wasm
DEMO_DATA := .bulkhead-demo

.PHONY: all build demo demo-cluster test test.all bench bench-dbos soak testdata generate check lint format clean image

all: build

build:
	$(GO) build -ldflags "-X main.version=$(VERSION)" -o $(BIN) ./cmd/bulkhead

# The container image (Dockerfile): static binary, non-root, /data volume,
# health check on /readyz.
image:
	$(CONTAINER) build --build-arg VERSION=$(VERSION) -t bulkhead:$(VERSION) -t bulkhead:latest .

# The mission in one command: a workflow of Go nodes is started, bulkhead is
# killed with SIGKILL mid-run and started again; the run finishes from where
# it stopped (examples/demo/main.go drives it and says what happened).
demo: build
	@mkdir -p $(DEMO_DATA)/plugins
	cd testdata/go/nodes && $(GUEST_ENV) $(GO) build -buildmode=c-shared -trimpath -o ../../../$(DEMO_DATA)/plugins/nodes.wasm .
	$(GO) run ./examples/demo -bin $(BIN) -flow examples/demo/flow.yaml -plugins $(DEMO_DATA)/plugins -data $(DEMO_DATA)/data

# Three hosts share one PostgreSQL database (a throwaway one, from the
# server binaries installed on the machine); the host running a long node
# is killed with SIGKILL and another host finishes the run.
demo-cluster: build
	@mkdir -p $(DEMO_DATA)/plugins
	cd testdata/go/nodes && $(GUEST_ENV) $(GO) build -buildmode=c-shared -trimpath -o ../../../$(DEMO_DATA)/plugins/nodes.wasm .
	$(GO) run ./examples/cluster -bin $(BIN) -plugins $(DEMO_DATA)/plugins

# All tests, race detector on, slow soaks skipped.
test:
	$(GO) vet ./...
	cd sdk-guest/go && $(GUEST_ENV) $(GO) vet ./...
	$(GO) test -race -short -timeout 20m ./...
	$(GO) test -short -run 'TestTimer_SleepersRestart' -timeout 10m ./host/workflow/

test.all:
	$(GO) test -race -timeout 60m ./...

bench:
	$(GO) test -run '^$$' -bench . -benchmem -timeout 60m ./...

# bulkhead's engine on PostgreSQL beside DBOS Transact Go on the same
# throwaway PostgreSQL (its own module, bench/dbos): completions/s of a
# 10-step workflow at 1, 16 and 256 in flight, then 10-step latency.
BENCH_DBOS_STEPS ?= 5000x
BENCH_DBOS_RUNS  ?= 300x
bench-dbos:
	cd bench/dbos && $(GO) test -run '^$$' -bench 'Completions|Baseline' -benchtime $(BENCH_DBOS_STEPS) -timeout 60m .
	cd bench/dbos && $(GO) test -run '^$$' -bench 'Latency' -benchtime $(BENCH_DBOS_RUNS) -timeout 60m .

# Soaks, then a bounded fuzz of the HTTP API (its starting inputs alone run
# in `test`).
soak:
	BULKHEAD_SOAK=1 $(GO) test -race -run 'Soak|Crash' -timeout 120m ./...
	BULKHEAD_SOAK=1 $(GO) test -run 'TestBacklog_Million' -v -timeout 120m ./host/workflow/
	BULKHEAD_SOAK=1 $(GO) test -run 'TestTimer_SleepersRestart' -v -timeout 30m ./host/workflow/
	BULKHEAD_SOAK=1 $(GO) test -run 'TestCluster' -v -timeout 60m ./cmd/bulkhead/
	$(GO) test -run '^$$' -fuzz FuzzAPI_Requests -fuzztime 60s -fuzzminimizetime 10s ./host/api/
	$(GO) test -run '^$$' -fuzz FuzzDecodeProgress -fuzztime 60s -fuzzminimizetime 10s ./abi/
	$(GO) test -run '^$$' -fuzz FuzzParseManifest -fuzztime 60s -fuzzminimizetime 10s ./plugins/
	$(GO) test -run '^$$' -fuzz FuzzInstrument -fuzztime 60s -fuzzminimizetime 10s ./host/internal/fuel/
	$(GO) test -run '^$$' -fuzz FuzzRandomPrograms -fuzztime 60s -fuzzminimizetime 10s ./host/internal/fuel/

# Rebuild every committed guest fixture from source (needs the toolchains).
testdata:
	$(MAKE) -C testdata all examples
	$(MAKE) -B -C host/internal/fuel/testdata
	$(MAKE) -B -C host/supervisor/testdata
	cd host/testdata && for f in *.wat; do wat2wasm $$f -o $${f%.wat}.wasm; done
	cd host/api/testdata && wat2wasm outcomes.wat -o outcomes.wasm
	cd host/testdata/escape && clang --target=wasm32-wasi -mexec-model=reactor -Os -Wl,--strip-all -I../../../sdk-guest/c -o escape.wasm escape.c

generate:
	$(GO) generate ./...

format:
	gofmt -w $$(git ls-files '*.go')

# Pinned linters, run through `go run` so CI needs nothing but Go.
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
DUPL        := github.com/mibk/dupl@v1.0.0
# Non-test Go code of the main module, for the duplicate-code check: dupl
# reports fragments of 75+ tokens found twice, dupcheck repeated functions,
# import keepers and names hiding a standard package, less the accepted
# findings in its exceptions file.
DUP_FILES    = $$(git ls-files -co --exclude-standard '*.go' ':!:*_test.go' ':!:sdk-guest/**' ':!:**/testdata/**')
DUP_EXCEPTED := internal/cmd/dupcheck/exceptions.txt

# gofmt, go vet, staticcheck and the duplicate-code check.
lint:
	test -z "$$(gofmt -l $$(git ls-files '*.go'))"
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...
	clones=$$($(GO) run $(DUPL) -t 75 -plumbing $(DUP_FILES)) && \
	  printf '%s\n' "$$clones" | $(GO) run ./internal/cmd/dupcheck -exceptions $(DUP_EXCEPTED) -clones - $(DUP_FILES)

# lint after generate, then fail if generate changed a committed file.
check: generate lint
	git diff --exit-code

clean:
	rm -rf bin $(DEMO_DATA)
