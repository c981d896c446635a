# sluice — see README.md. `make test` is what CI runs.
GO      ?= go
BIN     := bin
PKGS    := ./...
CMDS    := engine campaignctl mxsink mxsim

.PHONY: all build test test-short bench demo lint fmt clean redis-server

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
	$(GO) test -run '^$$' -bench . -benchmem -timeout 10m ./pkg/message/ ./pkg/deliver/ ./pkg/dkim/ ./pkg/suppression/
	./scripts/bench-suppression-1m.sh

# Sends the sample campaign to a local capture receiver through an engine
# with an embedded Redis: needs nothing but Go.
demo: build
	./scripts/demo.sh

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)

fmt:
	gofmt -w $$(git ls-files '*.go')

clean:
	rm -rf $(BIN)

redis-server:
	@command -v redis-server >/dev/null 2>&1 || ./scripts/install-redis.sh
