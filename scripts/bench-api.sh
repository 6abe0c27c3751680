#!/usr/bin/env bash
# Throughput, latency and memory of `ohlcv serve` on the embedded store: wrk with 64
# connections against GET /api/v1/candles for 1m candles of a day, 1d candles of the year and
# 1s candles of a day, each warmed by one request, then measured in 3 runs of 10 s.
# Usage: bash scripts/bench-api.sh [data dir holding a load, default ./data; loaded if empty]
set -euo pipefail
cd "$(dirname "$0")/.."
data=${1:-./data}
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install -y wrk" >&2; exit 1; }
cargo build --release -q
bin=$PWD/target/release/ohlcv
[ -f "$data/manifest.json" ] || "$bin" --data-dir "$data" load
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
RUST_LOG=warn "$bin" --data-dir "$data" serve --port "$port" 2>/dev/null &
pid=$!
trap 'kill $pid 2>/dev/null || true' EXIT
until curl -sf "http://127.0.0.1:$port/health" >/dev/null; do sleep 0.1; done
rss() { awk -v f="$1" '$1 == f {print $2 / 1024 " MiB"}' /proc/$pid/status; }
echo "idle RSS $(rss VmRSS:)"
base="http://127.0.0.1:$port/api/v1/candles?symbol=AAPL"
for q in "interval=1m&start=2024-03-11&end=2024-03-12" \
         "interval=1d&start=2024-01-01&end=2025-01-01" \
         "interval=1s&start=2024-03-11&end=2024-03-12"; do
    curl -sf "$base&$q" >/dev/null
    for run in 1 2 3; do
        echo "== $q run $run"
        wrk -t2 -c64 -d10s --latency "$base&$q" | grep -E "Requests/sec|  50%|  99%|Non-2xx|Socket errors"
    done
    echo "RSS $(rss VmRSS:), peak $(rss VmHWM:)"
done
