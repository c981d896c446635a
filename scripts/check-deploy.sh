#!/usr/bin/env bash
# Checks the deployment files: the systemd unit with systemd-analyze verify
# (where it is installed) and the Dockerfile with docker build (where a
# docker daemon answers). Each check says when it was skipped.
set -euo pipefail
cd "$(dirname "$0")/.."

if command -v systemd-analyze >/dev/null 2>&1; then
	tmp=$(mktemp -d)
	trap 'rm -rf "$tmp"' EXIT
	# verify wants the ExecStart binary to exist: point it at a fresh build.
	go build -o "$tmp/sluice-engine" ./cmd/engine
	sed "s#/usr/local/bin/sluice-engine#$tmp/sluice-engine#g" deploy/sluice-engine.service >"$tmp/sluice-engine.service"
	out=$(systemd-analyze verify "$tmp/sluice-engine.service" 2>&1) || { echo "$out"; echo "systemd-analyze verify failed"; exit 1; }
	if [ -n "$out" ]; then echo "$out"; echo "systemd-analyze verify: warnings"; exit 1; fi
	echo "deploy/sluice-engine.service: systemd-analyze verify ok"
else
	echo "deploy/sluice-engine.service: skipped (systemd-analyze not installed; apt-get install systemd)"
fi

if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then
	docker build -q -t sluice-engine:ci . >/dev/null
	echo "Dockerfile: docker build ok"
else
	# Without a daemon: the build stage's Go version covers go.mod's, and
	# its go build command makes static binaries.
	want=$(sed -n 's/^go //p' go.mod)
	have=$(sed -n 's/^ARG GO_VERSION=//p' Dockerfile)
	if [ "$(printf '%s\n%s\n' "$want" "$have" | sort -V | head -n1)" != "$want" ]; then
		echo "Dockerfile: GO_VERSION $have is older than go.mod's go $want"; exit 1
	fi
	tmp2=$(mktemp -d)
	CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o "$tmp2/" ./cmd/engine ./cmd/campaignctl
	go version -m "$tmp2/engine" | grep -q 'CGO_ENABLED=0' || { echo "Dockerfile: engine is not static"; exit 1; }
	rm -rf "$tmp2"
	echo "Dockerfile: skipped docker build (no docker daemon answers); GO_VERSION $have >= go $want, static go build ok"
fi
