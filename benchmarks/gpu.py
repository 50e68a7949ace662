"""The GPU benchmark in one call (issue 15): ``python benchmarks/gpu.py --out DIR``.

Prints one Markdown table and writes it (``gpu-table.md``) and every measurement
(``gpu.json``) to ``--out``:

* propagation fps and end-to-end fps (decode + SAM 2 + overlay + H.264) for tiny, small, base+
  and large at 1024 in bf16, uncompiled and compiled (``tracker.models.compile_sam2``, what
  ``--compile`` and SAM 2's ``vos_optimized=True`` do), ours and plain SAM 2 on the same
  predictor, next to SAM 2's published A100 figures; end to end ÷ propagation;
* Find latency (first candidates, all) on a 10 s 720p clip, cold and warm;
* peak GPU memory of ours on a 1-minute and a 10-minute 720p clip (the 10 s clip looped, stream
  copy), each run until the clip ends or ``--memory-cap-s`` passes; plain SAM 2's figure for the
  same lengths is estimated from its measured peak plus the frames ``init_state`` preloads.

Everything runs within ``--budget-s``: rows are run in order of importance (uncompiled speed, Find,
memory, compiled speed) and a row that no longer fits is reported as skipped. Every job is a
fresh subprocess (``run.py --job``). Random weights. ``--dry`` runs the same code on the CPU at
toy sizes (tiny at 128, 2 frames): what the test suite runs.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if __package__ in (None, ""):
    sys.path.insert(0, str(ROOT))

from benchmarks.measure import load_average, machine  # noqa: E402
from benchmarks.media import looped_video, write_jpegs  # noqa: E402
from benchmarks.run import Runner  # noqa: E402

MODELS = ("tiny", "small", "base+", "large")
# SAM 2's README (A100, bf16, 1024): SAM 2.1 compiled (vos_optimized), SAM 2 uncompiled.
PUBLISHED_FPS = {"tiny": (47.2, 91.2), "small": (43.3, 84.8), "base+": (34.8, 64.1), "large": (24.2, 39.5)}
SKIPPED = "skipped: time budget"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python benchmarks/gpu.py", description=__doc__.split("\n")[0])
    add = parser.add_argument
    add("--out", type=Path, required=True, help="folder for gpu-table.md and gpu.json")
    add("--device", default="cuda")
    add("--models", default=",".join(MODELS))
    add("--image-size", type=int, default=1024)
    add("--frames", type=int, default=150, help="frames of each speed run")
    add("--warmup", type=int, default=24, help="frames tracked once before (builds kernels / graphs)")
    add("--compile", choices=("both", "off", "on"), default="both")
    add(
        "--budget-s", type=float, default=330, help="seconds for everything; rows that do not fit are skipped"
    )
    add("--clip", type=Path, default=None, help="a 10 s 720p clip (default: generated)")
    add("--memory-minutes", default="1,10", help="lengths of the memory runs (the clip looped)")
    add("--memory-cap-s", type=float, default=40, help="seconds each memory run may take")
    add("--memory-model", default="tiny")
    add("--sections", default="speed,find,memory", help="which parts to run (speed, find, memory)")
    add("--workdir", type=Path, default=None)
    add("--dry", action="store_true", help="the same code on the CPU at toy sizes (a test)")
    args = parser.parse_args(argv)
    args.models = [m.strip() for m in args.models.split(",") if m.strip()]
    args.sections = {part.strip() for part in args.sections.split(",") if part.strip()}
    args.memory_frames = None
    if args.dry:
        args.device, args.models, args.image_size = "cpu", ["tiny"], 128
        args.frames, args.warmup, args.compile = 2, 1, "off"
        args.memory_frames = [4, 8]
    return args


def make_clip(folder: Path, dry: bool) -> Path:
    """A 10 s 1280×720 30 fps clip of moving shapes (``--dry``: 2 s, 160×120, 6 fps)."""
    from tests.synthetic import make_video

    path = folder / ("clip-dry.mp4" if dry else "clip-720p-10s.mp4")
    if dry:
        make_video(path, num_frames=12, width=160, height=120, fps=6)
    else:
        make_video(path, num_frames=300, width=1280, height=720, fps=30)
    return path


class Budget:
    """Seconds left of ``--budget-s``; runs a job with what is left as its timeout, or skips it."""

    def __init__(self, runner: Runner, seconds: float) -> None:
        self.runner = runner
        self.deadline = time.perf_counter() + seconds

    def left(self) -> float:
        return self.deadline - time.perf_counter()

    def run(self, kind: str, label: str, minimum: float = 20, **spec: Any) -> dict[str, Any]:
        left = self.left()
        if left < minimum:
            print(f"     {label}: {SKIPPED} ({left:.0f} s left)", file=sys.stderr, flush=True)
            return {"label": label, "skipped": SKIPPED}
        self.runner.timeout = left
        return self.runner(kind, label, **spec)


def speed_spec(
    args: argparse.Namespace, model: str, compiled: bool, clip: dict, jpegs: Path
) -> dict[str, Any]:
    same = {"model": model, "image_size": args.image_size, "bf16": True if args.device != "cpu" else None}
    ours = {"kind": "ours", "max_size": args.max_size, **same}
    arms = [
        {"name": "plain", "kind": "plain", "frames_dir": str(jpegs), **same},
        {"name": "ours propagate", "mode": "propagate", **ours},
        {"name": "ours track", "mode": "track", **ours},
    ]
    return {"device": args.device, "compile": compiled, "warmup": args.warmup, "arms": arms, **same,
            "max_size": args.max_size, **clip}  # fmt: skip


def run_all(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    from tracker.video import probe

    budget = Budget(Runner(workdir, args.budget_s), args.budget_s)
    source = args.clip if args.clip else make_clip(workdir, args.dry)
    info = probe(source)
    args.max_size = max(info.width, info.height)
    report: dict[str, Any] = {"clip": {"path": str(source), "frames": info.num_frames, "fps": info.fps,
                                       "size": f"{info.width}x{info.height}"}}  # fmt: skip
    looped, end_time = looped_video(source, args.frames, workdir)
    clip = {"video": str(looped), "end_time": end_time, "num_frames": args.frames}
    jpegs = workdir / "jpeg-speed"
    report["jpegs"] = write_jpegs(source, jpegs, args.frames, args.max_size)
    compiled = {"both": [False, True], "off": [False], "on": [True]}[args.compile]
    speed = [(m, False) for m in args.models if False in compiled]
    later = [(m, True) for m in args.models if True in compiled]
    if "speed" not in args.sections:
        speed, later = [], []
    report["speed"] = []
    for model, on in speed:
        label = f"speed: {model} at {args.image_size}, uncompiled, {args.frames} frames"
        report["speed"].append(budget.run("gpu_speed", label, **speed_spec(args, model, on, clip, jpegs)))
    report["find"] = {"label": "find", "skipped": "not asked for"}
    if "find" in args.sections:
        report["find"] = budget.run("find", f"find on {source.name}", video=str(source), prompt="a red disc",
                                    device=args.device)  # fmt: skip
    report["memory"] = memory_runs(args, budget, source, info) if "memory" in args.sections else []
    for model, on in later:
        label = f"speed: {model} at {args.image_size}, compiled, {args.frames} frames"
        report["speed"].append(
            budget.run("gpu_speed", label, minimum=60, **speed_spec(args, model, on, clip, jpegs))
        )
    return report


def memory_runs(args: argparse.Namespace, budget: Budget, source: Path, info: Any) -> list[dict[str, Any]]:
    lengths = args.memory_frames or [
        round(float(m) * 60 * info.fps) for m in args.memory_minutes.split(",") if m.strip()
    ]
    runs = []
    for frames in lengths:
        looped, end_time = looped_video(source, frames, budget.runner.workdir)
        spec = {"video": str(looped), "end_time": end_time, "num_frames": frames, "device": args.device,
                "model": args.memory_model, "image_size": args.image_size, "max_size": args.max_size,
                "bf16": True if args.device != "cpu" else None, "time_cap_s": args.memory_cap_s,
                "checkpoint_every": max(1, frames // 20)}  # fmt: skip
        label = f"memory: ours {args.memory_model}, {frames} frames ({frames / info.fps / 60:.1f} min)"
        runs.append(budget.run("gpu_memory", label, **spec))
    return runs


# ------------------------------------------------------------------------------- the table


def _fmt(value: Any, digits: int = 1) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _arm(run: dict[str, Any], name: str) -> dict[str, Any]:
    return next((a for a in run.get("arms", []) if a["name"] == name), {})


def speed_rows(report: dict[str, Any]) -> list[str]:
    rows = []
    for run in report["speed"]:
        spec = run.get("spec", {})
        model = spec.get("model") or run["label"].split()[1].rstrip(",")
        on = spec.get("compile", "compiled" in run["label"] and "uncompiled" not in run["label"])
        published = PUBLISHED_FPS.get(model, (None, None))[1 if on else 0]
        if "error" in run or "skipped" in run:
            why = run.get("skipped") or f"failed: {run['error']}"
            rows.append(f"| {model} | {'yes' if on else 'no'} | {_fmt(published)} | {why} | | | | |")
            continue
        plain, prop, track = _arm(run, "plain"), _arm(run, "ours propagate"), _arm(run, "ours track")
        ratio = None
        if prop.get("s_per_frame_mean") and track.get("s_per_frame_mean"):
            ratio = track["s_per_frame_mean"] / prop["s_per_frame_mean"]
        peaks = f"{_fmt(prop.get('gpu_peak_mb'), 0)} / {_fmt(plain.get('gpu_peak_mb'), 0)}"
        rows.append(
            f"| {model} | {'yes' if on else 'no'} | {_fmt(published)} | {_fmt(plain.get('fps'))} | "
            f"{_fmt(prop.get('fps'))} | {_fmt(track.get('fps'))} | {_fmt(ratio, 2)}× | {peaks} |"
        )
    return rows


def find_line(report: dict[str, Any]) -> str:
    find = report["find"]
    if "runs" not in find:
        return f"Find: {find.get('skipped') or 'failed: ' + str(find.get('error'))}"
    cold, warm = find["runs"][0], find["runs"][-1]
    return (
        f'Find ("a red disc", {find.get("num_frames")} frames {find.get("source")}, preset '
        f"{find.get('settings', {}).get('preset')}): first candidates {_fmt(cold['first_candidates_s'])} s, "
        f"all {_fmt(cold['total_s'])} s cold (models built in the call); warm {_fmt(warm['first_candidates_s'])} s / "
        f"{_fmt(warm['total_s'])} s."
    )


def memory_rows(report: dict[str, Any], image_size: int) -> list[str]:
    per_frame_mb = 3 * image_size * image_size * 4 / 2**20  # plain init_state's float32 frame on the GPU
    plain = next((_arm(r, "plain") for r in report["speed"] if _arm(r, "plain").get("gpu_peak_mb")), {})
    rows = []
    for run in report["memory"]:
        frames = run.get("spec", {}).get("num_frames") or run.get("num_frames")
        if "error" in run or "skipped" in run:
            rows.append(f"| {run['label']} | {run.get('skipped') or 'failed: ' + run['error']} | | |")
            continue
        reached = f"{run['frames_done']} of {run['num_frames']}" + ("" if run["complete"] else " (time cap)")
        estimate = "—"
        if plain.get("gpu_peak_mb") and frames:
            extra = (frames - plain["frames_done"]) * per_frame_mb
            estimate = f"≈ {(plain['gpu_peak_mb'] + extra) / 1024:.1f} GB (estimated)"
        rows.append(f"| {frames} frames | {reached} at {_fmt(run['fps'])} fps | {_fmt(run['gpu_peak_mb'], 0)} MB "
                    f"(RSS {_fmt(run['peak_rss_mb'], 0)} MB) | {estimate} |")  # fmt: skip
    return rows


def render(report: dict[str, Any]) -> str:
    head = report["head"]
    lines = [
        f"Machine: {head['machine'].get('cuda') or head['machine'].get('cpu')}; torch {head['machine'].get('torch')}; "
        f"{head['machine'].get('cores')} cores. Date {head['date']}. Wall {report['wall_s']:.0f} s. "
        f"Command: `{head['command']}`. Random weights.",
        "",
        f"**Speed at {head['image_size']}, {head['precision']}** (fps = frames per second over {head['frames']} frames "
        "after the prompt frame; end to end = decode + SAM 2 + overlay + H.264 mp4)",
        "",
        "| model | compiled | SAM 2 published (A100) | plain SAM 2 propagation | ours propagation | ours end to end "
        "| end to end ÷ propagation | GPU peak MB ours / plain |",
        "|---|---|---|---|---|---|---|---|",
        *speed_rows(report),
        "",
        find_line(report),
        "",
        "**Peak GPU memory vs video length** (ours propagate; the 10 s clip looped)",
        "",
        "| length | frames tracked | ours peak (GPU) | plain SAM 2 (preloads every frame) |",
        "|---|---|---|---|",
        *memory_rows(report, head["image_size"]),
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    started = time.perf_counter()
    head = {
        "command": "python benchmarks/gpu.py " + " ".join(argv),
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "machine": machine(),
        "load_average_start": load_average(),
        "image_size": args.image_size,
        "frames": args.frames,
        "precision": "bf16 autocast" if args.device != "cpu" else "the CPU autocast policy",
    }
    with tempfile.TemporaryDirectory(prefix="tracker-gpu-bench-") as temp:
        workdir = Path(args.workdir or temp)
        workdir.mkdir(parents=True, exist_ok=True)
        report = run_all(args, workdir)
    report["head"] = head
    report["wall_s"] = time.perf_counter() - started
    table = render(report)
    print(table)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "gpu-table.md").write_text(table + "\n")
    (args.out / "gpu.json").write_text(json.dumps(report, default=str, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
