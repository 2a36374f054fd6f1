#!/usr/bin/env bash
# Create .venv in the repo and install tunepilot into it. Idempotent: a second run takes seconds.
# torch goes in first, pinned to the CPU build that pip finds on this kind of machine, so the
# project's plain `torch>=` range is already satisfied and no multi-GB CUDA build is pulled.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
TORCH_SPEC=${TUNEPILOT_TORCH_SPEC:-torch==2.13.0}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
VPY=.venv/bin/python
stamp=.venv/.tunepilot-installed
want="$(sha256sum pyproject.toml | cut -d' ' -f1) ${1:-app}"
if [ -f "$stamp" ] && grep -qxF "$want" "$stamp" 2>/dev/null; then
  exit 0
fi
"$VPY" -m pip install -q --disable-pip-version-check --upgrade pip
if ! "$VPY" -c "import torch" 2>/dev/null; then
  echo "installing $TORCH_SPEC ..."
  "$VPY" -m pip install -q --disable-pip-version-check "$TORCH_SPEC"
fi
extras=""
[ "${1:-app}" = "dev" ] && extras="[dev]"
echo "installing tunepilot$extras ..."
"$VPY" -m pip install -q --disable-pip-version-check -e ".$extras"
# Keep the stamp for both levels: dev implies app.
{ echo "$want"; [ "${1:-app}" = "dev" ] && echo "${want% *} app"; } > "$stamp"
