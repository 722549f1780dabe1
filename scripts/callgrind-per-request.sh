#!/usr/bin/env bash
# User-space instructions per request of static-server over TLS, by callgrind:
# the server runs under valgrind with --threads 1 twice, serving N1 and then N2
# requests for page.html from h2load, and the script prints
# (Ir(N2) - Ir(N1)) / (N2 - N1), which cancels start-up and handshakes.
#
#   scripts/callgrind-per-request.sh MODE [N1 N2]
#
# MODE: h2 (h2load -c 4 -m 10: ten streams at once on each of 4 connections),
# h2s (h2load -c 1 -m 1: one stream at a time), h1 (h2load --h1 -c 4: HTTP/1.1
# keep-alive). Defaults: N1 2000, N2 12000. CONNS=50 makes MODE h2 use 50
# connections (bench.py's count) instead of 4. STATIC_SERVER=PATH measures another
# binary (default target/release/static-server; build it with
# `cargo build --release -p cli`). KEEP=DIR keeps the two callgrind out files
# there (callgrind.N1, callgrind.N2) for callgrind_annotate --inclusive=yes. Needs valgrind, h2load (nghttp2-client),
# openssl, curl. Instruction counts repeat to within about 0.5 % from run to
# run even on a busy machine; with MODE h2 how the answers fall into TLS
# records depends on timing, so compare binaries with the same MODE only.
set -euo pipefail

mode="${1:?usage: $0 h2|h2s|h1 [N1 N2]}"
n1="${2:-2000}"
n2="${3:-12000}"
root="$(cd "$(dirname "$0")/.." && pwd)"
bin="${STATIC_SERVER:-$root/target/release/static-server}"
page="$root/../shared/bench/page.html"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
mkdir "$tmp/www"
if [ -f "$page" ]; then cp "$page" "$tmp/www/page.html"; else head -c 1918 /dev/zero | tr '\0' 'x' > "$tmp/www/page.html"; fi
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout "$tmp/key.pem" \
  -out "$tmp/cert.pem" -days 30 -subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1 2>/dev/null

# ir N: total instructions of a server run that answered N requests.
ir() {
  local n="$1" port out pid
  port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
  out="$tmp/callgrind.$n"
  valgrind --tool=callgrind --callgrind-out-file="$out" "$bin" --root "$tmp/www" \
    --listen "127.0.0.1:$port" --threads 1 --tls-cert "$tmp/cert.pem" --tls-key "$tmp/key.pem" \
    >"$tmp/server.log" 2>&1 &
  pid=$!
  for _ in $(seq 100); do
    curl -sk -o /dev/null "https://127.0.0.1:$port/page.html" && break
    sleep 0.3
  done
  local url="https://127.0.0.1:$port/page.html"
  case "$mode" in
    h2) h2load -n "$n" -c "${CONNS:-4}" -m 10 "$url" >"$tmp/load.log" 2>&1 ;;
    h2s) h2load -n "$n" -c 1 -m 1 "$url" >"$tmp/load.log" 2>&1 ;;
    h1) h2load --h1 -n "$n" -c 4 -m 1 "$url" >"$tmp/load.log" 2>&1 ;;
    *) echo "unknown mode $mode" >&2; kill "$pid"; exit 2 ;;
  esac
  if ! grep -q "$n succeeded, 0 failed, 0 errored" "$tmp/load.log"; then
    echo "h2load did not get $n answers:" >&2
    grep "requests:" "$tmp/load.log" >&2 || cat "$tmp/load.log" >&2
  fi
  kill -TERM "$pid"
  wait "$pid" || true
  awk '/^(summary|totals):/ { print $2; exit }' "$out"
}

a="$(ir "$n1")"
b="$(ir "$n2")"
if [ -n "${KEEP:-}" ]; then mkdir -p "$KEEP" && cp "$tmp/callgrind.$n1" "$tmp/callgrind.$n2" "$KEEP/"; fi
echo "$mode: Ir($n1)=$a Ir($n2)=$b instructions per request=$(( (b - a) / (n2 - n1) ))"
