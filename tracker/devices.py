"""Where models run, at which precision, and how much work a run is.

* :func:`pick_device` turns ``"auto"`` / ``"cpu"`` / ``"cuda"`` / ``"cuda:1"`` / ``"mps"`` into a
  ``torch.device`` (auto: CUDA, then Apple MPS, then CPU) and refuses, with an
  :class:`~tracker.errors.InputError`, a device that is not there.
* :func:`autocast` is the one precision policy: bfloat16 autocast on CUDA GPUs that support it
  (plus TF32 matmuls on Ampere and newer), bfloat16 autocast on CPUs with native bfloat16
  (AVX512-BF16 / AMX; about 1.3× faster SAM 2 propagation there, results checked with random
  weights), float32 everywhere else (MPS, older CPUs and GPUs).
* :class:`Preset` / :data:`PRESETS` bundle the speed/quality knobs; :func:`default_preset`
  picks one for a device and :func:`estimate_seconds` turns a preset and a frame count into the
  time estimate the UI shows.

torch is imported inside the functions, so importing this module is instant.
"""

from __future__ import annotations

import bisect
import logging
import math
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .errors import InputError
from .registry import sam2_spec

if TYPE_CHECKING:
    import torch

logger = logging.getLogger(__name__)

ENV_CPU_BF16 = "TRACKER_CPU_BF16"  # "0" / "1" forces bfloat16 autocast on CPU off / on


def pick_device(preference: str | Any = "auto") -> torch.device:
    """The ``torch.device`` to run on.

    ``preference`` is ``"auto"`` (CUDA → MPS → CPU), ``"cpu"``, ``"cuda"``, ``"cuda:N"``,
    ``"gpu"`` (CUDA or MPS, whichever exists), ``"mps"`` or a ``torch.device``. A device that is
    not available raises :class:`~tracker.errors.InputError` saying what is.
    """
    import torch

    if isinstance(preference, torch.device):
        preference = str(preference)
    choice = (preference or "auto").strip().lower()
    cuda = torch.cuda.is_available()
    mps = _mps_available()
    if choice == "auto":
        device = torch.device("cuda") if cuda else torch.device("mps") if mps else torch.device("cpu")
        logger.debug("auto device: %s", device)
        return device
    if choice == "gpu":
        if cuda:
            return torch.device("cuda")
        if mps:
            return torch.device("mps")
        raise InputError(f"A GPU was requested but none is available; {_available_sentence()}")
    if choice == "cpu":
        return torch.device("cpu")
    if choice == "mps":
        if not mps:
            raise InputError(f"Apple MPS was requested but is not available here; {_available_sentence()}")
        return torch.device("mps")
    if choice == "cuda" or choice.startswith("cuda:"):
        if not cuda:
            raise InputError(
                f"CUDA was requested ({choice}) but no CUDA GPU is available; {_available_sentence()}"
            )
        index_text = choice.partition(":")[2]
        if not index_text:
            return torch.device("cuda")
        if not index_text.isdigit():
            raise InputError(f"{preference!r} is not a device; write cuda:0, cuda:1, ….")
        index = int(index_text)
        count = torch.cuda.device_count()
        if index >= count:
            raise InputError(
                f"{choice} was requested but this machine has {count} CUDA GPU(s) (cuda:0 to cuda:{count - 1})."
            )
        return torch.device("cuda", index)
    raise InputError(f"Unknown device {preference!r}; use auto, cpu, cuda, cuda:N or mps.")


def _mps_available() -> bool:
    import torch

    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def _available_sentence() -> str:
    import torch

    options = ["cpu"]
    if torch.cuda.is_available():
        options += [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    if _mps_available():
        options.append("mps")
    return f"available: {', '.join(options)} (or auto)."


def cpu_has_native_bf16() -> bool:
    """True when the CPU computes bfloat16 natively (AVX512-BF16 or AMX), where autocast pays off."""
    import torch

    cpu = getattr(torch, "cpu", None)
    for probe in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"):
        check = getattr(cpu, probe, None)
        try:
            if check is not None and check():
                return True
        except RuntimeError:
            continue
    return False


def autocast_dtype(device: torch.device | str) -> torch.dtype | None:
    """The autocast dtype :func:`autocast` uses on ``device``, or None for plain float32.

    CUDA: bfloat16 when the GPU supports it natively (Ampere and newer). CPU: bfloat16 when
    :func:`cpu_has_native_bf16`, overridable with ``TRACKER_CPU_BF16=0/1``. MPS: None.
    """
    import torch

    device = torch.device(device)
    if device.type == "cuda":
        try:
            supported = torch.cuda.is_bf16_supported(including_emulation=False)
        except TypeError:  # older torch has no including_emulation
            supported = torch.cuda.is_bf16_supported()
        return torch.bfloat16 if supported else None
    if device.type == "cpu":
        forced = os.environ.get(ENV_CPU_BF16, "").strip().lower()
        if forced in {"0", "false", "no", "off"}:
            return None
        if forced in {"1", "true", "yes", "on"} or cpu_has_native_bf16():
            return torch.bfloat16
    return None


def enable_tf32(device: torch.device | str) -> bool:
    """Allow TF32 matmuls on an Ampere-or-newer CUDA ``device``; return whether it was enabled.

    This is process-wide (``torch.set_float32_matmul_precision("high")``); SAM 2's own demo does
    the same.
    """
    import torch

    device = torch.device(device)
    if device.type != "cuda" or not torch.cuda.is_available():
        return False
    major, _ = torch.cuda.get_device_capability(device)
    if major < 8:
        return False
    torch.set_float32_matmul_precision("high")
    return True


def resolve_autocast(device: torch.device | str, enabled: bool | None = None) -> torch.dtype | None:
    """The dtype :func:`autocast` will use: ``enabled`` None = where it helps (:func:`autocast_dtype`),
    True = bfloat16 wherever the device can run it (CPU always, CUDA with native bf16), False = never.
    """
    import torch

    device = torch.device(device)
    if enabled is None:
        return autocast_dtype(device)
    if not enabled:
        return None
    if device.type == "cpu":
        return torch.bfloat16
    if device.type == "cuda":
        dtype = autocast_dtype(device)
        if dtype is None:
            logger.info("bfloat16 autocast requested but %s has no native bf16; running float32", device)
        return dtype
    return None  # MPS: SAM 2 is only validated in float32 there


@contextmanager
def autocast(device: torch.device | str, enabled: bool | None = None) -> Iterator[torch.dtype | None]:
    """Run the block under the project's mixed-precision policy for ``device``; yields the dtype used.

    ``enabled``: None = bfloat16 where it helps (CUDA with native bf16, CPUs with AVX512-BF16 /
    AMX), True = bfloat16 wherever it runs (any CPU, bf16-capable CUDA), False = float32. Yields
    None, changing nothing, when running float32. Outputs made inside may be bfloat16: call
    ``.float()`` before ``.numpy()``. On CUDA, TF32 matmuls are switched on as well.
    """
    import torch

    device = torch.device(device)
    dtype = resolve_autocast(device, enabled)
    if dtype is None:
        yield None
        return
    if device.type == "cuda":
        enable_tf32(device)
    with torch.autocast(device_type=device.type, dtype=dtype):
        yield dtype


@dataclass(frozen=True)
class Preset:
    """A named bundle of speed/quality settings.

    ``sam2_model`` is a :data:`tracker.registry.SAM2_MODELS` key; ``image_size`` SAM 2's input
    size (multiple of 32); ``max_size`` the longest side of the working video; ``points_per_side``
    the automatic mask generator's grid; ``top_frames`` how many best-ranked frames get automatic
    masks; ``stride_seconds`` how far apart the frames CLIP ranks are.
    """

    name: str
    sam2_model: str
    image_size: int
    max_size: int
    points_per_side: int
    top_frames: int
    stride_seconds: float
    description: str = ""

    def __post_init__(self) -> None:
        sam2_spec(self.sam2_model)  # raises InputError for an unknown model
        if self.image_size % 32 or self.image_size <= 0:
            raise InputError(f"Preset {self.name!r}: image_size must be a positive multiple of 32.")
        if self.stride_seconds <= 0 or self.points_per_side < 1 or self.top_frames < 1:
            raise InputError(
                f"Preset {self.name!r}: stride, points per side and top frames must be positive."
            )


PRESETS: dict[str, Preset] = {
    preset.name: preset
    for preset in (
        Preset(
            name="fast",
            sam2_model="tiny",
            image_size=384,
            max_size=640,
            points_per_side=12,
            top_frames=2,
            stride_seconds=1.0,
            description="SAM 2.1 tiny at 384 px: quick looks on a CPU (about 0.3 s a frame)",
        ),
        Preset(
            name="balanced",
            sam2_model="tiny",
            image_size=512,
            max_size=854,
            points_per_side=16,
            top_frames=3,
            stride_seconds=0.5,
            description="SAM 2.1 tiny at 512 px: the CPU default (about 0.7 s a frame)",
        ),
        Preset(
            name="quality",
            sam2_model="base+",
            image_size=1024,
            max_size=1280,
            points_per_side=32,
            top_frames=4,
            stride_seconds=0.5,
            description="SAM 2.1 base+ at 1024 px: the GPU default (slow on a CPU)",
        ),
        Preset(
            name="best",
            sam2_model="large",
            image_size=1024,
            max_size=1920,
            points_per_side=32,
            top_frames=5,
            stride_seconds=0.25,
            description="SAM 2.1 large at 1024 px: the best masks; needs a GPU",
        ),
    )
}


def default_preset(device: torch.device | str) -> Preset:
    """``quality`` on a CUDA GPU, ``balanced`` on CPU and Apple MPS."""
    return PRESETS["quality"] if _device_type(device) == "cuda" else PRESETS["balanced"]


def _device_type(device: Any) -> str:
    return getattr(device, "type", None) or str(device).split(":")[0].strip().lower()


# Seconds per propagated frame for SAM 2.1 tiny with one object, float32, measured on the
# project's 2-core Xeon CPU; other sizes interpolate log-log, other models scale by spec.cost.
_CPU_TINY_SECONDS = ((256, 0.18), (384, 0.34), (512, 0.68), (768, 2.3), (1024, 5.5))
_CPU_BF16_SPEEDUP = 1.3
# Rough CUDA numbers (seconds per frame at 1024 px, bf16, not compiled) per model size.
_GPU_SECONDS_1024 = {"tiny": 0.022, "small": 0.025, "base+": 0.032, "large": 0.05}
_GPU_FLOOR = 0.008  # per-frame overhead that does not shrink with the image
_MPS_VS_CPU = 0.35  # very rough: Apple GPUs run SAM 2 about 3× faster than this CPU
_PER_EXTRA_OBJECT = 0.4  # each extra object adds memory attention + decoder work


def _cpu_tiny_seconds(image_size: int) -> float:
    sizes = [size for size, _ in _CPU_TINY_SECONDS]
    logs = [(math.log(size), math.log(seconds)) for size, seconds in _CPU_TINY_SECONDS]
    i = min(max(bisect.bisect_left(sizes, image_size), 1), len(sizes) - 1)
    (x0, y0), (x1, y1) = logs[i - 1], logs[i]
    slope = (y1 - y0) / (x1 - x0)
    return math.exp(y0 + slope * (math.log(image_size) - x0))


def seconds_per_frame(
    sam2_model: str, image_size: int, device: torch.device | str, num_objects: int = 1
) -> float:
    """Estimated SAM 2 propagation seconds per frame (see :func:`estimate_seconds`)."""
    spec = sam2_spec(sam2_model)
    device_type = _device_type(device)
    if device_type == "cuda":
        size_key = spec.name.removeprefix("sam2-")
        per_frame = _GPU_SECONDS_1024.get(size_key, 0.05) * (image_size / 1024) ** 2 + _GPU_FLOOR
    else:
        per_frame = _cpu_tiny_seconds(image_size) * spec.cost
        if device_type == "mps":
            per_frame *= _MPS_VS_CPU
        elif autocast_dtype("cpu") is not None:
            per_frame /= _CPU_BF16_SPEEDUP
    return per_frame * (1 + _PER_EXTRA_OBJECT * (max(num_objects, 1) - 1))


def estimate_seconds(
    preset: Preset | str, num_frames: int, device: torch.device | str, num_objects: int = 1
) -> float:
    """Rough wall time in seconds for SAM 2 to propagate ``num_frames`` frames with ``preset``.

    Good to a factor of about two: enough for "about 3 minutes" in the UI, not for scheduling.
    """
    if isinstance(preset, str):
        if preset not in PRESETS:
            raise InputError(f"Unknown preset {preset!r}; choose one of: {', '.join(PRESETS)}.")
        preset = PRESETS[preset]
    if num_frames <= 0:
        return 0.0
    return num_frames * seconds_per_frame(preset.sam2_model, preset.image_size, device, num_objects)
