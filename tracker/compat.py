"""Keep torchvision importable when its compiled operators are missing.

PyPI's torchvision wheel is built against CUDA torch. Next to a CPU-only torch (or any other
mismatched pair) its ``_C`` extension fails to load, and ``import torchvision`` dies with
``RuntimeError: operator torchvision::nms does not exist`` because the package registers fake
kernels for ``nms`` at import. open_clip, SAM 2's automatic mask generator and segment-anything
all import torchvision, so that one error would take the whole pipeline down.

:func:`ensure_torchvision` checks whether the compiled operators load. If they don't, it defines
``torchvision::nms`` (and ``qnms``) in pure PyTorch *before* torchvision is imported, then lets
``torchvision.ops.nms`` use them. Nothing else in torchvision's compiled set (roi_align,
deform_conv2d, …) is used by this project.
"""

from __future__ import annotations

import importlib.util
import logging
import sys
import threading
from pathlib import Path

import torch

logger = logging.getLogger(__name__)

_lock = threading.Lock()
_state: dict[str, bool] = {}
_library = None  # keeps the torch.library.Library alive


def nms_reference(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Greedy non-maximum suppression, same contract as ``torchvision.ops.nms``.

    ``boxes`` is ``N×4`` xyxy, ``scores`` ``N``; returns int64 indices of the kept boxes sorted by
    decreasing score. A box is dropped when its IoU with a kept, higher-scoring box is greater
    than ``iou_threshold``.
    """
    if boxes.numel() == 0:
        return torch.empty((0,), dtype=torch.int64, device=boxes.device)
    boxes = boxes.float()
    x1, y1, x2, y2 = boxes.unbind(1)
    areas = (x2 - x1).clamp(min=0) * (y2 - y1).clamp(min=0)
    order = torch.argsort(scores, descending=True, stable=True)
    # The pairwise IoU matrix is cheap for the few thousand boxes mask generators produce.
    b = boxes[order]
    a = areas[order]
    lt = torch.maximum(b[:, None, :2], b[None, :, :2])
    rb = torch.minimum(b[:, None, 2:], b[None, :, 2:])
    wh = (rb - lt).clamp(min=0)
    inter = wh[..., 0] * wh[..., 1]
    iou = inter / (a[:, None] + a[None, :] - inter).clamp(min=torch.finfo(torch.float32).tiny)
    n = b.shape[0]
    suppressed = torch.zeros(n, dtype=torch.bool, device=boxes.device)
    keep = []
    over = (iou > iou_threshold).cpu()
    suppressed_cpu = suppressed.cpu()
    for i in range(n):
        if suppressed_cpu[i]:
            continue
        keep.append(i)
        suppressed_cpu |= over[i]
    return order[torch.tensor(keep, dtype=torch.int64, device=boxes.device)]


def _compiled_ops_load() -> bool:
    """True when torchvision's own ``_C`` extension loads (or torchvision is not installed)."""
    if hasattr(torch.ops, "torchvision") and _has_op("nms"):
        return True
    spec = importlib.util.find_spec("torchvision")
    if spec is None or not spec.submodule_search_locations:
        return True  # nothing to fix; importing it will fail on its own terms
    for location in spec.submodule_search_locations:
        for lib in sorted(Path(location).glob("_C*.so")) + sorted(Path(location).glob("_C*.pyd")):
            try:
                torch.ops.load_library(str(lib))
            except (OSError, RuntimeError) as error:
                logger.debug("torchvision extension %s did not load: %s", lib, error)
                continue
            return _has_op("nms")
    return False


def _has_op(name: str) -> bool:
    try:
        getattr(torch.ops.torchvision, name)
    except (AttributeError, RuntimeError):
        return False
    return True


def _define_fallback_ops() -> None:
    global _library
    _library = torch.library.Library("torchvision", "DEF")
    _library.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    _library.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    _library.impl("nms", nms_reference, "CompositeExplicitAutograd")

    def qnms(dets: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
        return nms_reference(dets.float(), scores.float(), iou_threshold)

    _library.impl("qnms", qnms, "CompositeExplicitAutograd")


def ensure_torchvision() -> bool:
    """Make ``import torchvision`` and ``torchvision.ops.nms`` work; return True if a fallback was installed.

    Safe to call many times and from several threads. Call it before importing anything that
    imports torchvision (open_clip, ``sam2.automatic_mask_generator``, ``segment_anything``).
    """
    with _lock:
        if "fallback" in _state:
            return _state["fallback"]
        if "torchvision" in sys.modules and _has_op("nms"):
            _state["fallback"] = False
            return False
        if _compiled_ops_load():
            _state["fallback"] = False
            return False
        # A failed earlier import leaves half-initialised modules behind.
        for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
            del sys.modules[name]
        _define_fallback_ops()
        import torchvision.ops.boxes as boxes

        boxes._assert_has_ops = lambda: None  # the ops nms needs exist now
        logger.warning(
            "torchvision's compiled operators do not match this torch build (torch %s); "
            "using the project's pure-PyTorch NMS instead. Install matching torch and torchvision "
            "builds to silence this.",
            torch.__version__,
        )
        _state["fallback"] = True
        return True
