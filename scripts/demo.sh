#!/usr/bin/env bash
# Set up MCP Guard and run the demo: a guarded server, traffic, metrics, decision records.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install -q --disable-pip-version-check -e ".[dev,otlp]"
exec python3 examples/demo.py --out demo-out "$@"
