#!/usr/bin/env bash
# Compares `ohlcv serve` builds on the read path: each serves the same data directory in turn,
# twice over, and wrk measures two candle queries for 10 s each (2 threads, 64 connections).
#
#   scripts/bench-api.sh DATA_DIR BIN_DIR[:VAR=VALUE,...] ...
#
# BIN_DIR holds an `ohlcv` binary; the optional VAR=VALUE list is its environment, e.g.
# `target/release:OHLCV_API_TOKEN=t,OHLCV_AUTH=all` (wrk sends `Authorization: Bearer t`).
# Load DATA_DIR first, e.g. `ohlcv --data-dir /tmp/bd load` (the 300 M default).
set -euo pipefail
data=$1
shift
for round in 1 2; do
    for variant in "$@"; do
        dir=${variant%%:*}
        extra=""
        [ "$variant" = "$dir" ] || extra=${variant#*:}
        port=$((20000 + RANDOM % 10000))
        # shellcheck disable=SC2086 # the list is split into VAR=VALUE words on purpose
        env ${extra//,/ } "$dir/ohlcv" --data-dir "$data" serve --port "$port" 2>/dev/null &
        pid=$!
        until curl -s -o /dev/null "http://127.0.0.1:$port/health"; do sleep 0.1; done
        for q in "interval=1m&start=2024-03-11&end=2024-03-12" "interval=1d&start=2024-01-01&end=2025-01-01"; do
            url="http://127.0.0.1:$port/api/v1/candles?symbol=AAPL&$q"
            curl -s -o /dev/null -H "Authorization: Bearer t" "$url"
            result=$(wrk -t2 -c64 -d10s --latency -H "Authorization: Bearer t" "$url" |
                awk '/Requests\/sec/ { rps = $2 } / 99%/ { p99 = $2 } END { print rps " req/s, p99 " p99 }')
            echo "round $round  $variant  $q: $result"
        done
        kill "$pid"
        wait "$pid" 2>/dev/null || true
    done
done
