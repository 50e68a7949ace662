"""The kinds of job, each run in a fresh subprocess: ``JOBS[spec["kind"]](spec) -> record``.

A *spec* is a JSON-able dict the parent writes (see ``benchmarks/plan.py``); the *record* the job
returns is what the report reads. Kinds:

* ``ours`` — ``Workspace.open`` → box on frame 0 → ``track`` (mode "track", with the overlay mp4;
  with ``discover_every``, discovery looking every that many frames and adding nothing:
  ``arms.looking``) or ``session.propagate`` (mode "propagate"); RSS per frame, the library's
  stage times.
* ``plain`` — plain SAM 2 on a JPEG folder, as its examples drive it.
* ``find`` — ``Workspace.find_candidates`` twice: cold (models built in the call), then warm.
* ``paired`` — several arms (ours / plain) in one process, one frame each in turn.
* ``detect`` — discovery's detector alone on check frames, with and without a solid tracked mask.

Stage times come from :mod:`tracker.timing`; a job fails when a stage the table reads was not
recorded (see ``report.TRACK_STAGES`` / ``report.FIND_STAGES``).
"""

from __future__ import annotations

import resource
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.arms import (
    Arm,
    OursArm,
    PlainArm,
    autocast_name,
    compile_predictor,
    discovery_record,
    interleave,
    looking,
    no_new_models,
    prompt_box,
    settings_for,
    warm_up,
    workspace_predictor,
)
from benchmarks.measure import (
    MB,
    JobMeter,
    cpu_seconds,
    current_rss,
    per_frame_stats,
    require_stages,
    reset_gpu_peak,
    rss_trace,
    stages,
    sync,
)
from benchmarks.report import FIND_STAGES, TRACK_STAGES


def _check_frames(ws: Any, spec: dict[str, Any]) -> None:
    if spec.get("num_frames") and ws.info.num_frames != spec["num_frames"]:
        raise RuntimeError(
            f"expected {spec['num_frames']} frames, the trimmed video has {ws.info.num_frames}"
        )


def _resolved(settings: Any) -> dict[str, Any]:
    return {k: v for k, v in settings.to_dict().items() if v is not None}


def _decode_pass(reader: Any) -> dict[str, Any]:
    """One sequential pass over the working video (``iter_frames``), timed."""
    started = time.perf_counter()
    decoded = sum(1 for _ in reader.iter_frames())
    return {
        "frames": decoded,
        "s_per_frame": (time.perf_counter() - started) / max(decoded, 1),
        "size": f"{reader.info.width}x{reader.info.height}",
    }


# ------------------------------------------------------------------------------- ours


def job_ours(spec: dict[str, Any]) -> dict[str, Any]:
    """Our path: ``Workspace.open`` → box on frame 0 → ``track`` (or the session's ``propagate``)."""
    meter = JobMeter(spec)
    record = meter.record
    from tracker.models import ModelHub
    from tracker.workspace import Workspace

    settings = settings_for(spec)
    hub = ModelHub(device=settings.device)
    started = time.perf_counter()
    ws = Workspace.open(Path(spec["video"]), hub, settings, Path(spec["workdir"]))
    record["open_s"] = time.perf_counter() - started
    _check_frames(ws, spec)
    info = ws.info
    record.update(
        num_frames=info.num_frames, width=info.width, height=info.height, settings=_resolved(ws.settings)
    )
    started = time.perf_counter()
    predictor = workspace_predictor(hub, ws)
    record["model_load_s"] = time.perf_counter() - started
    if spec.get("compile"):
        compile_predictor(predictor)
    device = predictor.device
    record["autocast"] = autocast_name(ws.device, ws.settings.bf16)

    reset_gpu_peak(device)
    record["rss_before_prompt_mb"] = current_rss() / MB
    with stages() as prompt_stages:
        started = time.perf_counter()
        with no_new_models(hub):
            obj = ws.add_object("benchmark")
            ws.set_box(obj.object_id, 0, prompt_box(info.width, info.height))
        sync(device)
        record["prompt_s"] = time.perf_counter() - started  # includes init_state (frame 0 encoded)
    record["stages_prompt"] = prompt_stages.to_dict()

    with stages() as track_stages:
        record.update(_track(ws, spec, meter, device))
    if spec["mode"] == "track":
        require_stages(track_stages, TRACK_STAGES, "track run")
    record["stages"] = track_stages.to_dict()
    record["held_at_end"] = _held_at_end(ws)
    if spec.get("decode_pass"):
        record["decode_pass"] = _decode_pass(ws.reader)
    ws.close()
    return meter.finish(device)


def _track(ws: Any, spec: dict[str, Any], meter: JobMeter, device: Any) -> dict[str, Any]:
    """Drive ``ws`` through the video; timings, CPU and RSS per frame."""
    overlay = Path(spec["workdir"]) / "overlay.mp4"
    if spec["mode"] == "track" and spec.get("discover_every"):
        ws.prompt_text = spec.get("prompt") or "object"
        frames = ws.track(direction="both", overlay_path=overlay, discover=looking(spec["discover_every"]))
    elif spec["mode"] == "track":
        frames = ws.track(direction="both", overlay_path=overlay)
    else:
        frames = ws.session.propagate(direction="forward")
    frame_times: list[float] = []
    rss_per_frame: list[int] = []
    children_cpu = cpu_seconds(resource.RUSAGE_CHILDREN)
    cpu_before = cpu_seconds()
    track_started = time.perf_counter()
    for _ in frames:
        frame_times.append(time.perf_counter())
        rss_per_frame.append(current_rss())
    sync(device)
    track_ended = time.perf_counter()
    out: dict[str, Any] = {"overlay_bytes": overlay.stat().st_size} if spec["mode"] == "track" else {}
    track_s = track_ended - track_started
    cpu_s = cpu_seconds() - cpu_before
    out.update(
        track_s=track_s,
        frames_done=len(frame_times),
        first_result_s=frame_times[0] - track_started if frame_times else None,
        first_propagated_s=frame_times[1] - track_started if len(frame_times) > 1 else None,
        per_frame=per_frame_stats(frame_times),
        cpu_s=cpu_s,
        cpu_share=cpu_s / track_s,  # cores busy on average (2 = all, here)
        children_cpu_s=cpu_seconds(resource.RUSAGE_CHILDREN) - children_cpu,  # ffmpeg encoding
        peak_rss_tracking_mb=meter.sampler.peak(track_started, track_ended) / MB,
        **rss_trace(rss_per_frame),
    )
    looked = discovery_record(ws) if spec["mode"] == "track" else None
    if looked is not None:
        out["discovery"] = looked
    return out


def _held_at_end(ws: Any) -> dict[str, Any]:
    stored = ws.session.stored_frames()
    return {
        "non_conditioning": stored.non_conditioning,
        "conditioning": stored.conditioning,
        "cached_features": stored.cached_features,
        "model_frames": stored.model_frames,
        "result_store_kb": ws.store.nbytes() / 1024,
        "reader_cache_frames": ws.reader.cached_frames,
    }


# ------------------------------------------------------------------------------- plain SAM 2


def job_plain(spec: dict[str, Any]) -> dict[str, Any]:
    """Plain SAM 2 as its examples use it: JPEG folder → init_state → add_new_points_or_box → propagate."""
    meter = JobMeter(spec)
    record = meter.record
    import numpy as np
    from PIL import Image

    from tracker.devices import autocast, pick_device
    from tracker.models import load_sam2

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
    record["autocast"] = autocast_name(device, bf16)
    reset_gpu_peak(device)

    frame_times: list[float] = []
    rss_per_frame: list[int] = []
    box = np.array(prompt_box(width, height), dtype=np.float32)
    with autocast(device, enabled=bf16):
        started = time.perf_counter()
        state = predictor.init_state(video_path=str(frames_dir))
        record["init_state_s"] = time.perf_counter() - started
        prompt_started = time.perf_counter()
        predictor.add_new_points_or_box(state, frame_idx=0, obj_id=1, box=box)
        sync(device)
        record["prompt_s"] = time.perf_counter() - prompt_started
        record["rss_before_track_mb"] = current_rss() / MB
        cpu_before = cpu_seconds()
        track_started = time.perf_counter()
        for _frame_idx, _obj_ids, logits in predictor.propagate_in_video(state):
            _masks = (logits > 0.0).cpu().numpy()  # what SAM 2's example notebook does per frame
            frame_times.append(time.perf_counter())
            rss_per_frame.append(current_rss())
        track_ended = time.perf_counter()
    record.update(
        track_s=track_ended - track_started,
        frames_done=len(frame_times),
        first_result_s=frame_times[0] - started if frame_times else None,  # from init_state
        first_propagated_s=frame_times[1] - started if len(frame_times) > 1 else None,
        per_frame=per_frame_stats(frame_times),
        cpu_s=cpu_seconds() - cpu_before,
        peak_rss_tracking_mb=meter.sampler.peak(track_started, track_ended) / MB,
        **rss_trace(rss_per_frame),
    )
    record["cpu_share"] = record["cpu_s"] / record["track_s"]  # cores busy on average (2 = all, here)
    return meter.finish(device)


# ------------------------------------------------------------------------------- find


def job_find(spec: dict[str, Any]) -> dict[str, Any]:
    """``Workspace.find_candidates`` with the default preset: cold (models built in the call), then warm."""
    meter = JobMeter(spec)
    record = meter.record
    from tracker.candidates import default_stride
    from tracker.models import ModelHub
    from tracker.workspace import Workspace

    settings = settings_for(spec, {})
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
        settings=_resolved(ws.settings),
        autocast=autocast_name(ws.device, ws.settings.bf16),
    )
    record["runs"] = [_find_run(ws, spec["prompt"], label) for label in ("cold", "warm")]
    stride = ws.settings.stride or default_stride(info.fps)
    started = time.perf_counter()
    ranked_decoded = sum(1 for _ in ws.reader.iter_frames(0, info.num_frames, stride))
    record["decode_ranked_frames"] = {
        "frames": ranked_decoded,
        "stride": stride,
        "s": time.perf_counter() - started,
    }
    record["decode_pass"] = _decode_pass(ws.reader)
    ws.close()
    return meter.finish(ws.device)


def _find_run(ws: Any, prompt: str, label: str) -> dict[str, Any]:
    """One ``find_candidates`` call: its events (time since the call) and the library's stage times."""
    events = []
    with stages() as found:
        started = time.perf_counter()
        for event in ws.find_candidates(prompt):
            events.append(
                {
                    "t": time.perf_counter() - started,
                    "stage": event.stage,
                    "progress": round(event.progress, 3),
                    "candidates": len(event.candidates),
                    "new_frame": event.new_frame,
                }
            )
    require_stages(found, FIND_STAGES, f"{label} Find")
    return {"run": label, "events": events, "stages": found.to_dict(), **find_phases(events)}


def find_phases(events: list[dict[str, Any]]) -> dict[str, Any]:
    """Phase durations from the event stream (see ``CandidateFinder.find`` for the order)."""
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


# ------------------------------------------------------------------------------- paired


def job_paired(spec: dict[str, Any]) -> dict[str, Any]:
    """Several arms in one process, advanced one frame each in turn (the order rotates every frame).

    On a shared machine whose load changes by the minute, this is what makes a 5 % comparison
    meaningful: every arm sees the same load. Arms share model objects where the settings match
    (plain SAM 2 then runs the very predictor our session uses).
    """
    meter = JobMeter(spec)
    record = meter.record
    from tracker.models import ModelHub

    workdir = Path(spec["workdir"])
    hub = ModelHub(device=spec.get("device", "cpu"))
    children_cpu = cpu_seconds(resource.RUSAGE_CHILDREN)
    arms = [_build_arm(spec, arm, number, hub) for number, arm in enumerate(spec["arms"])]
    workspaces = [arm.ws for arm in arms if isinstance(arm, OursArm)]
    if spec.get("warmup") and workspaces:
        first = next(arm for arm in spec["arms"] if arm["kind"] != "plain")
        settings = settings_for(spec, first)
        record["warmup_s"] = warm_up(
            Path(spec["video"]), hub, settings, workdir / "warmup", int(spec["warmup"])
        )
    started = time.perf_counter()
    cpu_before = cpu_seconds()
    interleave(arms)
    loop_s = time.perf_counter() - started
    record["loop_s"] = loop_s
    record["cpu_share"] = (cpu_seconds() - cpu_before) / loop_s
    record["children_cpu_s"] = cpu_seconds(resource.RUSAGE_CHILDREN) - children_cpu
    record["arms"] = [arm.record() for arm in arms]
    if spec.get("decode_pass") and workspaces:
        record["decode_pass"] = _decode_pass(workspaces[0].reader)
    for ws in workspaces:
        ws.close()
    return meter.finish(None)


def _build_arm(spec: dict[str, Any], arm: dict[str, Any], number: int, hub: Any) -> Arm:
    """Arm ``number`` of ``spec``: its model loaded through ``hub``, prompted, ready to step."""
    from tracker.workspace import Workspace

    started = time.perf_counter()
    if arm["kind"] == "plain":
        predictor = hub.sam2(
            arm["model"],
            image_size=arm["image_size"],
            device=spec.get("device"),
            random_weights=True,
            compile=bool(spec.get("compile")),
        )
        load_s = time.perf_counter() - started
        made: Arm = PlainArm(
            arm["name"], predictor, Path(arm["frames_dir"]), arm.get("bf16"), predictor.device
        )
        made.phases["model_load_s"] = load_s
        return made
    folder = Path(spec["workdir"]) / f"arm{number}"
    ws = Workspace.open(Path(spec["video"]), hub, settings_for(spec, arm), folder)
    opened = time.perf_counter()
    if ws.info.num_frames != spec["num_frames"]:
        raise RuntimeError(
            f"expected {spec['num_frames']} frames, the trimmed video has {ws.info.num_frames}"
        )
    workspace_predictor(hub, ws)
    loaded = time.perf_counter()
    made = OursArm(
        arm["name"],
        ws,
        arm["mode"],
        folder / "overlay.mp4",
        arm.get("discover_every"),
        arm.get("prompt"),
        skip_covered=arm.get("skip_covered", True),
    )
    made.phases.update(open_s=opened - started, model_load_s=loaded - opened)
    return made


# ------------------------------------------------------------------------------- the detector alone

DETECT_COUNTERS = ("points", "skipped_points", "crops", "skipped_crops")


def job_detect(spec: dict[str, Any]) -> dict[str, Any]:
    """Discovery's detector alone, with and without a solid tracked mask, on the same check frames.

    Random-weight SAM 2 tracks noise, which covers no grid point and no proposal solidly, so the
    tracking arms cannot show what skipping saves with real masks. Here the workspace tracks the
    clip with discovery looking (``arms.looking``); on each check frame whose backbone features
    the tracker just computed, the very ``ClipDetector`` it built runs twice more, in alternating
    order: ``covered=None`` (nothing skipped) and ``covered`` = the ellipse inside the prompt box
    (a stand-in for the solid mask real weights track there). Stops after ``spec["checks"]``.
    """
    meter = JobMeter(spec)
    record = meter.record
    import numpy as np

    from tracker.models import ModelHub
    from tracker.workspace import Workspace

    settings = settings_for(spec, {"preset": spec.get("preset")})
    ws = Workspace.open(Path(spec["video"]), ModelHub(device=settings.device), settings, Path(spec["workdir"]))
    info = ws.info
    box = prompt_box(info.width, info.height)
    ws.set_box(ws.add_object("benchmark").object_id, 0, box)
    ws.prompt_text = spec.get("prompt") or "object"
    yy, xx = np.mgrid[0 : info.height, 0 : info.width]
    cx, cy, rx, ry = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2, (box[2] - box[0]) / 2, (box[3] - box[1]) / 2
    solid = ((xx + 0.5 - cx) / rx) ** 2 + ((yy + 0.5 - cy) / ry) ** 2 <= 1.0
    variants = {"nothing skipped": None, "solid tracked mask": solid[None]}
    rows = {name: {"seconds": [], **dict.fromkeys(DETECT_COUNTERS, 0)} for name in variants}
    every, done = int(spec["discover_every"]), 0
    run = ws.track(direction="both", discover=looking(every))
    for event in run:
        frame_idx = event.result.frame_idx
        if frame_idx % every or ws.session.frame_features(frame_idx) is None:
            continue
        detector, frame = ws.last_discovery.detector, ws.frame(frame_idx)
        for name in list(variants)[:: 1 if done % 2 == 0 else -1]:
            before = [getattr(detector, key) for key in DETECT_COUNTERS]
            started = time.perf_counter()
            detector.detect(frame_idx, frame, covered=variants[name])
            rows[name]["seconds"].append(round(time.perf_counter() - started, 4))
            for key, value in zip(DETECT_COUNTERS, before, strict=True):
                rows[name][key] += getattr(detector, key) - value
        done += 1
        if done >= int(spec["checks"]):
            break
    run.close()
    record.update(
        width=info.width,
        height=info.height,
        settings=_resolved(ws.settings),
        covered_fraction=float(solid.mean()),
        checks=done,
        variants=rows,
    )
    ws.close()
    return meter.finish(ws.device)


JOBS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "detect": job_detect,
    "paired": job_paired,
    "ours": job_ours,
    "plain": job_plain,
    "find": job_find,
}
