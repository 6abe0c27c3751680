#!/usr/bin/env bash
# The whole test suite on a fresh machine: installs what the tests need (InfluxDB 1.x from
# Debian, for the tests that run against a real influxd), then checks formatting and lints and
# runs every test. Tests against a real InfluxDB 2.x run too when INFLUXDB_URL and
# INFLUXDB_TOKEN are set.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v influxd >/dev/null 2>&1; then
    echo "influxd not found: installing Debian's influxdb package"
    sudo=""
    [ "$(id -u)" = 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq influxdb >/dev/null
fi

cargo fmt --all -- --check
cargo clippy --all-targets -- -D warnings
if [ -z "${INFLUXDB_URL:-}" ] || [ -z "${INFLUXDB_TOKEN:-}" ]; then
    echo "tests against a real InfluxDB 2.x: skipped (set INFLUXDB_URL and INFLUXDB_TOKEN to run them)"
fi
cargo test --all-features
