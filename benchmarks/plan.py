"""What each section runs: its inputs and job specs (parent side; the jobs run in subprocesses).

A section is one entry of :data:`SECTIONS`: a name, the clip it needs and a planner
``plan(ctx) -> dict`` that prepares inputs, runs jobs through ``ctx.run(kind, label, **spec)``
(see ``benchmarks/jobs.py`` for the kinds) and returns what the report reads. Adding a row to the
benchmark means: a planner here (or a new job in an existing one), a summariser with its targets in
``benchmarks/summary.py`` and, if it has its own table, a renderer in ``benchmarks/report.py``.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.media import looped_video, write_jpegs

GPU_MODELS = ("tiny", "base+", "large")
NO_GPU = "not run: no GPU in this session"


@dataclass
class Context:
    """What every planner gets: the options, where to put files, how to run a job, the clip."""

    args: argparse.Namespace
    run: Callable[..., dict[str, Any]]
    workdir: Path
    device: Any
    video: Path
    max_size: int  # working size of the clip (the preset's unless --max-size)
    working: Any  # tracker.types.VideoInfo of the clip at max_size
    common: dict[str, Any] = field(default_factory=dict)  # every job: device, compile

    @property
    def on_gpu(self) -> bool:
        return self.device.type == "cuda"

    @property
    def ours(self) -> dict[str, Any]:
        """Spec fields of every "ours" job: the common ones, the preset and working size."""
        return {**self.common, "preset": self.args.preset, "max_size": self.args.max_size}

    def clip(self, frames: int) -> dict[str, Any]:
        """Spec fields for the clip looped and trimmed to exactly ``frames`` frames."""
        looped, end_time = looped_video(self.video, frames, self.workdir)
        return {"video": str(looped), "end_time": end_time, "num_frames": frames}


def plan_memory(ctx: Context) -> dict[str, Any]:
    """Ours (track + overlay), ours with discovery on and plain SAM 2 at each length, each in its
    own process.

    The discovery run looks every ``--discover-every`` frames through the real detector (SAM 2
    point proposals from the tracker's features, CLIP crops) and adds nothing (``arms.looking``:
    threshold +inf), so the object count stays one and what grows with length, if anything, is
    discovery's own state. ``--no-memory-discovery`` leaves it out.
    """
    args = ctx.args
    every = None if args.no_memory_discovery else args.discover_every
    memory: dict[str, Any] = {
        "image_size": args.image_size,
        "model": args.model,
        "discover_every": every,
        "runs": [],
    }
    same = {"model": args.model, "image_size": args.image_size, "bf16": args.bf16_value}
    for length in sorted(args.lengths):
        label = f"memory: ours, {length} frames at {args.image_size}"
        memory["runs"].append(ctx.run("ours", label, mode="track", **ctx.clip(length), **same, **ctx.ours))
        if every:
            label = f"memory: ours, discovery on every {every}, {length} frames at {args.image_size}"
            looking = {"discover_every": every, "prompt": args.find_prompt}
            memory["runs"].append(
                ctx.run("ours", label, mode="track", **looking, **ctx.clip(length), **same, **ctx.ours)
            )
        if not args.skip_plain:
            folder = ctx.workdir / "jpeg-working" / f"n{length}"
            prep = write_jpegs(ctx.video, folder, length, ctx.max_size)
            label = f"memory: plain SAM 2, {length} frames at {args.image_size}"
            result = ctx.run("plain", label, frames_dir=str(folder), **same, **ctx.common)
            result["prep"] = prep
            memory["runs"].append(result)
    return memory


def plan_equal(ctx: Context) -> dict[str, Any]:
    """Plain, ours propagate and ours track at equal settings, interleaved, ``--repeats`` times."""
    args = ctx.args
    n = args.equal_frames
    clip = ctx.clip(n)
    equal: dict[str, Any] = {
        "image_size": args.equal_image_size,
        "model": args.model,
        "frames": n,
        "runs": [],
    }
    same = {"model": args.model, "image_size": args.equal_image_size, "bf16": args.bf16_value}
    ours = {"kind": "ours", "preset": args.preset, "max_size": args.max_size, **same}
    arms = []
    if not args.skip_plain:
        equal["prep"] = write_jpegs(ctx.video, ctx.workdir / "jpeg-equal", n, ctx.max_size)
        arms.append({"name": "plain", "kind": "plain", "frames_dir": str(ctx.workdir / "jpeg-equal"), **same})
    arms.append({"name": "ours propagate", "mode": "propagate", **ours})
    arms.append({"name": "ours track", "mode": "track", **ours})
    for repeat in range(args.repeats):
        label = (
            f"equal #{repeat + 1}: {', '.join(a['name'] for a in arms)} "
            f"({n} frames at {args.equal_image_size}, interleaved)"
        )
        equal["runs"].append(
            ctx.run(
                "paired",
                label,
                arms=arms,
                decode_pass=repeat == 0,
                warmup=args.warmup_frames,
                **clip,
                **ctx.common,
            )
        )
    return equal


def plan_defaults(ctx: Context) -> dict[str, Any]:
    """Our device's default preset against plain SAM 2 at its defaults (1024, frames at source size)."""
    from tracker.devices import PRESETS, default_preset

    preset = default_preset(ctx.device)
    n = ctx.args.defaults_frames
    clip = ctx.clip(n)
    defaults: dict[str, Any] = {
        "frames": n,
        "clip_frames": ctx.working.num_frames,
        "preset": preset.name,
        "runs": [],
    }
    arms: list[dict[str, Any]] = [{"name": "ours default preset", "kind": "ours", "mode": "track"}]
    if not ctx.args.skip_plain:
        defaults["prep"] = write_jpegs(
            ctx.video, ctx.workdir / "jpeg-source", n, None
        )  # the README's ffmpeg step
        arms.append(
            {
                "name": "plain SAM 2 defaults",
                "kind": "plain",
                "frames_dir": str(ctx.workdir / "jpeg-source"),
                "model": PRESETS[preset.name].sam2_model,
                "image_size": 1024,
                "bf16": bool(ctx.on_gpu),
            }
        )
    label = f"defaults: ours ({preset.name}) vs plain SAM 2 at 1024 ({n} frames, interleaved)"
    defaults["runs"].append(ctx.run("paired", label, arms=arms, **clip, **ctx.common))
    return defaults


def plan_find(ctx: Context) -> dict[str, Any]:
    """``find_candidates`` on the Find clip, cold then warm, in one process."""
    args = ctx.args
    return ctx.run(
        "find",
        f"find: {args.find_prompt!r} on {Path(args.find_video).name}",
        video=str(args.find_video),
        prompt=args.find_prompt,
        device=args.device,
    )


def plan_gpu(ctx: Context) -> dict[str, Any]:
    """Propagation fps at 1024 in bf16 for each model, ours and plain (CUDA only)."""
    args = ctx.args
    gpu: dict[str, Any] = {"compiled": bool(args.compile), "frames": args.gpu_frames, "runs": []}
    if not ctx.on_gpu:
        gpu["not_run"] = NO_GPU
        return gpu
    n = args.gpu_frames
    clip = ctx.clip(n)
    prep = write_jpegs(ctx.video, ctx.workdir / "jpeg-gpu", n, ctx.max_size)
    for model in GPU_MODELS:
        same = {"model": model, "image_size": 1024, "bf16": True}
        label = f"gpu: ours {model} at 1024, {n} frames"
        gpu["runs"].append(ctx.run("ours", label, mode="propagate", **clip, **same, **ctx.ours))
        if not args.skip_plain:
            label = f"gpu: plain SAM 2 {model} at 1024, {n} frames"
            result = ctx.run("plain", label, frames_dir=str(ctx.workdir / "jpeg-gpu"), **same, **ctx.common)
            result["prep"] = prep
            gpu["runs"].append(result)
    return gpu


def plan_discovery(ctx: Context) -> dict[str, Any]:
    """Tracking with discovery off and on (a check every ``--discover-every`` frames), interleaved
    frame by frame in one process, on the Find clip at the device's default preset.

    The "on" arm looks but never adds (threshold and re-acquisition set out of reach): with random
    weights every check would otherwise confirm noise, and what is measured is the price of
    looking (proposals from the tracker's own features + CLIP crop scores) on every check. A
    third arm (``--no-discovery-baseline`` leaves it out) looks without skipping the regions
    tracked objects cover (``DiscoveryConfig.skip_covered=False``): the check as it was before.
    Random-weight masks are noise that covers nothing solidly, so a ``detect`` job then times
    the detector alone on ``--detect-checks`` check frames with and without a solid tracked
    mask (``jobs.job_detect``).
    """
    from tracker.devices import default_preset
    from tracker.video import probe

    args = ctx.args
    preset = default_preset(ctx.device)
    end_time = args.discovery_seconds
    video = Path(args.find_video)
    frames = probe(video, max_size=preset.max_size, end=end_time).num_frames
    section: dict[str, Any] = {
        "frames": frames,
        "every": args.discover_every,
        "preset": preset.name,
        "runs": [],
    }
    base = {"kind": "ours", "mode": "track", "preset": preset.name}
    looking = {**base, "discover_every": args.discover_every, "prompt": args.find_prompt}
    arms = [
        {"name": "discovery off", **base},
        {"name": "discovery on", **looking},
    ]
    if not args.no_discovery_baseline:
        # before covered regions were skipped: every grid point decoded, every proposal cropped
        arms.append({"name": "discovery on, nothing skipped", **looking, "skip_covered": False})
    label = f"discovery: off vs on every {args.discover_every} frames ({frames} frames of {video.name}, interleaved)"
    spec = {"video": str(video), "end_time": end_time, "num_frames": frames}
    section["runs"].append(ctx.run("paired", label, arms=arms, **spec, **ctx.common))
    if not args.no_discovery_baseline:
        checks = max(1, min(args.detect_checks, (frames - 1) // args.discover_every))
        label = f"discovery: the detector with and without a solid tracked mask ({checks} check frames)"
        section["detect"] = ctx.run(
            "detect", label, preset=preset.name, discover_every=args.discover_every, checks=checks,
            prompt=args.find_prompt, **spec, **ctx.common,
        )  # fmt: skip
    return section


@dataclass(frozen=True)
class Section:
    """One part of the benchmark: ``plan`` runs it; ``clip`` names the option giving its input clip."""

    name: str
    plan: Callable[[Context], dict[str, Any]]
    clip: str = "video"


# In running (and reporting) order.
SECTIONS: tuple[Section, ...] = (
    Section("memory", plan_memory),
    Section("equal", plan_equal),
    Section("defaults", plan_defaults),
    Section("find", plan_find, clip="find_video"),
    Section("gpu", plan_gpu),
    Section("discovery", plan_discovery, clip="find_video"),
)
SECTION_NAMES = tuple(section.name for section in SECTIONS)
