#!/usr/bin/env bash
# The GPU check in one command, on a bare GPU machine (issue 15): install from the repository and
# the carried wheels, run the GPU tests, print the GPU table. Finishes within GPU_TOTAL_S (450 s).
#
#   here:        bash scripts/gpu_wheels.sh            # → .gpu-wheels/wheels.tar.xz (~54 MB)
#   device tool: carry [".gpu-wheels"], timeout_s 540, command: bash benchmarks/gpu.sh
#
# Writes to $OUT (or ./gpu-out): gpu-table.md, gpu.json (every measurement), tests.log,
# bench.log, install.log. Uses the machine's python3 and its torch (nothing is downloaded there).
# GPU_TOTAL_S, GPU_TESTS_S (150) and GPU_BENCH_ARGS (extra options for benchmarks/gpu.py, e.g.
# "--models tiny,large --compile off") shorten a second run.
set -uo pipefail
cd "$(dirname "$0")/.."
START=$(date +%s)
TOTAL=${GPU_TOTAL_S:-450}
TESTS_S=${GPU_TESTS_S:-150}
OUT=${OUT:-$PWD/gpu-out}
PY=${PYTHON:-python3}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 TQDM_DISABLE=1 PIP_DISABLE_PIP_VERSION_CHECK=1
elapsed() { echo $(($(date +%s) - START)); }

echo "== machine"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
"$PY" -c "import sys, torch; print('python', sys.version.split()[0], 'torch', torch.__version__, 'cuda', torch.cuda.is_available())"

echo "== install ($(elapsed) s)"
if [ -f .gpu-wheels/wheels.tar.xz ]; then
  rm -rf /tmp/gpu-wheels && mkdir -p /tmp/gpu-wheels
  "$PY" -c "import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2])" .gpu-wheels/wheels.tar.xz /tmp/gpu-wheels
  if ! "$PY" -m pip install --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
    /tmp/gpu-wheels/*.whl >"$OUT/install.log" 2>&1; then
    tail -20 "$OUT/install.log"
    exit 1
  fi
  export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
else
  echo "no .gpu-wheels/wheels.tar.xz: using the packages already installed" | tee "$OUT/install.log"
fi
if command -v ffmpeg >/dev/null; then
  IMAGEIO_FFMPEG_EXE=$(command -v ffmpeg)
else
  # not named ffmpeg nor on PATH: Gradio would take it for the real one
  mkdir -p /tmp/ffmpeg-pyav
  printf '#!/bin/sh\nexec "%s" "%s" "$@"\n' "$(command -v "$PY")" "$PWD/scripts/ffmpeg_pyav.py" >/tmp/ffmpeg-pyav/ffmpeg-pyav
  chmod +x /tmp/ffmpeg-pyav/ffmpeg-pyav
  IMAGEIO_FFMPEG_EXE=/tmp/ffmpeg-pyav/ffmpeg-pyav
fi
export IMAGEIO_FFMPEG_EXE
echo "ffmpeg: $IMAGEIO_FFMPEG_EXE"
"$PY" - <<'PY' || exit 1
import sys

from tracker.packages import check_packages

problems = check_packages()
for problem in problems:
    print(f"error: {problem}", file=sys.stderr)
import torch

print("packages ok; torch", torch.__version__, "on", torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU")
sys.exit(1 if problems else 0)
PY

echo "== GPU tests ($(elapsed) s; at most $TESTS_S s)"
timeout "$TESTS_S" "$PY" -m pytest tests/test_gpu.py tests/test_ffmpeg_pyav.py -m "gpu or not slow" -v \
  -p no:cacheprovider --durations=0 2>&1 | tee "$OUT/tests.log"
echo "tests: exit status ${PIPESTATUS[0]} (124 = stopped at $TESTS_S s)"

BUDGET=$((TOTAL - $(elapsed) - 15))
echo "== GPU benchmark ($(elapsed) s; budget $BUDGET s)"
# shellcheck disable=SC2086
"$PY" benchmarks/gpu.py --out "$OUT" --budget-s "$BUDGET" ${GPU_BENCH_ARGS:-} 2>&1 | tee "$OUT/bench.log"
echo "== done in $(elapsed) s; table: $OUT/gpu-table.md"
