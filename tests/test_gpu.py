"""The GPU path (issue 15): the CLI in bf16 and compiled, masks against plain SAM 2, peak memory
against video length, Find and the web app's ``/track``, each on a CUDA GPU.

Every test body takes the device as a parameter. The ``cuda`` variants carry the ``gpu`` marker
and are skipped where there is no CUDA GPU; the ``cpu`` variants run the same code at tiny sizes
(:data:`SCALES`), so it is exercised on every machine and cannot rot while no GPU is at hand.
Models use random weights: nothing is downloaded.

Stated tolerances (:data:`SCALES`): on the CPU our masks equal plain SAM 2's exactly; on CUDA in
bfloat16 every frame's mask IoU is at least 0.99 (bf16 kernels may round differently between
runs). Peak memory: one more stretch of video may add at most ``memory_slack_mb`` to the peak.
"""

from __future__ import annotations

import gc
import json
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tests.synthetic import make_video, render
from tracker.masks import mask_iou
from tracker.types import FramePrompt, FrameResult

CUDA = torch.cuda.is_available()
DEVICES = [
    pytest.param("cpu", marks=pytest.mark.slow, id="cpu"),
    pytest.param(
        "cuda", marks=[pytest.mark.gpu, pytest.mark.skipif(not CUDA, reason="no CUDA GPU here")], id="cuda"
    ),
]


@dataclass(frozen=True)
class Scale:
    """How big each test runs on a device."""

    image_size: int | None  # SAM 2 input size; None = the device's preset (1024 on CUDA)
    width: int  # generated clips
    height: int
    frames: int
    memory_lengths: tuple[int, int]  # frames of the two runs the peak-memory test compares
    memory_slack_mb: float  # what the longer run may add to the peak
    min_iou: float  # every frame, ours vs plain SAM 2
    keep_window: int | None  # the session's; None = its default


SCALES = {
    # the session keeps keep_window + 1 first frames and a window: 15 → flat after 32 frames;
    # unpruned, 60 more frames at 128 hold about 0.8 MB more
    "cpu": Scale(128, 160, 120, 8, (40, 100), 0.25, 1.0, 15),
    # at 1024 an unpruned frame holds about 1 MB on the GPU: 192 more of them would add ~190 MB
    "cuda": Scale(None, 640, 480, 24, (64, 256), 48.0, 0.99, None),
}


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    """The CUDA scale's clip (640×480, 24 frames); the CPU tests cap the working size at 160."""
    path = tmp_path_factory.mktemp("gpu-clip") / "shapes.mp4"
    scale = SCALES["cuda"]
    make_video(path, num_frames=scale.frames, width=scale.width, height=scale.height, fps=12)
    return path


def size_args(device: str) -> list[str]:
    """CLI options of the device's scale: the CPU runs at 128 on 160×120 frames."""
    scale = SCALES[device]
    if scale.image_size is None:
        return []
    return ["--image-size", str(scale.image_size), "--max-size", str(scale.width), "--top-frames", "1"]


def settings_for(device: str, **changes):
    from tracker.settings import Settings

    scale = SCALES[device]
    fields = {"device": device, "random_weights": True, "offline": True, **changes}
    if scale.image_size is not None:
        fields.update(image_size=scale.image_size, max_size=scale.width, top_frames=1, preset="fast")
    return Settings(**fields)


def gpu_peak_reset(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()


def ran_on_gpu(device: str) -> bool:
    """True on the CPU; on CUDA, whether anything was allocated there since the last reset."""
    return device != "cuda" or torch.cuda.max_memory_allocated() > 0


# ------------------------------------------------------------------------------- the CLI


def run_cli(video: Path, out: Path, device: str, *extra: str) -> dict:
    from tracker.cli import main

    argv = ["-q", "track", str(video), "--prompt", "a red disc", "--out", str(out)]
    argv += ["--random-weights", "--offline", "--device", device, "--bf16", *size_args(device), *extra]
    gpu_peak_reset(device)
    assert main(argv) == 0
    assert ran_on_gpu(device)
    manifest = json.loads((out / "manifest.json").read_text())
    for name in ("overlay.mp4", "coco.json", "trajectories.csv"):
        assert (out / name).stat().st_size > 0, name
    coco = json.loads((out / "coco.json").read_text())
    assert {a["image_id"] for a in coco["annotations"]}, "no frame has a mask"
    return manifest


@pytest.mark.parametrize("device", DEVICES)
def test_cli_tracks_in_bf16(device, clip, tmp_path, one_hub):
    manifest = run_cli(clip, tmp_path / "out", device)
    settings = manifest["settings"]
    assert settings["device"] == device and settings["bf16"] is True and settings["compile"] is False


@pytest.mark.parametrize("device", DEVICES)
def test_cli_tracks_compiled(device, clip, tmp_path, one_hub, caplog):
    """``--compile`` on CUDA builds SAM 2's VOS-compiled predictor; elsewhere it says so and runs uncompiled."""
    caplog.set_level(logging.WARNING, logger="tracker.models")
    extra = ["--model", "tiny"] if device == "cuda" else []  # compiling base+ would take minutes
    manifest = run_cli(clip, tmp_path / "out", device, "--compile", *extra)
    assert manifest["settings"]["compile"] is True
    compiled = [key for key in one_hub.loaded() if key[0] == "sam2" and key[-1] == "compiled"]
    if device == "cuda":
        assert compiled, one_hub.loaded()
    else:
        assert not compiled and "CUDA GPUs only" in caplog.text


# ------------------------------------------------------------------------------- masks vs plain SAM 2


class Frames:
    """A FrameSequence over decoded frames; ``frames[i % len(frames)]`` up to ``length`` (a looped clip)."""

    def __init__(self, frames: list[np.ndarray], length: int | None = None) -> None:
        self.frames = frames
        self.length = length or len(frames)
        self.height, self.width = frames[0].shape[:2]

    def __len__(self) -> int:
        return self.length

    def get(self, frame_idx: int) -> np.ndarray:
        return self.frames[frame_idx % len(self.frames)]


def jpeg_frames(folder: Path, scale: Scale, num_frames: int) -> list[np.ndarray]:
    """Frames as SAM 2 wants them (a JPEG folder); returns the decoded pixels both sides will see."""
    folder.mkdir()
    for idx, (frame, _) in enumerate(render(num_frames, scale.width, scale.height)):
        Image.fromarray(frame).save(folder / f"{idx:05d}.jpg", quality=95)
    return [np.array(Image.open(folder / f"{idx:05d}.jpg").convert("RGB")) for idx in range(num_frames)]


def middle_box(scale: Scale) -> tuple[float, float, float, float]:
    return (0.1 * scale.width, 0.15 * scale.height, 0.45 * scale.width, 0.5 * scale.height)


def plain_masks(predictor, folder: Path, box, device: str) -> dict[int, np.ndarray]:
    """Plain SAM 2 as its examples drive it, under the same autocast as ours."""
    from tracker.devices import autocast

    masks = {}
    with autocast(device, enabled=True), torch.inference_mode():
        state = predictor.init_state(str(folder))
        predictor.add_new_points_or_box(state, frame_idx=0, obj_id=1, box=np.array(box, dtype=np.float32))
        for frame_idx, _, logits in predictor.propagate_in_video(state):
            masks[frame_idx] = FrameResult.from_sam2(frame_idx, [1], logits.float().cpu().numpy()).masks
        predictor.reset_state(state)
    return masks


def our_masks(predictor, frames: Frames, box, device: str) -> dict[int, np.ndarray]:
    from tracker.devices import autocast
    from tracker.session import TrackingSession

    masks = {}
    with TrackingSession(predictor, frames, autocast=lambda: autocast(device, enabled=True)) as session:
        session.add_prompt(FramePrompt(1, 0, box=box))
        for result in session.propagate(direction="forward"):
            masks[result.frame_idx] = result.masks
    return masks


def assert_same_masks(ours: dict, plain: dict, min_iou: float) -> None:
    """``ours`` / ``plain``: frame → ``objects×H×W`` bool; the worst object's IoU on each frame counts."""
    assert sorted(ours) == sorted(plain)
    assert all(ours[f].shape == plain[f].shape for f in plain)
    ious = {f: min(mask_iou(a, b, empty=1.0) for a, b in zip(ours[f], plain[f], strict=True)) for f in plain}
    worst = min(ious, key=ious.get)
    assert ious[worst] >= min_iou, f"frame {worst}: IoU {ious[worst]:.4f} < {min_iou} (all: {ious})"
    if min_iou == 1.0:
        assert all(np.array_equal(ours[f], plain[f]) for f in plain)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("vos", [False, True], ids=["predictor", "vos-class"])
def test_session_masks_match_plain_sam2(device, vos, tmp_path):
    """Same model object, frames, box and bf16 autocast: our session gives plain SAM 2's masks.

    ``vos-class``: the predictor made SAM 2's VOS-optimised class (what ``--compile`` compiles,
    here without compiling), so its method bodies are checked against our session too.
    """
    from tracker.models import compile_sam2, load_sam2

    scale = SCALES[device]
    size = scale.image_size or 1024
    predictor = load_sam2("tiny", image_size=size, device=device, random_weights=True)
    if vos:
        compile_sam2(predictor, mode=None)
        assert type(predictor).__name__ == "SAM2VideoPredictorVOS"
    frames = jpeg_frames(tmp_path / "jpg", scale, scale.frames)
    box = middle_box(scale)
    plain = plain_masks(predictor, tmp_path / "jpg", box, device)
    ours = our_masks(predictor, Frames(frames), box, device)
    assert any(mask.any() for mask in plain.values())
    assert_same_masks(ours, plain, scale.min_iou)


# ------------------------------------------------------------------------------- peak memory


def live_tensor_bytes(device: str) -> int:
    """Bytes of every live tensor storage on ``device`` (each storage counted once)."""
    storages = {}
    with warnings.catch_warnings():  # isinstance() on deprecated torch objects warns
        warnings.simplefilter("ignore")
        tensors = [obj for obj in gc.get_objects() if isinstance(obj, torch.Tensor)]
    for tensor in tensors:
        if tensor.device.type == device:
            storage = tensor.untyped_storage()
            storages[storage.data_ptr()] = storage.nbytes()
    return sum(storages.values())


def peak_while_tracking(predictor, frames: Frames, device: str, keep_window: int | None) -> float:
    """MB: CUDA's ``max_memory_allocated`` over the run; on the CPU the largest live-tensor total
    sampled every eighth frame (the CPU allocator keeps no peak)."""
    from tracker.devices import autocast
    from tracker.session import TrackingSession

    box = (0.1 * frames.width, 0.15 * frames.height, 0.45 * frames.width, 0.5 * frames.height)
    options = {} if keep_window == "default" else {"keep_window": keep_window}
    gc.collect()
    gpu_peak_reset(device)
    peak = 0
    with TrackingSession(
        predictor, frames, autocast=lambda: autocast(device, enabled=True), **options
    ) as session:
        session.add_prompt(FramePrompt(1, 0, box=box))
        for result in session.propagate(direction="forward"):
            if device == "cpu" and (result.frame_idx % 8 == 0 or result.frame_idx == len(frames) - 1):
                peak = max(peak, live_tensor_bytes("cpu"))
    if device == "cuda":
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated()
    return peak / 2**20


@pytest.mark.parametrize("device", DEVICES)
def test_peak_memory_is_flat_in_video_length(device, one_hub):
    """Two lengths of one looped clip: the longer adds at most the slack; unpruned (plain SAM 2's
    keep-everything) it adds more, which shows the measure sees per-frame state."""
    scale = SCALES[device]
    predictor = one_hub.sam2("tiny", image_size=scale.image_size or 1024, device=device, random_weights=True)
    clip_frames = [frame for frame, _ in render(24, scale.width, scale.height)]
    short, long = scale.memory_lengths
    window = scale.keep_window if scale.keep_window is not None else "default"
    peaks = [peak_while_tracking(predictor, Frames(clip_frames, n), device, window) for n in (short, long)]
    unpruned = peak_while_tracking(predictor, Frames(clip_frames, long), device, None)
    assert peaks[1] - peaks[0] <= scale.memory_slack_mb, f"peaks {peaks} MB for {short} and {long} frames"
    assert unpruned - peaks[1] > scale.memory_slack_mb, f"unpruned {unpruned:.1f} MB vs pruned {peaks}"


# ------------------------------------------------------------------------------- Find and the web app


@pytest.mark.parametrize("device", DEVICES)
def test_find_runs_on_the_device(device, clip, tmp_path, one_hub):
    from tracker.workspace import Workspace

    gpu_peak_reset(device)
    with Workspace.open(clip, one_hub, settings_for(device), tmp_path) as ws:
        assert ws.device.type == device
        events = list(ws.find_candidates("a red disc"))
        candidates = events[-1].candidates
        assert candidates, [e.stage for e in events]
        assert candidates[0].mask.shape == (ws.info.height, ws.info.width)
    assert ran_on_gpu(device)


@pytest.mark.parametrize("device", DEVICES)
def test_web_app_track_endpoint_on_the_device(device, small_video, tmp_path):
    from gradio_client import Client, handle_file

    from tests.test_ui_client import check_result, launched
    from ui.services import Services

    services = Services.from_settings(settings_for(device), tmp_path / "sessions")
    gpu_peak_reset(device)
    demo, url = launched(services)
    try:
        client = Client(url, verbose=False, download_files=str(tmp_path / "downloads"))
        result = client.predict(video=handle_file(str(small_video)), prompt="a red disc", api_name="/track")
        check_result(result)
    finally:
        demo.close()
    assert ran_on_gpu(device)
