#!/usr/bin/env bash
# The whole test suite on a fresh machine: installs what the tests need (InfluxDB 1.x from
# Debian, for the tests that run against a real influxd; moto's S3-compatible server and pyarrow
# from PyPI and Azurite from npm, for the tests of the dataset on object storage; cargo-llvm-cov
# and llvm-tools, to measure coverage), then checks formatting and lints and runs every test
# once, instrumented.
# It prints the coverage of lines and functions and fails below the floor set here (a little
# under the figure measured when it was last raised, so it can only go up). Tests against a
# real InfluxDB 2.x run too when INFLUXDB_URL and INFLUXDB_TOKEN are set. Last, Schemathesis
# holds the HTTP API to its OpenAPI document (scripts/fuzz-api.sh, Python 3 and pip needed).
set -euo pipefail
cd "$(dirname "$0")/.."

# Raise these when coverage rises; never lower them.
COVERAGE_FLOOR_LINES=94
COVERAGE_FLOOR_FUNCTIONS=91

sudo=""
[ "$(id -u)" = 0 ] || sudo="sudo"
if ! command -v influxd >/dev/null 2>&1; then
    echo "influxd not found: installing Debian's influxdb package"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq influxdb >/dev/null
fi
# Debian's python3 comes without venv and pip, which Schemathesis's environment needs.
if ! python3 -c "import venv, ensurepip" >/dev/null 2>&1 || ! python3 -m pip --version >/dev/null 2>&1; then
    echo "python3 with venv and pip not found: installing Debian's, for Schemathesis and the S3 tests"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq python3 python3-venv python3-pip >/dev/null
fi
if ! python3 -c "import moto.server, pyarrow.fs" >/dev/null 2>&1; then
    # moto 5.1+ answers conditional PUTs (If-None-Match, If-Match) with 412 as S3 does;
    # pyarrow reads the dataset back from it as another engine would.
    echo "moto or pyarrow not found: installing moto[server] and pyarrow from PyPI, for the S3 tests"
    python3 -m pip install --quiet "moto[server]>=5.1" pyarrow \
        || python3 -m pip install --quiet --break-system-packages "moto[server]>=5.1" pyarrow
fi
if ! command -v azurite-blob >/dev/null 2>&1; then
    # Microsoft's Azure Storage emulator, for the tests of az:// data directories.
    echo "azurite-blob not found: installing azurite from npm, for the Azure tests"
    if ! command -v npm >/dev/null 2>&1; then
        $sudo apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq nodejs npm >/dev/null
    fi
    # npm's global prefix is the user's own under nvm and the like, root's with Debian's npm.
    npm install --global --no-audit --no-fund --loglevel=error "azurite@3" 2>/dev/null \
        || $sudo npm install --global --no-audit --no-fund --loglevel=error "azurite@3"
fi
if ! cargo llvm-cov --version >/dev/null 2>&1; then
    echo "cargo-llvm-cov not found: installing it and the llvm-tools component"
    rustup component add llvm-tools
    cargo install cargo-llvm-cov --locked --quiet
fi

cargo fmt --all -- --check
cargo clippy --all-targets -- -D warnings
if [ -n "${INFLUXDB_URL:-}" ] && [ -n "${INFLUXDB_TOKEN:-}" ]; then
    echo "tests against the real InfluxDB 2.x at INFLUXDB_URL"
    cargo test --test influx_v2 -- --ignored
else
    echo "tests against a real InfluxDB 2.x: skipped (set INFLUXDB_URL and INFLUXDB_TOKEN to run them)"
fi
report=target/coverage-summary.txt
mkdir -p target
cargo llvm-cov --all-features \
    --fail-under-lines "$COVERAGE_FLOOR_LINES" \
    --fail-under-functions "$COVERAGE_FLOOR_FUNCTIONS" | tee "$report"
# TOTAL row: regions, missed, cover; functions, missed, executed; lines, missed, cover; ...
awk '/^TOTAL/ { printf "coverage: lines %s, functions %s (floors %s%% and %s%%)\n", $10, $7, lines, functions }' \
    lines="$COVERAGE_FLOOR_LINES" functions="$COVERAGE_FLOOR_FUNCTIONS" "$report"
bash scripts/fuzz-api.sh
