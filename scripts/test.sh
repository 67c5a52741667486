#!/usr/bin/env bash
# Set up everything the test suite needs on a fresh Debian machine (pip packages, Debian's
# prometheus for the ops tests), then lint, type-check and run the whole suite.
# Usage: scripts/test.sh [pytest args...]
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v prometheus >/dev/null 2>&1 || need_apt+=(prometheus)
if ((${#need_apt[@]})) && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi
# Debian starts the prometheus service on install; the tests run their own on other ports.
if command -v systemctl >/dev/null 2>&1; then systemctl stop prometheus >/dev/null 2>&1 || true; fi
pkill -x prometheus >/dev/null 2>&1 || true

python3 -m pip install -q --disable-pip-version-check -e ".[dev,otlp]"

python3 -m ruff check guard tests benchmarks examples
python3 -m ruff format --check guard tests benchmarks examples
python3 -m mypy
export MCP_GUARD_LOAD_TEST="${MCP_GUARD_LOAD_TEST:-1}"  # the audit load test (minutes)
python3 -m pytest -q -p no:cacheprovider "$@"
