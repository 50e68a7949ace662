"""Fixtures several test files share.

Names say what a fixture is: ``*_video`` fixtures are paths to generated mp4 files (a CLIP
model is ``clip_model`` in ``test_models.py``); ``one_hub`` makes every ``ModelHub(...)`` the one
shared :func:`shared_hub`, so random-weight models are built once per test session.
"""

from __future__ import annotations

import functools
from pathlib import Path

import pytest

from tests.synthetic import make_video


@pytest.fixture(scope="session")
def small_video(tmp_path_factory) -> Path:
    """12 frames of a red disc and a blue square, 160×120 at 12 fps (shown 4× larger in the app)."""
    path = tmp_path_factory.mktemp("small-video") / "shapes.mp4"
    make_video(path, num_frames=12, width=160, height=120, fps=12)
    return path


@functools.cache
def shared_hub():
    """One ModelHub for every test that runs models (random weights build once per session)."""
    from tracker.models import ModelHub

    return ModelHub(offline=True, device="cpu")


@pytest.fixture
def one_hub(monkeypatch):
    """``tracker.models.ModelHub(...)`` returns :func:`shared_hub` (the CLI and Services build one each)."""
    import tracker.models

    hub = shared_hub()  # built before the patch below
    monkeypatch.setattr(tracker.models, "ModelHub", lambda *args, **kwargs: hub)
    return hub


@pytest.fixture(scope="module")
def predictor():
    """SAM 2.1 tiny at image size 256 on random weights (seed 0), one per test module."""
    import warnings

    import torch
    from sam2.build_sam import build_sam2_video_predictor

    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return build_sam2_video_predictor(
            "configs/sam2.1/sam2.1_hiera_t.yaml",
            None,
            device="cpu",
            hydra_overrides_extra=["++model.image_size=256"],
        )
