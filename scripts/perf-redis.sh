#!/bin/bash
# perf-redis.sh N DATA... — where the busiest N redis-servers of each
# perf recording spend their time, at full speed (BENCHMARKS.md,
# 2026-12-02 sixth sitting). Record a run with software clock samples
# (this VM has no hardware counters; perf is Debian's linux-perf, not
# needed by make test or make bench), e.g. from bench/:
#
#   perf record -q -a -e cpu-clock -F 4000 -o /tmp/cluster.data -- \
#     ./bench.test -test.run '^$' -test.bench 'Cluster20k/^cluster$' -test.benchtime 1x
#   ../scripts/perf-redis.sh 3 /tmp/cluster.data
#
# Only samples in each recording's longest busy spell (100 ms buckets
# with at least 15 samples of those servers) count: a cluster's start
# and the idle end are left out. It prints, per recording, each server's
# user and kernel samples, then the symbols of all recordings together,
# most samples first (kernel ones prefixed k:, stripped ones ?), the
# first TOP (60).
set -euo pipefail
[ $# -ge 2 ] || { echo "usage: $0 N DATA..." >&2; exit 2; }
command -v perf >/dev/null || { echo "$0: perf not found (Debian: apt-get install linux-perf)" >&2; exit 1; }
n=$1
shift
syms=$(mktemp)
trap 'rm -f "$syms"' EXIT
for f in "$@"; do
	perf script -i "$f" -F comm,pid,time,ip,sym,dso 2>/dev/null | awk -v N="$n" -v F="$f" -v OUT="$syms" '
	$1 == "redis-server" {
		t = $3; sub(":", "", t)
		sym = $5; if (sym ~ /^\[unknown\]/ || sym == "") sym = "?"
		k = ($0 ~ /kernel\.kallsyms/) ? "k" : "u"
		if (k == "k") sym = "k:" sym
		cnt[$2]++; pid[NR] = $2; bucket[NR] = int(t * 10); kind[NR] = k; name[NR] = sym
	}
	END {
		m = 0; for (p in cnt) top[++m] = p
		for (i = 1; i <= m; i++) for (j = i + 1; j <= m; j++) if (cnt[top[j]] > cnt[top[i]]) { x = top[i]; top[i] = top[j]; top[j] = x }
		for (i = 1; i <= N && i <= m; i++) busy[top[i]] = 1
		for (r in pid) if (pid[r] in busy) B[bucket[r]]++
		lo = 1e18; hi = 0; for (b in B) { if (b + 0 < lo) lo = b + 0; if (b + 0 > hi) hi = b + 0 }
		best = 0; run = 0; for (b = lo; b <= hi; b++) { if (B[b] >= 15) { run++; if (run > best) { best = run; end = b } } else run = 0 }
		for (r in pid) if ((pid[r] in busy) && bucket[r] > end - best && bucket[r] <= end) {
			S[pid[r] " " kind[r]]++; print name[r] >> OUT
		}
		printf "%s: %d ms busy;", F, best * 100
		for (i = 1; i <= N && i <= m; i++) printf " pid %s user %d kernel %d;", top[i], S[top[i] " u"], S[top[i] " k"]
		print ""
	}'
done
sort "$syms" | uniq -c | sort -rn | head -"${TOP:-60}"
