#!/usr/bin/env bash
# One command to go from a fresh clone to a full test run (browser tests included).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh dev
bash scripts/install_browser.sh
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
exec .venv/bin/python -m pytest -p no:cacheprovider "$@"
