#!/usr/bin/env bash
# Load throughput into a real InfluxDB 1.x (Debian's influxd) started here on a free port with
# its data in a temporary directory, for several batch sizes, writer counts and gzip.
# Usage: bash scripts/bench-influx.sh [trades per run, default 5000000] [big load, default 50000000]
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-5000000}
big=${2:-50000000}
cargo build --release -q
bin=$PWD/target/release/ohlcv
work=$(mktemp -d)
trap 'kill $pid 2>/dev/null || true; rm -rf "$work"' EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat > "$work/influxdb.conf" <<CONF
reporting-disabled = true
bind-address = "127.0.0.1:$((port + 1))"
[meta]
  dir = "$work/meta"
[data]
  dir = "$work/data"
  wal-dir = "$work/wal"
  query-log-enabled = false
[http]
  bind-address = "127.0.0.1:$port"
  log-enabled = false
[logging]
  level = "warn"
[monitor]
  store-enabled = false
CONF
influxd run -config "$work/influxdb.conf" >/dev/null 2>&1 &
pid=$!
until curl -sf "http://127.0.0.1:$port/ping" >/dev/null; do sleep 0.2; done
export OHLCV_STORE=influxdb INFLUXDB_URL=http://127.0.0.1:$port INFLUXDB_API=v1
"$bin" influx setup
cpu() { awk '{print $14 + $15}' /proc/$pid/stat; }
hz=$(getconf CLK_TCK)
run() {
    local label=$1; shift
    local c0; c0=$(cpu)
    local out; out=$("$bin" --data-dir "$work/ck" load --trades "$n" --replace "$@" 2>/dev/null)
    local c1; c1=$(cpu)
    printf '%-28s %s  server CPU %.1f s  %s\n' "$label" "$(grep 'trades/s' <<<"$out")" "$(echo "($c1 - $c0) / $hz" | bc -l)" "$(grep 'latency' <<<"$out")"
}
echo "== $n trades per run"
for b in 1000 5000 10000 50000; do run "batch $b, 2 writers" --batch-lines $b --writers 2; done
for w in 1 4; do run "batch 10000, $w writers" --batch-lines 10000 --writers $w; done
run "batch 10000, 2 writers, gzip" --batch-lines 10000 --writers 2 --gzip
echo "== the ideal client (pre-built bodies, replayed) against the loader: batch 10000, 2 writers, $n trades"
fresh() {
    curl -sf -XPOST "http://127.0.0.1:$port/query" --data-urlencode 'q=DROP DATABASE "trades"' >/dev/null
    "$bin" influx setup >/dev/null
}
fresh
cargo run --release -q --example replay -- "$INFLUXDB_URL" trades "$n" 10000 2
fresh
run "loader, batch 10000, 2 writers" --batch-lines 10000 --writers 2
echo "== $big trades, then verify"
c0=$(cpu)
/usr/bin/time -f "loader wall %e s, peak RSS %M KiB" "$bin" --data-dir "$work/ck" load --trades "$big" --replace 2>&1 | grep -v '^{'
c1=$(cpu)
echo "server CPU $(echo "($c1 - $c0) / $hz" | bc -l) s, data on disk $(du -sh "$work/data" | cut -f1)"
/usr/bin/time -f "verify wall %e s" "$bin" --data-dir "$work/ck" verify 2>&1 | grep -v '^{'
