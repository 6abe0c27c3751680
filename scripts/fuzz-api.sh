#!/usr/bin/env bash
# Holds the HTTP API to its OpenAPI document: Schemathesis (`--checks all`, every phase,
# including the stateful create -> get -> cancel of ingestions) against `ohlcv serve` on a free
# loopback port, over a small load in a temporary directory, with a token so that the routes
# that need one are tested both ways. Ingestions are capped at 20,000 trades
# (--max-ingestion-trades, which the document states), so the fuzzer's loads take a moment,
# never the machine. Fails on any Schemathesis failure, and on a panic in the server's log.
# Installs Schemathesis with pip when missing. Usage: scripts/fuzz-api.sh [path to ohlcv]
set -euo pipefail
cd "$(dirname "$0")/.."

SCHEMATHESIS_VERSION=4.32.5
EXAMPLES=${FUZZ_EXAMPLES:-100}
python=$(command -v python3)
if ! "$python" -m schemathesis.cli --version 2>/dev/null | grep -q "$SCHEMATHESIS_VERSION"; then
    # In a virtual environment of its own: Debian's Python refuses packages pip installs.
    venv="${CARGO_TARGET_DIR:-target}/schemathesis-venv"
    if ! "$venv/bin/python" -m schemathesis.cli --version 2>/dev/null | grep -q "$SCHEMATHESIS_VERSION"; then
        echo "schemathesis $SCHEMATHESIS_VERSION not found: installing it with pip into $venv"
        "$python" -m venv "$venv"
        "$venv/bin/python" -m pip install --quiet "schemathesis==$SCHEMATHESIS_VERSION"
    fi
    python="$venv/bin/python"
fi

ohlcv=${1:-}
if [ -z "$ohlcv" ]; then
    cargo build --quiet --bin ohlcv
    ohlcv="${CARGO_TARGET_DIR:-target}/debug/ohlcv"
fi

work=$(mktemp -d)
server=""
cleanup() {
    if [ -n "$server" ]; then
        kill -TERM "$server" 2>/dev/null || true
        wait "$server" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

load=(--trades 20000 --symbols AAPL,MSFT --start 2024-03-04 --end 2024-03-08 --seed 7)
"$ohlcv" --data-dir "$work/data" load "${load[@]}" >/dev/null 2>"$work/load.log"
port=$("$python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
token=$("$python" -c 'import secrets; print(secrets.token_hex(16))')
OHLCV_API_TOKEN=$token RUST_LOG=info "$ohlcv" --data-dir "$work/data" serve --port "$port" \
    "${load[@]}" --max-ingestion-trades 20000 2>"$work/serve.log" &
server=$!
url="http://127.0.0.1:$port"

started=$(date +%s)
status=0
"$python" -m schemathesis.cli --config-file scripts/schemathesis.toml run "$url/openapi.json" \
    --checks all --max-examples "$EXAMPLES" --seed 1 --wait-for-schema 30 \
    --header "Authorization: Bearer $token" \
    --report ndjson --report-ndjson-path "$work/events.ndjson" \
    --no-color >"$work/schemathesis.txt" 2>&1 || status=$?
elapsed=$(($(date +%s) - started))
sed -n '/=== FAILURES ===/,$p' "$work/schemathesis.txt"
grep -E '^ +[0-9]+ generated' "$work/schemathesis.txt" | sed "s/^ */schemathesis: /; s/\$/ in ${elapsed} s/" || true

kill -TERM "$server"
wait "$server" || true
server=""
if grep -qi 'panic' "$work/serve.log"; then
    echo "the server panicked during the fuzz run:"
    grep -i -m 5 'panic' "$work/serve.log"
    exit 1
fi
if [ "$status" != 0 ]; then
    echo "schemathesis failed (exit $status); its whole output:"
    cat "$work/schemathesis.txt"
    exit 1
fi
