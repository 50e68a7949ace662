"""ZeroGPU on Hugging Face Spaces: GPU-heavy handlers get ``spaces.GPU`` when it is installed.

Outside a Space (or without the ``spaces`` package) the handlers are returned unchanged. This
lives in ``ui/`` so that ``tracker/`` never imports ``spaces``.
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Callable
from typing import Any, TypeVar

logger = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])


def gpu(fn: F, duration: int = 60) -> F:
    """``spaces.GPU(duration=...)(fn)`` when ``spaces`` is importable, else ``fn``."""
    if importlib.util.find_spec("spaces") is None:
        return fn
    import spaces  # only on a Space

    logger.info("ZeroGPU: %s runs on a GPU slice (up to %d s)", getattr(fn, "__name__", fn), duration)
    return spaces.GPU(duration=duration)(fn)
