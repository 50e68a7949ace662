"""Speed and memory of the tracker, side by side with plain SAM 2 (issue #4).

Run ``python benchmarks/run.py`` (9 minutes on the project's idle 2-core CPU) or
``python benchmarks/run.py --quick`` (a sanity check at small sizes, about 3 minutes idle); on a
busy machine both take several times longer (see ``--omp-wait-policy`` and the README). It
prints a Markdown table with PASS/FAIL per target and writes everything it measured to
``--json``. Every measurement runs in a fresh subprocess, so peaks of one run never show up in
another. Models use random weights (speed and
memory do not depend on the weights' values); nothing is downloaded.

Sections (``--sections``, default all):

* ``memory`` — ours (``Workspace``: open → box prompt on frame 0 → ``track`` with the overlay
  mp4) and plain SAM 2 (JPEG folder → ``init_state`` → ``add_new_points_or_box`` →
  ``propagate_in_video``) at each of ``--lengths`` (the clip looped: an mp4 concatenated with
  ffmpeg stream copy for ours, symlinks to one JPEG per clip frame for plain; nothing holds the
  looped video). Peak RSS (sampled every 50 ms, and ``ru_maxrss``) per length, then a linear fit
  of peak RSS against length: growth per 100 frames.
* ``equal`` — same model, same processing size, same precision, same frames and prompt: ours
  propagation alone (``TrackingSession.propagate``), ours end to end (``Workspace.track``: decode,
  propagate, draw, encode) and plain SAM 2, ``--repeats`` times interleaved.
* ``defaults`` — our CPU default preset end to end against plain SAM 2 at its defaults
  (image size 1024, float32 on CPU, frames extracted to JPEG at the source size) on the first
  ``--defaults-frames`` frames, plus an extrapolation to the whole clip.
* ``find`` — ``Workspace.find_candidates`` on ``--find-video`` with the default preset: time to
  the first candidates and to the end, cold (models built in the call) and warm.
* ``gpu`` — frames per second at 1024 for tiny / base+ / large, bfloat16, optionally compiled,
  next to SAM 2's published A100 figures; only on ``--device cuda``.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import logging
import math
import os
import platform
import resource
import shlex
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if __package__ in (None, ""):
    # Run as a script (python benchmarks/run.py): the repository root holds `tracker`, which is
    # not installed into the environment.
    sys.path.insert(0, str(ROOT))

logger = logging.getLogger("benchmarks")

DEFAULT_VIDEO = Path(__file__).resolve().parents[2] / "shared" / "videos" / "bedroom.mp4"
DEFAULT_FIND_VIDEO = Path(__file__).resolve().parents[2] / "shared" / "videos" / "01_dog.mp4"
README = Path(__file__).resolve().parent / "README.md"
README_START = "<!-- benchmark-results:start -->"
README_END = "<!-- benchmark-results:end -->"

# Targets of issue #4.
MEMORY_GROWTH_LIMIT_MB = 50.0  # per 100 extra frames, at any processing size
PROPAGATION_TOLERANCE = 0.05  # ours s/frame ≤ (1 + this) × plain, equal settings
E2E_OVER_PROPAGATION = 1.2  # decode + propagate + draw + encode ≤ this × propagation alone
DEFAULTS_SPEEDUP = 5.0  # CPU default preset vs plain SAM 2 at its defaults, end to end
FIRST_CANDIDATES_S = 15.0
ALL_CANDIDATES_S = 45.0
# SAM 2's published A100 figures (frames per second at 1024, bfloat16): (uncompiled, compiled).
PUBLISHED_A100_FPS = {"tiny": (47.0, 91.0), "base+": (35.0, 64.0), "large": (24.0, 40.0)}
GPU_MODELS = ("tiny", "base+", "large")

RSS_INTERVAL_S = 0.05
MB = 1024 * 1024
NO_GPU = "not run: no GPU in this session"


# =============================================================================== measuring


def current_rss() -> int:
    """This process's resident set size in bytes (Linux ``/proc/self/statm``)."""
    try:
        with open("/proc/self/statm", "rb") as handle:
            return int(handle.read().split()[1]) * resource.getpagesize()
    except OSError:  # not Linux: fall back to the high-water mark
        return max_rss()


def max_rss() -> int:
    """``ru_maxrss`` in bytes (Linux reports KiB, macOS bytes)."""
    value = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(value if sys.platform == "darwin" else value * 1024)


class RssSampler:
    """Samples :func:`current_rss` every ``interval`` seconds on a daemon thread."""

    def __init__(self, interval: float = RSS_INTERVAL_S) -> None:
        self.interval = interval
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="rss-sampler", daemon=True)

    def start(self) -> RssSampler:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.samples.append((time.perf_counter(), current_rss()))
            self._stop.wait(self.interval)

    def peak(self, since: float | None = None, until: float | None = None) -> int:
        values = [
            rss
            for t, rss in list(self.samples)
            if (since is None or t >= since) and (until is None or t <= until)
        ]
        return max(values, default=current_rss())


class Timers:
    """Time spent in wrapped callables, per name (optionally per thread); thread-safe."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        self._lock = threading.Lock()

    def wrap(self, function: Callable[..., Any], name: str, per_thread: bool = False) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                elapsed = time.perf_counter() - started
                key = name
                if per_thread:
                    key = f"{name}[{threading.current_thread().name.split('_')[0]}]"
                with self._lock:
                    self.seconds[key] += elapsed
                    self.calls[key] += 1

        return timed

    def reset(self) -> dict[str, dict[str, float]]:
        """Start counting afresh; returns what was counted so far."""
        counted = self.to_dict()
        with self._lock:
            self.seconds.clear()
            self.calls.clear()
        return counted

    def to_dict(self) -> dict[str, dict[str, float]]:
        with self._lock:
            return {
                k: {"seconds": round(v, 4), "calls": self.calls[k]} for k, v in sorted(self.seconds.items())
            }


def cpu_seconds(who: int = resource.RUSAGE_SELF) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def per_frame_stats(times: Sequence[float]) -> dict[str, float | None]:
    """Seconds per frame from the moments frames were yielded (the first one is the prompt frame).

    ``median`` is the median gap between consecutive frames (robust to a busy machine);
    ``mean`` is (last − first) / (n − 1).
    """
    if len(times) < 2:
        return {"median": None, "mean": None, "p90": None}
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    gaps_sorted = sorted(gaps)
    return {
        "median": statistics.median(gaps),
        "mean": (times[-1] - times[0]) / (len(times) - 1),
        "p90": gaps_sorted[min(len(gaps_sorted) - 1, int(0.9 * len(gaps_sorted)))],
    }


def linear_fit(xs: Sequence[float], ys: Sequence[float]) -> tuple[float, float] | None:
    """Least-squares ``(slope, intercept)`` of ``ys`` against ``xs``; None with fewer than 2 distinct xs."""
    if len(xs) != len(ys) or len(set(xs)) < 2:
        return None
    n = len(xs)
    mean_x, mean_y = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mean_x) ** 2 for x in xs)
    slope = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / sxx
    return slope, mean_y - slope * mean_x


def growth_per_100(points: Iterable[tuple[float, float]]) -> float | None:
    """MB per 100 frames from ``(frames, bytes)`` points (linear fit)."""
    pairs = list(points)
    fit = linear_fit([p[0] for p in pairs], [p[1] / MB for p in pairs])
    return None if fit is None else fit[0] * 100


def load_average() -> list[float]:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return []


def machine() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ram_gb = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                ram_gb = round(int(line.split()[1]) / 1024 / 1024, 1)
                break
    except OSError:
        pass
    info: dict[str, Any] = {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "ram_gb": ram_gb,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    try:
        import torch

        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
        info["cuda"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
        from tracker.devices import autocast_dtype

        dtype = autocast_dtype("cpu")
        info["cpu_autocast"] = str(dtype).replace("torch.", "") if dtype is not None else "float32"
    except Exception as exc:  # the report must still come out
        info["torch_error"] = repr(exc)
    try:
        import sam2

        info["sam2"] = getattr(sam2, "__version__", None) or _dist_version("sam2")
    except Exception:
        info["sam2"] = None
    return info


def _dist_version(name: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return None


# =============================================================================== jobs (child side)


def _child_start(spec: dict[str, Any]) -> tuple[RssSampler, dict[str, Any]]:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    sampler = RssSampler().start()
    record: dict[str, Any] = {
        "spec": spec,
        "load_average_start": load_average(),
        "rss_start_mb": current_rss() / MB,
    }
    return sampler, record


def _child_finish(sampler: RssSampler, record: dict[str, Any], device: Any) -> dict[str, Any]:
    sampler.stop()
    record["peak_rss_mb"] = sampler.peak() / MB
    record["ru_maxrss_mb"] = max_rss() / MB
    record["load_average_end"] = load_average()
    if getattr(device, "type", None) == "cuda":
        import torch

        record["gpu_max_allocated_mb"] = torch.cuda.max_memory_allocated(device) / MB
    return record


def _prompt_box(width: int, height: int) -> tuple[float, float, float, float]:
    """The box prompt every run uses, ``xyxy`` in the frame's pixels: the middle of the frame."""
    return (round(0.3 * width), round(0.2 * height), round(0.7 * width), round(0.9 * height))


def compile_predictor(predictor: Any) -> None:
    """Compile ``predictor`` in place the way ``build_sam2_video_predictor(vos_optimized=True)`` does."""
    import torch
    from sam2.sam2_video_predictor import SAM2VideoPredictorVOS

    # SAM2VideoPredictorVOS only adds compile-friendly method bodies and compiles the heads in
    # __init__; swapping the class of an already-built predictor gives the same model.
    predictor.__class__ = SAM2VideoPredictorVOS
    predictor._compile_all_components()
    predictor.image_encoder.forward = torch.compile(
        predictor.image_encoder.forward, mode="max-autotune", fullgraph=True, dynamic=False
    )


def _sync(device: Any) -> None:
    if getattr(device, "type", None) == "cuda":
        import torch

        torch.cuda.synchronize(device)


def job_ours(spec: dict[str, Any]) -> dict[str, Any]:
    """Our path: ``Workspace.open`` → box on frame 0 → ``track`` (or the session's ``propagate``)."""
    sampler, record = _child_start(spec)
    import tracker.render as render
    import tracker.session as session_module
    from tracker.models import ModelHub
    from tracker.settings import Settings
    from tracker.workspace import Workspace

    timers = Timers()
    workdir = Path(spec["workdir"])
    settings = Settings(
        preset=spec.get("preset"),
        sam2_model=spec.get("model"),
        image_size=spec.get("image_size"),
        max_size=spec.get("max_size"),
        device=spec.get("device", "auto"),
        random_weights=True,
        bf16=spec.get("bf16"),
        end_time=spec.get("end_time"),
    )
    started = time.perf_counter()
    ws = Workspace.open(Path(spec["video"]), ModelHub(device=settings.device), settings, workdir)
    record["open_s"] = time.perf_counter() - started
    info = ws.info
    if spec.get("num_frames") and info.num_frames != spec["num_frames"]:
        raise RuntimeError(f"expected {spec['num_frames']} frames, the trimmed video has {info.num_frames}")
    record.update(
        num_frames=info.num_frames,
        width=info.width,
        height=info.height,
        settings={k: v for k, v in ws.settings.to_dict().items() if v is not None},
    )
    started = time.perf_counter()
    predictor = ws._sam2()
    record["model_load_s"] = time.perf_counter() - started
    if spec.get("compile"):
        compile_predictor(predictor)
    device = predictor.device
    record["autocast"] = _autocast_name(ws.device, ws.settings.bf16)

    predictor._run_single_frame_inference = timers.wrap(predictor._run_single_frame_inference, "inference")
    session_module.preprocess_frame = timers.wrap(
        session_module.preprocess_frame, "preprocess", per_thread=True
    )
    session_module.resolve_masks = timers.wrap(session_module.resolve_masks, "resolve masks")
    ws.reader.get = timers.wrap(ws.reader.get, "decode (reader.get)", per_thread=True)
    render.draw_overlay = timers.wrap(render.draw_overlay, "draw overlay")
    render.OverlayWriter.write = timers.wrap(render.OverlayWriter.write, "overlay writer.write")
    ws.store.put = timers.wrap(ws.store.put, "result store (RLE)")

    if getattr(device, "type", None) == "cuda":
        import torch

        torch.cuda.reset_peak_memory_stats(device)
    rss_before_prompt = current_rss()
    started = time.perf_counter()
    obj = ws.add_object("benchmark")
    ws.set_box(obj.object_id, 0, _prompt_box(info.width, info.height))
    _sync(device)
    record["prompt_s"] = time.perf_counter() - started  # includes init_state (frame 0 encoded)

    record["timers_prompt"] = timers.reset()
    frame_times: list[float] = []
    rss_per_frame: list[int] = []
    children_cpu = cpu_seconds(resource.RUSAGE_CHILDREN)
    cpu_before = cpu_seconds()
    track_started = time.perf_counter()
    if spec["mode"] == "track":
        for _event in ws.track(direction="both", overlay_path=workdir / "overlay.mp4"):
            frame_times.append(time.perf_counter())
            rss_per_frame.append(current_rss())
        record["overlay_bytes"] = (workdir / "overlay.mp4").stat().st_size
    else:
        for _result in ws.session.propagate(direction="forward"):
            frame_times.append(time.perf_counter())
            rss_per_frame.append(current_rss())
    _sync(device)
    track_ended = time.perf_counter()
    record["track_s"] = track_ended - track_started
    record["frames_done"] = len(frame_times)
    record["first_result_s"] = frame_times[0] - track_started if frame_times else None
    record["first_propagated_s"] = frame_times[1] - track_started if len(frame_times) > 1 else None
    record["per_frame"] = per_frame_stats(frame_times)
    record["cpu_s"] = cpu_seconds() - cpu_before
    record["cpu_share"] = record["cpu_s"] / record["track_s"]  # cores busy on average (2 = all, here)
    record["children_cpu_s"] = cpu_seconds(resource.RUSAGE_CHILDREN) - children_cpu  # ffmpeg encoding
    record["rss_before_prompt_mb"] = rss_before_prompt / MB
    record["peak_rss_tracking_mb"] = sampler.peak(track_started, track_ended) / MB
    half = len(rss_per_frame) // 2
    record["within_run_growth_mb_per_100"] = growth_per_100(
        (i, rss) for i, rss in enumerate(rss_per_frame) if i >= half
    )
    record["rss_per_frame_mb"] = [
        round(r / MB, 1) for r in rss_per_frame[:: max(1, len(rss_per_frame) // 50)]
    ]
    stored = ws.session.stored_frames()
    record["held_at_end"] = {
        "non_conditioning": stored.non_conditioning,
        "conditioning": stored.conditioning,
        "cached_features": stored.cached_features,
        "model_frames": stored.model_frames,
        "result_store_kb": ws.store.nbytes() / 1024,
        "reader_cache_frames": len(ws.reader._cache),
    }
    if spec.get("decode_pass"):
        started = time.perf_counter()
        decoded = sum(1 for _ in ws.reader.iter_frames())
        record["decode_pass"] = {"frames": decoded, "s_per_frame": (time.perf_counter() - started) / decoded}
    record["timers"] = timers.to_dict()
    ws.close()
    return _child_finish(sampler, record, device)


def _autocast_name(device: Any, bf16: bool | None) -> str:
    from tracker.devices import resolve_autocast

    dtype = resolve_autocast(device, bf16)
    return "float32" if dtype is None else str(dtype).replace("torch.", "")


def job_plain(spec: dict[str, Any]) -> dict[str, Any]:
    """Plain SAM 2 as its examples use it: JPEG folder → init_state → add_new_points_or_box → propagate."""
    sampler, record = _child_start(spec)
    import numpy as np
    import sam2.sam2_video_predictor as video_predictor
    import torch
    from PIL import Image

    from tracker.devices import autocast, pick_device
    from tracker.models import load_sam2

    timers = Timers()
    device = pick_device(spec.get("device", "auto"))
    frames_dir = Path(spec["frames_dir"])
    with Image.open(frames_dir / "00000.jpg") as first:
        width, height = first.size
    record.update(num_frames=len(list(frames_dir.glob("*.jpg"))), width=width, height=height)
    started = time.perf_counter()
    predictor = load_sam2(spec["model"], image_size=spec["image_size"], device=device, random_weights=True)
    record["model_load_s"] = time.perf_counter() - started
    if spec.get("compile"):
        compile_predictor(predictor)
    # bf16: None = our policy (equal settings); False = float32 (SAM 2's CPU default); True = bf16
    # autocast, what SAM 2's examples and benchmark.py enter on CUDA.
    bf16 = spec.get("bf16")
    record["autocast"] = _autocast_name(device, bf16)
    predictor._run_single_frame_inference = timers.wrap(predictor._run_single_frame_inference, "inference")
    original_loader = video_predictor.load_video_frames
    video_predictor.load_video_frames = timers.wrap(original_loader, "load JPEG frames")
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)

    frame_times: list[float] = []
    rss_per_frame: list[int] = []
    box = np.array(_prompt_box(width, height), dtype=np.float32)
    with autocast(device, enabled=bf16):
        started = time.perf_counter()
        state = predictor.init_state(video_path=str(frames_dir))
        record["init_state_s"] = time.perf_counter() - started
        prompt_started = time.perf_counter()
        predictor.add_new_points_or_box(state, frame_idx=0, obj_id=1, box=box)
        _sync(device)
        record["prompt_s"] = time.perf_counter() - prompt_started
        rss_before_track = current_rss()
        record["timers_prompt"] = timers.reset()
        cpu_before = cpu_seconds()
        track_started = time.perf_counter()
        for _frame_idx, _obj_ids, logits in predictor.propagate_in_video(state):
            _masks = (logits > 0.0).cpu().numpy()  # what SAM 2's example notebook does per frame
            frame_times.append(time.perf_counter())
            rss_per_frame.append(current_rss())
        track_ended = time.perf_counter()
    record["track_s"] = track_ended - track_started
    record["frames_done"] = len(frame_times)
    record["first_result_s"] = frame_times[0] - started if frame_times else None  # from init_state
    record["first_propagated_s"] = frame_times[1] - started if len(frame_times) > 1 else None
    record["per_frame"] = per_frame_stats(frame_times)
    record["cpu_s"] = cpu_seconds() - cpu_before
    record["cpu_share"] = record["cpu_s"] / record["track_s"]  # cores busy on average (2 = all, here)
    record["rss_before_track_mb"] = rss_before_track / MB
    record["peak_rss_tracking_mb"] = sampler.peak(track_started, track_ended) / MB
    half = len(rss_per_frame) // 2
    record["within_run_growth_mb_per_100"] = growth_per_100(
        (i, rss) for i, rss in enumerate(rss_per_frame) if i >= half
    )
    record["rss_per_frame_mb"] = [
        round(r / MB, 1) for r in rss_per_frame[:: max(1, len(rss_per_frame) // 50)]
    ]
    record["timers"] = timers.to_dict()
    record["timers"]["load JPEG frames"] = record["timers_prompt"].get("load JPEG frames")
    video_predictor.load_video_frames = original_loader
    return _child_finish(sampler, record, device)


def job_find(spec: dict[str, Any]) -> dict[str, Any]:
    """``Workspace.find_candidates`` with the default preset: cold (models built in the call), then warm."""
    sampler, record = _child_start(spec)
    from tracker.candidates import default_stride
    from tracker.models import ModelHub
    from tracker.settings import Settings
    from tracker.workspace import Workspace

    heat_log: list[dict[str, Any]] = []

    class FrameLog(logging.Handler):
        # CandidateFinder logs "<label>: heat map X s, N proposals in Y s, M scored in Z s, K kept".
        def emit(self, record_: logging.LogRecord) -> None:
            if isinstance(record_.msg, str) and ": heat map" in record_.msg and len(record_.args or ()) == 7:
                label, heat, proposals, proposal_s, scored, score_s, kept = record_.args
                heat_log.append(
                    {
                        "frame": label,
                        "heat_map_s": heat,
                        "proposals": proposals,
                        "sam2_points_s": proposal_s,
                        "scored": scored,
                        "crop_scoring_s": score_s,
                        "kept": kept,
                    }
                )

    finder_logger = logging.getLogger("tracker.candidates")
    finder_logger.setLevel(logging.INFO)
    finder_logger.addHandler(FrameLog())

    settings = Settings(random_weights=True, device=spec.get("device", "auto"))
    started = time.perf_counter()
    ws = Workspace.open(
        Path(spec["video"]), ModelHub(device=settings.device), settings, Path(spec["workdir"])
    )
    record["open_s"] = time.perf_counter() - started
    info = ws.info
    record.update(
        num_frames=info.num_frames,
        width=info.width,
        height=info.height,
        fps=info.fps,
        duration_s=info.duration,
        source=f"{info.source_width}x{info.source_height}",
        settings={k: v for k, v in ws.settings.to_dict().items() if v is not None},
        autocast=_autocast_name(ws.device, ws.settings.bf16),
    )
    runs = []
    for label in ("cold", "warm"):
        heat_log.clear()
        events = []
        started = time.perf_counter()
        for event in ws.find_candidates(spec["prompt"]):
            events.append(
                {
                    "t": time.perf_counter() - started,
                    "stage": event.stage,
                    "progress": round(event.progress, 3),
                    "candidates": len(event.candidates),
                    "new_frame": event.new_frame,
                }
            )
        runs.append({"run": label, "events": events, "frames": list(heat_log), **_find_stages(events)})
    record["runs"] = runs
    stride = ws.settings.stride or default_stride(info.fps)
    started = time.perf_counter()
    ranked_decoded = sum(1 for _ in ws.reader.iter_frames(0, info.num_frames, stride))
    record["decode_ranked_frames"] = {
        "frames": ranked_decoded,
        "stride": stride,
        "s": time.perf_counter() - started,
    }
    started = time.perf_counter()
    decoded = sum(1 for _ in ws.reader.iter_frames())
    record["decode_pass"] = {
        "frames": decoded,
        "s_per_frame": (time.perf_counter() - started) / max(decoded, 1),
    }
    ws.close()
    return _child_finish(sampler, record, ws.device)


def _find_stages(events: list[dict[str, Any]]) -> dict[str, Any]:
    """Stage durations from the event stream (see ``CandidateFinder.find`` for the order)."""
    rank = [e["t"] for e in events if e["stage"] == "rank"]
    first_candidates = next((e["t"] for e in events if e["candidates"]), None)
    masks, scoring = 0.0, 0.0
    mask_started = score_started = None
    for event in events:
        if event["stage"] == "masks":
            mask_started = event["t"]
        elif event["stage"] == "score" and event["new_frame"] is None and mask_started is not None:
            masks += event["t"] - mask_started
            score_started, mask_started = event["t"], None
        elif event["stage"] == "score" and event["new_frame"] is not None and score_started is not None:
            scoring += event["t"] - score_started
            score_started = None
    return {
        "load_s": rank[0] if rank else None,
        "rank_s": (rank[-1] - rank[0]) if rank else None,
        "masks_s": masks,
        "scoring_s": scoring,
        "mask_frames": sum(1 for e in events if e["new_frame"] is not None),
        "first_candidates_s": first_candidates,
        "total_s": events[-1]["t"] if events else None,
    }


class _Arm:
    """One side of a paired run: prepared up front, then advanced one frame per :meth:`step`."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.phases: dict[str, float] = {}
        self.steps: list[float] = []  # seconds of each frame, in order (the first is the prompt frame)
        self.finish_s = 0.0  # the call that ended the iterator (the overlay's close, for a track)
        self.done = False
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
        }


class _PlainArm(_Arm):
    def __init__(self, name: str, predictor: Any, frames_dir: Path, bf16: bool | None, device: Any) -> None:
        import numpy as np
        from PIL import Image

        from tracker.devices import autocast

        super().__init__(name)
        self.autocast = _autocast_name(device, bf16)
        self._context = lambda: autocast(device, enabled=bf16)
        with Image.open(frames_dir / "00000.jpg") as first:
            self.width, self.height = first.size
        with self._context():
            started = time.perf_counter()
            state = predictor.init_state(video_path=str(frames_dir))
            self.phases["init_state_s"] = time.perf_counter() - started
            started = time.perf_counter()
            box = np.array(_prompt_box(self.width, self.height), dtype=np.float32)
            predictor.add_new_points_or_box(state, frame_idx=0, obj_id=1, box=box)
            _sync(device)
            self.phases["prompt_s"] = time.perf_counter() - started
        frames = predictor.propagate_in_video(state)
        # what SAM 2's example notebook does with each frame's logits
        self._iterator = ((logits > 0.0).cpu().numpy() for _f, _ids, logits in frames)


class _OursArm(_Arm):
    def __init__(self, name: str, ws: Any, mode: str, overlay: Path) -> None:
        super().__init__(name)
        self.ws = ws
        self.autocast = _autocast_name(ws.device, ws.settings.bf16)
        started = time.perf_counter()
        obj = ws.add_object("benchmark")
        ws.set_box(obj.object_id, 0, _prompt_box(ws.info.width, ws.info.height))
        _sync(ws.device)
        self.phases["prompt_s"] = time.perf_counter() - started  # builds the session: init_state, frame 0
        self.drain_s = 0.0
        if mode == "track":
            self._iterator = ws.track(direction="both", overlay_path=overlay)
        else:
            self._iterator = ws.session.propagate(direction="forward")

    def after_step(self) -> None:
        # Frames the session prepares ahead must be charged to this arm, not to the next one.
        frames = getattr(self.ws.session, "_frames", None)
        pending = list(getattr(frames, "_pending", {}).values())
        started = time.perf_counter()
        for future in pending:
            try:
                future.result()
            except Exception:  # a failed prefetch is retried on demand by the session
                pass
        self.drain_s += time.perf_counter() - started

    def record(self) -> dict[str, Any]:
        return {**super().record(), "prefetch_wait_s": self.drain_s}


def _warm_up(ws: Any, frames: int) -> float:
    """Track ``frames`` frames once on a throwaway session and reader, so that the kernels every shape
    of the coming runs needs (the memory bank grows for the first 16 frames) already exist: in a
    shared process whichever arm met a shape first would pay for it. Returns the seconds spent."""
    from tracker.session import TrackingSession
    from tracker.types import FramePrompt
    from tracker.video import VideoReader

    started = time.perf_counter()
    reader = VideoReader(ws.info)
    try:
        with TrackingSession(ws._sam2(), reader, autocast=ws._autocast_ctx) as session:
            session.add_prompt(FramePrompt(1, 0, box=_prompt_box(ws.info.width, ws.info.height)))
            for _ in session.propagate(direction="forward", max_frames=frames):
                pass
    finally:
        reader.close()
    return time.perf_counter() - started


def job_paired(spec: dict[str, Any]) -> dict[str, Any]:
    """Several arms in one process, advanced one frame each in turn (the order rotates every frame).

    On a shared machine whose load changes by the minute, this is what makes a 5 % comparison
    meaningful: every arm sees the same load. Arms share model objects where the settings match
    (plain SAM 2 then runs the very predictor our session uses).
    """
    sampler, record = _child_start(spec)
    from tracker.models import ModelHub
    from tracker.settings import Settings
    from tracker.workspace import Workspace

    workdir = Path(spec["workdir"])
    hub = ModelHub(device=spec.get("device", "cpu"))
    arms: list[_Arm] = []
    workspaces = []
    record["arms"] = []
    children_cpu = cpu_seconds(resource.RUSAGE_CHILDREN)
    for number, arm in enumerate(spec["arms"]):
        started = time.perf_counter()
        if arm["kind"] == "plain":
            predictor = hub.sam2(
                arm["model"], image_size=arm["image_size"], device=spec.get("device"), random_weights=True
            )
            load_s = time.perf_counter() - started
            device = predictor.device
            made: _Arm = _PlainArm(arm["name"], predictor, Path(arm["frames_dir"]), arm.get("bf16"), device)
            made.phases["model_load_s"] = load_s
        else:
            settings = Settings(
                preset=arm.get("preset"),
                sam2_model=arm.get("model"),
                image_size=arm.get("image_size"),
                max_size=arm.get("max_size"),
                device=spec.get("device", "auto"),
                random_weights=True,
                bf16=arm.get("bf16"),
                end_time=spec.get("end_time"),
            )
            ws = Workspace.open(Path(spec["video"]), hub, settings, workdir / f"arm{number}")
            opened = time.perf_counter()
            if ws.info.num_frames != spec["num_frames"]:
                raise RuntimeError(
                    f"expected {spec['num_frames']} frames, the trimmed video has {ws.info.num_frames}"
                )
            ws._sam2()
            loaded = time.perf_counter()
            made = _OursArm(arm["name"], ws, arm["mode"], workdir / f"arm{number}" / "overlay.mp4")
            made.phases.update(open_s=opened - started, model_load_s=loaded - opened)
            made.width, made.height = ws.info.width, ws.info.height
            made.settings = {k: v for k, v in ws.settings.to_dict().items() if v is not None}
            workspaces.append(ws)
        arms.append(made)
    if spec.get("warmup") and workspaces:
        record["warmup_s"] = _warm_up(workspaces[0], int(spec["warmup"]))
    started = time.perf_counter()
    cpu_before = cpu_seconds()
    turn = 0
    while not all(arm.done for arm in arms):
        for arm in arms[turn % len(arms) :] + arms[: turn % len(arms)]:
            if not arm.done:
                arm.step()
        turn += 1
    loop_s = time.perf_counter() - started
    record["loop_s"] = loop_s
    record["cpu_share"] = (cpu_seconds() - cpu_before) / loop_s
    record["children_cpu_s"] = cpu_seconds(resource.RUSAGE_CHILDREN) - children_cpu
    for arm in arms:
        entry = arm.record()
        entry.update(
            width=arm.width, height=arm.height, autocast=arm.autocast, settings=getattr(arm, "settings", None)
        )
        record["arms"].append(entry)
    if spec.get("decode_pass") and workspaces:
        reader = workspaces[0].reader
        started = time.perf_counter()
        decoded = sum(1 for _ in reader.iter_frames())
        record["decode_pass"] = {
            "frames": decoded,
            "s_per_frame": (time.perf_counter() - started) / decoded,
            "size": f"{reader.info.width}x{reader.info.height}",
        }
    for ws in workspaces:
        ws.close()
    return _child_finish(sampler, record, None)


JOBS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "paired": job_paired,
    "ours": job_ours,
    "plain": job_plain,
    "find": job_find,
}


# =============================================================================== preparing inputs


def looped_video(clip: Path, length: int, folder: Path) -> tuple[Path, float | None]:
    """An mp4 of at least ``length`` frames: ``clip`` repeated by ffmpeg's concat demuxer, stream copy.

    Returns the file and the ``end_time`` that trims it to exactly ``length`` frames (None when
    the clip is exactly that long). Nothing is decoded or held in memory.
    """
    from tracker.video import probe

    info = probe(clip)
    repeats = max(1, math.ceil(length / info.num_frames))
    target = clip
    if repeats > 1:
        target = folder / f"{clip.stem}-x{repeats}.mp4"
        if not target.exists():
            listing = folder / f"{clip.stem}-x{repeats}.txt"
            listing.write_text("".join(f"file '{clip.resolve()}'\n" for _ in range(repeats)))
            _ffmpeg(["-f", "concat", "-safe", "0", "-i", str(listing), "-c", "copy", "-an", str(target)])
        info = probe(target)
    if info.num_frames < length:
        raise RuntimeError(f"{target.name} has {info.num_frames} frames, fewer than {length}")
    if info.num_frames == length:
        return target, None
    times = info.timestamps
    return target, (times[length - 1] + times[length]) / 2


def _ffmpeg(arguments: list[str]) -> None:
    import imageio_ffmpeg

    command = [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", *arguments]
    subprocess.run(command, check=True)


def write_jpegs(video: Path, folder: Path, num_frames: int, max_size: int | None) -> dict[str, Any]:
    """Frames ``0 … num_frames-1`` of ``video`` as ``00000.jpg …`` (SAM 2's layout), timed.

    Frames are decoded once per clip frame; a ``num_frames`` longer than the clip links
    ``i.jpg`` to the file of clip frame ``i mod n`` (plain SAM 2 reads them all the same).
    """
    from PIL import Image

    from tracker.video import VideoReader, probe

    folder.mkdir(parents=True, exist_ok=True)
    info = probe(video, max_size=max_size)
    clip_frames = min(num_frames, info.num_frames)
    started = time.perf_counter()
    reader = VideoReader(info)
    try:
        for frame_idx, frame in reader.iter_frames(0, clip_frames):
            Image.fromarray(frame).save(folder / f"{frame_idx:05d}.jpg", quality=95)
    finally:
        reader.close()
    seconds = time.perf_counter() - started
    for frame_idx in range(clip_frames, num_frames):
        link = folder / f"{frame_idx:05d}.jpg"
        if not link.exists():
            link.symlink_to(folder / f"{frame_idx % clip_frames:05d}.jpg")
    return {
        "frames": num_frames,
        "written": clip_frames,
        "size": f"{info.width}x{info.height}",
        "seconds": seconds,
        "s_per_frame": seconds / max(clip_frames, 1),
    }


# =============================================================================== orchestration


class Runner:
    """Runs each job in a fresh ``python benchmarks/run.py --job`` subprocess."""

    def __init__(
        self, workdir: Path, timeout: float, omp_wait_policy: str | None = None, verbose: bool = True
    ) -> None:
        self.workdir = workdir
        self.timeout = timeout
        self.omp_wait_policy = omp_wait_policy
        self.verbose = verbose
        self.count = 0

    def __call__(self, kind: str, label: str, **spec: Any) -> dict[str, Any]:
        self.count += 1
        number = self.count
        job_dir = self.workdir / f"job{number:02d}-{kind}"
        job_dir.mkdir(parents=True, exist_ok=True)
        spec = {"kind": kind, "label": label, "workdir": str(job_dir), **spec}
        spec_path, out_path, log_path = job_dir / "spec.json", job_dir / "result.json", job_dir / "log.txt"
        spec_path.write_text(json.dumps(spec, default=str, indent=1))
        if self.verbose:
            print(f"[{number:2d}] {label} … (load {load_average()})", file=sys.stderr, flush=True)
        started = time.perf_counter()
        command = [
            sys.executable,
            str(Path(__file__).resolve()),
            "--job",
            str(spec_path),
            "--job-out",
            str(out_path),
        ]
        env = dict(os.environ, PYTHONUNBUFFERED="1", TQDM_DISABLE="1")
        if self.omp_wait_policy:
            # read by libgomp when torch loads it, so it has to be in the job's environment
            env["OMP_WAIT_POLICY"] = self.omp_wait_policy
        with open(log_path, "w") as log:
            try:
                completed = subprocess.run(
                    command, stdout=log, stderr=subprocess.STDOUT, timeout=self.timeout, env=env, cwd=ROOT
                )
                returncode = completed.returncode
            except subprocess.TimeoutExpired:
                returncode = None
        wall = time.perf_counter() - started
        if returncode == 0 and out_path.exists():
            result = json.loads(out_path.read_text())
        else:
            tail = log_path.read_text()[-3000:] if log_path.exists() else ""
            reason = "timed out" if returncode is None else f"exit status {returncode}"
            result = {
                "spec": spec,
                "error": f"{reason}: {tail.strip().splitlines()[-1] if tail.strip() else ''}",
            }
            print(f"     FAILED ({reason}); log {log_path}:\n{tail}", file=sys.stderr, flush=True)
        result["label"] = label
        result["wall_s"] = wall
        if self.verbose and "error" not in result:
            print(f"     done in {wall:.0f} s", file=sys.stderr, flush=True)
        return result


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python benchmarks/run.py",
        description="Speed and memory of the tracker, side by side with plain SAM 2 (issue #4).",
    )
    parser.add_argument(
        "--video", type=Path, default=DEFAULT_VIDEO, help="clip to track (looped for long lengths)"
    )
    parser.add_argument(
        "--find-video", type=Path, default=DEFAULT_FIND_VIDEO, help="clip for the Find timing"
    )
    parser.add_argument("--find-prompt", default="dog")
    length = parser.add_mutually_exclusive_group()
    length.add_argument("--lengths", default=None, help="comma-separated frame counts for the memory curve")
    length.add_argument("--frames", type=int, default=None, help="one length for the memory runs")
    parser.add_argument("--model", default="tiny", help="SAM 2 model of the memory and equal-settings runs")
    parser.add_argument(
        "--image-size", type=int, default=None, help="processing size of the memory runs (256)"
    )
    parser.add_argument(
        "--equal-image-size", type=int, default=None, help="processing size of the equal runs (512)"
    )
    parser.add_argument(
        "--equal-frames", type=int, default=None, help="frames of the equal-settings runs (40)"
    )
    parser.add_argument("--defaults-frames", type=int, default=None, help="frames of the defaults runs (30)")
    parser.add_argument(
        "--warmup-frames",
        type=int,
        default=None,
        help="frames tracked once before the equal runs, to build kernels (20)",
    )
    parser.add_argument("--gpu-frames", type=int, default=200, help="frames of each GPU fps run")
    parser.add_argument("--repeats", type=int, default=None, help="interleaved repeats of the equal runs (2)")
    parser.add_argument("--max-size", type=int, default=None, help="working size (default: the preset's)")
    parser.add_argument(
        "--preset", default=None, help="preset of the memory/equal runs (default: the device's)"
    )
    parser.add_argument(
        "--bf16",
        choices=("auto", "on", "off"),
        default="auto",
        help="autocast of ours and plain in the equal runs (auto = our policy)",
    )
    parser.add_argument("--device", default="cpu", help="cpu or cuda (the GPU rows need cuda)")
    parser.add_argument(
        "--compile", action="store_true", help="torch.compile SAM 2 (GPU rows; as vos_optimized)"
    )
    parser.add_argument(
        "--omp-wait-policy",
        choices=("inherit", "passive", "active"),
        default="inherit",
        help="OMP_WAIT_POLICY of every job (inherit = this shell's). On a CPU shared with other busy "
        "processes, libgomp's default spin-waiting can make torch many times slower; passive avoids it",
    )
    parser.add_argument(
        "--sections",
        default="memory,equal,defaults,find,gpu",
        help="which parts to run: memory, equal, defaults, find, gpu",
    )
    parser.add_argument("--skip-plain", action="store_true", help="only our runs (no plain SAM 2)")
    parser.add_argument("--quick", action="store_true", help="a ~2 minute version with small sizes")
    parser.add_argument("--json", type=Path, default=None, help="write every measurement here")
    parser.add_argument("--write-readme", action="store_true", help=f"put the table into {README.name}")
    parser.add_argument(
        "--workdir", type=Path, default=None, help="keep inputs and logs here (default: a temp dir)"
    )
    parser.add_argument("--timeout", type=float, default=1800, help="seconds before a job is killed")
    parser.add_argument("--job", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--job-out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    quick = args.quick
    if args.frames is not None:
        args.lengths = [args.frames]
    elif args.lengths is not None:
        args.lengths = [int(v) for v in str(args.lengths).split(",") if v.strip()]
    else:
        # past the 128 frames VideoReader caches, or the cache filling up reads as growth
        args.lengths = [140, 280] if quick else [150, 300, 600]
    args.image_size = args.image_size or (128 if quick else 256)
    args.equal_image_size = args.equal_image_size or (256 if quick else 512)
    args.equal_frames = args.equal_frames or (12 if quick else 40)
    args.defaults_frames = args.defaults_frames or (6 if quick else 30)
    if quick and args.max_size is None:
        args.max_size = 480  # cheaper decode, drawing and encoding in the memory and equal runs
    args.repeats = args.repeats or (1 if quick else 2)
    args.warmup_frames = args.warmup_frames if args.warmup_frames is not None else (8 if quick else 20)
    args.sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    unknown = set(args.sections) - {"memory", "equal", "defaults", "find", "gpu"}
    if unknown:
        parser.error(f"unknown sections: {', '.join(sorted(unknown))}")
    args.bf16_value = {"auto": None, "on": True, "off": False}[args.bf16]
    return args


def run_all(args: argparse.Namespace, argv: Sequence[str]) -> dict[str, Any]:
    from tracker.devices import pick_device
    from tracker.video import probe

    device = pick_device(args.device)
    on_gpu = device.type == "cuda"
    for needed, sections in (
        (args.video, ("memory", "equal", "defaults", "gpu")),
        (args.find_video, ("find",)),
    ):
        if any(s in args.sections for s in sections) and not Path(needed).is_file():
            raise SystemExit(f"{needed} does not exist; pass another clip with --video / --find-video.")
    report: dict[str, Any] = {
        "command": "python benchmarks/run.py" + "".join(f" {shlex.quote(a)}" for a in argv),
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "machine": machine(),
        "load_average_start": load_average(),
        "args": {
            k: (str(v) if isinstance(v, Path) else v)
            for k, v in vars(args).items()
            if k not in ("job", "job_out")
        },
        "device": str(device),
        "environment": {
            "OMP_WAIT_POLICY": (
                os.environ.get("OMP_WAIT_POLICY")
                if args.omp_wait_policy == "inherit"
                else args.omp_wait_policy.upper()
            ),
            **{k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "GOMP_SPINCOUNT", "MKL_NUM_THREADS")},
        },
    }
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="tracker-bench-") as temp:
        workdir = Path(args.workdir) if args.workdir else Path(temp)
        workdir.mkdir(parents=True, exist_ok=True)
        policy = None if args.omp_wait_policy == "inherit" else args.omp_wait_policy.upper()
        run = Runner(workdir, args.timeout, omp_wait_policy=policy)
        common = {"device": args.device, "compile": bool(args.compile and on_gpu)}
        ours_common = {**common, "preset": args.preset, "max_size": args.max_size}
        video = Path(args.video)
        max_size = _max_size(args, device)
        working = probe(video, max_size=max_size)

        if "memory" in args.sections:
            memory: dict[str, Any] = {"image_size": args.image_size, "model": args.model, "runs": []}
            jpeg_base = workdir / "jpeg-working"
            for length in sorted(args.lengths):
                looped, end_time = looped_video(video, length, workdir)
                memory["runs"].append(
                    run(
                        "ours",
                        f"memory: ours, {length} frames at {args.image_size}",
                        mode="track",
                        video=str(looped),
                        end_time=end_time,
                        num_frames=length,
                        model=args.model,
                        image_size=args.image_size,
                        bf16=args.bf16_value,
                        **ours_common,
                    )
                )
                if not args.skip_plain:
                    prep = write_jpegs(video, jpeg_base / f"n{length}", length, max_size)
                    result = run(
                        "plain",
                        f"memory: plain SAM 2, {length} frames at {args.image_size}",
                        frames_dir=str(jpeg_base / f"n{length}"),
                        model=args.model,
                        image_size=args.image_size,
                        bf16=args.bf16_value,
                        **common,
                    )
                    result["prep"] = prep
                    memory["runs"].append(result)
            report["memory"] = memory

        if "equal" in args.sections:
            n = args.equal_frames
            clip, end_time = looped_video(video, n, workdir)
            equal: dict[str, Any] = {
                "image_size": args.equal_image_size,
                "model": args.model,
                "frames": n,
                "runs": [],
            }
            same = dict(model=args.model, image_size=args.equal_image_size, bf16=args.bf16_value)
            arms = []
            if not args.skip_plain:
                equal["prep"] = write_jpegs(video, workdir / "jpeg-equal", n, max_size)
                arms.append(dict(name="plain", kind="plain", frames_dir=str(workdir / "jpeg-equal"), **same))
            arms.append(
                dict(
                    name="ours propagate",
                    kind="ours",
                    mode="propagate",
                    preset=args.preset,
                    max_size=args.max_size,
                    **same,
                )
            )
            arms.append(
                dict(
                    name="ours track",
                    kind="ours",
                    mode="track",
                    preset=args.preset,
                    max_size=args.max_size,
                    **same,
                )
            )
            for repeat in range(args.repeats):
                equal["runs"].append(
                    run(
                        "paired",
                        f"equal #{repeat + 1}: {', '.join(a['name'] for a in arms)} "
                        f"({n} frames at {args.equal_image_size}, interleaved)",
                        video=str(clip),
                        end_time=end_time,
                        num_frames=n,
                        arms=arms,
                        decode_pass=repeat == 0,
                        warmup=args.warmup_frames,
                        **common,
                    )
                )
            report["equal"] = equal

        if "defaults" in args.sections:
            from tracker.devices import PRESETS, default_preset

            preset = default_preset(device)
            n = args.defaults_frames
            clip, end_time = looped_video(video, n, workdir)
            defaults: dict[str, Any] = {
                "frames": n,
                "clip_frames": working.num_frames,
                "preset": preset.name,
                "runs": [],
            }
            arms = [dict(name="ours default preset", kind="ours", mode="track")]
            if not args.skip_plain:
                defaults["prep"] = write_jpegs(
                    video, workdir / "jpeg-source", n, None
                )  # the README's ffmpeg step
                arms.append(
                    dict(
                        name="plain SAM 2 defaults",
                        kind="plain",
                        frames_dir=str(workdir / "jpeg-source"),
                        model=PRESETS[preset.name].sam2_model,
                        image_size=1024,
                        bf16=bool(on_gpu),
                    )
                )
            defaults["runs"].append(
                run(
                    "paired",
                    f"defaults: ours ({preset.name}) vs plain SAM 2 at 1024 ({n} frames, interleaved)",
                    video=str(clip),
                    end_time=end_time,
                    num_frames=n,
                    arms=arms,
                    **common,
                )
            )
            report["defaults"] = defaults

        if "find" in args.sections:
            report["find"] = run(
                "find",
                f"find: {args.find_prompt!r} on {Path(args.find_video).name}",
                video=str(args.find_video),
                prompt=args.find_prompt,
                device=args.device,
            )

        if "gpu" in args.sections:
            gpu: dict[str, Any] = {"compiled": bool(args.compile), "frames": args.gpu_frames, "runs": []}
            if on_gpu:
                n = args.gpu_frames
                clip, end_time = looped_video(video, n, workdir)
                prep = write_jpegs(video, workdir / "jpeg-gpu", n, max_size)
                for model in GPU_MODELS:
                    gpu["runs"].append(
                        run(
                            "ours",
                            f"gpu: ours {model} at 1024, {n} frames",
                            mode="propagate",
                            video=str(clip),
                            end_time=end_time,
                            num_frames=n,
                            model=model,
                            image_size=1024,
                            bf16=True,
                            **ours_common,
                        )
                    )
                    if not args.skip_plain:
                        result = run(
                            "plain",
                            f"gpu: plain SAM 2 {model} at 1024, {n} frames",
                            frames_dir=str(workdir / "jpeg-gpu"),
                            model=model,
                            image_size=1024,
                            bf16=True,
                            **common,
                        )
                        result["prep"] = prep
                        gpu["runs"].append(result)
            else:
                gpu["not_run"] = NO_GPU
            report["gpu"] = gpu
    report["load_average_end"] = load_average()
    report["wall_s"] = time.perf_counter() - started
    report["summary"], report["targets"] = summarise(report)
    return report


def _max_size(args: argparse.Namespace, device: Any) -> int:
    from tracker.devices import PRESETS, default_preset

    if args.max_size:
        return args.max_size
    return (PRESETS[args.preset] if args.preset else default_preset(device)).max_size


# =============================================================================== summary


def _runs(section: dict[str, Any] | None, kind: str, mode: str | None = None) -> list[dict[str, Any]]:
    if not section:
        return []
    return [
        r
        for r in section.get("runs", [])
        if "error" not in r and r["spec"]["kind"] == kind and (mode is None or r["spec"].get("mode") == mode)
    ]


def _min(values: Iterable[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return min(present) if present else None


def _inference_per_frame(run: dict[str, Any]) -> float | None:
    timer = run.get("timers", {}).get("inference")
    return timer["seconds"] / timer["calls"] if timer and timer["calls"] else None


def _paired_summary(section: dict[str, Any]) -> dict[str, Any]:
    """Pooled over the interleaved repeats: s/frame of each arm and the ratios the targets use."""
    runs = [r for r in section.get("runs", []) if "error" not in r]
    if not runs:
        return {}
    pooled: dict[str, dict[str, Any]] = defaultdict(
        lambda: {"propagated": 0.0, "frames": 0, "total": 0.0, "steps": []}
    )
    for run in runs:
        for arm in run["arms"]:
            p = pooled[arm["name"]]
            p["propagated"] += arm["propagated_s"]
            p["frames"] += max(arm["frames_done"] - 1, 0)
            p["total"] += arm["total_s"]
            p["steps"].append(arm["steps"][1:])
    out: dict[str, Any] = {"repeats": len(runs), "cpu_share": [round(r["cpu_share"], 2) for r in runs]}
    names = {"plain": "plain", "ours propagate": "ours", "ours track": "track"}
    for name, key in names.items():
        if name in pooled and pooled[name]["frames"]:
            p = pooled[name]
            out[f"{key}_s_per_frame"] = p["propagated"] / p["frames"]
            out[f"{key}_median_s_per_frame"] = statistics.median(v for steps in p["steps"] for v in steps)
    out["propagate_total_s"] = pooled["ours propagate"]["total"] if "ours propagate" in pooled else None
    out["track_total_s"] = pooled["ours track"]["total"] if "ours track" in pooled else None
    out["plain_total_s"] = pooled["plain"]["total"] if "plain" in pooled else None
    if "plain" in pooled and "ours propagate" in pooled:
        out["ratio_propagation"] = out["ours_s_per_frame"] / out["plain_s_per_frame"]
        ratios = [
            o / p
            for ours_steps, plain_steps in zip(
                pooled["ours propagate"]["steps"], pooled["plain"]["steps"], strict=True
            )
            for o, p in zip(ours_steps, plain_steps, strict=False)
            if p > 0
        ]
        out["ratio_median_per_frame"] = statistics.median(ratios) if ratios else None
    if out["track_total_s"] and out["propagate_total_s"]:
        out["e2e_over_propagation"] = out["track_total_s"] / out["propagate_total_s"]
    if out["track_total_s"] and out["plain_total_s"]:
        out["e2e_over_plain_propagation"] = out["track_total_s"] / out["plain_total_s"]
    return out


def summarise(report: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Derived numbers and one PASS/FAIL/NOT RUN row per target."""
    summary: dict[str, Any] = {}
    targets: list[dict[str, Any]] = []

    def target(name: str, passed: bool | None, value: str, goal: str) -> None:
        status = "NOT RUN" if passed is None else "PASS" if passed else "FAIL"
        targets.append({"target": name, "status": status, "value": value, "goal": goal})

    memory = report.get("memory")
    if memory is not None:
        rows = {}
        for who in ("ours", "plain"):
            runs = _runs(memory, who)
            points = [(r["num_frames"], r["peak_rss_mb"] * MB) for r in runs]
            rows[who] = {
                "points": [
                    (r["num_frames"], round(r["peak_rss_mb"], 1), round(r["ru_maxrss_mb"], 1)) for r in runs
                ],
                "growth_mb_per_100": growth_per_100(points),
                "growth_ru_maxrss_mb_per_100": growth_per_100(
                    (r["num_frames"], r["ru_maxrss_mb"] * MB) for r in runs
                ),
                "within_run_mb_per_100": [r.get("within_run_growth_mb_per_100") for r in runs],
            }
        summary["memory"] = rows
        growth = rows["ours"]["growth_mb_per_100"]
        plain_growth = rows["plain"]["growth_mb_per_100"]
        target(
            f"memory growth per 100 frames (image size {memory['image_size']})",
            None if growth is None else growth < MEMORY_GROWTH_LIMIT_MB,
            "n/a (needs 2 lengths)"
            if growth is None
            else f"ours {growth:+.1f} MB"
            + (f", plain {plain_growth:+.1f} MB" if plain_growth is not None else ""),
            f"< {MEMORY_GROWTH_LIMIT_MB:.0f} MB",
        )

    equal = report.get("equal")
    if equal is not None:
        eq = summary["equal"] = _paired_summary(equal)
        ratio = eq.get("ratio_propagation")
        target(
            f"propagation s/frame vs plain, equal settings ({equal['model']} {equal['image_size']})",
            None if ratio is None else ratio <= 1 + PROPAGATION_TOLERANCE,
            "n/a"
            if ratio is None
            else f"ours {eq['ours_s_per_frame']:.3f} vs plain {eq['plain_s_per_frame']:.3f} "
            f"s/frame ({ratio:.3f}×; median of per-frame ratios {eq['ratio_median_per_frame']:.3f}×)",
            f"≤ {1 + PROPAGATION_TOLERANCE:.2f}×",
        )
        e2e = eq.get("e2e_over_propagation")
        target(
            "end to end (track + overlay) vs propagation alone",
            None if e2e is None else e2e <= E2E_OVER_PROPAGATION,
            "n/a"
            if e2e is None
            else f"{eq['track_total_s']:.1f} s vs {eq['propagate_total_s']:.1f} s ({e2e:.3f}×)"
            + (
                f"; vs plain's propagation {eq['e2e_over_plain_propagation']:.3f}×"
                if eq.get("e2e_over_plain_propagation")
                else ""
            ),
            f"≤ {E2E_OVER_PROPAGATION:.1f}×",
        )

    defaults = report.get("defaults")
    if defaults is not None:
        run = next(iter(r for r in defaults["runs"] if "error" not in r), None)
        arms = {a["name"]: a for a in run["arms"]} if run else {}
        ours, plain = arms.get("ours default preset"), arms.get("plain SAM 2 defaults")
        row: dict[str, Any] = {}
        if ours:
            row["ours_e2e_s"] = ours["phases"]["open_s"] + ours["phases"]["prompt_s"] + ours["total_s"]
            row["ours_per_frame_s"] = ours["s_per_frame_mean"]
        if plain:
            prep = defaults["prep"]
            row["plain_prep_s"] = prep["seconds"]
            row["plain_e2e_s"] = (
                prep["seconds"]
                + plain["phases"]["init_state_s"]
                + plain["phases"]["prompt_s"]
                + plain["total_s"]
            )
            # per extra frame: extract + load it (both scale with frames) and propagate it
            load_share = plain["phases"]["init_state_s"] / max(plain["frames_done"], 1)
            row["plain_per_frame_s"] = plain["s_per_frame_mean"] + prep["s_per_frame"] + load_share
        if ours and plain:
            n, full = defaults["frames"], defaults["clip_frames"]
            row["speedup_measured"] = row["plain_e2e_s"] / row["ours_e2e_s"]
            row["ours_e2e_full_s"] = row["ours_e2e_s"] + (full - n) * row["ours_per_frame_s"]
            row["plain_e2e_full_s"] = row["plain_e2e_s"] + (full - n) * row["plain_per_frame_s"]
            row["speedup_extrapolated"] = row["plain_e2e_full_s"] / row["ours_e2e_full_s"]
            row["speedup_per_frame"] = plain["s_per_frame_mean"] / ours["s_per_frame_mean"]
        summary["defaults"] = row
        speedup = row.get("speedup_extrapolated")
        target(
            f"CPU default preset ({defaults['preset']}) vs plain SAM 2 at its defaults, end to end",
            None if speedup is None else min(speedup, row["speedup_measured"]) >= DEFAULTS_SPEEDUP,
            "n/a"
            if speedup is None
            else f"{row['speedup_measured']:.1f}× measured on {defaults['frames']} frames; "
            f"{speedup:.1f}× extrapolated to the whole {defaults['clip_frames']}-frame clip",
            f"≥ {DEFAULTS_SPEEDUP:.0f}×",
        )

    find = report.get("find")
    if find is not None and "error" not in find:
        cold, warm = find["runs"][0], find["runs"][1]
        summary["find"] = {
            "cold": {k: v for k, v in cold.items() if k.endswith("_s")},
            "warm": {k: v for k, v in warm.items() if k.endswith("_s")},
        }
        first, total = cold["first_candidates_s"], cold["total_s"]
        clip = f"{find['duration_s']:.1f} s {find['source']} clip"
        target(
            f"first candidates after pressing Find ({clip}, cold)",
            None if first is None else first <= FIRST_CANDIDATES_S,
            "none" if first is None else f"{first:.1f} s (warm {warm['first_candidates_s']:.1f} s)",
            f"≤ {FIRST_CANDIDATES_S:.0f} s",
        )
        target(
            f"all candidates ({clip}, cold)",
            None if total is None else total <= ALL_CANDIDATES_S,
            "n/a" if total is None else f"{total:.1f} s (warm {warm['total_s']:.1f} s)",
            f"≤ {ALL_CANDIDATES_S:.0f} s",
        )
    elif find is not None:
        target(
            "Find timing", False, find["error"], f"≤ {FIRST_CANDIDATES_S:.0f} s / {ALL_CANDIDATES_S:.0f} s"
        )

    gpu = report.get("gpu")
    if gpu is not None:
        rows = []
        for model in GPU_MODELS:
            published = PUBLISHED_A100_FPS[model][1 if gpu["compiled"] else 0]
            ours = next((r for r in _runs(gpu, "ours") if r["spec"]["model"] == model), None)
            plain = next((r for r in _runs(gpu, "plain") if r["spec"]["model"] == model), None)
            rows.append(
                {
                    "model": model,
                    "published_a100_fps": published,
                    "ours_fps": 1 / ours["per_frame"]["median"]
                    if ours and ours["per_frame"]["median"]
                    else None,
                    "plain_fps": 1 / plain["per_frame"]["median"]
                    if plain and plain["per_frame"]["median"]
                    else None,
                    "ours_gpu_peak_mb": ours.get("gpu_max_allocated_mb") if ours else None,
                    "plain_gpu_peak_mb": plain.get("gpu_max_allocated_mb") if plain else None,
                }
            )
        summary["gpu"] = rows
        if gpu.get("not_run"):
            target(
                "GPU fps at 1024 (bf16" + (", compiled" if gpu["compiled"] else "") + ")",
                None,
                NO_GPU,
                "next to SAM 2's A100 figures",
            )
    return summary, targets


# =============================================================================== the table


def _f(value: float | None, fmt: str = ".2f", unit: str = "") -> str:
    return "—" if value is None else f"{value:{fmt}}{unit}"


def _environment_sentence(report: dict[str, Any]) -> str:
    values = {k: v for k, v in report.get("environment", {}).items() if v is not None}
    if not values:
        return "No OMP_* / MKL_* variables set (libgomp spin-waits by default)."
    return "Job environment: " + ", ".join(f"{k}={v}" for k, v in values.items()) + "."


def render_table(report: dict[str, Any]) -> str:
    """The Markdown report: machine, stages, memory, comparisons, targets."""
    m = report["machine"]
    quick = (
        [
            "_`--quick`: short runs at small sizes; the verdicts are indicative only. Use the full run for figures._",
            "",
        ]
        if report["args"].get("quick")
        else []
    )
    lines = quick + [
        f"Machine: {m.get('cpu')}, {m.get('cores')} cores, {m.get('ram_gb')} GB RAM; torch {m.get('torch')} "
        f"({m.get('torch_threads')} threads), sam2 {m.get('sam2')}, CPU autocast {m.get('cpu_autocast')}; "
        f"GPU: {m.get('cuda') or 'none'}.  ",
        f"Date: {report['date']}. Load average (1/5/15 min) at start {report['load_average_start']}, "
        f"at end {report['load_average_end']}. Wall time {report['wall_s'] / 60:.1f} min.  ",
        f"Command: `{report['command']}`. Models use random weights (speed and memory do not depend on them). "
        + _environment_sentence(report),
        "",
    ]
    s = report["summary"]

    lines += ["**Targets**", "", "| target | status | measured | goal |", "|---|---|---|---|"]
    lines += [
        f"| {t['target']} | **{t['status']}** | {t['value']} | {t['goal']} |" for t in report["targets"]
    ]
    lines.append("")

    lines += _stage_rows(report)

    memory = report.get("memory")
    if memory is not None:
        lines += [
            f"**Peak memory vs video length** ({memory['model']}, image size {memory['image_size']}, "
            "RSS sampled every 50 ms; each length in a fresh process)",
            "",
            "| frames | ours peak RSS | ours ru_maxrss | ours s/frame (track) | plain peak RSS | plain ru_maxrss | plain s/frame |",
            "|---|---|---|---|---|---|---|",
        ]
        by_length: dict[int, dict[str, dict[str, Any]]] = defaultdict(dict)
        for r in _runs(memory, "ours") + _runs(memory, "plain"):
            by_length[r["num_frames"]][r["spec"]["kind"]] = r
        for length in sorted(by_length):
            o, p = by_length[length].get("ours"), by_length[length].get("plain")
            lines.append(
                f"| {length} | {_f(o and o['peak_rss_mb'], '.0f', ' MB')} | {_f(o and o['ru_maxrss_mb'], '.0f', ' MB')} "
                f"| {_f(o and o['per_frame']['mean'], '.3f')} | {_f(p and p['peak_rss_mb'], '.0f', ' MB')} "
                f"| {_f(p and p['ru_maxrss_mb'], '.0f', ' MB')} | {_f(p and p['per_frame']['mean'], '.3f')} |"
            )
        rows = s["memory"]
        ours_within = [v for v in rows["ours"]["within_run_mb_per_100"] if v is not None]
        plain_within = [v for v in rows["plain"]["within_run_mb_per_100"] if v is not None]
        lines += [
            f"| **growth / 100 frames** (fit) | **{_f(rows['ours']['growth_mb_per_100'], '+.1f', ' MB')}** "
            f"| {_f(rows['ours']['growth_ru_maxrss_mb_per_100'], '+.1f', ' MB')} | "
            f"| **{_f(rows['plain']['growth_mb_per_100'], '+.1f', ' MB')}** "
            f"| {_f(rows['plain']['growth_ru_maxrss_mb_per_100'], '+.1f', ' MB')} | |",
            "",
            "Within each run (RSS after each frame, second half of the run, MB per 100 frames): ours "
            + (", ".join(f"{v:+.1f}" for v in ours_within) or "—")
            + "; plain "
            + (", ".join(f"{v:+.1f}" for v in plain_within) or "—")
            + ".",
            "",
        ]

    equal = report.get("equal")
    if equal is not None and s.get("equal"):
        eq = s["equal"]
        arms = {a["name"]: a for r in equal["runs"] if "error" not in r for a in r["arms"]}
        lines += [
            f"**Equal settings** ({equal['model']}, image size {equal['image_size']}, {equal['frames']} frames; same "
            f"model object, frames, box prompt and autocast ({next(iter(arms.values()))['autocast']}); the arms run "
            f"in one process, one frame each in turn, so they share the machine's load; {eq['repeats']} run(s), "
            f"cores busy on average {eq['cpu_share']} of {report['machine'].get('cores')})",
            "",
            "| | s/frame (mean) | s/frame (median) | total incl. prompt frame and close | vs plain |",
            "|---|---|---|---|---|",
        ]
        rows = (
            ("plain", "plain SAM 2 `propagate_in_video` (frames preloaded by `init_state`)", "plain_total_s"),
            (
                "ours",
                "ours `TrackingSession.propagate` (frames decoded and resized lazily, prefetched)",
                "propagate_total_s",
            ),
            ("track", "ours `Workspace.track` (+ draw + H.264 overlay mp4)", "track_total_s"),
        )
        for key, label, total in rows:
            if f"{key}_s_per_frame" not in eq:
                continue
            versus = (
                (eq[f"{key}_s_per_frame"] / eq["plain_s_per_frame"]) if eq.get("plain_s_per_frame") else None
            )
            lines.append(
                f"| {label} | {eq[f'{key}_s_per_frame']:.3f} | {eq[f'{key}_median_s_per_frame']:.3f} "
                f"| {_f(eq[total], '.1f', ' s')} | {_f(versus, '.3f', '×')} |"
            )
        lines.append("")

    defaults = report.get("defaults")
    if defaults is not None and s.get("defaults"):
        d = s["defaults"]
        run = next(iter(r for r in defaults["runs"] if "error" not in r), None)
        arms = {a["name"]: a for a in run["arms"]} if run else {}
        ours, plain = arms.get("ours default preset"), arms.get("plain SAM 2 defaults")
        lines += [
            f"**CPU default preset vs plain SAM 2 at its defaults**, end to end from the mp4 on "
            f"{defaults['frames']} frames (interleaved in one process; model build excluded on both sides)",
            "",
            "| | settings | extract frames | open / init_state + prompt | first result shown | tracking | s/frame "
            "| end to end |",
            "|---|---|---|---|---|---|---|---|",
        ]
        if ours:
            st, ph = ours["settings"] or {}, ours["phases"]
            lines.append(
                f"| ours | {st.get('preset')}: {st.get('sam2_model')} {st.get('image_size')}, {ours['width']}×"
                f"{ours['height']}, {ours['autocast']}, + overlay mp4 | (none: decoded lazily) "
                f"| {ph['open_s'] + ph['prompt_s']:.1f} s | {ph['open_s'] + ph['prompt_s'] + ours['first_frame_s']:.1f} s "
                f"| {ours['total_s']:.1f} s "
                f"| {_f(ours['s_per_frame_mean'], '.3f')} | {d['ours_e2e_s']:.1f} s |"
            )
        if plain:
            ph = plain["phases"]
            lines.append(
                f"| plain SAM 2 | {run['spec']['arms'][1]['model']} 1024, {plain['width']}×{plain['height']} JPEGs, "
                f"{plain['autocast']} | {defaults['prep']['seconds']:.1f} s (decode + JPEG) "
                f"| {ph['init_state_s'] + ph['prompt_s']:.1f} s "
                f"| {defaults['prep']['seconds'] + ph['init_state_s'] + ph['prompt_s'] + plain['first_frame_s']:.1f} s "
                f"| {plain['total_s']:.1f} s "
                f"| {_f(plain['s_per_frame_mean'], '.3f')} | {d['plain_e2e_s']:.1f} s |"
            )
        if "speedup_measured" in d:
            lines.append(
                f"| **speed-up** | | | | | | {d['speedup_per_frame']:.1f}× | **{d['speedup_measured']:.1f}×** measured; "
                f"**{d['speedup_extrapolated']:.1f}×** extrapolated to the {defaults['clip_frames']}-frame clip "
                f"(ours {d['ours_e2e_full_s']:.0f} s vs plain {d['plain_e2e_full_s']:.0f} s: measured + per-frame "
                "rate × remaining frames) |"
            )
        lines.append("")

    gpu = report.get("gpu")
    if gpu is not None:
        compiled = "compiled" if gpu["compiled"] else "not compiled"
        lines += [
            f"**GPU, image size 1024, bfloat16, {compiled}** (frames per second of propagation)",
            "",
            "| model | SAM 2 published (A100, uncompiled / compiled) | plain SAM 2 here | ours here | GPU peak ours / plain |",
            "|---|---|---|---|---|",
        ]
        for row in s.get("gpu", []):
            published = PUBLISHED_A100_FPS[row["model"]]
            if gpu.get("not_run"):
                lines.append(
                    f"| {row['model']} | {published[0]:.0f} / {published[1]:.0f} | {NO_GPU} | {NO_GPU} | — |"
                )
            else:
                lines.append(
                    f"| {row['model']} | {published[0]:.0f} / {published[1]:.0f} | {_f(row['plain_fps'], '.1f')} "
                    f"| {_f(row['ours_fps'], '.1f')} | {_f(row['ours_gpu_peak_mb'], '.0f')} / "
                    f"{_f(row['plain_gpu_peak_mb'], '.0f')} MB |"
                )
        lines.append("")
    failures = [
        r
        for key in ("memory", "equal", "defaults", "gpu")
        for r in (report.get(key) or {}).get("runs", [])
        if "error" in r
    ]
    if report.get("find") and "error" in report["find"]:
        failures.append(report["find"])
    if failures:
        lines += ["**Failed runs**", ""] + [f"- {r['label']}: {r['error']}" for r in failures] + [""]
    return "\n".join(lines)


def _stage_rows(report: dict[str, Any]) -> list[str]:
    """Per-stage table from the find run, the equal-settings runs and the memory runs."""
    rows: list[tuple[str, str, str]] = []
    find = report.get("find")
    equal = report.get("equal")
    s = report["summary"]
    paired = next(iter(r for r in (equal or {}).get("runs", []) if "error" not in r), None)
    decode = (paired or {}).get("decode_pass")
    if decode:
        rows.append(
            (
                "decode (working size)",
                f"{decode['s_per_frame'] * 1000:.1f} ms/frame",
                f"{decode['size']}, one sequential pass of {decode['frames']} frames",
            )
        )
    if find and "error" not in find:
        cold, warm = find["runs"]
        d = find["decode_ranked_frames"]
        dog = f"{Path(find['spec']['video']).name}, {find['width']}×{find['height']}"
        rows.append(
            (
                "models load (first Find)",
                f"{cold['load_s']:.1f} s",
                f"CLIP + SAM 2 built (random weights) inside the call; warm {warm['load_s']:.2f} s",
            )
        )
        rows.append(
            (
                "frame ranking (CLIP)",
                f"{warm['rank_s']:.1f} s",
                f"{d['frames']} frames (every {d['stride']}th) of {dog}; decoding them alone {d['s']:.1f} s",
            )
        )
        per = max(warm["mask_frames"], 1)
        heat = [f["heat_map_s"] for f in warm["frames"]]
        points = [f["sam2_points_s"] for f in warm["frames"]]
        detail = (
            f"CLIP heat map {statistics.mean(heat):.2f} s + SAM 2 point prompts {statistics.mean(points):.2f} s"
            if heat and points
            else ""
        )
        rows.append(
            (
                "automatic masks (candidate proposal)",
                f"{warm['masks_s'] / per:.2f} s/frame",
                f"{warm['mask_frames']} frames; {detail}",
            )
        )
        rows.append(
            (
                "crop scoring (CLIP)",
                f"{warm['scoring_s'] / per:.2f} s/frame",
                f"{sum(f['scored'] for f in warm['frames'])} crops in all",
            )
        )
        rows.append(
            (
                "time to first candidates",
                f"{cold['first_candidates_s']:.1f} s",
                f"first Find (models built in the call); warm {warm['first_candidates_s']:.1f} s",
            )
        )
        rows.append(("Find total", f"{cold['total_s']:.1f} s", f"first Find; warm {warm['total_s']:.1f} s"))
    if equal and s.get("equal", {}).get("ours_s_per_frame"):
        eq = s["equal"]
        rows.append(
            (
                "propagation",
                f"{eq['ours_s_per_frame']:.3f} s/frame",
                f"{equal['model']} {equal['image_size']}, mean (median {eq['ours_median_s_per_frame']:.3f})",
            )
        )
    memory_track = max(
        (r for r in _runs(report.get("memory"), "ours")), key=lambda r: r["num_frames"], default=None
    )
    if memory_track:
        timers, n = memory_track["timers"], max(memory_track["frames_done"], 1)
        draw = timers.get("draw overlay", {}).get("seconds", 0.0)
        write = timers.get("overlay writer.write", {}).get("seconds", 0.0)
        decode_bg = sum(v["seconds"] for k, v in timers.items() if k.endswith("[sam2-frames]"))
        rows.append(
            (
                "render + encode",
                f"{(draw + write) / n * 1000:.1f} ms/frame on the tracking thread",
                f"draw {draw / n * 1000:.1f} ms + hand-off to the writer thread {write / n * 1000:.1f} ms; "
                f"ffmpeg (own process, overlapped) {memory_track['children_cpu_s'] / n * 1000:.1f} ms CPU; "
                f"decode + resize on the prefetch thread (overlapped) {decode_bg / n * 1000:.1f} ms "
                f"({memory_track['num_frames']}-frame run at {memory_track['spec']['image_size']})",
            )
        )
    if paired:
        track = next((a for a in paired["arms"] if a["name"] == "ours track"), None)
        if track:
            rows.append(
                (
                    "time to first streamed result frame",
                    f"{track['first_frame_s']:.2f} s",
                    f"after pressing Track (the prompt frame; the session was built by the prompt, "
                    f"{track['phases']['prompt_s']:.1f} s); first propagated frame "
                    f"{track['first_frame_s'] + (track['steps'][1] if len(track['steps']) > 1 else 0):.2f} s",
                )
            )
            rows.append(
                (
                    "total (track + overlay)",
                    f"{track['total_s']:.1f} s",
                    f"{track['frames_done']} frames at {track['width']}×{track['height']} (interleaved run)",
                )
            )
    if not rows:
        return []
    lines = ["**Stages** (ours)", "", "| stage | time | notes |", "|---|---|---|"]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in rows]
    return lines + [""]


def write_readme(table: str, path: Path = README) -> None:
    text = path.read_text() if path.exists() else f"# Benchmarks\n\n{README_START}\n{README_END}\n"
    if README_START not in text or README_END not in text:
        text = text.rstrip() + f"\n\n## Latest results\n\n{README_START}\n{README_END}\n"
    head, rest = text.split(README_START, 1)
    _, tail = rest.split(README_END, 1)
    path.write_text(f"{head}{README_START}\n{table}\n{README_END}{tail}")


# =============================================================================== entry point


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    if args.job:
        spec = json.loads(Path(args.job).read_text())
        result = JOBS[spec["kind"]](spec)
        Path(args.job_out).write_text(json.dumps(result, default=str, indent=1))
        return 0
    report = run_all(args, argv)
    table = render_table(report)
    print(table)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, default=str, indent=1))
        print(f"\nwrote {args.json}", file=sys.stderr)
    if args.write_readme:
        write_readme(table)
        print(f"updated {README}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
