"""The GPU benchmark's jobs (``benchmarks/gpu.py``), each run in a fresh subprocess like the others.

* ``gpu_speed`` — one model, compiled or not: a warm-up run (kernels, compiled graphs), then
  plain SAM 2's ``propagate_in_video``, ours ``TrackingSession.propagate`` and ours
  ``Workspace.track`` (decode + SAM 2 + overlay + H.264) one after another on the same predictor,
  each with its own GPU peak.
* ``gpu_memory`` — ours ``propagate`` over a long clip until it ends or ``time_cap_s`` passes;
  the peak GPU memory (``torch.cuda.max_memory_allocated``; peak RSS on the CPU) at checkpoints.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from benchmarks.arms import interleave, prompt_box, settings_for, warm_up, workspace_predictor
from benchmarks.jobs import _build_arm
from benchmarks.measure import MB, JobMeter, current_rss, reset_gpu_peak, sync


def gpu_peak_mb(device: Any) -> float | None:
    if getattr(device, "type", None) != "cuda":
        return None
    import torch

    return torch.cuda.max_memory_allocated(device) / MB


def job_gpu_speed(spec: dict[str, Any]) -> dict[str, Any]:
    meter = JobMeter(spec)
    record = meter.record
    from tracker.models import ModelHub

    settings = settings_for(spec)
    hub = ModelHub(device=settings.device)
    started = time.perf_counter()
    predictor = hub.sam2(
        settings.sam2_model,
        image_size=settings.image_size,
        device=settings.device,
        random_weights=True,
        compile=settings.compile,
    )
    device = predictor.device
    record["model_load_s"] = time.perf_counter() - started
    record["compiled"] = getattr(predictor, "tracker_compiled", None)
    started = time.perf_counter()
    if spec.get("warmup"):
        record["warmup_s"] = warm_up(
            Path(spec["video"]), hub, settings, Path(spec["workdir"]) / "warmup", int(spec["warmup"])
        )
    record["arms"] = []
    for number, arm in enumerate(spec["arms"]):
        reset_gpu_peak(device)
        made = _build_arm(spec, arm, number, hub)
        interleave([made])
        sync(device)
        result = made.record()
        mean = result["s_per_frame_mean"]
        result.update(fps=1 / mean if mean else None, gpu_peak_mb=gpu_peak_mb(device))
        ws = getattr(made, "ws", None)
        if ws is not None:
            ws.close()
        record["arms"].append(result)
    return meter.finish(device)


def job_gpu_memory(spec: dict[str, Any]) -> dict[str, Any]:
    meter = JobMeter(spec)
    record = meter.record
    from tracker.models import ModelHub
    from tracker.workspace import Workspace

    settings = settings_for(spec)
    hub = ModelHub(device=settings.device)
    ws = Workspace.open(Path(spec["video"]), hub, settings, Path(spec["workdir"]))
    device = workspace_predictor(hub, ws).device
    info = ws.info
    record.update(num_frames=info.num_frames, width=info.width, height=info.height, fps_video=info.fps)
    reset_gpu_peak(device)
    obj = ws.add_object("benchmark")
    ws.set_box(obj.object_id, 0, prompt_box(info.width, info.height))
    every = max(1, int(spec.get("checkpoint_every", 300)))
    deadline = time.perf_counter() + float(spec.get("time_cap_s", 60))
    checkpoints: list[dict[str, Any]] = []
    frames = ws.session.propagate(direction="forward")
    done = 0
    started = time.perf_counter()
    try:
        for done, _ in enumerate(frames, start=1):
            if done % every == 0:
                sync(device)
                checkpoints.append(
                    {"frame": done, "gpu_peak_mb": gpu_peak_mb(device), "rss_mb": current_rss() / MB}
                )
            if time.perf_counter() > deadline:
                break
    finally:
        frames.close()
    sync(device)
    elapsed = time.perf_counter() - started
    record.update(
        frames_done=done,
        complete=done >= info.num_frames,
        track_s=elapsed,
        fps=done / elapsed if elapsed else None,
        gpu_peak_mb=gpu_peak_mb(device),
        checkpoints=checkpoints,
    )
    ws.close()
    return meter.finish(device)


GPU_JOBS = {"gpu_speed": job_gpu_speed, "gpu_memory": job_gpu_memory}
