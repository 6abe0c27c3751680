#!/usr/bin/env bash
# InfluxDB benchmark against a real InfluxDB 1.x (Debian's influxd) started here on a free port
# with its data in a temporary directory: `ohlcv bench influx` runs its matrix (schemas, batch
# lines, writers, gzip, precision; its defaults unless arguments are given) with the server's
# pid and data directories, and writes its report to $REPORT (default ./bench-report). Then the
# ideal client against the loader, and a big load verified.
# Usage: bash scripts/bench-influx.sh [ohlcv bench influx flags...]
#   BIG=50000000 (0 to skip) trades of the big load; IDEAL=5000000 (0 to skip) of the replay.
set -euo pipefail
cd "$(dirname "$0")/.."
report=${REPORT:-$PWD/bench-report}
big=${BIG:-50000000}
ideal=${IDEAL:-5000000}
cargo build --release -q
bin=${CARGO_TARGET_DIR:-$PWD/target}/release/ohlcv
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
  # Snapshot the WAL and fully compact a shard 2 s after its last write (instead of 10 min
  # and 4 h), so that the benchmark reads the disk after compaction (--compaction-wait-secs).
  cache-snapshot-write-cold-duration = "2s"
  compact-full-write-cold-duration = "2s"
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
echo "== ohlcv bench influx, report in $report"
"$bin" bench influx --server-pid "$pid" --server-data-dir "$work/data,$work/wal" --compaction-wait-secs 300 --report "$report" "$@" 2> >(grep -v '^{' >&2)
"$bin" influx setup
cpu() { awk '{print $14 + $15}' /proc/$pid/stat; }
hz=$(getconf CLK_TCK)
if [ "$ideal" -gt 0 ]; then
    echo "== the ideal client (pre-built bodies, replayed) against the loader: batch 10000, 2 writers, $ideal trades"
    fresh() {
        curl -sf -XPOST "http://127.0.0.1:$port/query" --data-urlencode 'q=DROP DATABASE "trades"' >/dev/null
        "$bin" influx setup >/dev/null
    }
    fresh
    cargo run --release -q --example replay -- "$INFLUXDB_URL" trades "$ideal" 10000 2
    fresh
    "$bin" --data-dir "$work/ck" load --trades "$ideal" --replace --batch-lines 10000 --writers 2 2>/dev/null | grep 'trades/s'
fi
if [ "$big" -gt 0 ]; then
    echo "== $big trades, then verify"
    c0=$(cpu)
    /usr/bin/time -f "loader wall %e s, peak RSS %M KiB" "$bin" --data-dir "$work/ck" load --trades "$big" --replace 2>&1 | grep -v '^{'
    c1=$(cpu)
    echo "server CPU $(echo "($c1 - $c0) / $hz" | bc -l) s, data on disk $(du -sh "$work/data" | cut -f1)"
    /usr/bin/time -f "verify wall %e s" "$bin" --data-dir "$work/ck" verify 2>&1 | grep -v '^{'
fi
