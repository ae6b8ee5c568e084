#!/usr/bin/env bash
# Builds release binaries, starts a fresh server on a temporary data
# directory (loopback), runs the load benchmark against it, stops it.
# Usage: ops/bench/run.sh [openfloor-bench flags, e.g. --seconds 10 --connections 64]
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release --locked -p openfloor -p openfloor-bench
data=$(mktemp -d)
port=${OPENFLOOR_BENCH_PORT:-3917}
# All load comes from loopback: one address, so its limits are off.
OPENFLOOR_LOG=warn ./target/release/openfloor --data "$data" --listen "127.0.0.1:$port" \
    --limit-by-address false > "$data/server.out" &
pid=$!
trap 'kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; rm -rf "$data"' EXIT
for _ in $(seq 100); do grep -q listening "$data/server.out" 2>/dev/null && break; sleep 0.1; done
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB; server and load generator share them"
./target/release/openfloor-bench --target "http://127.0.0.1:$port" "$@"
