#!/usr/bin/env bash
# One command to go from a fresh clone to the running app on http://localhost:8501.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh app
exec .venv/bin/tunepilot ui --port "${PORT:-8501}" "$@"
