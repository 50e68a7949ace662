#!/usr/bin/env bash
# Installs the tracker into ./.venv. Usage: bash scripts/install.sh [--dev]
#   --dev   also installs the test tools (pytest, ruff, mypy, playwright) and, as root on Debian/Ubuntu,
#           the system packages the browser tests use (chromium, ffmpeg).
# Order matters: torch first, then sam2 built against that torch (SAM2_BUILD_CUDA=0 and
# --no-build-isolation, or pip would fetch a second, CUDA torch of several GB just to build it),
# then the rest of requirements.txt (sam2 is then already there). Every pin comes from
# requirements.txt, which is also what a Hugging Face Space installs (see docs/WEBAPP.md).
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
pin() { grep -E "^$1==" requirements.txt; }
echo "== torch"
pip install -q "$(pin torch)" "$(pin torchvision)"
echo "== sam2 (built against the installed torch)"
pip install -q "setuptools>=70.1"  # builds wheels by itself (a venv of Python 3.12+ has none)
SAM2_BUILD_CUDA=0 pip install -q --no-build-isolation --no-deps "$(pin sam2)"
echo "== requirements.txt"
pip install -q -r requirements.txt
if [ "$dev" = 1 ]; then
  echo "== test tools"
  pip install -q -r requirements-dev.txt
fi
# the same check the app makes at start-up: every model package imports (tracker/packages.py)
python - <<'PY'
import sys

from tracker.packages import check_packages

problems = check_packages(sam1=True)
for problem in problems:
    print(f"error: {problem}", file=sys.stderr)
if problems:
    sys.exit(1)
print("install ok: torch", sys.modules["torch"].__version__)
PY
