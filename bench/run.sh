#!/usr/bin/env bash
# Run the genroute benchmark (see bench/README.md); arguments go to bench/run.py.
set -euo pipefail
cd "$(dirname "$0")/.."
exec .venv/bin/python bench/run.py "$@"
