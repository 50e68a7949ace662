#!/usr/bin/env bash
# Installs the tracker into ./.venv. Usage: bash scripts/install.sh [--dev]
#   --dev   also installs the test tools (pytest, ruff, playwright) and, as root on Debian/Ubuntu,
#           the system packages the browser tests use (chromium, ffmpeg).
# Order matters: torch first, then the pinned requirements, then sam2 built against that torch
# (SAM2_BUILD_CUDA=0 and --no-build-isolation, or pip would fetch ~3 GB of CUDA torch to build it).
set -euo pipefail
cd "$(dirname "$0")/.."
dev=0
[ "${1:-}" = "--dev" ] && dev=1
PY=${PYTHON:-python3}

if [ "$dev" = 1 ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  need=()
  command -v chromium >/dev/null || need+=(chromium)
  command -v ffprobe >/dev/null || need+=(ffmpeg)
  if [ ${#need[@]} -gt 0 ]; then
    echo "== apt-get install ${need[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
  fi
fi

[ -x .venv/bin/python ] || { echo "== creating .venv"; "$PY" -m venv .venv; }
. .venv/bin/activate
export PIP_DISABLE_PIP_VERSION_CHECK=1
echo "== torch"
pip install -q "torch==2.13.0"
echo "== requirements.txt"
pip install -q -r requirements.txt
echo "== sam2 (built against the installed torch)"
SAM2_BUILD_CUDA=0 pip install -q --no-build-isolation -r requirements-sam2.txt
if [ "$dev" = 1 ]; then
  echo "== test tools"
  pip install -q -r requirements-dev.txt
fi
python -c "import tracker.compat as c; c.ensure_torchvision(); import torchvision, open_clip, sam2; print('install ok: torch', __import__('torch').__version__)"
