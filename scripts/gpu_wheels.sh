#!/usr/bin/env bash
# Packs the Python packages the bare GPU machine lacks into ONE file it can be carried with:
#   .gpu-wheels/wheels.tar.xz   (git-ignored; name it in the device tool's `carry`)
# Usage: bash scripts/gpu_wheels.sh            (needs a package index here, and ./.venv)
#
# The size problem, and how this gets around it:
#  * The GPU machine reaches no package index and a call carries at most 64 MiB (repository
#    included, ~8 MB). torch/torchvision CUDA wheels are several GB: they are NOT carried. The
#    machine's image already has torch 2.11 (cu130), torchvision 0.26, numpy, pillow, pandas,
#    opencv, pytest, huggingface_hub, timm, … (/work/.library/device/KINDS.md lists them), so only
#    what it lacks is packed: sam2 (built here, pure Python, no CUDA extension), open_clip, av,
#    pycocotools, hydra/omegaconf/antlr, iopath, segment-anything, ftfy, gradio and its server
#    stack, gradio_client.
#  * imageio-ffmpeg's wheel is 68 MB (a 172 MB ffmpeg binary): it travels without the binary
#    (built from its sdist) and benchmarks/gpu.sh uses the machine's ffmpeg if it has one, else
#    scripts/ffmpeg_pyav.py, which does the same encoding with PyAV's bundled libx264.
#  * Wheels are zip-deflated; repacked uncompressed and xz'd together they shrink by about a
#    third (av 36 → ~25 MB, gradio 31 → ~23 MB): about 54 MB in all (62 MB with the repository). The script fails if the
#    file plus the repository would pass 64 MiB.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
OUT=.gpu-wheels
STAGE=$(mktemp -d)
trap 'rm -rf "$STAGE"' EXIT
mkdir -p "$OUT" "$STAGE/dl" "$STAGE/sdist" "$STAGE/flat"

# The packages the GPU image lacks, at the versions this venv runs and tests. Not timm: the image
# has it and open_clip imports it only for timm-based models (the default ViT-B-32 is not).
NEED="av open-clip-torch ftfy wcwidth pycocotools segment-anything hydra-core omegaconf
gradio gradio-client hf-gradio groovy safehttpx semantic-version tomlkit pydub pytz orjson brotli
fastapi starlette uvicorn python-multipart pydantic pydantic-core annotated-types typing-inspection
opentelemetry-api"
FROM_SOURCE="sam2 imageio-ffmpeg iopath antlr4-python3-runtime"  # no usable wheel on the index
pins() { "$PY" - "$@" <<'PY'
import sys
from importlib.metadata import version
print("\n".join(f"{name}=={version(name)}" for name in sys.argv[1:]))
PY
}
PLATFORM=(--python-version 3.12 --implementation cp --platform manylinux_2_28_x86_64
  --platform manylinux_2_27_x86_64 --platform manylinux_2_24_x86_64 --platform manylinux_2_17_x86_64
  --platform manylinux2014_x86_64 --platform manylinux1_x86_64)
echo "== downloading wheels for the GPU machine (Python 3.12, x86_64)"
pins $NEED > "$STAGE/pins.txt"
"$PY" -m pip download -q --no-deps --only-binary=:all: "${PLATFORM[@]}" -d "$STAGE/dl" -r "$STAGE/pins.txt"
echo "== building pure-Python wheels of $FROM_SOURCE (sam2 without its CUDA extension)"
pins $FROM_SOURCE > "$STAGE/source.txt"
"$PY" -m pip download -q --no-deps --no-binary=:all: --no-build-isolation -d "$STAGE/sdist" -r "$STAGE/source.txt"
SAM2_BUILD_CUDA=0 "$PY" -m pip wheel -q --no-deps --no-build-isolation -w "$STAGE/dl" "$STAGE"/sdist/*

echo "== repacking uncompressed, then xz"
"$PY" - "$STAGE/dl" "$STAGE/flat" <<'PY'
import sys, zipfile
from pathlib import Path

source, target = Path(sys.argv[1]), Path(sys.argv[2])
for wheel in sorted(source.glob("*.whl")):
    with zipfile.ZipFile(wheel) as zin, zipfile.ZipFile(target / wheel.name, "w", zipfile.ZIP_STORED) as zout:
        for item in zin.infolist():
            zout.writestr(item, zin.read(item), compress_type=zipfile.ZIP_STORED)
PY
ls "$STAGE/flat" > "$OUT/MANIFEST.txt"
tar -C "$STAGE/flat" -cf - . | xz -9 -T0 > "$OUT/wheels.tar.xz"

wheels=$(stat -c %s "$OUT/wheels.tar.xz")
# what a call sends besides: tracked files and untracked ones git does not ignore
repo=$( (git ls-files -z; git ls-files -z -o --exclude-standard) | xargs -0 stat -c %s 2>/dev/null | awk '{s+=$1} END {print s}')
limit=$((64 * 1024 * 1024))
awk -v w="$wheels" -v r="$repo" -v n="$(wc -l < "$OUT/MANIFEST.txt")" -v f="$OUT/wheels.tar.xz" 'BEGIN {
  printf "%s: %d wheels, %.1f MB; with the repository %.1f MB of the 64 MiB (67.1 MB) a call carries\n", f, n, w / 1e6, (w + r) / 1e6 }'
if [ $((wheels + repo)) -gt "$limit" ]; then
  echo "error: too large to carry; leave gradio out (the web-app GPU test then skips)" >&2
  exit 1
fi
echo "carry: [\".gpu-wheels\"]   then: bash benchmarks/gpu.sh"
