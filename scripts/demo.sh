#!/usr/bin/env bash
# make demo: mxsink (a local capture receiver) + an engine with an embedded
# Redis + campaignctl launching the sample campaign. Needs only Go.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=./bin
logs=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT

for addr in 127.0.0.1:2525 127.0.0.1:6390 127.0.0.1:8025; do
  if (exec 3<>"/dev/tcp/${addr%:*}/${addr#*:}") 2>/dev/null; then
    echo "demo: $addr is already in use (another demo or engine running?)" >&2; exit 1
  fi
done

mail="$logs/mail"
echo "==> mxsink on 127.0.0.1:2525 (a capture receiver; dave@... gets 550 5.1.1 user unknown; messages in $mail)"
$BIN/mxsink -listen 127.0.0.1:2525 -bounce '^dave@' -dir "$mail" 2>"$logs/mxsink.log" &
pids+=($!)
echo "==> engine -config configs/demo.yaml (embedded Redis on 127.0.0.1:6390; log: $logs/engine.log)"
$BIN/engine -config configs/demo.yaml 2>"$logs/engine.log" &
pids+=($!)
for _ in $(seq 100); do
  $BIN/campaignctl status >/dev/null 2>&1 && break
  sleep 0.1
done
grep -h "level=WARN" "$logs/engine.log" | sed 's/^/    [engine] /' || true

echo "==> campaignctl launch campaigns/welcome.yaml"
$BIN/campaignctl launch campaigns/welcome.yaml
echo "==> waiting for the campaign to finish"
if ! timeout 60 $BIN/campaignctl status welcome-2025 --watch --json >/dev/null; then
  echo "demo: the campaign did not finish within 60 s; engine log:" >&2
  tail -20 "$logs/engine.log" >&2
  exit 1
fi
echo "==> campaignctl status welcome-2025"
$BIN/campaignctl status welcome-2025
echo "==> campaignctl suppression list   (the hard bounce is suppressed from now on)"
$BIN/campaignctl suppression list
echo "==> the mail mxsink received: $mail"
ls "$mail" | sed 's/^/    /'
first=$(ls "$mail" | head -1)
if [ -n "$first" ]; then
  echo "==> $first (headers)"
  sed -n '1,/^\r\?$/p' "$mail/$first" | sed 's/^/    /'
fi
