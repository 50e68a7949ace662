"""Are the model packages installed and importable? Asked once, when an app starts.

The tracker imports torch, torchvision, open_clip and sam2 only when a model first loads, so a
package that is missing or broken (a Space built without ``sam2``, a torchvision that does not
match torch, a dependency of sam2 gone) would otherwise surface as a generic error on the
first click. :func:`check_packages` imports each one now, the way the models will, and returns
one :class:`PackageProblem` per package that fails, each with the command that installs it::

    from tracker.packages import check_packages
    for problem in check_packages():
        logging.error("%s", problem)       # "sam2 is not installed (No module named 'sam2'); ..."

:data:`REQUIREMENTS` holds the pins; they must match ``requirements.txt`` (a test checks).
Nothing here runs at import; the checks import the packages, which takes a few seconds.
"""

from __future__ import annotations

import importlib
import logging
import os
import shlex
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PackageRequirement:
    """One model package: its import name, its pin as in requirements.txt, and how to install it."""

    module: str  # the import name, e.g. "open_clip"
    pin: str  # the line in requirements.txt, e.g. "open_clip_torch==3.3.0"
    purpose: str  # what the tracker needs it for, for people
    pip_options: str = ""  # extra pip options for a local install
    env: str = ""  # environment assignments before pip, e.g. "SAM2_BUILD_CUDA=0"


REQUIREMENTS: dict[str, PackageRequirement] = {
    r.module: r
    for r in (
        PackageRequirement("torch", "torch==2.13.0", "every model"),
        PackageRequirement("torchvision", "torchvision==0.28.0", "CLIP and the mask generators"),
        PackageRequirement("open_clip", "open_clip_torch==3.3.0", "CLIP, which ranks frames and candidates"),
        # Built against the installed torch: without these two, pip builds it in an isolated
        # environment that downloads a second (CUDA) torch of several GB (see docs/WEBAPP.md).
        PackageRequirement(
            "sam2",
            "sam2==1.1.0",
            "SAM 2, which proposes masks and tracks",
            "--no-build-isolation",
            "SAM2_BUILD_CUDA=0",
        ),
        PackageRequirement("segment_anything", "segment-anything==1.0", "the sam1-auto candidate proposer"),
    )
}


@dataclass(frozen=True)
class PackageProblem:
    """A model package that is missing or does not import; ``str()`` is the one line to show."""

    module: str  # import name, e.g. "sam2"
    missing: bool  # True: not installed; False: installed but importing it fails
    error: str  # the first line of the import error
    fix: str  # what to do, with the exact command

    @property
    def requirement(self) -> PackageRequirement:
        return REQUIREMENTS[self.module]

    def __str__(self) -> str:
        state = "is not installed" if self.missing else "is installed but does not import"
        return f"{self.module} {state} ({self.error}); {self.fix}"


def on_space() -> bool:
    """True inside a Hugging Face Space (which sets ``SPACE_ID``)."""
    return bool(os.environ.get("SPACE_ID"))


def install_command(requirement: PackageRequirement, python: str | None = None) -> str:
    """The shell command that installs ``requirement`` into this interpreter's environment."""
    python = python or _short_python()
    parts = [requirement.env, shlex.quote(python), "-m pip install"]
    parts += [requirement.pip_options, shlex.quote(requirement.pin)]
    return " ".join(part for part in parts if part)


def fix_for(requirement: PackageRequirement) -> str:
    """One sentence saying how to install ``requirement`` here (a Space cannot run pip by hand)."""
    if on_space():
        return (
            f"list `{requirement.pin}` in the Space's requirements.txt (as this repository's does) "
            "and rebuild the Space (Settings → Factory rebuild)."
        )
    return (
        f"install it with `{install_command(requirement)}` (or run `bash scripts/install.sh`), then restart."
    )


def check_packages(sam1: bool = False) -> list[PackageProblem]:
    """Import every model package the tracker needs; one :class:`PackageProblem` per failure.

    ``sam1``: also check segment-anything (only the ``sam1-auto`` proposer uses it). When torch
    itself fails only that problem is returned: every other package needs it. The check is what
    the models do at load time: torchvision through :func:`tracker.compat.ensure_torchvision`
    plus one ``nms`` call, open_clip's model factory, SAM 2's video predictor, builder and the
    configs the registry names.
    """
    checks: list[tuple[str, Callable[[], None]]] = [
        ("torch", _check_torch),
        ("torchvision", _check_torchvision),
        ("open_clip", _check_open_clip),
        ("sam2", _check_sam2),
    ]
    if sam1:
        checks.append(("segment_anything", _check_segment_anything))
    problems: list[PackageProblem] = []
    for module, check in checks:
        problem = _run_check(module, check)
        if problem is None:
            continue
        problems.append(problem)
        if module == "torch":
            break
    return problems


def _run_check(module: str, check: Callable[[], None]) -> PackageProblem | None:
    try:
        check()
    except Exception as error:  # any failure while importing means "this package does not work"
        logger.debug("package check for %s failed", module, exc_info=True)
        missing = isinstance(error, ModuleNotFoundError) and (error.name or "").split(".")[0] == module
        return PackageProblem(module, missing, _first_line(error), fix_for(REQUIREMENTS[module]))
    return None


def _check_torch() -> None:
    import torch

    torch.zeros(2).add_(1)


def _check_torchvision() -> None:
    import torch

    from .compat import ensure_torchvision

    ensure_torchvision()
    from torchvision.ops import nms

    boxes = torch.tensor([[0.0, 0.0, 2.0, 2.0], [0.0, 0.0, 2.0, 2.1]])
    nms(boxes, torch.tensor([1.0, 0.5]), 0.5)


def _check_open_clip() -> None:
    from .compat import ensure_torchvision

    ensure_torchvision()
    open_clip = importlib.import_module("open_clip")
    for name in ("create_model_and_transforms", "get_tokenizer"):
        if not hasattr(open_clip, name):
            raise ImportError(f"open_clip has no {name}: an incompatible version is installed")


def _check_sam2() -> None:
    from .compat import ensure_torchvision
    from .registry import SAM2_MODELS

    ensure_torchvision()
    importlib.import_module("sam2.build_sam")
    importlib.import_module("sam2.sam2_video_predictor")
    importlib.import_module("sam2.sam2_image_predictor")
    importlib.import_module("sam2.automatic_mask_generator")
    package = Path(importlib.import_module("sam2").__file__ or "").parent
    for spec in dict.fromkeys(SAM2_MODELS.values()):
        if not (package / spec.config).is_file():
            raise ImportError(f"sam2 has no {spec.config}: an incomplete or different sam2 is installed")


def _check_segment_anything() -> None:
    from .compat import ensure_torchvision

    ensure_torchvision()
    module = importlib.import_module("segment_anything")
    if not hasattr(module, "sam_model_registry"):
        raise ImportError("segment_anything has no sam_model_registry: an incompatible version is installed")


def _short_python() -> str:
    """``sys.executable``, relative to the working directory when it lies inside it."""
    executable = Path(sys.executable)
    try:
        return str(executable.relative_to(Path.cwd()))
    except ValueError:
        return str(executable)


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


__all__ = [
    "REQUIREMENTS",
    "PackageProblem",
    "PackageRequirement",
    "check_packages",
    "fix_for",
    "install_command",
    "on_space",
]
