#!/usr/bin/env bash
# make demo: mxsink (a local capture receiver) + an engine with an embedded
# Redis + campaignctl launching the sample campaign. Needs only Go.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=./bin
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

echo "==> starting mxsink on 127.0.0.1:2525 (recipients starting with 'nobody' get 550 5.1.1)"
$BIN/mxsink -listen 127.0.0.1:2525 -bounce '^nobody' 2>&1 | sed 's/^/    [mxsink] /' &
pids+=($!)
echo "==> starting engine (embedded Redis on 127.0.0.1:6390)"
$BIN/engine -config configs/demo.yaml 2>&1 | sed 's/^/    [engine] /' &
pids+=($!)
for _ in $(seq 100); do
  $BIN/campaignctl status >/dev/null 2>&1 && break
  sleep 0.1
done
echo "==> campaignctl launch campaigns/welcome.yaml"
$BIN/campaignctl launch campaigns/welcome.yaml
echo "==> waiting for the campaign to finish"
timeout 60 $BIN/campaignctl status welcome-2025 --watch --json >/dev/null
echo "==> campaignctl status welcome-2025"
$BIN/campaignctl status welcome-2025
