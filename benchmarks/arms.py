"""The two sides the benchmark compares, built from public APIs only.

*Ours* is a :class:`tracker.workspace.Workspace` (open → box on frame 0 → ``track`` or the
session's ``propagate``); *plain SAM 2* is the predictor as SAM 2's examples drive it (JPEG
folder → ``init_state`` → ``add_new_points_or_box`` → ``propagate_in_video``). Both get their
model from one :class:`tracker.models.ModelHub`, so at equal settings plain SAM 2 runs the very
predictor object our session uses. An :class:`Arm` is one side of a paired run: prepared up
front, then advanced one frame per :meth:`Arm.step` (see ``jobs.job_paired``).
"""

from __future__ import annotations

import contextlib
import statistics
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from benchmarks.measure import sync

# The Settings fields a job spec (or one arm of it) may set; every run uses random weights.
ARM_FIELDS = {
    "preset": "preset",
    "model": "sam2_model",
    "image_size": "image_size",
    "max_size": "max_size",
    "bf16": "bf16",
}


def settings_for(spec: dict[str, Any], arm: dict[str, Any] | None = None) -> Any:
    """The :class:`~tracker.settings.Settings` of ours in ``spec`` (or of one of its ``arms``).

    Model, size, preset and precision come from ``arm`` when given, else from ``spec``; the
    device and the trim (``end_time``) always come from ``spec``.
    """
    from tracker.settings import Settings

    source = spec if arm is None else arm
    return Settings(
        **{field: source.get(key) for key, field in ARM_FIELDS.items()},
        device=spec.get("device", "auto"),
        compile=bool(spec.get("compile")),
        random_weights=True,
        end_time=spec.get("end_time"),
    )


def workspace_predictor(hub: Any, ws: Any) -> Any:
    """The SAM 2 predictor ``ws`` tracks with, loaded (or found) through ``hub``'s public ``sam2``.

    ``Workspace`` asks its hub for the model of its resolved settings; asking the same hub with
    the same settings returns the same cached object, so timing this call times the model load,
    and whatever is done to the predictor (compiling it) is what the workspace then runs. Pair it
    with :func:`no_new_models` around the first prompt to prove it.
    """
    s = ws.settings
    return hub.sam2(
        s.sam2_model,
        image_size=s.image_size,
        device=ws.device,
        random_weights=s.random_weights,
        checkpoint=s.sam2_checkpoint,
        checkpoints_dir=s.checkpoints_dir,
        offline=s.offline,
        compile=s.compile,
    )


@contextlib.contextmanager
def no_new_models(hub: Any) -> Iterator[None]:
    """Fail when the block loads a model: the workspace then runs another SAM 2 than the one measured."""
    before = set(hub.loaded())
    yield
    extra = set(hub.loaded()) - before
    if extra:
        raise RuntimeError(
            f"the workspace loaded {sorted(extra)} instead of the predictor the benchmark loaded; "
            "keep benchmarks.arms.workspace_predictor in step with how Workspace picks its model"
        )


def prompt_box(width: int, height: int) -> tuple[float, float, float, float]:
    """The box prompt every run uses, ``xyxy`` in the frame's pixels: the middle of the frame."""
    return (round(0.3 * width), round(0.2 * height), round(0.7 * width), round(0.9 * height))


def autocast_name(device: Any, bf16: bool | None) -> str:
    from tracker.devices import resolve_autocast

    dtype = resolve_autocast(device, bf16)
    return "float32" if dtype is None else str(dtype).replace("torch.", "")


def compile_predictor(predictor: Any) -> None:
    """Compile ``predictor`` in place as ``build_sam2_video_predictor(vos_optimized=True)`` does
    (:func:`tracker.models.compile_sam2`, which ``--compile`` uses; a second call does nothing)."""
    from tracker.models import compile_sam2

    compile_sam2(predictor)


class Arm:
    """One side of a paired run: prepared up front, then advanced one frame per :meth:`step`."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.phases: dict[str, float] = {}
        self.steps: list[float] = []  # seconds of each frame, in order (the first is the prompt frame)
        self.finish_s = 0.0  # the call that ended the iterator (the overlay's close, for a track)
        self.done = False
        self.width = self.height = 0
        self.autocast = ""
        self.settings: dict[str, Any] | None = None
        self._iterator: Iterator[Any] | None = None
        self._context: Callable[[], Any] = contextlib.nullcontext

    def step(self) -> None:
        assert self._iterator is not None
        started = time.perf_counter()
        with self._context():
            try:
                next(self._iterator)
            except StopIteration:
                self.done = True
        self.after_step()
        elapsed = time.perf_counter() - started
        if self.done:
            self.finish_s = elapsed
        else:
            self.steps.append(elapsed)

    def after_step(self) -> None:
        pass

    def record(self) -> dict[str, Any]:
        propagated = self.steps[1:]
        return {
            "name": self.name,
            "phases": self.phases,
            "frames_done": len(self.steps),
            "finish_s": self.finish_s,
            "total_s": sum(self.steps) + self.finish_s,
            "propagated_s": sum(propagated) + self.finish_s,
            "s_per_frame_mean": (sum(propagated) + self.finish_s) / len(propagated) if propagated else None,
            "s_per_frame_median": statistics.median(propagated) if propagated else None,
            "first_frame_s": self.steps[0] if self.steps else None,
            "steps": [round(v, 4) for v in self.steps],
            "width": self.width,
            "height": self.height,
            "autocast": self.autocast,
            "settings": self.settings,
        }


class PlainArm(Arm):
    """Plain SAM 2 on a JPEG folder; ``bf16`` None = our autocast policy, False = float32."""

    def __init__(self, name: str, predictor: Any, frames_dir: Path, bf16: bool | None, device: Any) -> None:
        import numpy as np
        from PIL import Image

        from tracker.devices import autocast

        super().__init__(name)
        self.autocast = autocast_name(device, bf16)
        self._context = lambda: autocast(device, enabled=bf16)
        with Image.open(frames_dir / "00000.jpg") as first:
            self.width, self.height = first.size
        with self._context():
            started = time.perf_counter()
            state = predictor.init_state(video_path=str(frames_dir))
            self.phases["init_state_s"] = time.perf_counter() - started
            started = time.perf_counter()
            box = np.array(prompt_box(self.width, self.height), dtype=np.float32)
            predictor.add_new_points_or_box(state, frame_idx=0, obj_id=1, box=box)
            sync(device)
            self.phases["prompt_s"] = time.perf_counter() - started
        frames = predictor.propagate_in_video(state)
        # what SAM 2's example notebook does with each frame's logits
        self._iterator = ((logits > 0.0).cpu().numpy() for _f, _ids, logits in frames)


class OursArm(Arm):
    """Ours: a box on frame 0 of ``ws``, then ``ws.track`` (mode "track") or ``ws.session.propagate``."""

    def __init__(
        self,
        name: str,
        ws: Any,
        mode: str,
        overlay: Path,
        discover_every: int | None = None,
        prompt: str | None = None,
        skip_covered: bool = True,
    ) -> None:
        super().__init__(name)
        self.ws = ws
        self.autocast = autocast_name(ws.device, ws.settings.bf16)
        self.width, self.height = ws.info.width, ws.info.height
        self.settings = {k: v for k, v in ws.settings.to_dict().items() if v is not None}
        started = time.perf_counter()
        with no_new_models(ws.hub):
            obj = ws.add_object("benchmark")
            ws.set_box(obj.object_id, 0, prompt_box(ws.info.width, ws.info.height))
        sync(ws.device)
        self.phases["prompt_s"] = time.perf_counter() - started  # builds the session: init_state, frame 0
        self.drain_s = 0.0
        if mode == "track":
            if discover_every:
                ws.prompt_text = prompt or "object"
            self._iterator = ws.track(
                direction="both", overlay_path=overlay, discover=looking(discover_every, skip_covered)
            )
        else:
            self._iterator = ws.session.propagate(direction="forward")

    def after_step(self) -> None:
        # Frames the session prepares ahead must be charged to this arm, not to the next one.
        started = time.perf_counter()
        self.ws.session.wait_prefetch()
        self.drain_s += time.perf_counter() - started

    def record(self) -> dict[str, Any]:
        out = {**super().record(), "prefetch_wait_s": self.drain_s}
        looked = discovery_record(self.ws)
        if looked is not None:
            out["discovery"] = looked
        return out


def discovery_record(ws: Any) -> dict[str, Any] | None:
    """What the last ``ws.track``'s discovery did: its checks (frames, seconds), the detector's
    counters (features reused, grid points and crops done and skipped), objects found; None
    when discovery was off."""
    discovery = ws.last_discovery
    if discovery is None:
        return None
    reports, detector = discovery.reports, discovery.detector
    return {
        "checks": len(reports),
        "frames": [r.frame for r in reports],
        "seconds": [round(r.seconds, 4) for r in reports],
        "detect_seconds": [round(r.detect_seconds, 4) for r in reports],
        "reused_features": getattr(detector, "reused", None),
        "points": getattr(detector, "points", None),
        "skipped_points": getattr(detector, "skipped_points", None),
        "crops": getattr(detector, "crops", None),
        "skipped_crops": getattr(detector, "skipped_crops", None),
        "found": len(discovery.records),
        "objects_at_end": len(ws.objects),
        "report_masks_held": sum(int(r.result.masks.size) for r in reports),  # bool pixels kept
    }


def looking(every: int | None, skip_covered: bool = True) -> Any:
    """Discovery that checks every ``every`` frames but never adds an object (None: off).

    The real detector path runs on every check (SAM 2 point proposals from the tracker's
    features, CLIP crop scores); the threshold and the re-acquisition similarity are +inf, out
    of reach. (With random weights a finite threshold becomes -inf in
    ``Workspace._start_discovery``, and every check would confirm noise: more objects, which is
    not what speed or memory per frame of video asks.) ``skip_covered`` as in ``DiscoveryConfig``.
    """
    if not every:
        return None
    from tracker.discovery import DiscoveryConfig

    return DiscoveryConfig(
        every=int(every),
        threshold=float("inf"),
        reacquire_similarity=float("inf"),
        skip_covered=skip_covered,
    )


def warm_up(video: Path, hub: Any, settings: Any, workdir: Path, frames: int) -> float:
    """Track ``frames`` frames once in a throwaway workspace, so that the kernels every shape of the
    coming runs needs (the memory bank grows for the first 16 frames) already exist: in a shared
    process whichever arm met a shape first would pay for it. Returns the seconds spent."""
    from tracker.workspace import Workspace

    started = time.perf_counter()
    with Workspace.open(video, hub, settings, workdir) as ws, no_new_models(hub):
        obj = ws.add_object("warm-up")
        ws.set_box(obj.object_id, 0, prompt_box(ws.info.width, ws.info.height))
        for _ in ws.session.propagate(direction="forward", max_frames=frames):
            pass
        ws.session.close()
    return time.perf_counter() - started


def interleave(arms: list[Arm]) -> None:
    """Advance every arm one frame in turn, rotating who goes first, until all are done."""
    turn = 0
    while not all(arm.done for arm in arms):
        for arm in arms[turn % len(arms) :] + arms[: turn % len(arms)]:
            if not arm.done:
                arm.step()
        turn += 1
