#!/usr/bin/env bash
# Measures the suppression list's export → remove all → import round trip
# through the campaignctl binary with N entries (default 1,000,000): time
# and peak RSS of each step, and whether the round trip is byte-identical.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-1000000}
BIN=./bin
work=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no --dir "$work" --daemonize yes --logfile "$work/redis.log" >/dev/null
trap 'redis-cli -p "$port" shutdown nosave >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
for _ in $(seq 50); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
CTL=("$BIN/campaignctl" -redis "redis://127.0.0.1:$port" -prefix bench1m)
measure() { # name, command... — wall time and the child's peak RSS
  python3 - "$N" "$@" <<'PY'
import resource, subprocess, sys, time
n, name, cmd = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
t = time.monotonic()
subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
secs = time.monotonic() - t
rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
print(f"{name:<8} {secs:8.1f} s  {n/secs:9.0f} entries/s  peak RSS {rss:6.1f} MB")
PY
}
python3 - "$N" >"$work/seed.csv" <<'PY'
import sys
n = int(sys.argv[1])
print("email,reason,scope,code,enhanced_code,detail,campaign,first_seen,last_seen,source")
for i in range(n):
    print(f"user{i:07d}@example{i%997}.test,hard_bounce,global,550,5.1.1,user unknown,spring,2026-01-02T03:04:05Z,2026-02-03T04:05:06Z,engine")
PY
echo "suppression round trip, $N entries (campaignctl binary):"
measure seed "${CTL[@]}" suppression import "$work/seed.csv"
measure export "${CTL[@]}" suppression export -o "$work/a.csv"
# remove all: every shard's entries hash ({bench1m.N.S}:supp:entries)
redis-cli -p "$port" --scan --pattern '{bench1m.*}:supp:entries' | xargs redis-cli -p "$port" del >/dev/null
measure import "${CTL[@]}" suppression import "$work/a.csv"
measure export2 "${CTL[@]}" suppression export -o "$work/b.csv"
if cmp -s "$work/a.csv" "$work/b.csv"; then echo "round trip: identical ($(wc -l <"$work/a.csv") lines)"; else echo "round trip: DIFFERENT"; exit 1; fi
