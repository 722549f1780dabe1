#!/usr/bin/env bash
# The course's performance table: ApacheBench, 1000 requests at concurrency
# 1, 5, 10, 30, 50 and 100 against the balancer, printed as a Markdown table.
#
#   scripts/perf-table.sh [URL]          default URL: http://127.0.0.1:44444/page.html
#   REQUESTS=1000 LEVELS="1 5 10 30 50 100" scripts/perf-table.sh URL
#
# Start the cluster first (cargo run --release --bin rr-cluster). ab sends
# HTTP/1.0 requests without keep-alive, as the course did. Installs
# apache2-utils when ab is missing (needs root and apt).
set -euo pipefail

url="${1:-http://127.0.0.1:44444/page.html}"
requests="${REQUESTS:-1000}"
levels="${LEVELS:-1 5 10 30 50 100}"

if ! command -v ab >/dev/null 2>&1; then
  echo "installing apache2-utils (for ab)" >&2
  apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq apache2-utils >/dev/null
fi

if ! curl -fsS -o /dev/null --max-time 5 "$url" 2>/dev/null; then
  if ! ab -n 1 -s 5 "$url" >/dev/null 2>&1; then
    echo "error: nothing answers at $url (start it with: cargo run --release --bin rr-cluster)" >&2
    exit 1
  fi
fi

field() { # field NAME FILE: the first number after "NAME:" in ab's output
  awk -v name="$1" -F': *' '$1 == name { split($2, a, " "); print a[1]; exit }' "$2"
}

echo "| No | Concurrency level | Time taken (s) | Complete requests | Failed requests | Total transferred (bytes) | Requests per second | Time per request (ms) | Transfer rate (KB/s) |"
echo "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
out=$(mktemp)
trap 'rm -f "$out"' EXIT
n=0
for c in $levels; do
  n=$((n + 1))
  if ! ab -n "$requests" -c "$c" -s 30 "$url" >"$out" 2>&1; then
    echo "error: ab failed at concurrency $c:" >&2
    tail -5 "$out" >&2
    exit 1
  fi
  echo "| $n | $c | $(field 'Time taken for tests' "$out") | $(field 'Complete requests' "$out") | $(field 'Failed requests' "$out") | $(field 'Total transferred' "$out") | $(field 'Requests per second' "$out") | $(field 'Time per request' "$out") | $(field 'Transfer rate' "$out") |"
done
