#!/usr/bin/env bash
# What telemetry costs, in one run (BENCHMARKS.md, "Telemetry"): the same
# load (openfloor-bench) against fresh servers, alternated round by round so
# that the machine's drift hits every mode alike:
#   base  a build without telemetry, if OPENFLOOR_BASELINE_BIN names one
#         (e.g. built from commit fe83ccf, the last before telemetry);
#   off   this build, exporting nothing (metrics kept for /metrics);
#   on    this build exporting traces (every request sampled) and metrics over
#         OTLP/HTTP to openfloor-otlp-sink, which decodes and counts them.
# Usage: ops/bench/telemetry.sh [openfloor-bench flags, e.g. --seconds 5]
# Environment: ROUNDS (default 3).
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release --locked -p openfloor -p openfloor-bench
rounds=${ROUNDS:-3}
port=${OPENFLOOR_BENCH_PORT:-3917}
sink_port=${OPENFLOOR_SINK_PORT:-4918}
work=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

./target/release/openfloor-otlp-sink --listen "127.0.0.1:$sink_port" > "$work/sink.out" &
pids+=($!)

modes=(off on)
[ -n "${OPENFLOOR_BASELINE_BIN:-}" ] && modes=(base off on)
echo "machine: $(nproc) cores; server, load and sink share them; $rounds rounds of: ${modes[*]}"

# One fresh server in mode $1 under the load; prints the load's lines.
run_mode() {
    local mode=$1 binary=./target/release/openfloor data
    shift
    data=$(mktemp -d -p "$work")
    local env=(OPENFLOOR_LOG=warn)
    case $mode in
        base) binary=$OPENFLOOR_BASELINE_BIN ;;
        on) env+=(OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:$sink_port"
                  OTEL_METRIC_EXPORT_INTERVAL=5000) ;;
    esac
    # All load comes from loopback: one address, so its limits are off.
    env "${env[@]}" "$binary" --data "$data" --listen "127.0.0.1:$port" --limit-by-address false > "$data/server.out" 2>&1 &
    local pid=$!
    for _ in $(seq 100); do grep -q listening "$data/server.out" 2>/dev/null && break; sleep 0.1; done
    local status=0
    ./target/release/openfloor-bench --target "http://127.0.0.1:$port" "$@" | sed "s/^/$mode  /" || status=$?
    kill "$pid"; wait "$pid" 2>/dev/null || true
    rm -rf "$data"
    return "$status"
}

for round in $(seq "$rounds"); do
    for mode in "${modes[@]}"; do
        run_mode "$mode" "$@" | tee -a "$work/all.out" | grep -E "votes accepted|view GET"
    done
done

echo "== medians over $rounds rounds (per second)"
python3 - "$work/all.out" "${modes[@]}" <<'PY'
import re, statistics, sys
lines = open(sys.argv[1]).read().splitlines()
modes = sys.argv[2:]
phases = ["votes accepted (durable)", "guest view GET (200)", "guest view GET If-None-Match (304)"]
rates = {}
for line in lines:
    m = re.match(r"(\w+)\s+(.+?)\s+(\d+) /s", line)
    if m:
        rates.setdefault((m[1], m[2].strip()), []).append(float(m[3]))
print(f"{'phase':<36}" + "".join(f"{mode:>10}" for mode in modes)
      + "".join(f"{mode + '/' + modes[-2] if mode != modes[-2] else '':>12}" for mode in modes if mode != modes[-2]))
for phase in phases:
    med = {mode: statistics.median(rates.get((mode, phase), [0])) for mode in modes}
    ratios = "".join(f"{med[mode] / med[modes[-2]]:>12.3f}" for mode in modes if mode != modes[-2])
    print(f"{phase:<36}" + "".join(f"{med[mode]:>10.0f}" for mode in modes) + ratios)
PY
echo "== what the sink received (mode on): $(curl -s "http://127.0.0.1:$sink_port/stats")"
