# sluice — see README.md. `make test` is what CI runs.
GO      ?= go
BIN     := bin
PKGS    := ./...
CMDS    := engine campaignctl mxsink mxsim

.PHONY: all build test test-short bench demo lint tidy-check fmt clean redis-server

all: build

build:
	@mkdir -p $(BIN)
	$(GO) build -o $(BIN)/ $(addprefix ./cmd/,$(CMDS))

# Tests need a real redis-server on PATH (started per package on a free port).
test: redis-server
	$(GO) vet $(PKGS)
	$(GO) test -race -count=1 -timeout 8m $(PKGS)

# Benchmarks print throughput figures; record them in BENCHMARKS.md.
bench: redis-server build
	$(GO) test -run '^$$' -bench . -benchtime 1x -timeout 20m ./bench/
	$(GO) test -run '^$$' -bench . -benchmem -timeout 10m ./pkg/message/ ./pkg/deliver/ ./pkg/dkim/ ./pkg/suppression/...
	./scripts/bench-suppression-1m.sh

# Sends the sample campaign to a local capture receiver through an engine
# with an embedded Redis: needs nothing but Go.
demo: build
	./scripts/demo.sh

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)
	@$(MAKE) --no-print-directory tidy-check

# Fails when `go mod tidy` would change go.mod or go.sum; leaves them as found.
tidy-check:
	@tmp=$$(mktemp -d); cp go.mod go.sum $$tmp/; \
	$(GO) mod tidy; \
	diff -u $$tmp/go.mod go.mod && diff -u $$tmp/go.sum go.sum; rc=$$?; \
	cp $$tmp/go.mod $$tmp/go.sum .; rm -rf $$tmp; \
	if [ $$rc -ne 0 ]; then echo "go mod tidy needed"; exit 1; fi

fmt:
	gofmt -w $$(git ls-files '*.go')

clean:
	rm -rf $(BIN)

redis-server:
	@command -v redis-server >/dev/null 2>&1 || ./scripts/install-redis.sh
