# sluice — see README.md. `make test` is what CI runs.
GO      ?= go
BIN     := bin
PKGS    := ./...
CMDS    := engine campaignctl mxsink mxsim

# DKIM signs RSA with OpenSSL's libcrypto (about 3x the messages per core, see
# BENCHMARKS.md) when cgo, a C compiler and its headers (Debian:
# libssl-dev; `make dkim-deps`) are there, else with Go's crypto/rsa.
# `make TAGS=` forces pure Go; `make TAGS=openssl` insists on libcrypto.
ifeq ($(origin TAGS),undefined)
TAGS := $(shell [ "$$($(GO) env CGO_ENABLED)" = 1 ] && echo 'int main(void){return 0;}' | $$($(GO) env CC) -include openssl/evp.h -x c - -lcrypto -o /dev/null 2>/dev/null && echo openssl)
endif
GOTAGS  := $(if $(TAGS),-tags $(TAGS))

.PHONY: all build test test-short bench demo lint tidy-check fmt clean redis-server smtp-sink dkim-deps

all: build

build:
	@mkdir -p $(BIN)
	$(GO) build $(GOTAGS) -o $(BIN)/ $(addprefix ./cmd/,$(CMDS))

# Tests need a real redis-server on PATH (started per package on a free port).
# The fault-injection suite runs verbose so its figures (lost, duplicates,
# in flight, time to recover) show in the output.
# With libcrypto, pkg/dkim is also tested as the pure-Go build (the fallback).
test: redis-server
	$(GO) vet $(GOTAGS) $(PKGS)
	$(GO) test $(GOTAGS) -race -count=1 -timeout 8m $$($(GO) list $(PKGS) | grep -v /pkg/faulttest)
	$(GO) test $(GOTAGS) -race -count=1 -timeout 8m -v ./pkg/faulttest/
	$(if $(TAGS),$(GO) test -race -count=1 ./pkg/dkim/...)

# Benchmarks print throughput figures; record them in BENCHMARKS.md. The
# raw smtp-source → smtp-sink rate (Postfix's tools) is measured in the same
# run, and figures are printed with their ratio to it (bench/rawsink_test.go).
bench: redis-server smtp-sink build
	$(GO) test $(GOTAGS) -run '^$$' -bench . -benchtime 1x -timeout 20m ./bench/
	$(GO) test $(GOTAGS) -run '^$$' -bench . -benchmem -timeout 10m ./pkg/message/ ./pkg/deliver/ ./pkg/dkim/... ./pkg/suppression/...
	./scripts/bench-suppression-1m.sh

# Sends the sample campaign to a local capture receiver through an engine
# with an embedded Redis: needs nothing but Go.
demo: build
	./scripts/demo.sh

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(GOTAGS) $(PKGS)
	$(if $(TAGS),$(GO) vet ./pkg/dkim/...)
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
	@command -v redis-server >/dev/null 2>&1 && command -v redis-cli >/dev/null 2>&1 || ./scripts/install-redis.sh

# Postfix's smtp-sink and smtp-source (the raw loopback rate for `make bench`).
smtp-sink:
	@./scripts/install-postfix.sh

# libssl-dev (libcrypto signer) and python3-dkim (dkimpy cross-check).
dkim-deps:
	./scripts/install-dkim-deps.sh
